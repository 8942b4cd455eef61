package surgery

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/graph"
)

// Freeze stops training of the layer named through and of every layer it
// depends on (its ancestors through bottoms, in the layers opts selects):
// each of their learnable blobs gets `lr_mult: 0` and `decay_mult: 0`.
// Layers of other phases named like a frozen layer (the per-phase copies
// some train_val nets have) are frozen too, since training reads the
// TRAIN phase's copy.
// Existing param entries keep their other fields (a sharing name, say).
// Missing entries are added so that every learnable blob has one, because
// Caffe applies param entry i to blob i and a missing entry means
// lr_mult 1. Running statistics (BatchNorm mean, variance and factor) are
// not learned and get nothing, except the zero entries that must precede
// a learnable blob stored after them.
//
// The learnable blobs are those of the graph package's shape rules. When
// a layer's shapes are unknown (a train net whose data layers state no
// size), they follow from its parameters for the common types, else from
// the blobs it stores. A layer of another type without stored blobs gets
// only its existing entries zeroed, with a warning.
//
// A frozen blob shared by param name with a layer that stays trainable
// gets a warning: BVLC Caffe's Net::AppendParam stops with "Shared param
// ... has mismatched lr_mult" when two sharers set different values. Applying Freeze to its own
// result returns an error wrapping ErrNothingToDo. net is not modified;
// the result shares weight values with it.
func Freeze(net *caffe.Net, through string, opts graph.Options) (*caffe.Net, *Report, error) {
	r := newReport("freeze")
	g := graph.Build(net, opts)
	g.Infer()
	last := g.LayerByName(through)
	if last == nil {
		return nil, nil, fmt.Errorf("surgery: freeze: no layer %q in the net's selected layers", through)
	}
	frozen := ancestors(last)
	frozenNames := map[string]bool{}
	for l := range frozen {
		frozenNames[l.Name()] = true
	}
	selected := map[int]*graph.Layer{}
	for _, l := range g.Layers {
		selected[l.Index] = l
	}

	out := caffe.CloneNet(net)
	for i, lp := range out.Param.GetLayer() {
		if !frozenNames[lp.GetName()] {
			continue
		}
		var learnable []int
		var known bool
		if l := selected[i]; l != nil {
			learnable, known = learnableBlobs(l)
		} else {
			learnable, known = learnableUnselected(lp)
		}
		if !known {
			r.Warnings = append(r.Warnings, fmt.Sprintf("layer %q (%s): the number of its learnable blobs is unknown, so only its %d existing param entries were set to lr_mult 0 and decay_mult 0; add entries for any other blob by hand",
				lp.GetName(), lp.GetType(), len(lp.GetParam())))
			learnable = make([]int, len(lp.GetParam()))
			for j := range learnable {
				learnable[j] = j
			}
		}
		if len(learnable) == 0 {
			continue
		}
		added, changed := freezeParams(lp, learnable)
		if changed {
			detail := fmt.Sprintf("lr_mult 0, decay_mult 0 on %s", blobList(learnable))
			switch {
			case added == 1:
				detail += " (1 param entry added)"
			case added > 1:
				detail += fmt.Sprintf(" (%d param entries added)", added)
			}
			r.changef(lp.GetName(), "%s", detail)
		}
		warnSharedParams(r, net.Param, lp, learnable, frozenNames)
	}
	if len(r.Changes) == 0 {
		return nil, r, fmt.Errorf("surgery: freeze: every learnable blob of %q and the layers before it already has lr_mult 0 and decay_mult 0: %w", through, ErrNothingToDo)
	}
	if err := finish(out, opts, r); err != nil {
		return nil, nil, fmt.Errorf("surgery: freeze produced an invalid net: %w", err)
	}
	return out, r, nil
}

// ancestors returns l and every layer whose output l depends on.
func ancestors(l *graph.Layer) map[*graph.Layer]bool {
	seen := map[*graph.Layer]bool{}
	var visit func(l *graph.Layer)
	visit = func(l *graph.Layer) {
		if seen[l] {
			return
		}
		seen[l] = true
		for _, b := range l.Bottoms {
			if b.Producer != nil {
				visit(b.Producer)
			}
		}
	}
	visit(l)
	return seen
}

// learnableBlobs returns the indexes of the blobs of l that training
// changes, and false when they are unknown (see Freeze).
func learnableBlobs(l *graph.Layer) ([]int, bool) {
	if l.Unknown == "" && l.Problem == "" {
		var out []int
		for i, b := range l.Blobs {
			if !b.Statistic {
				out = append(out, i)
			}
		}
		return out, true
	}
	return learnableUnselected(l.Param)
}

