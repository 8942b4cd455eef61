package graph

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
)

// Options selects the layers of a net and overrides blob shapes. The zero
// value selects the TEST phase (a deploy net) with no stages, level 0 and
// the shapes the net declares.
type Options struct {
	Train  bool     // select the TRAIN phase instead of TEST
	Stages []string // stages of the net state, for include/exclude rules
	Level  int32    // level of the net state

	// Inputs replaces the shape of the named blobs (usually the net's
	// inputs) wherever it is declared or inferred. The empty name "" means
	// the net's first input (the first net-level input, or the first top
	// of the first data layer).
	Inputs map[string][]int
}

// Value is one value of a blob: the output of one layer. A blob written
// in place by later layers has one Value per writer.
type Value struct {
	Blob      string
	Version   int    // 0 for the first producer, then 1, 2, ... per in-place writer
	Producer  *Layer // nil for a net-level input field
	Consumers []*Layer
	Shape     []int // nil when unknown

	// Receptive field per spatial axis (in input pixels) and cumulative
	// stride per spatial axis; nil when the value has no spatial axes or
	// they are unknown.
	ReceptiveField []int
	Stride         []float64
}

// Layer is one selected layer of the net.
type Layer struct {
	Index   int // position in the net's layer list
	Param   *caffepb.LayerParameter
	Bottoms []*Value
	Tops    []*Value

	// Filled by Infer.
	Blobs      []ParamBlob // shapes of the blobs the layer stores
	MACs       int64       // multiply-accumulates of Convolution, Deconvolution, InnerProduct
	OtherOps   int64       // operations of other layers (comparisons, additions, exponentials)
	Activation int64       // elements of the tops that do not work in place
	Problem    string      // a shape or parameter that is wrong, or ""
	Unknown    string      // reason the top shapes are unknown, or ""
}

// Name and Type return the layer's name and type.
func (l *Layer) Name() string { return l.Param.GetName() }
func (l *Layer) Type() string { return l.Param.GetType() }

// InPlace reports whether top i of the layer overwrites one of its bottoms.
func (l *Layer) InPlace(i int) bool {
	return slices.Contains(l.Param.GetBottom(), l.Param.GetTop()[i])
}

// Graph is a net's selected layers connected through blob values.
type Graph struct {
	Net    *caffe.Net
	Layers []*Layer          // selected layers in declaration order, which Caffe executes in
	Inputs []*Value          // values of net-level input fields
	Final  map[string]*Value // final value of each blob name
	Values []*Value          // every value, in creation order

	opts     Options
	problems []error
}

// Build selects the layers of net for opts' phase, stages and level as
// Caffe's FilterNet does, and connects bottoms to the latest earlier value
// of each blob. Structural problems (a bottom no earlier layer produces,
// a top produced twice outside in-place use) do not stop Build; Validate
// reports them all.
func Build(net *caffe.Net, opts Options) *Graph {
	g := &Graph{Net: net, Final: map[string]*Value{}, opts: opts}
	state := netState(net.Param.GetState(), opts)

	for _, name := range net.Param.GetInput() {
		v := g.newValue(name, nil)
		g.Inputs = append(g.Inputs, v)
	}
	producers := map[string][]int{} // blob -> indexes of all layers with it as a top, for messages
	for i, lp := range net.Param.GetLayer() {
		for _, t := range lp.GetTop() {
			producers[t] = append(producers[t], i)
		}
	}

	for i, lp := range net.Param.GetLayer() {
		if len(lp.GetInclude()) > 0 && len(lp.GetExclude()) > 0 {
			g.problemf("layer %q has both include and exclude rules; Caffe allows one kind only", lp.GetName())
		}
		if !included(lp, state) {
			continue
		}
		l := &Layer{Index: i, Param: lp}
		for _, b := range lp.GetBottom() {
			v := g.Final[b]
			if v == nil && g.givenInput(b) {
				// A blob whose shape the caller gives becomes a net input,
				// so a net whose data layer belongs to the other phase (a
				// caffemodel saved from a training net) can still be used.
				v = g.newValue(b, nil)
				g.Inputs = append(g.Inputs, v)
			}
			if v == nil {
				later := ""
				for _, p := range producers[b] {
					if p > i {
						later = fmt.Sprintf(" (layer %q produces it later; Caffe runs layers in declaration order)", net.Param.GetLayer()[p].GetName())
						break
					}
				}
				g.problemf("layer %q: bottom %q is produced by no earlier layer%s", lp.GetName(), b, later)
				v = &Value{Blob: b, Version: -1} // placeholder so the layer still has all its bottoms
			}
			v.Consumers = append(v.Consumers, l)
			l.Bottoms = append(l.Bottoms, v)
		}
		for _, t := range lp.GetTop() {
			if prev := g.Final[t]; prev != nil && !slices.Contains(lp.GetBottom(), t) {
				from := "a net input"
				if prev.Producer != nil {
					from = fmt.Sprintf("layer %q", prev.Producer.Name())
				}
				g.problemf("layer %q: top %q is already produced by %s and the layer does not work in place", lp.GetName(), t, from)
			}
			l.Tops = append(l.Tops, g.newValue(t, l))
		}
		g.Layers = append(g.Layers, l)
	}
	g.findCycles(producers)
	return g
}

