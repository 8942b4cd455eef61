package onnx

import (
	"math"

	"github.com/tlsurgery/tlsurgery/convert/onnx/onnxpb"
	"github.com/tlsurgery/tlsurgery/graph"
)

// Caffe's neuron layers: one bottom, one top of the same shape, usually in
// place.
func init() {
	register(mapReLU, "ReLU")
	register(mapPReLU, "PReLU")
	register(mapELU, "ELU")
	register(mapSimpleNeuron, "Sigmoid", "TanH", "AbsVal", "BNLL")
	register(mapPower, "Power")
	register(mapExp, "Exp")
	register(mapLog, "Log")
	register(mapThreshold, "Threshold")
	register(mapClip, "Clip", "ReLU6")
	register(mapSwish, "Swish")
}

// mapReLU follows relu_layer.cpp: max(x, 0) + negative_slope·min(x, 0),
// which is Relu, or LeakyRelu with alpha = negative_slope.
func mapReLU(c *converter, l *graph.Layer) error {
	slope := l.Param.GetReluParam().GetNegativeSlope()
	if slope == 0 {
		c.unary("Relu", c.in(0), c.top(0))
		return nil
	}
	c.unary("LeakyRelu", c.in(0), c.top(0), attrFloat("alpha", slope))
	return nil
}

// mapPReLU follows prelu_layer.cpp: one learned slope per channel (axis
// 1), or one for all with channel_shared. ONNX's PRelu broadcasts the
// slope from the right, so per-channel slopes get the shape C × 1 × ... × 1.
func mapPReLU(c *converter, l *graph.Layer) error {
	in := l.Bottoms[0].Shape
	shape := []int{1}
	if !l.Param.GetPreluParam().GetChannelShared() {
		if len(in) < 2 {
			return unsupported(l, "per-channel PReLU needs a channel axis, the bottom is %v", in)
		}
		shape = broadcastShape([]int{in[1]}, 1, len(in))
	}
	slope, err := c.weightConst(0, "slope", shape)
	if err != nil {
		return err
	}
	c.node("PRelu", []string{c.in(0), slope}, []string{c.top(0)})
	return nil
}

// mapELU follows elu_layer.cpp: x for x > 0, else alpha·(exp(x) − 1),
// which is ONNX's Elu.
func mapELU(c *converter, l *graph.Layer) error {
	c.unary("Elu", c.in(0), c.top(0), attrFloat("alpha", l.Param.GetEluParam().GetAlpha()))
	return nil
}

// mapSimpleNeuron maps the parameterless functions: sigmoid_layer.cpp,
// tanh_layer.cpp, absval_layer.cpp and bnll_layer.cpp, whose
// log(1 + exp(x)) is ONNX's Softplus.
func mapSimpleNeuron(c *converter, l *graph.Layer) error {
	op := map[string]string{"Sigmoid": "Sigmoid", "TanH": "Tanh", "AbsVal": "Abs", "BNLL": "Softplus"}[l.Type()]
	c.unary(op, c.in(0), c.top(0))
	return nil
}

// mapPower follows power_layer.cpp: (shift + scale·x)^power. Factors of 1,
// terms of 0 and the power 1 are left out.
func mapPower(c *converter, l *graph.Layer) error {
	p := l.Param.GetPowerParam()
	x := c.mulConst(c.in(0), "scale", p.GetScale())
	x = c.addConst(x, "shift", p.GetShift())
	if p.GetPower() != 1 {
		out := c.temp("power")
		c.node("Pow", []string{x, c.scalarConst("exponent", p.GetPower())}, []string{out})
		x = out
	}
	c.finish(x, c.top(0))
	return nil
}

// mapExp follows exp_layer.cpp: base^(shift + scale·x), with base −1
// meaning e, written as exp(ln(base)·shift + ln(base)·scale·x).
func mapExp(c *converter, l *graph.Layer) error {
	p := l.Param.GetExpParam()
	lnBase := 1.0
	if p.GetBase() != -1 {
		if p.GetBase() <= 0 {
			return unsupported(l, "exp_param.base %v must be positive or -1 (for e)", p.GetBase())
		}
		lnBase = math.Log(float64(p.GetBase()))
	}
	x := c.mulConst(c.in(0), "scale", float32(lnBase*float64(p.GetScale())))
	x = c.addConst(x, "shift", float32(lnBase*float64(p.GetShift())))
	c.unary("Exp", x, c.top(0))
	return nil
}

// mapLog follows log_layer.cpp: log_base(shift + scale·x), with base −1
// meaning e, written as ln(shift + scale·x) / ln(base).
func mapLog(c *converter, l *graph.Layer) error {
	p := l.Param.GetLogParam()
	x := c.mulConst(c.in(0), "scale", p.GetScale())
	x = c.addConst(x, "shift", p.GetShift())
	if p.GetBase() == -1 {
		c.unary("Log", x, c.top(0))
		return nil
	}
	if p.GetBase() <= 0 || p.GetBase() == 1 {
		return unsupported(l, "log_param.base %v must be positive and not 1, or -1 (for e)", p.GetBase())
	}
	ln := c.temp("ln")
	c.unary("Log", x, ln)
	c.finish(c.mulConst(ln, "inverse_ln_base", float32(1/math.Log(float64(p.GetBase())))), c.top(0))
	return nil
}

// mapThreshold follows threshold_layer.cpp: 1 where x > threshold, else 0.
func mapThreshold(c *converter, l *graph.Layer) error {
	above := c.temp("above")
	c.node("Greater", []string{c.in(0), c.scalarConst("threshold", l.Param.GetThresholdParam().GetThreshold())}, []string{above})
	c.unary("Cast", above, c.top(0), attrInt("to", int(onnxpb.TensorProto_FLOAT)))
	return nil
}

// mapClip follows clip_layer.cpp, max(min(x, max), min), and the ReLU6 of
// MobileNet v2 forks, min(max(x, 0), 6).
func mapClip(c *converter, l *graph.Layer) error {
	lo, hi := float32(0), float32(6)
	if l.Type() == "Clip" {
		p := l.Param.GetClipParam()
		if p == nil || p.Min == nil || p.Max == nil {
			return unsupported(l, "clip_param needs min and max")
		}
		lo, hi = p.GetMin(), p.GetMax()
	}
	c.clip(c.in(0), c.top(0), lo, hi)
	return nil
}

// mapSwish follows swish_layer.cpp: x·sigmoid(beta·x).
func mapSwish(c *converter, l *graph.Layer) error {
	x := c.mulConst(c.in(0), "beta", l.Param.GetSwishParam().GetBeta())
	sig := c.temp("sigmoid")
	c.unary("Sigmoid", x, sig)
	c.node("Mul", []string{c.in(0), sig}, []string{c.top(0)})
	return nil
}
