// Package forward runs a Caffe net on the CPU in float32 with Caffe's
// semantics, for verifying rewrites and extracting features without
// Caffe.
//
// Compile checks that every selected layer has a kernel and its weights,
// and fixes the shapes for the declared (or given) input sizes; Run feeds
// the inputs and computes every blob value in declaration order. Each
// layer family has its own file with a registry entry; a layer whose type
// has no kernel is an error naming the layer and type, never passed
// through.
//
// Convolution uses im2col and gonum's Sgemm; Deconvolution is Caffe's
// convolution backward pass (Sgemm then col2im). Values written in place
// get their own tensors, so every intermediate value stays readable after
// Run. Nothing here modifies the net or its weights.
package forward
