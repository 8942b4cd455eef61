package surgery

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/graph"
)

// InitOptions selects the layers that InitWeights initializes and seeds
// its random fillers. The zero value selects the TEST phase (a deploy
// net) with seed 0.
type InitOptions struct {
	// Seed seeds every random filler: the same net and seed give the same
	// values.
	Seed uint64

	// Inputs replaces the shapes of the named blobs, as graph.Options.Inputs
	// does ("" is every net input). Nets that read a database state no
	// input size and need it.
	Inputs map[string][]int

	Train  bool     // select the TRAIN phase's layers instead of TEST's
	Stages []string // stages of the net state, for include/exclude rules
	Level  int32    // level of the net state, for include/exclude rules
}

// InitReport describes the blobs that InitWeights created.
type InitReport struct {
	Layers []InitLayer // initialized layers, in declaration order

	// Learnable counts the learnable values, with blobs shared by
	// ParamSpec name counted once. Statistics counts the values of
	// running statistics (BatchNorm mean, variance and factor). Both
	// count as graph.Summarize does.
	Learnable, Statistics int64
}

// Stored returns the number of values the weights hold.
func (r *InitReport) Stored() int64 { return r.Learnable + r.Statistics }

// InitLayer is one layer that InitWeights gave blobs.
type InitLayer struct {
	Name  string
	Type  string
	Blobs []InitBlob
}

// InitBlob is one blob that InitWeights created.
type InitBlob struct {
	Shape     []int
	Filler    string // the filler with its parameters, such as "gaussian mean=0 std=0.01"
	Default   bool   // the layer type's default filler, used because the net sets none
	Statistic bool   // a running statistic (BatchNorm mean, variance, factor), not learned

	// SharedFrom names the earlier layer whose blob this one shares by
	// ParamSpec name, or is "". A shared blob takes that blob's values.
	SharedFrom string
}

// UnknownShapesError lists the layers that store blobs whose shapes could
// not be inferred, because a bottom's shape is unknown or a layer on the
// way has no shape rule.
type UnknownShapesError struct {
	Layers []string // "name (type): reason", one per layer
}

func (e *UnknownShapesError) Error() string {
	return fmt.Sprintf("surgery: the blob shapes of %s are unknown, so they cannot be initialized:\n  %s\n"+
		"set the shapes of the net's inputs, or of the tops of layers without a shape rule, in InitOptions.Inputs",
		e.Count(), strings.Join(e.Layers, "\n  "))
}

// Count returns the number of layers as "1 layer" or "n layers".
func (e *UnknownShapesError) Count() string {
	if len(e.Layers) == 1 {
		return "1 layer"
	}
	return fmt.Sprintf("%d layers", len(e.Layers))
}

// InitWeights returns a copy of net whose selected layers carry new
// blobs: the shapes that package graph infers, with values drawn from
// each layer's fillers as Caffe's layer setup draws them (see
// blobSources for the filler of each blob and fill for the filler
// types). BatchNorm statistics, which Caffe starts at 0, get a valid
// normalization instead (see fillStatistic).
//
// Existing blobs are dropped from every layer, so layers outside the
// selected phase carry none. net is not modified.
//
// Each layer draws from its own PCG generator seeded with opts.Seed and
// the layer's position in the net, so appending a layer leaves the
// values of the others unchanged. NOTE: inserting a layer shifts the
// positions, and so the values, of every layer after it.
//
// Layers with unknown blob shapes give an *UnknownShapesError. An invalid
// net, an unknown filler type or invalid filler parameters give an error
// that names the layer.
func InitWeights(net *caffe.Net, opts InitOptions) (*caffe.Net, *InitReport, error) {
	out := caffe.CloneNet(net)
	for _, l := range out.Param.GetLayer() {
		l.Blobs = nil
	}
	g := graph.Build(out, graph.Options{Train: opts.Train, Stages: opts.Stages, Level: opts.Level, Inputs: opts.Inputs})
	g.Infer()
	if err := g.Validate(); err != nil {
		return nil, nil, fmt.Errorf("surgery: the net is invalid, so it cannot be initialized: %w", err)
	}

	plans, err := planLayers(g)
	if err != nil {
		return nil, nil, err
	}

	var wg sync.WaitGroup
	for _, p := range plans {
		wg.Go(func() { p.err = p.fill(opts.Seed) })
	}
	wg.Wait()
	for _, p := range plans {
		if p.err != nil {
			return nil, nil, p.err
		}
	}

	report := &InitReport{}
	for _, p := range plans {
		report.Layers = append(report.Layers, p.attach(report))
	}
	return out, report, nil
}

