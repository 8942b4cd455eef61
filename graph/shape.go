package graph

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
)

// Context is the input of a rule for one layer: its parameters, the shapes of
// its bottoms (all known when a rule is called) and the blobs it stores in
// the weights, if any.
type Context struct {
	Layer   *caffepb.LayerParameter
	Bottoms [][]int
	Weights []*caffepb.BlobProto
}

// ParamBlob is the shape of one blob a layer stores.
type ParamBlob struct {
	Shape     []int `json:"shape"`
	Statistic bool  `json:"statistic,omitempty"` // running statistics (BatchNorm mean, variance, factor), not learned
}

// Window is the sliding window of a convolution or pooling layer, per
// spatial axis, for receptive-field tracking.
type Window struct {
	Kernel, Stride, Pad, Dilation []int
	Transposed                    bool // Deconvolution: the stride spreads the output
}

// Rule describes the shapes and costs of a family of layer types.
type Rule struct {
	Types []string

	// MinBottoms is the number of bottoms the layer needs; Infer reports
	// a layer with fewer as a problem before calling the rule. The zero
	// value means 1; data layers set -1 for none.
	MinBottoms int

	// Tops returns the shapes of the layer's tops from its bottoms.
	Tops func(c *Context) ([][]int, error)

	// Blobs returns the shapes of the blobs the layer stores; nil when
	// it stores none.
	Blobs func(c *Context) ([]ParamBlob, error)

	// Cost returns the multiply-accumulates (for Convolution,
	// Deconvolution and InnerProduct, one fused multiply-add counted
	// once) and the other arithmetic operations of one forward pass.
	Cost func(c *Context, tops [][]int) (macs, other int64)

	// Window returns the sliding window of spatial layers; nil for layers
	// that keep the receptive field of their bottoms.
	Window func(c *Context) *Window

	// NoField marks layers whose outputs have no receptive field in input
	// pixels (region pooling, resampling, detection outputs): tracking
	// stops at them.
	NoField bool
}

var rules = map[string]*Rule{}

// register adds a rule for each of its types; a type registered twice is
// a programming error.
func register(r *Rule) {
	for _, t := range r.Types {
		if rules[t] != nil {
			panic("graph: two rules for layer type " + t)
		}
		rules[t] = r
	}
}

// HasRule reports whether shapes of the given layer type can be inferred.
func HasRule(layerType string) bool { return rules[layerType] != nil }

