package surgery

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/graph"
)

// FoldBatchNorm folds each BatchNorm layer that directly follows a
// Convolution or InnerProduct, and the Scale layer that directly follows
// the BatchNorm when there is one, into the weights and bias of that
// layer, and removes them. Per output channel c, with the statistics of
// Caffe's BatchNorm (stored mean and variance divided by the stored
// moving-average factor, or 0 when the factor is 0) and its eps:
//
//	w'[c] = w[c]·γ[c]/√(var[c]+eps)
//	b'[c] = (b[c] − mean[c])·γ[c]/√(var[c]+eps) + β[c]
//
// where γ and β are the Scale's (γ = 1 and β = 0 without a Scale, β = 0
// for a Scale without bias_term), and b = 0 for a layer without a bias,
// which gets one (`bias_term: true`). NVIDIA Caffe's BatchNorm with
// scale_bias applies its own scale and bias the same way. Values are
// computed in float64 and stored as float32.
//
// A layer is folded only when nothing else reads the values in between:
// the Convolution's output is read only by the BatchNorm, and the Scale
// is folded only when it is the only reader of the BatchNorm's output.
// When the chain does not work in place, the Convolution's top takes the
// name of the last folded layer's top. A BatchNorm with
// `use_global_stats: false` is folded with a warning: Caffe would
// normalize it with each batch's own statistics, while the folded net
// uses the stored ones, as a deploy net is meant to. BatchNorm and Scale
// layers that are not folded are listed in the report with the reason.
//
// An error wrapping ErrNothingToDo means that the net has no BatchNorm
// layer (so applying FoldBatchNorm to its own result returns one when
// everything was folded) or none that can be folded. net is not
// modified; the result shares unchanged weight values with it.
func FoldBatchNorm(net *caffe.Net, opts graph.Options) (*caffe.Net, *Report, error) {
	r := newReport("fold-bn")
	g := graph.Build(net, opts)
	g.Infer()

	out := caffe.CloneNet(net)
	layers := out.Param.GetLayer()
	removed := map[int]bool{}
	batchNorms := 0
	for _, l := range g.Layers {
		if l.Type() != "BatchNorm" {
			continue
		}
		batchNorms++
		f, err := planFold(l, net.Param)
		if err != nil {
			r.refusef(l.Name(), "%v", err)
			continue
		}
		if f.scaleReason != "" {
			r.refusef(f.scaleName, "%s", f.scaleReason)
		}
		f.apply(layers[f.layer.Index], r)
		for _, c := range f.chain {
			removed[c.Index] = true
		}
	}
	if len(r.Changes) == 0 {
		if batchNorms == 0 {
			return nil, r, fmt.Errorf("surgery: fold-bn: the net has no BatchNorm layer: %w", ErrNothingToDo)
		}
		return nil, r, fmt.Errorf("surgery: fold-bn: none of the %d BatchNorm layers can be folded: %w", batchNorms, ErrNothingToDo)
	}

	remaining := layers[:0:0]
	for i, lp := range layers {
		if !removed[i] {
			remaining = append(remaining, lp)
		}
	}
	out.Param.Layer = remaining
	if err := finish(out, opts, r); err != nil {
		return nil, nil, fmt.Errorf("surgery: fold-bn produced an invalid net: %w", err)
	}
	return out, r, nil
}

// fold is one BatchNorm, and maybe its Scale, to fold into layer.
type fold struct {
	layer *graph.Layer   // the Convolution or InnerProduct
	chain []*graph.Layer // the BatchNorm, then the Scale if it is folded too

	// scaleName and scaleReason name a Scale after the BatchNorm that
	// stays, with the reason.
	scaleName, scaleReason string

	outputs int
	scale   []float64 // per output channel: the product of the folded layers' factors
	shift   []float64 // per output channel: what the folded layers add after scaling

	top string // the name of the layer's top after folding

	warning, globalStatsNote string // for the report, or ""
}

