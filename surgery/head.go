package surgery

import (
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/graph"
)

// HeadOptions configures ReplaceHead.
type HeadOptions struct {
	// Classes is the number of outputs of the new classifier.
	Classes int

	// Layer names the classifier to replace. Empty means the last
	// InnerProduct of the selected layers or, in a net without one, the
	// last Convolution when it has a 1×1 kernel (MobileNet's fc7,
	// SqueezeNet's conv10).
	Layer string

	// Name is the new layer's name. Empty means Layer + "_new" (fc8 →
	// fc8_new). It must differ from every layer and blob name of the net.
	Name string

	// Graph selects the phase and the input sizes.
	Graph graph.Options
}

// The new classifier's learning-rate and weight-decay multipliers, as in
// Caffe's Flickr-style fine-tuning example: the new weights learn 10×
// (the biases 20×) faster than the pretrained layers.
const (
	headWeightLRMult    = 10
	headWeightDecayMult = 1
	headBiasLRMult      = 20
	headBiasDecayMult   = 0
	headWeightStd       = 0.01
)

// ReplaceHead replaces a classifier (an InnerProduct or a Convolution) by
// a new layer of the same type with opts.Classes outputs, for fine-tuning
// on a new set of classes. The new layer has a new name, so Caffe
// initializes it from its fillers (gaussian weights with std 0.01, zero
// biases) instead of loading the old weights, and the multipliers
// `param { lr_mult: 10 decay_mult: 1 } param { lr_mult: 20 decay_mult: 0 }`.
// Its other parameters (bottoms, axis, kernel, include rules) are the old
// layer's. A top named like the old layer is renamed like it, and every
// later layer that reads that blob (in-place layers, loss and accuracy
// layers of any phase) reads the new name. The old layer's weights are
// not in the result.
//
// Applying ReplaceHead to its own result with the same options returns an
// error: with opts.Layer set, the old layer is gone; without, the chosen
// layer already is such a head, and the error wraps ErrNothingToDo. net
// is not modified; the result shares the other layers' weight values
// with it.
func ReplaceHead(net *caffe.Net, opts HeadOptions) (*caffe.Net, *Report, error) {
	r := newReport("head")
	if opts.Classes < 1 {
		return nil, nil, fmt.Errorf("surgery: head: the number of classes must be positive, not %d", opts.Classes)
	}
	g := graph.Build(net, opts.Graph)
	g.Infer()

	old, err := findHead(g, opts.Layer)
	if err != nil {
		return nil, nil, err
	}
	name := opts.Name
	if name == "" {
		name = old.Name() + "_new"
	}
	if err := checkNewName(net.Param, name); err != nil {
		return nil, nil, err
	}
	if isNewHead(old.Param, opts.Classes) {
		return nil, r, fmt.Errorf("surgery: head: layer %q already is a new %d-output classifier without weights: %w", old.Name(), opts.Classes, ErrNothingToDo)
	}

	out := caffe.CloneNet(net)
	lp := out.Param.GetLayer()[old.Index]
	oldOutputs, err := setHeadParams(lp, opts.Classes)
	if err != nil {
		return nil, nil, err
	}
	if shared := sharedParamNames(old.Param); len(shared) > 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("layer %q shared blobs by param name %q; the new layer %q shares nothing", old.Name(), shared, name))
	}
	blobs := len(lp.GetBlobs())
	lp.Blobs = nil
	lp.Name = proto.String(name)
	renamed := map[*caffepb.LayerParameter]map[string]string{}
	for i, t := range lp.GetTop() {
		if t == old.Name() {
			lp.Top[i] = name
			renamed[lp] = map[string]string{t: name}
		}
	}
	applyRenames(out.Param, renamed)

	detail := fmt.Sprintf("replaced by %s %q with %d outputs (was %d), initialized by Caffe from gaussian std %g weights and zero biases, lr_mult %d and %d",
		lp.GetType(), name, opts.Classes, oldOutputs, headWeightStd, headWeightLRMult, headBiasLRMult)
	if blobs > 0 {
		detail += fmt.Sprintf("; its %d weight blobs are dropped", blobs)
	}
	r.changef(old.Name(), "%s", detail)
	for i, l := range out.Param.GetLayer() {
		before := net.Param.GetLayer()[i].GetBottom()
		for j, b := range l.GetBottom() {
			if b != before[j] {
				r.changef(l.GetName(), "reads %q instead of %q", b, before[j])
			}
		}
	}

	if err := finish(out, opts.Graph, r); err != nil {
		return nil, nil, fmt.Errorf("surgery: head produced an invalid net (does a later layer depend on the number of classes?): %w", err)
	}
	return out, r, nil
}

