// Package graph turns a Caffe net into a graph of layers and blob values,
// infers the shape of every blob, and counts parameters, multiply-adds,
// activation memory and receptive fields.
//
// # Layers and values
//
// Build selects the layers of a phase (TRAIN or TEST) with Caffe's
// include/exclude rules and connects them. A blob name can have several
// values: a layer that works in place (a top equal to one of its bottoms,
// as ReLU usually does) produces a new value of the same blob. The last
// value of a blob is its final value, which is what Caffe means by the
// blob's name after a forward pass: CaffeNet's fc7 is the output of relu7.
//
// # Shapes
//
// Infer computes the shape of every value in execution order from a
// registry of per-type rules, one family of layer types per file. A type
// with no rule (a Python layer, say) gets an unknown shape that is
// reported, not guessed; Options.Inputs can supply any blob's shape.
//
// # Invariants
//
// Nothing here modifies the net it is given.
package graph
