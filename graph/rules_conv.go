package graph

import "fmt"

// convGeometry is a convolution's window per spatial axis.
type convGeometry struct {
	axis                          int // channel axis
	channels, outputs, group      int
	kernel, stride, pad, dilation []int
}

// convParams reads kernel, stride, pad and dilation as Caffe's
// base_conv_layer.cpp does: kernel_h/kernel_w (2-D only) or kernel_size
// (one value for every axis, or one per axis); the same for stride
// (default 1) and pad (default 0); dilation (default 1).
func convParams(c *Context) (*convGeometry, error) {
	p := c.Layer.GetConvolutionParam()
	if p == nil {
		return nil, fmt.Errorf("missing convolution_param")
	}
	in := c.Bottoms[0]
	axis, err := canonicalAxis(int(p.GetAxis()), len(in))
	if err != nil {
		return nil, err
	}
	axes := len(in) - axis - 1
	if axes < 1 {
		return nil, fmt.Errorf("bottom shape %v has no spatial axes after channel axis %d", in, axis)
	}
	g := &convGeometry{axis: axis, channels: in[axis], outputs: int(p.GetNumOutput()), group: int(p.GetGroup())}
	if g.group < 1 || g.channels%g.group != 0 || g.outputs%g.group != 0 {
		return nil, fmt.Errorf("group %d must divide both the %d input channels and num_output %d", g.group, g.channels, g.outputs)
	}
	if g.outputs < 1 {
		return nil, fmt.Errorf("num_output must be positive")
	}
	hw := func(h, w *uint32, list []uint32, def int, name string) ([]int, error) {
		if h != nil || w != nil {
			if axes != 2 {
				return nil, fmt.Errorf("%s_h and %s_w need 2 spatial axes, the bottom has %d", name, name, axes)
			}
			if h == nil || w == nil {
				return nil, fmt.Errorf("give both %s_h and %s_w", name, name)
			}
			return []int{int(*h), int(*w)}, nil
		}
		return perAxis(list, axes, def, name)
	}
	if g.kernel, err = hw(p.KernelH, p.KernelW, p.GetKernelSize(), -1, "kernel"); err != nil {
		return nil, err
	}
	if g.stride, err = hw(p.StrideH, p.StrideW, p.GetStride(), 1, "stride"); err != nil {
		return nil, err
	}
	if g.pad, err = hw(p.PadH, p.PadW, p.GetPad(), 0, "pad"); err != nil {
		return nil, err
	}
	if g.dilation, err = perAxis(p.GetDilation(), axes, 1, "dilation"); err != nil {
		return nil, err
	}
	for i := range g.kernel {
		if g.kernel[i] < 1 || g.stride[i] < 1 || g.dilation[i] < 1 {
			return nil, fmt.Errorf("kernel %v, stride %v and dilation %v must be positive", g.kernel, g.stride, g.dilation)
		}
	}
	return g, nil
}

// perAxis expands a repeated field with one value for all axes or one per
// axis; def < 0 means the field is required.
func perAxis(list []uint32, axes, def int, name string) ([]int, error) {
	out := make([]int, axes)
	switch len(list) {
	case 0:
		if def < 0 {
			return nil, fmt.Errorf("missing %s", name)
		}
		for i := range out {
			out[i] = def
		}
	case 1:
		for i := range out {
			out[i] = int(list[0])
		}
	case axes:
		for i := range out {
			out[i] = int(list[i])
		}
	default:
		return nil, fmt.Errorf("%s has %d values for %d spatial axes", name, len(list), axes)
	}
	return out, nil
}

// canonicalAxis maps a negative axis to its index from the front.
func canonicalAxis(axis, rank int) (int, error) {
	if axis < -rank || axis >= rank {
		return 0, fmt.Errorf("axis %d is out of range for %d axes", axis, rank)
	}
	if axis < 0 {
		axis += rank
	}
	return axis, nil
}

func prod(s []int) int64 {
	n := int64(1)
	for _, d := range s {
		n *= int64(d)
	}
	return n
}