// Types returns the layer types that have a shape rule, sorted.
func Types() []string {
	out := make([]string, 0, len(rules))
	for t := range rules {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Infer computes the shape of every value of g in declaration order, the
// blobs each layer stores, its costs, and receptive fields. A layer whose
// bottoms have unknown shapes, or whose type has no rule, gets unknown
// top shapes and a reason in Layer.Unknown; parameters that contradict the
// shapes give a Layer.Problem, which Validate reports.
func (g *Graph) Infer() {
	for _, v := range g.Inputs {
		v.Shape = g.inputShape(v.Blob, nil, true)
		g.declaredInput(v)
	}
	for _, l := range g.Layers {
		g.inferLayer(l)
	}
}

// declaredInput sets a net-level input's shape from input_shape or
// input_dim fields that were kept (the reader turns them into an Input
// layer, so this applies only to names without sizes).
func (g *Graph) declaredInput(v *Value) {
	if v.Shape == nil {
		return
	}
	v.ReceptiveField, v.Stride = unitField(len(v.Shape))
}

// inputShape returns the shape of a net input: the one given for its
// name, else the unnamed one ("") for the net's first input, else the
// declared one.
func (g *Graph) inputShape(blob string, declared []int, dataTop bool) []int {
	if s, ok := g.opts.Inputs[blob]; ok {
		return slices.Clone(s)
	}
	if s, ok := g.opts.Inputs[""]; ok && (declared != nil || dataTop) && blob == g.firstInput() {
		return slices.Clone(s)
	}
	return declared
}

// firstInput returns the blob that an unnamed input size applies to: the
// first net-level input, else the first top of the first data layer.
func (g *Graph) firstInput() string {
	if len(g.Inputs) > 0 {
		return g.Inputs[0].Blob
	}
	for _, l := range g.Layers {
		if isInputType(l.Type()) && len(l.Tops) > 0 {
			return l.Tops[0].Blob
		}
	}
	return ""
}

func (g *Graph) inferLayer(l *Layer) {
	c := &Context{Layer: l.Param, Weights: l.Param.GetBlobs()}
	for _, b := range l.Bottoms {
		if b.Shape == nil {
			l.Unknown = fmt.Sprintf("bottom %q has an unknown shape", b.Blob)
			g.overrideTops(l)
			return
		}
		c.Bottoms = append(c.Bottoms, b.Shape)
	}
	r := rules[l.Type()]
	if r == nil {
		l.Unknown = fmt.Sprintf("no shape rule for layer type %q; give the shapes of its tops", l.Type())
		g.overrideTops(l)
		return
	}

	need := r.MinBottoms
	if need == 0 {
		need = 1
	}
	if len(c.Bottoms) < need {
		l.Problem = fmt.Sprintf("the layer has %d bottoms, its type needs at least %d", len(c.Bottoms), need)
		g.overrideTops(l)
		return
	}
	tops, err := r.Tops(c)
	if err != nil {
		l.Problem = err.Error()
		g.overrideTops(l)
		return
	}
	if len(tops) != len(l.Tops) {
		l.Problem = fmt.Sprintf("the layer has %d tops, its type produces %d", len(l.Tops), len(tops))
		g.overrideTops(l)
		return
	}
	for i, t := range l.Tops {
		t.Shape = tops[i]
		if isInputType(l.Type()) {
			t.Shape = g.inputShape(t.Blob, t.Shape, i == 0)
		} else if s, ok := g.opts.Inputs[t.Blob]; ok {
			t.Shape = slices.Clone(s)
		}
		if t.Shape == nil {
			l.Unknown = fmt.Sprintf("the %s layer does not state the size of top %q; give it", l.Type(), t.Blob)
		}
		if !l.InPlace(i) && t.Shape != nil {
			l.Activation += elements(t.Shape)
		}
	}
	tops = make([][]int, len(l.Tops))
	for i, t := range l.Tops {
		tops[i] = t.Shape
	}

	if r.Blobs != nil && l.Unknown == "" {
		blobs, err := r.Blobs(c)
		if err != nil {
			l.Problem = err.Error()
		}
		l.Blobs = blobs
		if msg := compareWeights(blobs, c.Weights); msg != "" && l.Problem == "" {
			l.Problem = msg
		}
	}
	if r.Cost != nil && l.Unknown == "" {
		l.MACs, l.OtherOps = r.Cost(c, tops)
	}
	g.receptiveField(l, r, c)
}

// overrideTops applies Options.Inputs to tops whose shape could not be
// inferred, so a user can get past a layer without a rule. When every top
// is given, the layer is no longer unknown.
func (g *Graph) overrideTops(l *Layer) {
	given := 0
	for _, t := range l.Tops {
		if s, ok := g.opts.Inputs[t.Blob]; ok {
			t.Shape = slices.Clone(s)
			t.ReceptiveField, t.Stride = nil, nil
			given++
		}
	}
	if given == len(l.Tops) && l.Problem == "" {
		l.Unknown = ""
	}
}

func isInputType(t string) bool {
	switch t {
	case "Input", "Data", "ImageData", "MemoryData", "DummyData", "HDF5Data", "WindowData", "AnnotatedData", "Python":
		return true
	}
	return false
}

// compareWeights checks stored blobs against the shapes the parameters
// and bottoms imply. Legacy 4-D blobs match when their trailing
// dimensions do, as Caffe's Blob::ShapeEquals accepts.
func compareWeights(want []ParamBlob, have []*caffepb.BlobProto) string {
	if len(have) == 0 {
		return ""
	}
	if len(have) != len(want) {
		return fmt.Sprintf("the weights have %d blobs, the parameters imply %d", len(have), len(want))
	}
	for i, b := range have {
		got := caffe.BlobShape(b)
		if b.GetShape() == nil && legacyEqual(got, want[i].Shape) {
			continue
		}
		if !slices.Equal(got, want[i].Shape) {
			return fmt.Sprintf("weight blob %d has shape %v, the parameters and input shape imply %v", i, got, want[i].Shape)
		}
	}
	return ""
}

// legacyEqual compares a legacy num/channels/height/width shape with a
// shape of at most 4 axes padded with leading 1s.
func legacyEqual(legacy, shape []int) bool {
	if len(shape) > 4 || len(legacy) != 4 {
		return false
	}
	padded := append(slices.Repeat([]int{1}, 4-len(shape)), shape...)
	return slices.Equal(legacy, padded)
}

func elements(s []int) int64 {
	n := int64(1)
	for _, d := range s {
		n *= int64(d)
	}
	return n
}

func unitField(axes int) ([]int, []float64) {
	if axes <= 2 {
		return nil, nil
	}
	rf := slices.Repeat([]int{1}, axes-2)
	st := slices.Repeat([]float64{1}, axes-2)
	return rf, st
}

// receptiveField sets the receptive field and cumulative stride of the
// layer's tops. A window layer grows the field by (effective kernel − 1)
// times the bottom's cumulative stride and multiplies the stride (divides
// it for Deconvolution); other layers take, per axis, the largest field
// and stride of their bottoms while their tops keep spatial axes.
func (g *Graph) receptiveField(l *Layer, r *Rule, c *Context) {
	var rf []int
	var st []float64
	for _, b := range l.Bottoms {
		if b.ReceptiveField == nil {
			continue
		}
		if rf == nil {
			rf, st = slices.Clone(b.ReceptiveField), slices.Clone(b.Stride)
			continue
		}
		for i := range min(len(rf), len(b.ReceptiveField)) {
			rf[i] = max(rf[i], b.ReceptiveField[i])
			st[i] = math.Max(st[i], b.Stride[i])
		}
	}
	if len(l.Bottoms) == 0 {
		for _, t := range l.Tops {
			t.ReceptiveField, t.Stride = unitField(len(t.Shape))
		}
		return
	}
	if r.NoField {
		return
	}
	if rf != nil && r.Window != nil {
		if w := r.Window(c); w != nil && len(w.Kernel) == len(rf) {
			for i := range rf {
				k := w.Dilation[i]*(w.Kernel[i]-1) + 1
				if w.Transposed {
					st[i] /= float64(w.Stride[i])
					rf[i] += int(math.Ceil(float64(k-1) * st[i]))
				} else {
					rf[i] += int(float64(k-1) * st[i])
					st[i] *= float64(w.Stride[i])
				}
			}
		}
	}
	for _, t := range l.Tops {
		if t.Shape != nil && len(t.Shape) >= 3 && rf != nil && len(t.Shape)-2 == len(rf) {
			t.ReceptiveField, t.Stride = slices.Clone(rf), slices.Clone(st)
		}
	}
}