// layerPlan is the blobs of one layer to create.
type layerPlan struct {
	layer *graph.Layer
	blobs []*blobPlan
	err   error
}

// blobPlan is one blob to create, and its values once filled.
type blobPlan struct {
	shape     []int
	source    blobSource
	statistic bool

	owner      *blobPlan // for a blob shared by ParamSpec name, the blob that draws the values
	ownerLayer string

	data []float32
}

// planLayers pairs each blob that graph inferred with its filler and
// resolves blobs shared by ParamSpec name, as Caffe's Net::AppendParam
// does: the first layer with a name owns the blob, and later layers with
// that name share its values.
func planLayers(g *graph.Graph) ([]*layerPlan, error) {
	var plans []*layerPlan
	var unknown []string
	type namedBlob struct {
		blob  *blobPlan
		layer string
	}
	owners := map[string]namedBlob{}
	for _, l := range g.Layers {
		sources, known := blobSources(l.Param)
		switch {
		case known && l.Unknown != "":
			unknown = append(unknown, fmt.Sprintf("%s (%s): %s", l.Name(), l.Type(), l.Unknown))
			continue
		case len(l.Blobs) == 0:
			continue
		case !known:
			return nil, fmt.Errorf("surgery: layer %q stores %d blobs, but layer type %q has no filler rule", l.Name(), len(l.Blobs), l.Type())
		case len(sources) < len(l.Blobs):
			return nil, fmt.Errorf("surgery: layer %q (%s) stores %d blobs; the type's fillers cover %d", l.Name(), l.Type(), len(l.Blobs), len(sources))
		}

		p := &layerPlan{layer: l}
		for i, b := range l.Blobs {
			bp := &blobPlan{shape: b.Shape, source: sources[i], statistic: b.Statistic}
			name, mode := "", caffepb.ParamSpec_STRICT
			if specs := l.Param.GetParam(); i < len(specs) {
				name, mode = specs[i].GetName(), specs[i].GetShareMode()
			}
			if name != "" {
				if o, ok := owners[name]; ok {
					if err := checkShared(l.Name(), i, name, b.Shape, mode, o.layer, o.blob.shape); err != nil {
						return nil, err
					}
					bp.owner, bp.ownerLayer = o.blob, o.layer
				} else {
					owners[name] = namedBlob{bp, l.Name()}
				}
			}
			p.blobs = append(p.blobs, bp)
		}
		plans = append(plans, p)
	}
	if len(unknown) > 0 {
		return nil, &UnknownShapesError{Layers: unknown}
	}
	return plans, nil
}

// checkShared applies Caffe's share_mode check to blob i of a layer that
// shares the blob named name with an earlier layer: STRICT needs equal
// shapes, PERMISSIVE equal counts.
func checkShared(layer string, i int, name string, shape []int, mode caffepb.ParamSpec_DimCheckMode, ownerLayer string, ownerShape []int) error {
	if mode == caffepb.ParamSpec_PERMISSIVE {
		if count(shape) != count(ownerShape) {
			return fmt.Errorf("surgery: layer %q shares blob %d as %q with layer %q, but its %d values (shape %v) differ from the %d of %v",
				layer, i, name, ownerLayer, count(shape), shape, count(ownerShape), ownerShape)
		}
		return nil
	}
	if !slices.Equal(shape, ownerShape) {
		return fmt.Errorf("surgery: layer %q shares blob %d as %q with layer %q, but its shape %v differs from %v; share_mode PERMISSIVE allows shapes with equal counts",
			layer, i, name, ownerLayer, shape, ownerShape)
	}
	return nil
}

// fill draws the values of the layer's blobs that it owns, in blob order,
// from a generator seeded with seed and the layer's position in the net.
func (p *layerPlan) fill(seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, uint64(p.layer.Index)))
	for i, b := range p.blobs {
		if b.owner != nil {
			continue
		}
		var err error
		if b.source.stat != notStatistic {
			b.data = fillStatistic(b.source.stat, b.shape, rng)
		} else {
			b.data, err = fill(b.source.filler, b.shape, rng)
		}
		if err != nil {
			return fmt.Errorf("surgery: layer %q (%s), blob %d: %w", p.layer.Name(), p.layer.Type(), i, err)
		}
	}
	return nil
}

