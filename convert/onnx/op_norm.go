package onnx

import (
	"math"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/graph"
)

// Normalization layers and the per-channel affine layers that follow them.
func init() {
	register(mapBatchNorm, "BatchNorm")
	register(mapBN, "BN")
	register(mapScale, "Scale")
	register(mapBias, "Bias")
	register(mapLRN, "LRN")
	register(mapMVN, "MVN")
	register(mapNormalize, "Normalize")
}

// usesGlobalStats reports whether a BatchNorm layer normalizes with its
// stored statistics: Caffe's batch_norm_layer.cpp does so by default in the
// TEST phase, and use_global_stats overrides it.
func (c *converter) usesGlobalStats(l *graph.Layer) bool {
	p := l.Param.GetBatchNormParam()
	if p != nil && p.UseGlobalStats != nil {
		return p.GetUseGlobalStats()
	}
	return !c.opts.Graph.Train
}

// mapBatchNorm follows batch_norm_layer.cpp. The stored mean and variance
// are sums scaled by the moving-average factor in blob 2, so both are
// multiplied by 1/factor (0 when the factor is 0, as Caffe does); then
// y = (x − mean) / sqrt(var + eps). When a Scale layer is the only reader
// of the output, its scale and bias become BatchNormalization's scale and
// B; otherwise those are 1 and 0. OpenCV's scale_bias extension stores
// the scale and bias as blobs 3 and 4.
//
// With use_global_stats false, Caffe normalizes with the mean and variance
// of the batch (over every axis but the channels), which is written out
// with ReduceMean.
func mapBatchNorm(c *converter, l *graph.Layer) error {
	in := l.Bottoms[0].Shape
	if len(in) < 2 {
		return unsupported(l, "BatchNorm needs a channel axis, the bottom is %v", in)
	}
	ch := in[1]
	eps := l.Param.GetBatchNormParam().GetEps()
	output := c.top(0)
	scale, bias := ones(ch), make([]float32, ch)
	if s := c.fusedWith[l]; s != nil {
		output = c.names[s.Tops[0]]
		var err error
		if scale, bias, err = c.layerScaleBias(s, ch); err != nil {
			return err
		}
	} else if l.Param.GetBatchNormParam().GetScaleBias() {
		var err error
		if scale, err = c.weights(3, []int{ch}); err != nil {
			return err
		}
		if bias, err = c.weights(4, []int{ch}); err != nil {
			return err
		}
	}

	if !c.usesGlobalStats(l) {
		return c.batchStatistics(l, ch, eps, scale, bias, output)
	}
	mean, err := c.weights(0, []int{ch})
	if err != nil {
		return err
	}
	variance, err := c.weights(1, []int{ch})
	if err != nil {
		return err
	}
	factor, err := c.weights(2, []int{1})
	if err != nil {
		return err
	}
	k := float32(0)
	if factor[0] != 0 {
		k = 1 / factor[0]
	}
	scaledMean, scaledVar := make([]float32, ch), make([]float32, ch)
	for i := range ch {
		scaledMean[i] = mean[i] * k
		scaledVar[i] = variance[i] * k
	}
	c.node("BatchNormalization", []string{
		c.in(0),
		c.floatConst("scale", []int{ch}, scale),
		c.floatConst("bias", []int{ch}, bias),
		c.floatConst("mean", []int{ch}, scaledMean),
		c.floatConst("variance", []int{ch}, scaledVar),
	}, []string{output}, attrFloat("epsilon", eps))
	return nil
}

// layerScaleBias returns the scale and bias of a one-bottom Scale layer on
// the channel axis, read while mapping the BatchNorm layer it is fused
// into.
func (c *converter) layerScaleBias(s *graph.Layer, ch int) ([]float32, []float32, error) {
	saved := c.layer
	c.layer = s
	defer func() { c.layer = saved }()
	scale, err := c.weights(0, []int{ch})
	if err != nil {
		return nil, nil, err
	}
	bias := make([]float32, ch)
	if s.Param.GetScaleParam().GetBiasTerm() {
		if bias, err = c.weights(1, []int{ch}); err != nil {
			return nil, nil, err
		}
	}
	return scale, bias, nil
}

