package npy

import (
	"strconv"

	"github.com/tlsurgery/tlsurgery/caffe"
)

// NetArrays returns one array per stored blob of net, named LAYER/N with N
// the blob's index in its layer, for WriteNPZ and WriteNPZFile. Each array
// has the blob's shape as caffe.BlobShape reads it and shares the blob's
// Data slice, so nothing is copied, and changing an array's values changes
// the net. Values are as stored: BatchNorm statistics stay multiplied by
// the moving-average factor in LAYER/2.
//
// When two layers share a name, the arrays of the later layer replace
// those of the earlier one at equal indexes. A blob without values (a net
// read with StructureOnly) gives an array that Write rejects.
func NetArrays(net *caffe.Net) map[string]*Array {
	out := map[string]*Array{}
	for _, layer := range net.Param.GetLayer() {
		for i, blob := range layer.GetBlobs() {
			out[layer.GetName()+"/"+strconv.Itoa(i)] = &Array{Shape: caffe.BlobShape(blob), Data: blob.Data}
		}
	}
	return out
}
