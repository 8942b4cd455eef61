// Package onnx exports a Caffe net with its weights as an ONNX model.
//
// Convert walks the layers that graph.Build selects, in Caffe's execution
// order, and maps each through a registry of per-type functions, one file
// per family of layer types. Every mapping follows the Caffe source it
// names, so the ONNX model computes what Caffe computes, including the
// edge cases where ONNX's operator differs (pooling output sizes and
// divisors, Softmax axes before opset 13, in-place layers). A layer that
// has no exact ONNX form is an *UnsupportedError naming the layer and its
// type; no layer is skipped silently.
//
// # Names
//
// Each ONNX node is named after the Caffe layer it comes from. A layer
// that needs several nodes names the first one after the layer and the
// others "<layer>/<OpType>" (with "_2", "_3", ... when an operator type
// repeats). Weights are initializers named "<layer>/<role>", such as
// "conv1/weight" and "conv1/bias"; other constants follow the same pattern.
//
// Tensors are named after Caffe blobs. ONNX needs every tensor to be
// produced once, but a Caffe layer that works in place (a top equal to a
// bottom, as ReLU usually is) writes a new value under the old blob name.
// The final value of a blob, the one Caffe's blob holds after a forward
// pass, keeps the blob's name. Every earlier value is named
// "<blob>@<layer>" after the layer that wrote it, or "<blob>@input" when it
// is a net input that a later layer overwrites. In CaffeNet, fc7 is the
// output of relu7, and the output of the fc7 layer before it is
// "fc7@fc7". When such a name is already taken by a blob, "#2", "#3", ...
// is appended.
//
// # Inputs and outputs
//
// The graph inputs are the net's inputs (net-level input fields, Input
// layers and other data layers' tops) with their shapes. The graph outputs
// are the final values that no layer reads (graph.Graph.Outputs), plus any
// tensor named in Options.ExtraOutputs. With Options.DynamicBatch, the
// first axis of every shape that follows the batch size is the symbol "N".
package onnx