// findHead returns the layer named name, or the default classifier when
// name is empty.
func findHead(g *graph.Graph, name string) (*graph.Layer, error) {
	if name != "" {
		l := g.LayerByName(name)
		switch {
		case l == nil:
			return nil, fmt.Errorf("surgery: head: no layer %q in the net's selected layers", name)
		case l.Type() != "InnerProduct" && l.Type() != "Convolution":
			return nil, fmt.Errorf("surgery: head: layer %q is a %s; the classifier must be an InnerProduct or a Convolution", name, l.Type())
		}
		return l, nil
	}
	var lastFC, lastConv *graph.Layer
	for _, l := range g.Layers {
		switch l.Type() {
		case "InnerProduct":
			lastFC = l
		case "Convolution":
			lastConv = l
		}
	}
	switch {
	case lastFC != nil:
		return lastFC, nil
	case lastConv != nil && isOneByOne(lastConv.Param.GetConvolutionParam()):
		return lastConv, nil
	case lastConv != nil:
		return nil, fmt.Errorf("surgery: head: the net has no InnerProduct and its last Convolution %q is not 1×1; name the classifier to replace", lastConv.Name())
	}
	return nil, fmt.Errorf("surgery: head: the net has no InnerProduct or Convolution layer to replace")
}

// isOneByOne reports whether a convolution's kernel is 1 on every
// spatial axis.
func isOneByOne(p *caffepb.ConvolutionParameter) bool {
	if p.KernelH != nil || p.KernelW != nil {
		return p.GetKernelH() == 1 && p.GetKernelW() == 1
	}
	ks := p.GetKernelSize()
	return len(ks) > 0 && !slices.ContainsFunc(ks, func(k uint32) bool { return k != 1 })
}

// checkNewName rejects a new layer name that a layer (the old one
// included, whose weights Caffe would load into it) or a blob already has.
func checkNewName(net *caffepb.NetParameter, name string) error {
	for _, lp := range net.GetLayer() {
		if lp.GetName() == name {
			return fmt.Errorf("surgery: head: the net already has a layer %q; choose another name for the new layer", name)
		}
		if slices.Contains(lp.GetTop(), name) || slices.Contains(lp.GetBottom(), name) {
			return fmt.Errorf("surgery: head: layer %q already uses a blob %q; choose another name for the new layer", lp.GetName(), name)
		}
	}
	return nil
}

// isNewHead reports whether lp already is a classifier that ReplaceHead
// makes with the given number of outputs: no weights, the head's
// multipliers and fillers.
func isNewHead(lp *caffepb.LayerParameter, classes int) bool {
	if len(lp.GetBlobs()) > 0 || len(lp.GetParam()) != 2 {
		return false
	}
	w, b := lp.GetParam()[0], lp.GetParam()[1]
	if w.GetLrMult() != headWeightLRMult || w.GetDecayMult() != headWeightDecayMult || b.GetLrMult() != headBiasLRMult || b.GetDecayMult() != headBiasDecayMult {
		return false
	}
	var outputs uint32
	var wf, bf *caffepb.FillerParameter
	if p := lp.GetInnerProductParam(); lp.GetType() == "InnerProduct" {
		outputs, wf, bf = p.GetNumOutput(), p.GetWeightFiller(), p.GetBiasFiller()
	} else {
		p := lp.GetConvolutionParam()
		outputs, wf, bf = p.GetNumOutput(), p.GetWeightFiller(), p.GetBiasFiller()
	}
	return int(outputs) == classes && proto.Equal(wf, headWeightFiller()) && proto.Equal(bf, headBiasFiller())
}

func headWeightFiller() *caffepb.FillerParameter {
	return &caffepb.FillerParameter{Type: proto.String("gaussian"), Std: proto.Float32(headWeightStd)}
}

func headBiasFiller() *caffepb.FillerParameter {
	return &caffepb.FillerParameter{Type: proto.String("constant"), Value: proto.Float32(0)}
}

