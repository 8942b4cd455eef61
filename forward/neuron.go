package forward

import (
	"fmt"
	"math"

	"github.com/tlsurgery/tlsurgery/graph"
)

// elementwise applies f to each value; Caffe's neuron layers.
type elementwise func(x float32) float32

func (f elementwise) forward(bottoms, tops []*Tensor) error {
	src, dst := bottoms[0].Data, tops[0].Data
	for i, x := range src {
		dst[i] = f(x)
	}
	return nil
}

func init() {
	neuron := func(make func(l *graph.Layer) elementwise) builder {
		return func(l *graph.Layer, c *compileContext) (kernel, error) { return make(l), nil }
	}
	registerKernel(neuron(func(l *graph.Layer) elementwise {
		slope := l.Param.GetReluParam().GetNegativeSlope()
		return func(x float32) float32 {
			if x > 0 {
				return x
			}
			return x * slope
		}
	}), "ReLU")
	registerKernel(neuron(func(l *graph.Layer) elementwise {
		return func(x float32) float32 { return min(max(x, 0), 6) }
	}), "ReLU6")
	registerKernel(neuron(func(l *graph.Layer) elementwise {
		alpha := l.Param.GetEluParam().GetAlpha()
		return func(x float32) float32 {
			if x > 0 {
				return x
			}
			return alpha * float32(math.Expm1(float64(x)))
		}
	}), "ELU")
	registerKernel(neuron(func(l *graph.Layer) elementwise {
		return func(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }
	}), "Sigmoid")
	registerKernel(neuron(func(l *graph.Layer) elementwise {
		return func(x float32) float32 { return float32(math.Tanh(float64(x))) }
	}), "TanH")
	registerKernel(neuron(func(l *graph.Layer) elementwise {
		return func(x float32) float32 { return float32(math.Abs(float64(x))) }
	}), "AbsVal")
	registerKernel(neuron(func(l *graph.Layer) elementwise {
		// Caffe's bnll_layer.cpp: log(1 + eˣ), written to avoid overflow.
		return func(x float32) float32 {
			v := float64(x)
			if v > 0 {
				return float32(v + math.Log1p(math.Exp(-v)))
			}
			return float32(math.Log1p(math.Exp(v)))
		}
	}), "BNLL")
	registerKernel(neuron(func(l *graph.Layer) elementwise {
		p := l.Param.GetPowerParam()
		power, scale, shift := float64(p.GetPower()), p.GetScale(), p.GetShift()
		return func(x float32) float32 { return float32(math.Pow(float64(shift+scale*x), power)) }
	}), "Power")
	registerKernel(neuron(func(l *graph.Layer) elementwise {
		// Caffe's exp_layer.cpp: base^(shift + scale·x); base −1 means e.
		p := l.Param.GetExpParam()
		lnBase := 1.0
		if p.GetBase() != -1 {
			lnBase = math.Log(float64(p.GetBase()))
		}
		scale, shift := float64(p.GetScale()), float64(p.GetShift())
		return func(x float32) float32 { return float32(math.Exp(lnBase * (shift + scale*float64(x)))) }
	}), "Exp")
	registerKernel(neuron(func(l *graph.Layer) elementwise {
		// Caffe's log_layer.cpp: log_base(shift + scale·x); base −1 means e.
		p := l.Param.GetLogParam()
		inv := 1.0
		if p.GetBase() != -1 {
			inv = 1 / math.Log(float64(p.GetBase()))
		}
		scale, shift := float64(p.GetScale()), float64(p.GetShift())
		return func(x float32) float32 { return float32(math.Log(shift+scale*float64(x)) * inv) }
	}), "Log")
	registerKernel(neuron(func(l *graph.Layer) elementwise {
		t := l.Param.GetThresholdParam().GetThreshold()
		return func(x float32) float32 {
			if x > t {
				return 1
			}
			return 0
		}
	}), "Threshold")
	registerKernel(func(l *graph.Layer, c *compileContext) (kernel, error) {
		p := l.Param.GetClipParam()
		if p == nil {
			return nil, fmt.Errorf("missing clip_param")
		}
		lo, hi := p.GetMin(), p.GetMax()
		return elementwise(func(x float32) float32 { return min(max(x, lo), hi) }), nil
	}, "Clip")
	registerKernel(neuron(func(l *graph.Layer) elementwise {
		beta := float64(l.Param.GetSwishParam().GetBeta())
		return func(x float32) float32 { return float32(float64(x) / (1 + math.Exp(-beta*float64(x)))) }
	}), "Swish")
	registerKernel(neuron(func(l *graph.Layer) elementwise {
		// Caffe's dropout_layer.cpp copies its input at test time.
		return func(x float32) float32 { return x }
	}), "Dropout")

	registerKernel(func(l *graph.Layer, c *compileContext) (kernel, error) {
		slopes, err := c.weights(l, 0)
		if err != nil {
			return nil, err
		}
		return &preluKernel{slopes: slopes, shared: l.Param.GetPreluParam().GetChannelShared()}, nil
	}, "PReLU")
}

// preluKernel follows Caffe's prelu_layer.cpp: max(0, x) + a·min(0, x),
// with a per channel (axis 1) or one for all.
type preluKernel struct {
	slopes []float32
	shared bool
}

func (k *preluKernel) forward(bottoms, tops []*Tensor) error {
	in := bottoms[0]
	ch := 1
	if len(in.Shape) > 1 {
		ch = in.Shape[1]
	}
	dim := product(in.Shape[min(2, len(in.Shape)):])
	for i, x := range in.Data {
		if x > 0 {
			tops[0].Data[i] = x
			continue
		}
		a := k.slopes[0]
		if !k.shared {
			a = k.slopes[(i/dim)%ch]
		}
		tops[0].Data[i] = a * x
	}
	return nil
}