// findCycles reports layers that depend on themselves once a bottom that
// no earlier layer produces is linked to its first later producer (the
// only way a Caffe net file can express a cycle).
func (g *Graph) findCycles(producers map[string][]int) {
	byIndex := map[int]*Layer{}
	for _, l := range g.Layers {
		byIndex[l.Index] = l
	}
	deps := map[*Layer][]*Layer{}
	forward := false
	for _, l := range g.Layers {
		for _, b := range l.Bottoms {
			switch {
			case b.Producer != nil:
				deps[l] = append(deps[l], b.Producer)
			case b.Version < 0:
				for _, p := range producers[b.Blob] {
					if q := byIndex[p]; q != nil && p > l.Index {
						deps[l] = append(deps[l], q)
						forward = true
						break
					}
				}
			}
		}
	}
	if !forward {
		return
	}
	const (
		unvisited = iota
		active
		done
	)
	state := map[*Layer]int{}
	var path []*Layer
	var visit func(l *Layer)
	visit = func(l *Layer) {
		state[l] = active
		path = append(path, l)
		for _, d := range deps[l] {
			switch state[d] {
			case unvisited:
				visit(d)
			case active:
				i := slices.Index(path, d)
				names := make([]string, 0, len(path)-i+1)
				for _, p := range path[i:] {
					names = append(names, fmt.Sprintf("%q", p.Name()))
				}
				names = append(names, fmt.Sprintf("%q", d.Name()))
				g.problemf("cycle through layers %s", strings.Join(names, " ← "))
			}
		}
		path = path[:len(path)-1]
		state[l] = done
	}
	for _, l := range g.Layers {
		if state[l] == unvisited {
			visit(l)
		}
	}
}

// givenInput reports whether Options.Inputs gives the shape of blob, a
// bottom no earlier layer produces: by name, or as the unnamed input size
// when the net has no input of its own yet.
func (g *Graph) givenInput(blob string) bool {
	if _, ok := g.opts.Inputs[blob]; ok {
		return true
	}
	if _, ok := g.opts.Inputs[""]; !ok || len(g.Inputs) > 0 {
		return false
	}
	for _, l := range g.Layers {
		if isInputType(l.Type()) {
			return false
		}
	}
	return true
}

func (g *Graph) newValue(blob string, producer *Layer) *Value {
	v := &Value{Blob: blob, Producer: producer}
	if prev := g.Final[blob]; prev != nil {
		v.Version = prev.Version + 1
	}
	g.Final[blob] = v
	g.Values = append(g.Values, v)
	return v
}

func (g *Graph) problemf(format string, args ...any) {
	g.problems = append(g.problems, fmt.Errorf("graph: "+format, args...))
}

// Validate returns every structural and shape problem found by Build and
// Infer at once (errors.Join), or nil.
func (g *Graph) Validate() error {
	probs := append([]error(nil), g.problems...)
	for _, l := range g.Layers {
		if l.Problem != "" {
			probs = append(probs, fmt.Errorf("graph: layer %q (%s): %s", l.Name(), l.Type(), l.Problem))
		}
	}
	return errors.Join(probs...)
}

// Outputs returns the final values that no selected layer reads: the
// net's outputs.
func (g *Graph) Outputs() []*Value {
	var out []*Value
	for _, v := range g.Values {
		if g.Final[v.Blob] == v && len(v.Consumers) == 0 && v.Producer != nil {
			out = append(out, v)
		}
	}
	return out
}

// LayerByName returns the selected layer with the given name, or nil.
func (g *Graph) LayerByName(name string) *Layer {
	for _, l := range g.Layers {
		if l.Name() == name {
			return l
		}
	}
	return nil
}

// netState merges the net's own state with opts, as Caffe's Net
// constructor does with the state passed to it.
func netState(s *caffepb.NetState, opts Options) *caffepb.NetState {
	st := &caffepb.NetState{Phase: caffepb.Phase_TEST.Enum(), Level: &opts.Level}
	if opts.Train {
		st.Phase = caffepb.Phase_TRAIN.Enum()
	}
	if s != nil && s.Level != nil && opts.Level == 0 {
		st.Level = s.Level
	}
	st.Stage = append(append([]string(nil), s.GetStage()...), opts.Stages...)
	return st
}

// included applies Caffe's FilterNet: a layer without include rules is
// in unless an exclude rule matches; a layer with include rules is in
// when one matches.
func included(l *caffepb.LayerParameter, st *caffepb.NetState) bool {
	in := len(l.GetInclude()) == 0
	for _, r := range l.GetExclude() {
		if ruleMatches(r, st) {
			in = false
		}
	}
	for _, r := range l.GetInclude() {
		if ruleMatches(r, st) {
			in = true
		}
	}
	return in
}

// ruleMatches is Caffe's StateMeetsRule.
func ruleMatches(r *caffepb.NetStateRule, st *caffepb.NetState) bool {
	if r.Phase != nil && r.GetPhase() != st.GetPhase() {
		return false
	}
	if r.MinLevel != nil && st.GetLevel() < r.GetMinLevel() {
		return false
	}
	if r.MaxLevel != nil && st.GetLevel() > r.GetMaxLevel() {
		return false
	}
	for _, s := range r.GetStage() {
		if !slices.Contains(st.GetStage(), s) {
			return false
		}
	}
	for _, s := range r.GetNotStage() {
		if slices.Contains(st.GetStage(), s) {
			return false
		}
	}
	return true
}