// setHeadParams gives lp the new classifier's outputs, fillers, bias and
// multipliers, and returns the old number of outputs.
func setHeadParams(lp *caffepb.LayerParameter, classes int) (int, error) {
	lp.Param = []*caffepb.ParamSpec{
		{LrMult: proto.Float32(headWeightLRMult), DecayMult: proto.Float32(headWeightDecayMult)},
		{LrMult: proto.Float32(headBiasLRMult), DecayMult: proto.Float32(headBiasDecayMult)},
	}
	if lp.GetType() == "InnerProduct" {
		p := lp.GetInnerProductParam()
		if p == nil {
			p = &caffepb.InnerProductParameter{}
			lp.InnerProductParam = p
		}
		old := int(p.GetNumOutput())
		p.NumOutput = proto.Uint32(uint32(classes))
		p.WeightFiller, p.BiasFiller = headWeightFiller(), headBiasFiller()
		p.BiasTerm = nil // the default, true
		return old, nil
	}
	p := lp.GetConvolutionParam()
	if p == nil {
		p = &caffepb.ConvolutionParameter{}
		lp.ConvolutionParam = p
	}
	if group := int(p.GetGroup()); group > 1 && classes%group != 0 {
		return 0, fmt.Errorf("surgery: head: layer %q has group %d, which does not divide %d outputs", lp.GetName(), group, classes)
	}
	old := int(p.GetNumOutput())
	p.NumOutput = proto.Uint32(uint32(classes))
	p.WeightFiller, p.BiasFiller = headWeightFiller(), headBiasFiller()
	p.BiasTerm = nil
	return old, nil
}

// sharedParamNames returns the param names of lp's blobs.
func sharedParamNames(lp *caffepb.LayerParameter) []string {
	var names []string
	for _, p := range lp.GetParam() {
		if p.GetName() != "" {
			names = append(names, p.GetName())
		}
	}
	return names
}

// SolverOptions configures FinetuneSolver.
type SolverOptions struct {
	// Net is the net file as Caffe opens it: relative paths are relative
	// to the directory `caffe train` runs in, not to the solver file.
	Net string

	// HeadLR is the learning rate of the new head. The solver's base_lr
	// is HeadLR / 10, so that the pretrained layers (lr_mult 1) learn 10×
	// slower than the head (lr_mult 10).
	HeadLR float64

	StepSize       int    // iterations between the 10× learning-rate drops (lr_policy "step", gamma 0.1)
	MaxIter        int    // iterations to train
	SnapshotPrefix string // path prefix of the snapshots Caffe writes
}

// FinetuneSolver returns a SolverParameter for fine-tuning a net made by
// ReplaceHead: base_lr HeadLR / 10, lr_policy "step" with gamma 0.1,
// momentum 0.9 and weight_decay 0.0005, as Caffe's Flickr-style
// fine-tuning example sets them.
func FinetuneSolver(opts SolverOptions) (*caffepb.SolverParameter, error) {
	switch {
	case opts.Net == "":
		return nil, fmt.Errorf("surgery: solver: missing the net file")
	case !(opts.HeadLR > 0):
		return nil, fmt.Errorf("surgery: solver: the head's learning rate must be positive, not %g", opts.HeadLR)
	case opts.StepSize < 1 || opts.StepSize > math.MaxInt32:
		return nil, fmt.Errorf("surgery: solver: stepsize must be between 1 and 2^31-1, not %d", opts.StepSize)
	case opts.MaxIter < 1 || opts.MaxIter > math.MaxInt32:
		return nil, fmt.Errorf("surgery: solver: max_iter must be between 1 and 2^31-1, not %d", opts.MaxIter)
	case opts.SnapshotPrefix == "":
		return nil, fmt.Errorf("surgery: solver: missing the snapshot prefix")
	}
	return &caffepb.SolverParameter{
		Net:            proto.String(opts.Net),
		BaseLr:         proto.Float32(float32(opts.HeadLR / headWeightLRMult)),
		LrPolicy:       proto.String("step"),
		Gamma:          proto.Float32(0.1),
		Stepsize:       proto.Int32(int32(opts.StepSize)),
		Momentum:       proto.Float32(0.9),
		WeightDecay:    proto.Float32(0.0005),
		MaxIter:        proto.Int32(int32(opts.MaxIter)),
		SnapshotPrefix: proto.String(opts.SnapshotPrefix),
	}, nil
}
