package surgery

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/graph"
)

// Truncate cuts net after a chosen output and returns a deploy net that
// computes only that output. at names a blob or a layer: a blob name
// means the blob's final value, after every layer that writes it in place
// (CaffeNet's fc7 is the output of relu7, the "CNN code"); a layer name
// means that layer's own outputs; a name that is both means the blob.
//
// The result keeps exactly the layers the output depends on, with their
// weights, and no include/exclude rules. A data layer it keeps becomes an
// Input layer when its shape is known (from the net or opts.Inputs); loss
// and accuracy layers never feed the output, so they go. net is not
// modified; the result shares weight values with it.
func Truncate(net *caffe.Net, at string, opts graph.Options) (*caffe.Net, *Report, error) {
	r := newReport("truncate")
	g := graph.Build(net, opts)
	g.Infer()

	var targets []*graph.Value
	switch v, l := g.Final[at], g.LayerByName(at); {
	case v != nil:
		targets = []*graph.Value{v}
		if v.Producer != nil && v.Producer.Name() != at && l != nil {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%q names both a blob and a layer; the blob's final value (written by %q) is kept", at, v.Producer.Name()))
		}
	case l != nil:
		targets = l.Tops
	default:
		return nil, nil, fmt.Errorf("surgery: truncate: no blob or layer named %q in the net's selected layers", at)
	}

	keep := map[*graph.Layer]bool{}
	var visit func(v *graph.Value)
	visit = func(v *graph.Value) {
		l := v.Producer
		if l == nil || keep[l] {
			return
		}
		keep[l] = true
		for _, b := range l.Bottoms {
			visit(b)
		}
	}
	for _, v := range targets {
		visit(v)
	}

	out := caffe.CloneNet(net)
	src := out.Param.GetLayer()
	out.Param.Layer = nil
	for _, l := range g.Layers {
		lp := src[l.Index]
		if !keep[l] {
			if len(lp.GetBlobs()) > 0 || isLossLike(l.Type()) {
				r.changef(l.Name(), "%s removed", l.Type())
			}
			continue
		}
		lp.Include, lp.Exclude = nil, nil
		if isDataLayer(l.Type()) {
			lp = deployInput(l, lp, keep, r)
		}
		out.Param.Layer = append(out.Param.Layer, lp)
	}
	dropped := len(g.Layers) - len(out.Param.Layer)
	r.changef(at, "kept %d layers the output depends on, removed %d", len(out.Param.Layer), dropped)
	if err := finish(out, graph.Options{Inputs: opts.Inputs}, r); err != nil {
		return nil, nil, fmt.Errorf("surgery: truncate produced an invalid net: %w", err)
	}
	return out, r, nil
}

func isLossLike(t string) bool {
	switch t {
	case "Accuracy", "SoftmaxWithLoss", "EuclideanLoss", "SigmoidCrossEntropyLoss", "HingeLoss", "InfogainLoss",
		"MultinomialLogisticLoss", "ContrastiveLoss", "SmoothL1Loss", "MultiBoxLoss", "Silence":
		return true
	}
	return false
}

func isDataLayer(t string) bool {
	switch t {
	case "Data", "ImageData", "MemoryData", "DummyData", "HDF5Data", "WindowData", "AnnotatedData", "DenseImageData", "VideoData":
		return true
	}
	return false
}

// deployInput replaces a data layer by an Input layer with the tops the
// kept layers read, when their shapes are known.
func deployInput(l *graph.Layer, lp *caffepb.LayerParameter, keep map[*graph.Layer]bool, r *Report) *caffepb.LayerParameter {
	in := &caffepb.LayerParameter{Name: lp.Name, Type: proto.String("Input"), InputParam: &caffepb.InputParameter{}}
	for _, t := range l.Tops {
		used := false
		for _, c := range t.Consumers {
			used = used || keep[c]
		}
		if !used {
			continue
		}
		if t.Shape == nil {
			r.Warnings = append(r.Warnings, fmt.Sprintf("data layer %q kept as it is: the shape of %q is unknown; give the input size to make a deploy net", l.Name(), t.Blob))
			return lp
		}
		dims := make([]int64, len(t.Shape))
		for i, d := range t.Shape {
			dims[i] = int64(d)
		}
		in.Top = append(in.Top, t.Blob)
		in.InputParam.Shape = append(in.InputParam.Shape, &caffepb.BlobShape{Dim: dims})
	}
	r.changef(l.Name(), "%s layer replaced by an Input layer of %d tops", l.Type(), len(in.Top))
	return in
}