// batchStatistics normalizes with the mean and variance of the batch per
// channel, then applies scale and bias.
func (c *converter) batchStatistics(l *graph.Layer, ch int, eps float32, scale, bias []float32, output string) error {
	rank := len(l.Bottoms[0].Shape)
	axes := []int{0}
	for a := 2; a < rank; a++ {
		axes = append(axes, a)
	}
	mean := c.temp("batch_mean")
	c.reduce("ReduceMean", c.in(0), mean, axes, true)
	centered := c.temp("centered")
	c.node("Sub", []string{c.in(0), mean}, []string{centered})
	squared := c.temp("squared")
	c.node("Mul", []string{centered, centered}, []string{squared})
	variance := c.temp("batch_variance")
	c.reduce("ReduceMean", squared, variance, axes, true)
	std := c.temp("std")
	c.unary("Sqrt", c.addConst(variance, "eps", eps), std)
	normalized := c.temp("normalized")
	c.node("Div", []string{centered, std}, []string{normalized})
	shape := broadcastShape([]int{ch}, 1, rank)
	scaled := c.temp("scaled")
	c.node("Mul", []string{normalized, c.floatConst("scale", shape, scale)}, []string{scaled})
	c.node("Add", []string{scaled, c.floatConst("bias", shape, bias)}, []string{output})
	return nil
}

// mapBN maps the BN layer of Caffe forks, whose blobs are 1 × C × 1 × 1.
// PSPNet's (bn_layer.cpp of hszhao/PSPNet) stores slope, bias, mean and
// variance and computes slope·(x − mean)/sqrt(var + eps) + bias. SegNet's
// and ENet's store slope and bias only; with bn_mode INFERENCE they hold
// the statistics folded in by SegNet's compute_bn_statistics.py and the
// layer computes slope·x + bias.
//
// NOTE: no BN model with weights was available to check these against a
// reference implementation.
func mapBN(c *converter, l *graph.Layer) error {
	in := l.Bottoms[0].Shape
	if len(in) < 2 {
		return unsupported(l, "BN needs a channel axis, the bottom is %v", in)
	}
	ch := in[1]
	blobs := len(l.Param.GetBlobs())
	p := l.Param.GetBnParam()
	if p == nil {
		p = l.Param.GetBnParamPspnet()
	}
	slope, err := c.weights(0, []int{ch})
	if err != nil {
		return err
	}
	bias, err := c.weights(1, []int{ch})
	if err != nil {
		return err
	}
	switch {
	case blobs == 4:
		mean, err := c.weights(2, []int{ch})
		if err != nil {
			return err
		}
		variance, err := c.weights(3, []int{ch})
		if err != nil {
			return err
		}
		c.node("BatchNormalization", []string{
			c.in(0),
			c.floatConst("scale", []int{ch}, slope),
			c.floatConst("bias", []int{ch}, bias),
			c.floatConst("mean", []int{ch}, mean),
			c.floatConst("variance", []int{ch}, variance),
		}, []string{c.top(0)}, attrFloat("epsilon", p.GetEps()))
		return nil
	case blobs == 2 && p.GetBnMode() == caffepb.BNParameter_INFERENCE:
		shape := broadcastShape([]int{ch}, 1, len(in))
		scaled := c.temp("scaled")
		c.node("Mul", []string{c.in(0), c.floatConst("slope", shape, slope)}, []string{scaled})
		c.node("Add", []string{scaled, c.floatConst("bias", shape, bias)}, []string{c.top(0)})
		return nil
	}
	return unsupported(l, "a BN layer with %d blobs and bn_mode %v normalizes with the statistics of each batch; fold the statistics in first (bn_mode INFERENCE)", blobs, p.GetBnMode())
}

// affineOperand returns the tensor that a Scale or Bias layer applies:
// blob blobIndex of the layer with the shape bottom[axis : axis+numAxes]
// (numAxes −1: to the end), or bottom 1 when there are two bottoms, both
// reshaped with trailing 1s so that ONNX broadcasting applies them from
// axis, as scale_layer.cpp and bias_layer.cpp do.
func (c *converter) affineOperand(l *graph.Layer, axisField, numAxes, blobIndex int) (string, error) {
	in := l.Bottoms[0].Shape
	axis, err := canonicalAxis(axisField, len(in))
	if err != nil {
		return "", unsupported(l, "%v", err)
	}
	if len(l.Bottoms) > 1 {
		operand := l.Bottoms[1].Shape
		if axis+len(operand) > len(in) {
			return "", unsupported(l, "bottom 1 %v does not fit bottom 0 %v from axis %d", operand, in, axis)
		}
		if axis+len(operand) == len(in) {
			return c.in(1), nil
		}
		// Reshape's 0 copies each of bottom 1's own sizes, so this works
		// with a dynamic batch size too.
		target := make([]int, len(in)-axis)
		for i := len(operand); i < len(target); i++ {
			target[i] = 1
		}
		name := c.temp("operand")
		c.reshape(c.in(1), name, target)
		return name, nil
	}
	end := len(in)
	if numAxes >= 0 {
		end = axis + numAxes
	}
	if numAxes < -1 || end > len(in) {
		return "", unsupported(l, "num_axes %d from axis %d exceeds the %d axes of the bottom", numAxes, axis, len(in))
	}
	if axis == 0 && end > 0 && c.batchAxes(l.Bottoms[0])[0] {
		return "", unsupported(l, "a learned operand on the batch axis needs a fixed batch size")
	}
	shape := in[axis:end]
	values, err := c.weights(blobIndex, shape)
	if err != nil {
		return "", err
	}
	role := "scale"
	if l.Type() == "Bias" {
		role = "bias"
	}
	return c.floatConst(role, broadcastShape(shape, axis, len(in)), values), nil
}