// planFold checks that the BatchNorm bn can be folded into the layer
// before it and computes the per-channel scale and shift.
func planFold(bn *graph.Layer, net *caffepb.NetParameter) (*fold, error) {
	if len(bn.Bottoms) != 1 || len(bn.Tops) != 1 {
		return nil, fmt.Errorf("only a BatchNorm with one bottom and one top folds")
	}
	in := bn.Bottoms[0]
	prod := in.Producer
	switch {
	case prod == nil:
		return nil, fmt.Errorf("its input %q is a net input", in.Blob)
	case prod.Type() != "Convolution" && prod.Type() != "InnerProduct":
		return nil, fmt.Errorf("its input %q comes from the %s layer %q; only a Convolution or InnerProduct output folds", in.Blob, prod.Type(), prod.Name())
	case len(prod.Tops) != 1 || len(prod.Bottoms) != 1:
		return nil, fmt.Errorf("its input comes from %q, which applies one set of weights to %d bottoms", prod.Name(), len(prod.Bottoms))
	case len(in.Consumers) != 1:
		return nil, fmt.Errorf("the output %q of %q is also read by %s, which needs it unnormalized", in.Blob, prod.Name(), layerNames(in.Consumers, bn))
	}
	if err := checkFoldTarget(prod, net); err != nil {
		return nil, err
	}
	f := &fold{layer: prod, chain: []*graph.Layer{bn}, outputs: outputCount(prod.Param)}
	f.scale = slices.Repeat([]float64{1}, f.outputs)
	f.shift = make([]float64, f.outputs)
	if err := f.addBatchNorm(bn); err != nil {
		return nil, err
	}

	after := bn.Tops[0]
	if len(after.Consumers) == 1 && after.Consumers[0].Type() == "Scale" {
		s := after.Consumers[0]
		if err := f.addScale(s); err != nil {
			f.scaleName, f.scaleReason = s.Name(), fmt.Sprintf("not folded after BatchNorm %q: %v", bn.Name(), err)
		} else {
			f.chain = append(f.chain, s)
		}
	}

	last := f.chain[len(f.chain)-1]
	f.top = last.Param.GetTop()[0]
	if f.top != prod.Param.GetTop()[0] {
		if err := checkRename(prod, f.chain, f.top, net); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// checkFoldTarget checks the Convolution or InnerProduct that a BatchNorm
// would fold into: its channels on axis 1, weight values present, and no
// blob shared with another layer.
func checkFoldTarget(l *graph.Layer, net *caffepb.NetParameter) error {
	axis := int32(1)
	if l.Type() == "Convolution" {
		axis = l.Param.GetConvolutionParam().GetAxis()
	} else {
		axis = l.Param.GetInnerProductParam().GetAxis()
	}
	if axis != 1 {
		return fmt.Errorf("%q has axis %d; a BatchNorm normalizes axis 1", l.Name(), axis)
	}
	blobs := l.Param.GetBlobs()
	if len(blobs) == 0 || len(blobs[0].GetData()) == 0 {
		return fmt.Errorf("%q carries no weight values; give the caffemodel", l.Name())
	}
	n := outputCount(l.Param)
	if n < 1 || len(blobs[0].GetData())%n != 0 {
		return fmt.Errorf("the %d weights of %q do not divide into %d outputs; the weights belong to another net", len(blobs[0].GetData()), l.Name(), n)
	}
	if len(blobs) > 1 && len(blobs[1].GetData()) != n {
		return fmt.Errorf("the bias of %q has %d values for %d outputs; the weights belong to another net", l.Name(), len(blobs[1].GetData()), n)
	}
	for _, name := range sharedParamNames(l.Param) {
		for _, other := range net.GetLayer() {
			if other.GetName() == l.Name() {
				continue
			}
			if slices.ContainsFunc(other.GetParam(), func(p *caffepb.ParamSpec) bool { return p.GetName() == name }) {
				return fmt.Errorf("%q shares its blob %q with layer %q, which would change too", l.Name(), name, other.GetName())
			}
		}
	}
	return nil
}

// outputCount returns num_output of a Convolution or InnerProduct.
func outputCount(lp *caffepb.LayerParameter) int {
	if lp.GetType() == "Convolution" {
		return int(lp.GetConvolutionParam().GetNumOutput())
	}
	return int(lp.GetInnerProductParam().GetNumOutput())
}

// addBatchNorm composes the normalization of bn into f's scale and shift.
func (f *fold) addBatchNorm(bn *graph.Layer) error {
	p := bn.Param.GetBatchNormParam()
	blobs := bn.Param.GetBlobs()
	if len(blobs) < 3 {
		return fmt.Errorf("it carries %d blobs, not the 3 statistics; give the caffemodel", len(blobs))
	}
	mean, variance, factor := blobs[0].GetData(), blobs[1].GetData(), blobs[2].GetData()
	if len(mean) != f.outputs || len(variance) != f.outputs {
		return fmt.Errorf("its statistics have %d means and %d variances, %q has %d outputs", len(mean), len(variance), f.layer.Name(), f.outputs)
	}
	if len(factor) != 1 {
		return fmt.Errorf("its moving-average factor (blob 2) has %d values, not 1", len(factor))
	}
	var gamma, beta []float32
	if p.GetScaleBias() {
		if len(blobs) < 5 || len(blobs[3].GetData()) != f.outputs || len(blobs[4].GetData()) != f.outputs {
			return fmt.Errorf("it has scale_bias but no %d-value scale and bias in blobs 3 and 4", f.outputs)
		}
		gamma, beta = blobs[3].GetData(), blobs[4].GetData()
	}

	// Caffe's batch_norm_layer.cpp divides the stored sums by the factor,
	// and uses 0 for a factor of 0.
	s := 0.0
	if factor[0] != 0 {
		s = 1 / float64(factor[0])
	} else if slices.ContainsFunc(mean, nonZero) || slices.ContainsFunc(variance, nonZero) {
		f.warning = fmt.Sprintf("BatchNorm %q has a moving-average factor of 0, so Caffe ignores its non-zero stored statistics and uses mean 0 and variance 0; the folded weights do the same", bn.Name())
	}
	eps := float64(p.GetEps())
	for c := range f.outputs {
		a := 1 / math.Sqrt(float64(variance[c])*s+eps)
		b := -float64(mean[c]) * s * a
		if gamma != nil {
			a, b = a*float64(gamma[c]), b*float64(gamma[c])+float64(beta[c])
		}
		f.scale[c], f.shift[c] = a, b
	}
	if p != nil && p.UseGlobalStats != nil && !p.GetUseGlobalStats() {
		f.globalStatsNote = fmt.Sprintf("BatchNorm %q has use_global_stats: false, so Caffe (and OpenCV, which adds an MVN layer for it) normalizes with each batch's own statistics; the folded net uses the stored statistics, as a deploy net is meant to", bn.Name())
	}
	return nil
}

func nonZero(v float32) bool { return v != 0 }

// addScale composes a per-channel Scale layer into f's scale and shift.
func (f *fold) addScale(s *graph.Layer) error {
	p := s.Param.GetScaleParam()
	switch {
	case len(s.Bottoms) != 1:
		return fmt.Errorf("it takes its factor from a second bottom; only a learned factor folds")
	case len(s.Tops) != 1:
		return fmt.Errorf("only a Scale with one top folds")
	case p.GetAxis() != 1 || p.GetNumAxes() != 1:
		return fmt.Errorf("it scales axis %d with num_axes %d, not one factor per channel", p.GetAxis(), p.GetNumAxes())
	}
	blobs := s.Param.GetBlobs()
	want := 1
	if p.GetBiasTerm() {
		want = 2
	}
	if len(blobs) != want {
		return fmt.Errorf("it carries %d blobs, its parameters need %d; give the caffemodel", len(blobs), want)
	}
	for i, b := range blobs {
		if len(b.GetData()) != f.outputs {
			return fmt.Errorf("its blob %d has %d values, %q has %d outputs", i, len(b.GetData()), f.layer.Name(), f.outputs)
		}
	}
	gamma := blobs[0].GetData()
	for c := range f.outputs {
		g := float64(gamma[c])
		f.scale[c] *= g
		f.shift[c] *= g
		if want == 2 {
			f.shift[c] += float64(blobs[1].GetData()[c])
		}
	}
	return nil
}

// checkRename checks that the top of prod can take the name top, which is
// the top of the last folded layer. No other layer may read prod's own
// top, and no layer between prod and the last folded layer may use top.
func checkRename(prod *graph.Layer, chain []*graph.Layer, top string, net *caffepb.NetParameter) error {
	own := prod.Param.GetTop()[0]
	inChain := map[int]bool{prod.Index: true}
	for _, c := range chain {
		inChain[c.Index] = true
	}
	last := chain[len(chain)-1].Index
	for i, lp := range net.GetLayer() {
		if inChain[i] {
			continue
		}
		if slices.Contains(lp.GetBottom(), own) {
			return fmt.Errorf("%q would take the name %q of the folded output, but layer %q (of any phase) reads its own output %q", prod.Name(), top, lp.GetName(), own)
		}
		if i > prod.Index && i < last && (slices.Contains(lp.GetBottom(), top) || slices.Contains(lp.GetTop(), top)) {
			return fmt.Errorf("%q would take the name %q of the folded output, but layer %q between them uses that name", prod.Name(), top, lp.GetName())
		}
	}
	return nil
}

// apply writes the folded weights into lp, the copy of f.layer in the
// result, and renames its top when needed.
func (f *fold) apply(lp *caffepb.LayerParameter, r *Report) {
	blobs := lp.GetBlobs()
	w := blobs[0].GetData()
	perOutput := len(w) / f.outputs
	transposed := lp.GetType() == "InnerProduct" && lp.GetInnerProductParam().GetTranspose()
	nw := make([]float32, len(w))
	for i, v := range w {
		c := i / perOutput
		if transposed {
			c = i % f.outputs // K×N weights: the output is the column
		}
		nw[i] = float32(float64(v) * f.scale[c])
	}
	nb := make([]float32, f.outputs)
	for c := range nb {
		b := 0.0
		if len(blobs) > 1 {
			b = float64(blobs[1].GetData()[c])
		}
		nb[c] = float32(b*f.scale[c] + f.shift[c])
	}

	// The result's BlobProto messages are its own, but their Data slices
	// are shared with the input net, so they are replaced, not written.
	blobs[0].Data, blobs[0].Diff = nw, nil
	addedBias := len(blobs) == 1
	if addedBias {
		lp.Blobs = append(lp.Blobs, &caffepb.BlobProto{Shape: &caffepb.BlobShape{Dim: []int64{int64(f.outputs)}}, Data: nb})
		if lp.GetType() == "Convolution" {
			lp.ConvolutionParam.BiasTerm = proto.Bool(true)
		} else {
			lp.InnerProductParam.BiasTerm = proto.Bool(true)
		}
	} else {
		blobs[1].Data, blobs[1].Diff = nb, nil
	}
	if f.top != lp.GetTop()[0] {
		lp.Top[0] = f.top
	}

	names := make([]string, len(f.chain))
	for i, c := range f.chain {
		names[i] = fmt.Sprintf("%s %q", c.Type(), c.Name())
	}
	detail := "folded " + strings.Join(names, " and ") + " into the weights"
	if addedBias {
		detail += "; bias added (bias_term: true)"
	}
	if f.top != f.layer.Param.GetTop()[0] {
		detail += fmt.Sprintf("; its top is now %q", f.top)
	}
	r.changef(f.layer.Name(), "%s", detail)
	for _, w := range []string{f.warning, f.globalStatsNote} {
		if w != "" {
			r.Warnings = append(r.Warnings, w)
		}
	}
}

// layerNames lists the names of layers other than skip, quoted.
func layerNames(layers []*graph.Layer, skip *graph.Layer) string {
	var names []string
	for _, l := range layers {
		if l != skip {
			names = append(names, fmt.Sprintf("%q", l.Name()))
		}
	}
	return strings.Join(names, ", ")
}
