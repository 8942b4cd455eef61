package forward

import (
	"fmt"
	"math"

	"github.com/tlsurgery/tlsurgery/graph"
)

// channelAffine computes y = x·scale[c] + shift[c] per channel of axis 1
// (or per element of an operand spanning axes [axis, axis+n)).
type channelAffine struct {
	scale, shift []float32
	axis         int
	operand      bool // the scale is the second bottom
	hasScale     bool
}

func (k *channelAffine) forward(bottoms, tops []*Tensor) error {
	in, out := bottoms[0], tops[0]
	scale := k.scale
	if k.operand {
		scale = bottoms[1].Data
	}
	n := len(scale)
	if !k.hasScale {
		n = len(k.shift)
	}
	outer := product(in.Shape[:k.axis])
	inner := len(in.Data) / max(outer*n, 1)
	if outer*n*inner != len(in.Data) {
		return fmt.Errorf("operand of %d values does not divide the bottom %v at axis %d", n, in.Shape, k.axis)
	}
	for o := range outer {
		for c := range n {
			base := (o*n + c) * inner
			s, b := float32(1), float32(0)
			if k.hasScale {
				s = scale[c]
			}
			if k.shift != nil {
				b = k.shift[c]
			}
			for i := base; i < base+inner; i++ {
				out.Data[i] = in.Data[i]*s + b
			}
		}
	}
	return nil
}

func init() {
	registerKernel(func(l *graph.Layer, c *compileContext) (kernel, error) {
		// Caffe's batch_norm_layer.cpp with stored statistics: mean and
		// variance are blob ÷ factor (0 when the factor is 0), then
		// y = (x − mean) / √(var + eps).
		mean, err := c.weights(l, 0)
		if err != nil {
			return nil, err
		}
		variance, err := c.weights(l, 1)
		if err != nil {
			return nil, err
		}
		factor, err := c.weights(l, 2)
		if err != nil {
			return nil, err
		}
		f := float32(0)
		if factor[0] != 0 {
			f = 1 / factor[0]
		}
		eps := float64(l.Param.GetBatchNormParam().GetEps())
		k := &channelAffine{axis: 1, hasScale: true, scale: make([]float32, len(mean)), shift: make([]float32, len(mean))}
		for i := range mean {
			m := mean[i] * f
			v := variance[i] * f
			inv := float32(1 / math.Sqrt(float64(v)+eps))
			k.scale[i] = inv
			k.shift[i] = -m * inv
		}
		return k, nil
	}, "BatchNorm")

	registerKernel(func(l *graph.Layer, c *compileContext) (kernel, error) {
		// Caffe's scale_layer.cpp: y = x·γ (+ β), γ a learned blob or the
		// second bottom, broadcast over bottom[axis : axis+num_axes].
		p := l.Param.GetScaleParam()
		k := &channelAffine{axis: canonical(int(p.GetAxis()), len(l.Bottoms[0].Shape)), hasScale: true}
		next := 0
		if len(l.Bottoms) > 1 {
			k.operand = true
		} else {
			var err error
			if k.scale, err = c.weights(l, 0); err != nil {
				return nil, err
			}
			next = 1
		}
		if p.GetBiasTerm() {
			var err error
			if k.shift, err = c.weights(l, next); err != nil {
				return nil, err
			}
		}
		return k, nil
	}, "Scale")

	registerKernel(func(l *graph.Layer, c *compileContext) (kernel, error) {
		// Caffe's bias_layer.cpp: y = x + β, β a learned blob or the second
		// bottom.
		p := l.Param.GetBiasParam()
		k := &channelAffine{axis: canonical(int(p.GetAxis()), len(l.Bottoms[0].Shape))}
		if len(l.Bottoms) > 1 {
			return &biasOperand{axis: k.axis}, nil
		}
		var err error
		if k.shift, err = c.weights(l, 0); err != nil {
			return nil, err
		}
		return k, nil
	}, "Bias")
}

// biasOperand adds the second bottom, broadcast from axis on.
type biasOperand struct{ axis int }

func (k *biasOperand) forward(bottoms, tops []*Tensor) error {
	in, b, out := bottoms[0], bottoms[1], tops[0]
	n := len(b.Data)
	outer := product(in.Shape[:k.axis])
	inner := len(in.Data) / max(outer*n, 1)
	for o := range outer {
		for c := range n {
			base := (o*n + c) * inner
			for i := base; i < base+inner; i++ {
				out.Data[i] = in.Data[i] + b.Data[c]
			}
		}
	}
	return nil
}

