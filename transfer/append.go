package transfer

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/graph"
)

// AppendClassifier returns a copy of net with c appended: an InnerProduct
// named name reading the final value of blob (which must hold c.Dim
// values per sample), and a Softmax named name+"_prob". The result is an
// ordinary Caffe net that classifies into the new classes directly. net
// is not modified.
func AppendClassifier(net *caffe.Net, blob string, c *Classifier, name string, opts graph.Options) (*caffe.Net, error) {
	g := graph.Build(net, opts)
	g.Infer()
	v := g.Final[blob]
	if v == nil {
		return nil, fmt.Errorf("transfer: the net has no blob %q", blob)
	}
	if v.Shape == nil || len(v.Shape) < 2 {
		return nil, fmt.Errorf("transfer: the shape of %q is unknown; give the input size", blob)
	}
	d := 1
	for _, s := range v.Shape[1:] {
		d *= s
	}
	if d != c.Dim {
		return nil, fmt.Errorf("transfer: %q holds %d values per sample, the classifier takes %d", blob, d, c.Dim)
	}
	for _, l := range net.Param.GetLayer() {
		if l.GetName() == name || l.GetName() == name+"_prob" {
			return nil, fmt.Errorf("transfer: the net already has a layer named %q; choose another name", l.GetName())
		}
	}

	out := caffe.CloneNet(net)
	ip := &caffepb.LayerParameter{
		Name: proto.String(name), Type: proto.String("InnerProduct"),
		Bottom: []string{blob}, Top: []string{name},
		InnerProductParam: &caffepb.InnerProductParameter{NumOutput: proto.Uint32(uint32(c.Classes))},
		Blobs: []*caffepb.BlobProto{
			{Shape: &caffepb.BlobShape{Dim: []int64{int64(c.Classes), int64(c.Dim)}}, Data: c.Weights},
			{Shape: &caffepb.BlobShape{Dim: []int64{int64(c.Classes)}}, Data: c.Bias},
		},
	}
	prob := &caffepb.LayerParameter{
		Name: proto.String(name + "_prob"), Type: proto.String("Softmax"),
		Bottom: []string{name}, Top: []string{name + "_prob"},
	}
	out.Param.Layer = append(out.Param.Layer, ip, prob)
	check := graph.Build(out, opts)
	check.Infer()
	if err := check.Validate(); err != nil {
		return nil, fmt.Errorf("transfer: the net with the classifier is invalid: %w", err)
	}
	return out, nil
}
