package graph

import (
	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
)

// LayerSummary describes one layer of a net and the blobs it stores.
type LayerSummary struct {
	Name       string   `json:"name"`
	Type       string   `json:"type"`
	Bottoms    []string `json:"bottoms"`
	Tops       []string `json:"tops"`
	BlobShapes [][]int  `json:"blob_shapes"`
	Learnable  int64    `json:"learnable"`  // values of learnable blobs (weights, biases, scales, slopes)
	Statistics int64    `json:"statistics"` // values of stored statistics (BatchNorm mean, variance, factor)
}

// Summary lists the layers of a net with the values their blobs store.
type Summary struct {
	Name       string         `json:"name"`
	Source     string         `json:"source"`
	Layers     []LayerSummary `json:"layers"`
	Learnable  int64          `json:"learnable"`  // sum of the layers' Learnable
	Statistics int64          `json:"statistics"` // sum of the layers' Statistics
	Stored     int64          `json:"stored"`     // every stored value: Learnable + Statistics
	HasWeights bool           `json:"has_weights"`
}

// Summarize counts the values each layer of net stores, from the shapes
// of its blobs (so a structure-only read is enough). A net read from a
// prototxt has no blobs and counts zero everywhere.
func Summarize(net *caffe.Net) *Summary {
	s := &Summary{Name: net.Param.GetName(), Source: net.Source}
	for _, l := range net.Param.GetLayer() {
		row := LayerSummary{
			Name:       l.GetName(),
			Type:       l.GetType(),
			Bottoms:    append([]string{}, l.GetBottom()...),
			Tops:       append([]string{}, l.GetTop()...),
			BlobShapes: [][]int{},
		}
		first := statisticsFrom(l)
		for i, b := range l.GetBlobs() {
			shape := caffe.BlobShape(b)
			row.BlobShapes = append(row.BlobShapes, shape)
			c, err := caffe.BlobCount(b)
			if err != nil {
				c = 0 // the reader rejects such blobs when it reads their data
			}
			n := int64(c)
			if i >= first {
				row.Statistics += n
			} else {
				row.Learnable += n
			}
			s.HasWeights = true
		}
		s.Layers = append(s.Layers, row)
		s.Learnable += row.Learnable
		s.Statistics += row.Statistics
	}
	s.Stored = s.Learnable + s.Statistics
	return s
}

// statisticsFrom returns the index of a layer's first blob that holds
// running statistics rather than learned values. BatchNorm stores only
// statistics (mean, variance, moving-average factor). The fork layers
// named BN (PSPNet, SegNet, ENet) store scale and shift first and, where
// present, mean and variance after them.
func statisticsFrom(l *caffepb.LayerParameter) int {
	switch l.GetType() {
	case "BatchNorm":
		return 0
	case "BN":
		return 2
	}
	return len(l.GetBlobs())
}