// lrnKernel follows Caffe's lrn_layer.cpp. ACROSS_CHANNELS:
// y = x·(k + α/n·Σ x²)^−β over n channels centred on each one (zero
// beyond the edges). WITHIN_CHANNEL, which Caffe composes from pooling
// layers: y = x·(1 + α·avg(x²))^−β, the average over an n×n window
// centred on each pixel divided by n² (the window includes the padding).
type lrnKernel struct {
	size           int
	alpha, beta, k float64
	withinChannel  bool
}

func (l *lrnKernel) forward(bottoms, tops []*Tensor) error {
	in, out := bottoms[0], tops[0]
	if len(in.Shape) != 4 {
		return fmt.Errorf("LRN needs a 4-D bottom, got %v", in.Shape)
	}
	n, c, h, w := in.Shape[0], in.Shape[1], in.Shape[2], in.Shape[3]
	plane := h * w
	half := (l.size - 1) / 2
	sq := make([]float64, c*plane)
	for img := range n {
		x := in.Data[img*c*plane : (img+1)*c*plane]
		y := out.Data[img*c*plane : (img+1)*c*plane]
		for i, v := range x {
			sq[i] = float64(v) * float64(v)
		}
		for ch := range c {
			for p := range plane {
				var sum float64
				if l.withinChannel {
					py, px := p/w, p%w
					for yy := max(py-half, 0); yy < min(py-half+l.size, h); yy++ {
						for xx := max(px-half, 0); xx < min(px-half+l.size, w); xx++ {
							sum += sq[ch*plane+yy*w+xx]
						}
					}
					scale := 1 + l.alpha*sum/float64(l.size*l.size)
					y[ch*plane+p] = float32(float64(x[ch*plane+p]) * math.Pow(scale, -l.beta))
					continue
				}
				for cc := max(ch-half, 0); cc < min(ch-half+l.size, c); cc++ {
					sum += sq[cc*plane+p]
				}
				scale := l.k + l.alpha/float64(l.size)*sum
				y[ch*plane+p] = float32(float64(x[ch*plane+p]) * math.Pow(scale, -l.beta))
			}
		}
	}
	return nil
}

// mvnKernel follows Caffe's mvn_layer.cpp: per channel (or per image with
// across_channels) subtract the mean and, with normalize_variance, divide
// by the standard deviation plus eps (eps is added after the square root,
// unlike OpenCV's MVN, which adds it to the variance).
type mvnKernel struct {
	across, variance bool
	eps              float64
}

func (m *mvnKernel) forward(bottoms, tops []*Tensor) error {
	in, out := bottoms[0], tops[0]
	groups := in.Shape[0]
	if !m.across && len(in.Shape) > 1 {
		groups *= in.Shape[1]
	}
	dim := len(in.Data) / groups
	for g := range groups {
		x := in.Data[g*dim : (g+1)*dim]
		y := out.Data[g*dim : (g+1)*dim]
		var sum, sumSq float64
		for _, v := range x {
			sum += float64(v)
			sumSq += float64(v) * float64(v)
		}
		mean := sum / float64(dim)
		div := 1.0
		if m.variance {
			variance := sumSq/float64(dim) - mean*mean
			div = math.Sqrt(max(variance, 0)) + m.eps
		}
		for i, v := range x {
			y[i] = float32((float64(v) - mean) / div)
		}
	}
	return nil
}

func init() {
	registerKernel(func(l *graph.Layer, c *compileContext) (kernel, error) {
		p := l.Param.GetLrnParam()
		if p.GetLocalSize()%2 == 0 {
			return nil, fmt.Errorf("LRN local_size %d must be odd", p.GetLocalSize())
		}
		return &lrnKernel{size: int(p.GetLocalSize()), alpha: float64(p.GetAlpha()), beta: float64(p.GetBeta()), k: float64(p.GetK()),
			withinChannel: p.GetNormRegion() != 0}, nil
	}, "LRN")
	registerKernel(func(l *graph.Layer, c *compileContext) (kernel, error) {
		p := l.Param.GetMvnParam()
		return &mvnKernel{across: p.GetAcrossChannels(), variance: p.GetNormalizeVariance(), eps: float64(p.GetEps())}, nil
	}, "MVN")
}
