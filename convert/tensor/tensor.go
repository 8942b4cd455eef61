// Package tensor exposes the weights of a Caffe net as gorgonia tensors
// (gorgonia.org/tensor), for Go programs that compute with them.
//
// It is the only package of this module that imports gorgonia, so
// programs that do not import it, the tlsurgery command among them, do not
// link gorgonia.
package tensor

import (
	"fmt"

	"gorgonia.org/tensor"

	"github.com/tlsurgery/tlsurgery/caffe"
)

// Weights returns the blobs of every layer of net that stores blobs, as
// float32 tensors keyed by layer name, in blob order. Each tensor has the
// blob's shape as caffe.BlobShape reads it. A blob with an empty shape
// becomes a scalar tensor, whose Data() returns a float32, not a slice.
// Values are as stored, so BatchNorm statistics stay multiplied by the
// moving-average factor in blob 2.
//
// The tensors use the blobs' Data slices as their backing memory, so
// changing a value through a tensor (Set, in-place arithmetic) changes the
// net, and changing the net's values changes the tensor. Replacing a
// blob's Data slice breaks the link. Gorgonia's Shape() returns the
// tensor's own slice, so copy it before changing it. T() transposes
// lazily: Shape() changes at once, but Data() keeps the old order until
// Transpose() or Materialize() runs.
//
// Weights fails when two layers with blobs share a name, or when a blob
// has no values (a net read with StructureOnly) or a value count that does
// not match its shape. It also fails for a blob whose shape has a zero
// dimension, because tensor.New of gorgonia v0.9.24 panics on it.
func Weights(net *caffe.Net) (map[string][]*tensor.Dense, error) {
	out := map[string][]*tensor.Dense{}
	for _, layer := range net.Param.GetLayer() {
		blobs := layer.GetBlobs()
		if len(blobs) == 0 {
			continue
		}
		if _, dup := out[layer.GetName()]; dup {
			return nil, fmt.Errorf("tensor: two layers named %q store blobs; give the layers distinct names", layer.GetName())
		}
		dense := make([]*tensor.Dense, len(blobs))
		for i, blob := range blobs {
			count, err := caffe.BlobCount(blob)
			if err != nil {
				return nil, fmt.Errorf("tensor: layer %q blob %d: %w", layer.GetName(), i, err)
			}
			shape := caffe.BlobShape(blob)
			switch {
			case count == 0:
				return nil, fmt.Errorf("tensor: layer %q blob %d has shape %v with no values, which gorgonia tensors cannot represent",
					layer.GetName(), i, shape)
			case len(blob.Data) == 0:
				return nil, fmt.Errorf("tensor: layer %q blob %d of shape %v has no values; read the weights without StructureOnly",
					layer.GetName(), i, shape)
			case len(blob.Data) != count:
				return nil, fmt.Errorf("tensor: layer %q blob %d has %d values but its shape %v needs %d",
					layer.GetName(), i, len(blob.Data), shape, count)
			}
			dense[i] = tensor.New(tensor.WithBacking(blob.Data), tensor.WithShape(shape...))
		}
		out[layer.GetName()] = dense
	}
	return out, nil
}
