package graph

import (
	"github.com/tlsurgery/tlsurgery/caffe"
)

// LayerSummary describes one layer: its connections, the shapes of its
// tops and stored blobs, and what it costs.
type LayerSummary struct {
	Name       string   `json:"name"`
	Type       string   `json:"type"`
	Bottoms    []string `json:"bottoms"`
	Tops       []string `json:"tops"`
	TopShapes  [][]int  `json:"top_shapes"`  // null for a top whose shape is unknown
	BlobShapes [][]int  `json:"blob_shapes"` // stored blobs: from the weights when present, else implied by the parameters
	Learnable  int64    `json:"learnable"`   // values of learnable blobs (weights, biases, scales, slopes)
	Statistics int64    `json:"statistics"`  // values of stored statistics (BatchNorm mean, variance, factor)
	Shared     int64    `json:"shared"`      // of Learnable, values shared by name with an earlier layer
	MACs       int64    `json:"macs"`        // multiply-accumulates (Convolution, Deconvolution, InnerProduct)
	OtherOps   int64    `json:"other_ops"`   // other arithmetic (pooling, activations, normalization, ...)
	Activation int64    `json:"activation"`  // elements of the tops that do not work in place
	// Receptive field and cumulative stride of the first top, per
	// spatial axis; null when not tracked.
	ReceptiveField []int     `json:"receptive_field"`
	Stride         []float64 `json:"stride"`
	Unknown        string    `json:"unknown,omitempty"` // why top shapes are unknown
	Problem        string    `json:"problem,omitempty"` // a parameter that contradicts the shapes
}

// Summary is the layer table of a net with its totals.
type Summary struct {
	Name       string         `json:"name"`
	Source     string         `json:"source"`
	Layers     []LayerSummary `json:"layers"`
	Learnable  int64          `json:"learnable"`   // sum of the layers' Learnable: shared blobs count once per layer
	Unique     int64          `json:"unique"`      // learnable values with blobs shared by name counted once
	Statistics int64          `json:"statistics"`  // sum of the layers' Statistics
	Stored     int64          `json:"stored"`      // Unique + Statistics: every value a caffemodel holds
	MACs       int64          `json:"macs"`        // multiply-accumulates of Convolution, Deconvolution and InnerProduct
	OtherOps   int64          `json:"other_ops"`   // all other layers' arithmetic
	Activation int64          `json:"activation"`  // elements of all tops that do not work in place
	HasWeights bool           `json:"has_weights"` // blob shapes come from weights rather than parameters
	Unknown    []string       `json:"unknown"`     // layers whose top shapes are unknown, with the reason
}

// Summarize builds the layer table of net: it selects the layers (see
// Build), infers shapes and fills the counts. Stored blob shapes come
// from the net's weights where it has them (a structure-only read is
// enough) and from the layer parameters elsewhere. The returned graph is
// the one the table describes.
func Summarize(net *caffe.Net, opts Options) (*Summary, *Graph) {
	g := Build(net, opts)
	g.Infer()
	s := &Summary{Name: net.Param.GetName(), Source: net.Source, Unknown: []string{}}
	seen := map[string]bool{} // ParamSpec names of shared blobs already counted
	for _, l := range g.Layers {
		row := LayerSummary{
			Name:       l.Name(),
			Type:       l.Type(),
			Bottoms:    append([]string{}, l.Param.GetBottom()...),
			Tops:       append([]string{}, l.Param.GetTop()...),
			TopShapes:  [][]int{},
			BlobShapes: [][]int{},
			MACs:       l.MACs,
			OtherOps:   l.OtherOps,
			Activation: l.Activation,
			Unknown:    l.Unknown,
			Problem:    l.Problem,
		}
		for _, t := range l.Tops {
			row.TopShapes = append(row.TopShapes, t.Shape)
		}
		if len(l.Tops) > 0 {
			row.ReceptiveField, row.Stride = l.Tops[0].ReceptiveField, l.Tops[0].Stride
		}
		blobs := storedBlobs(l)
		if len(l.Param.GetBlobs()) > 0 {
			s.HasWeights = true
		}
		for i, b := range blobs {
			row.BlobShapes = append(row.BlobShapes, b.Shape)
			n := elements(b.Shape)
			if b.Statistic {
				row.Statistics += n
				continue
			}
			row.Learnable += n
			if name := sharedName(l, i); name != "" {
				if seen[name] {
					row.Shared += n
				}
				seen[name] = true
			}
		}
		if l.Unknown != "" {
			s.Unknown = append(s.Unknown, l.Name()+": "+l.Unknown)
		}
		s.Layers = append(s.Layers, row)
		s.Learnable += row.Learnable
		s.Unique += row.Learnable - row.Shared
		s.Statistics += row.Statistics
		s.MACs += row.MACs
		s.OtherOps += row.OtherOps
		s.Activation += row.Activation
	}
	s.Stored = s.Unique + s.Statistics
	return s, g
}

// storedBlobs returns the blobs a layer stores: the weights' shapes when
// it has weights (marked as statistics as the rule says), else the shapes
// its rule implies.
func storedBlobs(l *Layer) []ParamBlob {
	weights := l.Param.GetBlobs()
	if len(weights) == 0 {
		return l.Blobs
	}
	out := make([]ParamBlob, len(weights))
	for i, w := range weights {
		out[i].Shape = caffe.BlobShape(w)
		if i < len(l.Blobs) {
			out[i].Statistic = l.Blobs[i].Statistic
		} else if len(l.Blobs) == 0 {
			out[i].Statistic = statisticByType(l.Type(), i)
		}
	}
	return out
}

// statisticByType marks statistics for layers whose rule did not run
// (unknown input shapes): all of BatchNorm's blobs, the fork BN's blobs
// after scale and shift.
func statisticByType(layerType string, i int) bool {
	switch layerType {
	case "BatchNorm":
		return i < 3
	case "BN":
		return i >= 2
	}
	return false
}

// sharedName returns the ParamSpec name of blob i of l, or "".
func sharedName(l *Layer, i int) string {
	if ps := l.Param.GetParam(); i < len(ps) {
		return ps[i].GetName()
	}
	return ""
}