// attach sets the layer's blobs in the output net, adds their counts to
// report and returns the layer's entry.
func (p *layerPlan) attach(report *InitReport) InitLayer {
	entry := InitLayer{Name: p.layer.Name(), Type: p.layer.Type()}
	blobs := make([]*caffepb.BlobProto, len(p.blobs))
	for i, b := range p.blobs {
		data := b.data
		if b.owner != nil {
			data = b.owner.data
		}
		dims := make([]int64, len(b.shape))
		for j, d := range b.shape {
			dims[j] = int64(d)
		}
		blobs[i] = &caffepb.BlobProto{Shape: &caffepb.BlobShape{Dim: dims}, Data: data}

		n := int64(count(b.shape))
		switch {
		case b.statistic:
			report.Statistics += n
		case b.owner == nil:
			report.Learnable += n
		}
		entry.Blobs = append(entry.Blobs, InitBlob{
			Shape:      slices.Clone(b.shape),
			Filler:     b.source.describe(),
			Default:    b.source.isDefault,
			Statistic:  b.statistic,
			SharedFrom: b.ownerLayer,
		})
	}
	p.layer.Param.Blobs = blobs
	return entry
}

// statistic is the kind of a running-statistics blob.
type statistic int

const (
	notStatistic statistic = iota
	runningMean
	runningVariance
	movingAverageFactor
)

// blobSource is the origin of one blob's values: a filler, or a kind of
// running statistic.
type blobSource struct {
	filler    *caffepb.FillerParameter
	isDefault bool // filler is the layer type's default
	stat      statistic
}

func (s blobSource) describe() string {
	switch s.stat {
	case runningMean:
		return fmt.Sprintf("running mean: gaussian mean=0 std=%g", statisticMeanStd)
	case runningVariance:
		return fmt.Sprintf("running variance: %g + uniform min=0 max=1", statisticVarianceMin)
	case movingAverageFactor:
		return "moving-average factor: constant value=1"
	}
	return describeFiller(s.filler)
}

// describeFiller returns the filler's type with the parameters it uses.
func describeFiller(p *caffepb.FillerParameter) string {
	f := func(v float32) string { return strconv.FormatFloat(float64(v), 'g', -1, 32) }
	var s string
	switch t := p.GetType(); t {
	case "constant":
		s = "constant value=" + f(p.GetValue())
	case "uniform":
		s = "uniform min=" + f(p.GetMin()) + " max=" + f(p.GetMax())
	case "gaussian":
		s = "gaussian mean=" + f(p.GetMean()) + " std=" + f(p.GetStd())
		if p.GetSparse() >= 0 {
			s += " sparse=" + strconv.Itoa(int(p.GetSparse()))
		}
	case "xavier", "msra":
		s = t + " variance_norm=" + p.GetVarianceNorm().String()
	default:
		s = t
	}
	return s
}

func constantFiller(v float32) *caffepb.FillerParameter {
	return &caffepb.FillerParameter{Type: proto.String("constant"), Value: proto.Float32(v)}
}

