// Package safetensors writes the weights of a Caffe net as a safetensors
// file, the tensor format of Hugging Face's safetensors library, which
// PyTorch, JAX and NumPy users load without Caffe.
//
// A file is an 8-byte little-endian unsigned header length N, then N bytes
// of UTF-8 JSON, then the data section. The JSON object maps each tensor
// name to {"dtype", "shape", "data_offsets": [BEGIN, END]}, where the
// offsets count bytes from the start of the data section and END is one
// past the last byte. The optional key "__metadata__" maps strings to
// strings. Values are little-endian and in C (row-major) order. This
// package writes every tensor as "F32", lays the tensors out in header
// order without gaps, and pads the JSON with spaces so that the data
// section starts at a multiple of 8 bytes. The reference reader rejects
// headers larger than 100,000,000 bytes (MAX_HEADER_SIZE in
// huggingface/safetensors, safetensors/src/tensor.rs), so Write does too.
//
// Each stored blob becomes one tensor named LAYER.SUFFIX, with the blob's
// shape as caffe.BlobShape reads it (so legacy 4-D shapes such as an
// InnerProduct weight of 1x1xOUTxIN stay 4-D):
//
//	layer type                           blob 0        blob 1       blob 2        blob 3        blob 4
//	Convolution, Deconvolution,
//	  DepthwiseConvolution,
//	  ConvolutionDepthwise,
//	  InnerProduct, Embed                weight        bias
//	Scale (one bottom)                   weight        bias
//	Scale (two bottoms)                  bias
//	PReLU                                weight
//	BatchNorm                            running_mean  running_var  (not written)  weight        bias
//	BN (PSPNet, SegNet and ENet forks)   weight        bias         running_mean  running_var
//
// Blobs beyond those listed, and all blobs of other layer types, are named
// by their index: LAYER.0, LAYER.1 and so on. A Scale layer with two
// bottoms takes its scale from bottom 1 and stores only the bias. BatchNorm
// blobs 3 and 4 are the scale and shift of OpenCV's scale_bias extension.
//
// Caffe's BatchNorm stores running sums: the statistics times a
// moving-average factor kept in blob 2. Write divides blobs 0 and 1 by that
// factor in float32 and writes 0 for every value when the factor is 0, so
// running_mean and running_var hold the statistics that a forward pass
// uses. The factor itself is not written. All other values are written
// bit for bit as the blobs store them.
package safetensors