// learnableUnselected returns the learnable blobs of a layer that shape
// inference did not cover: from its parameters for the common types,
// else every blob it stores. A type with a shape rule that
// learnableFromParams does not list stores no blobs (pooling,
// activations, data layers).
func learnableUnselected(lp *caffepb.LayerParameter) ([]int, bool) {
	if idx, ok := learnableFromParams(lp); ok {
		return idx, true
	}
	if n := len(lp.GetBlobs()); n > 0 {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		return idx, true
	}
	return nil, graph.HasRule(lp.GetType())
}

// learnableFromParams returns the indexes of the learnable blobs of the
// common layer types from their parameters alone, as the graph package's
// rules count them, and false for other types.
func learnableFromParams(lp *caffepb.LayerParameter) ([]int, bool) {
	first := func(n int) []int {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	withBias := func(bias bool) []int {
		if bias {
			return first(2)
		}
		return first(1)
	}
	oneBottom := len(lp.GetBottom()) <= 1
	switch lp.GetType() {
	case "Convolution", "Deconvolution", "DepthwiseConvolution", "ConvolutionDepthwise":
		return withBias(lp.GetConvolutionParam().GetBiasTerm()), true
	case "InnerProduct":
		return withBias(lp.GetInnerProductParam().GetBiasTerm()), true
	case "Embed":
		return withBias(lp.GetEmbedParam().GetBiasTerm()), true
	case "PReLU", "Normalize", "Parameter":
		return first(1), true
	case "Scale":
		n := 0
		if oneBottom {
			n++
		}
		if lp.GetScaleParam().GetBiasTerm() {
			n++
		}
		return first(n), true
	case "Bias":
		if oneBottom {
			return first(1), true
		}
		return nil, true
	case "BatchNorm":
		// NVIDIA Caffe's scale_bias stores a learned scale and bias after
		// the three statistics.
		if lp.GetBatchNormParam().GetScaleBias() {
			return []int{3, 4}, true
		}
		return nil, true
	case "BN":
		// The forks' BN stores scale and shift first, then any statistics.
		return first(2), true
	}
	return nil, false
}

// freezeParams sets lr_mult and decay_mult to 0 on the param entries of
// the learnable blobs of lp, adding entries up to the last one. Added
// entries before a learnable blob (a statistic's) get zeros as well. It
// returns the number of entries added and whether anything changed.
func freezeParams(lp *caffepb.LayerParameter, learnable []int) (int, bool) {
	need := slices.Max(learnable) + 1
	added := 0
	for len(lp.Param) < need {
		lp.Param = append(lp.Param, &caffepb.ParamSpec{LrMult: proto.Float32(0), DecayMult: proto.Float32(0)})
		added++
	}
	changed := added > 0
	for _, i := range learnable {
		p := lp.Param[i]
		if p.LrMult == nil || p.GetLrMult() != 0 || p.DecayMult == nil || p.GetDecayMult() != 0 {
			changed = true
		}
		p.LrMult, p.DecayMult = proto.Float32(0), proto.Float32(0)
	}
	return added, changed
}

// warnSharedParams warns about learnable blobs of lp shared by param name
// with a layer that is not frozen. Every layer of the net counts, in any
// phase, because Caffe checks the sharing within each phase's net.
func warnSharedParams(r *Report, net *caffepb.NetParameter, lp *caffepb.LayerParameter, learnable []int, frozenNames map[string]bool) {
	for _, i := range learnable {
		name := lp.GetParam()[i].GetName()
		if name == "" {
			continue
		}
		var others []string
		for _, other := range net.GetLayer() {
			if frozenNames[other.GetName()] {
				continue
			}
			for _, p := range other.GetParam() {
				if p.GetName() == name {
					others = append(others, fmt.Sprintf("%q", other.GetName()))
					break
				}
			}
		}
		if len(others) > 0 {
			r.Warnings = append(r.Warnings, fmt.Sprintf("layer %q shares blob %d (param name %q) with %s, which stays trainable: Caffe stops with \"Shared param '%s' has mismatched lr_mult\" when a sharer sets another lr_mult, and otherwise freezes the blob for every sharer; freeze through a later layer or set those entries by hand",
				lp.GetName(), i, name, strings.Join(others, ", "), name))
		}
	}
}

// blobList formats blob indexes as "blob 0" or "blobs 0, 1".
func blobList(idx []int) string {
	parts := make([]string, len(idx))
	for i, v := range idx {
		parts[i] = fmt.Sprint(v)
	}
	if len(idx) == 1 {
		return "blob " + parts[0]
	}
	return "blobs " + strings.Join(parts, ", ")
}