func init() {
	conv := &Rule{
		// Caffe's conv_layer.cpp: out = (in + 2·pad − (dilation·(k−1) + 1)) / stride + 1,
		// rounded down. Depthwise fork types are convolutions with group = channels.
		Types: []string{"Convolution", "DepthwiseConvolution", "ConvolutionDepthwise"},
		Tops: func(c *Context) ([][]int, error) {
			g, err := convParams(c)
			if err != nil {
				return nil, err
			}
			out := make([][]int, len(c.Layer.GetTop()))
			for i := range out {
				if i < len(c.Bottoms) && !equalShape(c.Bottoms[i], c.Bottoms[0]) {
					return nil, fmt.Errorf("bottom %d has shape %v, bottom 0 %v; all bottoms need one shape", i, c.Bottoms[i], c.Bottoms[0])
				}
				s := append([]int(nil), c.Bottoms[0][:g.axis]...)
				s = append(s, g.outputs)
				for a := range g.kernel {
					in := c.Bottoms[0][g.axis+1+a]
					ext := g.dilation[a]*(g.kernel[a]-1) + 1
					o := (in+2*g.pad[a]-ext)/g.stride[a] + 1
					if in+2*g.pad[a] < ext {
						return nil, fmt.Errorf("kernel extent %d is larger than the padded input %d on spatial axis %d", ext, in+2*g.pad[a], a)
					}
					s = append(s, o)
				}
				out[i] = s
			}
			return out, nil
		},
		Blobs: func(c *Context) ([]ParamBlob, error) {
			g, err := convParams(c)
			if err != nil {
				return nil, err
			}
			w := append([]int{g.outputs, g.channels / g.group}, g.kernel...)
			return withBias(w, g.outputs, c.Layer.GetConvolutionParam().GetBiasTerm()), nil
		},
		Cost: func(c *Context, tops [][]int) (int64, int64) {
			g, err := convParams(c)
			if err != nil {
				return 0, 0
			}
			per := int64(g.channels/g.group) * prod(g.kernel)
			var macs int64
			for _, t := range tops {
				macs += prod(t) * per
			}
			return macs, 0
		},
		Window: convWindow(false),
	}
	register(conv)

	register(&Rule{
		// Caffe's deconv_layer.cpp: out = stride·(in − 1) + dilation·(k − 1) + 1 − 2·pad.
		// The weights are stored input channels × (num_output / group) × kernel.
		Types: []string{"Deconvolution"},
		Tops: func(c *Context) ([][]int, error) {
			g, err := convParams(c)
			if err != nil {
				return nil, err
			}
			out := make([][]int, len(c.Layer.GetTop()))
			for i := range out {
				s := append([]int(nil), c.Bottoms[0][:g.axis]...)
				s = append(s, g.outputs)
				for a := range g.kernel {
					in := c.Bottoms[0][g.axis+1+a]
					o := g.stride[a]*(in-1) + g.dilation[a]*(g.kernel[a]-1) + 1 - 2*g.pad[a]
					if o < 1 {
						return nil, fmt.Errorf("output size %d on spatial axis %d is not positive", o, a)
					}
					s = append(s, o)
				}
				out[i] = s
			}
			return out, nil
		},
		Blobs: func(c *Context) ([]ParamBlob, error) {
			g, err := convParams(c)
			if err != nil {
				return nil, err
			}
			w := append([]int{g.channels, g.outputs / g.group}, g.kernel...)
			return withBias(w, g.outputs, c.Layer.GetConvolutionParam().GetBiasTerm()), nil
		},
		Cost: func(c *Context, tops [][]int) (int64, int64) {
			g, err := convParams(c)
			if err != nil {
				return 0, 0
			}
			// Every input element is multiplied by a (num_output/group) × kernel filter.
			per := int64(g.outputs/g.group) * prod(g.kernel)
			return prod(c.Bottoms[0]) * per * int64(len(tops)), 0
		},
		Window: convWindow(true),
	})
}

func convWindow(transposed bool) func(c *Context) *Window {
	return func(c *Context) *Window {
		g, err := convParams(c)
		if err != nil || g.axis != 1 {
			return nil
		}
		return &Window{Kernel: g.kernel, Stride: g.stride, Pad: g.pad, Dilation: g.dilation, Transposed: transposed}
	}
}

// withBias returns the weight blob and, when bias is set, a bias of n.
func withBias(weights []int, n int, bias bool) []ParamBlob {
	out := []ParamBlob{{Shape: weights}}
	if bias {
		out = append(out, ParamBlob{Shape: []int{n}})
	}
	return out
}

func equalShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