// blobSources returns where the values of each blob a layer of lp's type
// can store come from, in blob order, and false for a type with no
// filler rule. A layer may store fewer blobs (no bias_term, say): the
// caller takes the first len(graph.Layer.Blobs) sources.
//
// A missing filler takes FillerParameter's defaults (constant 0), as in
// Caffe, unless the layer's setup code sets another default. Those are
// PReLU 0.25 (BVLC prelu_layer.cpp), Scale 1 (BVLC scale_layer.cpp), the
// SSD fork's Normalize 1 (normalize_layer.cpp), and 1 and 0 for the
// scale_bias blobs of NVIDIA Caffe's BatchNorm (batch_norm_layer.cpp).
func blobSources(lp *caffepb.LayerParameter) ([]blobSource, bool) {
	learned := func(p, def *caffepb.FillerParameter) blobSource {
		if p != nil {
			return blobSource{filler: p}
		}
		return blobSource{filler: def, isDefault: true}
	}
	zero := constantFiller(0)
	stats := []blobSource{{stat: runningMean}, {stat: runningVariance}}

	switch lp.GetType() {
	case "Convolution", "Deconvolution", "DepthwiseConvolution", "ConvolutionDepthwise":
		p := lp.GetConvolutionParam()
		return []blobSource{learned(p.GetWeightFiller(), zero), learned(p.GetBiasFiller(), zero)}, true
	case "InnerProduct":
		p := lp.GetInnerProductParam()
		return []blobSource{learned(p.GetWeightFiller(), zero), learned(p.GetBiasFiller(), zero)}, true
	case "Embed":
		p := lp.GetEmbedParam()
		return []blobSource{learned(p.GetWeightFiller(), zero), learned(p.GetBiasFiller(), zero)}, true
	case "PReLU":
		return []blobSource{learned(lp.GetPreluParam().GetFiller(), constantFiller(0.25))}, true
	case "Scale":
		// With two bottoms the scale is bottom 1, and the only blob is
		// the bias, which Caffe fills through a Bias layer with
		// bias_filler.
		p := lp.GetScaleParam()
		bias := learned(p.GetBiasFiller(), zero)
		if len(lp.GetBottom()) > 1 {
			return []blobSource{bias}, true
		}
		return []blobSource{learned(p.GetFiller(), constantFiller(1)), bias}, true
	case "Bias":
		return []blobSource{learned(lp.GetBiasParam().GetFiller(), zero)}, true
	case "Normalize":
		return []blobSource{learned(lp.GetNormParam().GetScaleFiller(), constantFiller(1))}, true
	case "BatchNorm":
		return append(stats, blobSource{stat: movingAverageFactor},
			learned(nil, constantFiller(1)), learned(nil, zero)), true
	case "BN":
		// SegNet and ENet spell the fillers scale_filler and shift_filler,
		// PSPNet slope_filler and bias_filler; all three forks fall back to
		// FillerParameter's defaults.
		p := lp.GetBnParam()
		if p == nil {
			p = lp.GetBnParamPspnet()
		}
		scale, shift := p.GetScaleFiller(), p.GetShiftFiller()
		if scale == nil {
			scale = p.GetSlopeFiller()
		}
		if shift == nil {
			shift = p.GetBiasFiller()
		}
		return append([]blobSource{learned(scale, zero), learned(shift, zero)}, stats...), true
	}
	return nil, false
}

// Running statistics. Caffe starts them at 0, and a BatchNorm with a
// factor of 0 uses mean 0 and variance 0, which divides by sqrt(eps).
// Drawn statistics give a net initialized from scratch a normalization
// that keeps activations in range instead.
const (
	statisticMeanStd     = 0.1 // std of the gaussian running mean
	statisticVarianceMin = 0.5 // the running variance is this + uniform [0, 1)
)

// fillStatistic returns the values of a running-statistics blob.
func fillStatistic(kind statistic, shape []int, rng *rand.Rand) []float32 {
	data := make([]float32, count(shape))
	for i := range data {
		switch kind {
		case runningMean:
			data[i] = float32(statisticMeanStd * rng.NormFloat64())
		case runningVariance:
			data[i] = float32(statisticVarianceMin + rng.Float64())
		case movingAverageFactor:
			data[i] = 1
		}
	}
	return data
}

// fill returns the values of a blob of the given shape drawn by filler p
// as Caffe's filler.hpp defines its fillers (BVLC master), with Caffe's
// checks on the parameters as errors. Values are computed in float64 and
// rounded to float32.
func fill(p *caffepb.FillerParameter, shape []int, rng *rand.Rand) ([]float32, error) {
	n := count(shape)
	if n == 0 {
		return nil, fmt.Errorf("blob shape %v has no values", shape)
	}
	typ := p.GetType()
	sparse := p.GetSparse()
	if sparse < -1 {
		return nil, fmt.Errorf("sparse %d is invalid; use -1 (dense) or a non-negative count", sparse)
	}
	if sparse != -1 && typ != "gaussian" {
		return nil, fmt.Errorf("the %s filler does not support sparse (%d); only the gaussian filler does", typ, sparse)
	}

	data := make([]float32, n)
	switch typ {
	case "constant":
		v := p.GetValue()
		for i := range data {
			data[i] = v
		}

	case "uniform":
		lo, hi := float64(p.GetMin()), float64(p.GetMax())
		if !(lo <= hi) {
			return nil, fmt.Errorf("uniform filler min %g is greater than max %g", lo, hi)
		}
		fillUniform(data, lo, hi, rng)

	case "gaussian":
		std := float64(p.GetStd())
		if !(std > 0) {
			return nil, fmt.Errorf("gaussian filler std %g must be positive", std)
		}
		fillGaussian(data, float64(p.GetMean()), std, rng)
		if sparse >= 0 {
			if err := sparsify(data, shape, int(sparse), rng); err != nil {
				return nil, err
			}
		}

	case "positive_unitball":
		// Uniform [0, 1), then each of the shape[0] outputs scaled to
		// sum to 1.
		fillUniform(data, 0, 1, rng)
		dim := n / leading(shape)
		for row := range n / dim {
			values := data[row*dim : (row+1)*dim]
			var sum float64
			for _, v := range values {
				sum += float64(v)
			}
			for i, v := range values {
				values[i] = float32(float64(v) / sum)
			}
		}

	case "xavier":
		scale := math.Sqrt(3 / fan(p, shape, n))
		fillUniform(data, -scale, scale, rng)

	case "msra":
		fillGaussian(data, 0, math.Sqrt(2/fan(p, shape, n)), rng)

	case "bilinear":
		if err := fillBilinear(data, shape); err != nil {
			return nil, err
		}

	default:
		return nil, fmt.Errorf("unknown filler type %q; Caffe's fillers are constant, uniform, gaussian, positive_unitball, xavier, msra and bilinear", typ)
	}
	return data, nil
}