// mapScale follows scale_layer.cpp: the bottom times a learned blob (or
// bottom 1) broadcast from scale_param.axis, plus a learned bias of the
// same shape with bias_term.
func mapScale(c *converter, l *graph.Layer) error {
	p := l.Param.GetScaleParam()
	factor, err := c.affineOperand(l, int(p.GetAxis()), int(p.GetNumAxes()), 0)
	if err != nil {
		return err
	}
	if !p.GetBiasTerm() {
		c.node("Mul", []string{c.in(0), factor}, []string{c.top(0)})
		return nil
	}
	scaled := c.temp("scaled")
	c.node("Mul", []string{c.in(0), factor}, []string{scaled})

	// The bias is the layer's last blob: blob 1 after a learned scale,
	// blob 0 when bottom 1 is the scale.
	blobIndex := 1
	if len(l.Bottoms) > 1 {
		blobIndex = 0
	}
	in := l.Bottoms[0].Shape
	axis, _ := canonicalAxis(int(p.GetAxis()), len(in))
	end := len(in)
	if len(l.Bottoms) > 1 {
		end = axis + len(l.Bottoms[1].Shape)
	} else if p.GetNumAxes() >= 0 {
		end = axis + int(p.GetNumAxes())
	}
	shape := in[axis:end]
	values, err := c.weights(blobIndex, shape)
	if err != nil {
		return err
	}
	bias := c.floatConst("bias", broadcastShape(shape, axis, len(in)), values)
	c.node("Add", []string{scaled, bias}, []string{c.top(0)})
	return nil
}

// mapBias follows bias_layer.cpp: the bottom plus a learned blob (or
// bottom 1) broadcast from bias_param.axis.
func mapBias(c *converter, l *graph.Layer) error {
	p := l.Param.GetBiasParam()
	term, err := c.affineOperand(l, int(p.GetAxis()), int(p.GetNumAxes()), 0)
	if err != nil {
		return err
	}
	c.node("Add", []string{c.in(0), term}, []string{c.top(0)})
	return nil
}

// mapLRN follows lrn_layer.cpp. ACROSS_CHANNELS computes
// x / (k + α/n · Σ x²)^β over the n = local_size channels centred on each
// one, which is ONNX's LRN with size n, alpha α, beta β and bias k (ONNX
// also divides alpha by size). WITHIN_CHANNEL is a composition in Caffe
// itself, x · (1 + α · avg(x²))^−β, and is written out the same way. Its
// avg is an n × n average pooling with stride 1 and padding (n − 1)/2
// that always divides by n², and k is not used.
func mapLRN(c *converter, l *graph.Layer) error {
	p := l.Param.GetLrnParam()
	n := int(p.GetLocalSize())
	if n%2 == 0 {
		return unsupported(l, "lrn_param.local_size %d must be odd, as Caffe requires", n)
	}
	if p.GetNormRegion() == caffepb.LRNParameter_ACROSS_CHANNELS {
		c.unary("LRN", c.in(0), c.top(0),
			attrInt("size", n), attrFloat("alpha", p.GetAlpha()), attrFloat("beta", p.GetBeta()), attrFloat("bias", p.GetK()))
		return nil
	}
	if len(l.Bottoms[0].Shape) != 4 {
		return unsupported(l, "WITHIN_CHANNEL LRN needs a 4-axis bottom, got %v", l.Bottoms[0].Shape)
	}
	pad := (n - 1) / 2
	squared := c.temp("squared")
	c.node("Mul", []string{c.in(0), c.in(0)}, []string{squared})
	average := c.temp("average")
	c.unary("AveragePool", squared, average,
		attrInts("kernel_shape", []int{n, n}), attrInts("strides", []int{1, 1}),
		attrInts("pads", []int{pad, pad, pad, pad}), attrInt("count_include_pad", 1))
	x := c.mulConst(average, "alpha", p.GetAlpha())
	x = c.addConst(x, "one", 1)
	power := c.temp("power")
	c.node("Pow", []string{x, c.scalarConst("exponent", -p.GetBeta())}, []string{power})
	c.node("Mul", []string{c.in(0), power}, []string{c.top(0)})
	return nil
}