func fillUniform(data []float32, lo, hi float64, rng *rand.Rand) {
	for i := range data {
		data[i] = float32(lo + (hi-lo)*rng.Float64())
	}
}

func fillGaussian(data []float32, mean, std float64, rng *rand.Rand) {
	for i := range data {
		data[i] = float32(mean + std*rng.NormFloat64())
	}
}

// sparsify keeps each value with probability sparse / shape[0] and sets
// the others to 0, as Caffe's gaussian filler does: sparse is the
// expected number of non-zero weights per input when shape[0] counts the
// outputs, as it does for InnerProduct.
func sparsify(data []float32, shape []int, sparse int, rng *rand.Rand) error {
	if len(shape) == 0 {
		return fmt.Errorf("sparse needs a blob with at least one axis")
	}
	keep := float64(sparse) / float64(shape[0])
	if keep > 1 {
		return fmt.Errorf("sparse %d exceeds the %d outputs (axis 0 of shape %v)", sparse, shape[0], shape)
	}
	for i := range data {
		if rng.Float64() >= keep {
			data[i] = 0
		}
	}
	return nil
}

// fan returns the n of the xavier and msra fillers: fan_in = count /
// shape[0], fan_out = count / shape[1] (count for fewer than two axes),
// or their mean, as variance_norm selects.
func fan(p *caffepb.FillerParameter, shape []int, n int) float64 {
	fanIn := n / leading(shape)
	fanOut := n
	if len(shape) > 1 {
		fanOut = n / shape[1]
	}
	switch p.GetVarianceNorm() {
	case caffepb.FillerParameter_FAN_OUT:
		return float64(fanOut)
	case caffepb.FillerParameter_AVERAGE:
		return float64(fanIn+fanOut) / 2
	}
	return float64(fanIn)
}

// fillBilinear writes the bilinear upsampling kernel into every k×k slice
// of a 4-axis blob: with f = ceil(k/2) and c = (k − 1)/(2f), the value at
// (y, x) is (1 − |x/f − c|)·(1 − |y/f − c|).
//
// NOTE: c follows BVLC master, where a fix for odd kernels was merged
// after the 1.0 release. Caffe 1.0 uses c = (2f − 1 − f%2)/(2f), which is
// equal for even k and for k = 4m + 1 but gives an off-center kernel for
// k = 3, 7, 11, ...
func fillBilinear(data []float32, shape []int) error {
	if len(shape) != 4 {
		return fmt.Errorf("the bilinear filler needs a 4-axis blob, the shape is %v", shape)
	}
	if shape[2] != shape[3] {
		return fmt.Errorf("the bilinear filler needs a square kernel, the shape is %v", shape)
	}
	k := shape[3]
	f := (k + 1) / 2
	c := float64(k-1) / float64(2*f)
	for i := range data {
		x := float64(i % k)
		y := float64((i / k) % k)
		data[i] = float32((1 - math.Abs(x/float64(f)-c)) * (1 - math.Abs(y/float64(f)-c)))
	}
	return nil
}

// leading returns shape[0], or 1 for a scalar.
func leading(shape []int) int {
	if len(shape) == 0 {
		return 1
	}
	return shape[0]
}

func count(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}