// onnxMVNEpsilon is the epsilon of ONNX's MeanVarianceNormalization
// function body (opset 9 and 13), added to the standard deviation.
const onnxMVNEpsilon = 1e-9

// mapMVN follows mvn_layer.cpp: subtract the mean over each channel's
// spatial axes (over all axes but the batch with across_channels), then,
// with normalize_variance (the default), divide by sqrt(E[x²] − E[x]²) +
// eps. ONNX's MeanVarianceNormalization computes exactly that with eps
// 1e-9 (Caffe's default) and the axes given, so it is used when eps
// matches. Other eps values get the steps written out.
func mapMVN(c *converter, l *graph.Layer) error {
	p := l.Param.GetMvnParam()
	rank := len(l.Bottoms[0].Shape)
	if rank < 2 {
		return unsupported(l, "MVN needs a bottom with at least 2 axes, got %v", l.Bottoms[0].Shape)
	}
	first := 2
	if p.GetAcrossChannels() {
		first = 1
	}
	var axes []int
	for a := first; a < rank; a++ {
		axes = append(axes, a)
	}
	if len(axes) == 0 {
		return unsupported(l, "the bottom %v has no axes to normalize over", l.Bottoms[0].Shape)
	}
	eps := p.GetEps()
	if p.GetNormalizeVariance() && math.Abs(float64(eps)-onnxMVNEpsilon) <= 1e-15 {
		c.unary("MeanVarianceNormalization", c.in(0), c.top(0), attrInts("axes", axes))
		return nil
	}
	mean := c.temp("mean")
	c.reduce("ReduceMean", c.in(0), mean, axes, true)
	if !p.GetNormalizeVariance() {
		c.node("Sub", []string{c.in(0), mean}, []string{c.top(0)})
		return nil
	}
	centered := c.temp("centered")
	c.node("Sub", []string{c.in(0), mean}, []string{centered})
	squared := c.temp("squared")
	c.node("Mul", []string{centered, centered}, []string{squared})
	variance := c.temp("variance")
	c.reduce("ReduceMean", squared, variance, axes, true)
	std := c.temp("std")
	c.unary("Sqrt", variance, std)
	c.node("Div", []string{centered, c.addConst(std, "eps", eps)}, []string{c.top(0)})
	return nil
}

// mapNormalize follows SSD's normalize_layer.cpp: divide by
// sqrt(Σ x² + eps), then multiply by the learned scale. The sum runs over
// channels, height and width of each item with across_spatial (the
// default), else over the channels at each position. The scale is one
// value with channel_shared (the default), else one per channel.
func mapNormalize(c *converter, l *graph.Layer) error {
	p := l.Param.GetNormParam()
	in := l.Bottoms[0].Shape
	if len(in) < 2 {
		return unsupported(l, "Normalize needs a channel axis, the bottom is %v", in)
	}
	axes := []int{1}
	if p.GetAcrossSpatial() {
		for a := 2; a < len(in); a++ {
			axes = append(axes, a)
		}
	}
	sum := c.temp("sum_squares")
	c.reduce("ReduceSumSquare", c.in(0), sum, axes, true)
	norm := c.temp("norm")
	c.unary("Sqrt", c.addConst(sum, "eps", p.GetEps()), norm)
	normalized := c.temp("normalized")
	c.node("Div", []string{c.in(0), norm}, []string{normalized})

	var scale string
	if p.GetChannelShared() {
		values, err := c.weights(0, []int{1})
		if err != nil {
			return err
		}
		scale = c.scalarConst("scale", values[0])
	} else {
		values, err := c.weights(0, []int{in[1]})
		if err != nil {
			return err
		}
		scale = c.floatConst("scale", broadcastShape([]int{in[1]}, 1, len(in)), values)
	}
	c.node("Mul", []string{normalized, scale}, []string{c.top(0)})
	return nil
}

func ones(n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = 1
	}
	return out
}
