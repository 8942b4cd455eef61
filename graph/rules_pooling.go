package graph

import (
	"fmt"
	"math"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
)

// poolGeometry reads a pooling window as Caffe's pooling_layer.cpp does.
type poolGeometry struct {
	kernel, stride, pad [2]int
	global              bool
	ceil                bool
}

func poolParams(c *Context) (*poolGeometry, error) {
	p := c.Layer.GetPoolingParam()
	if p == nil {
		return nil, fmt.Errorf("missing pooling_param")
	}
	in := c.Bottoms[0]
	if len(in) != 4 {
		return nil, fmt.Errorf("pooling needs a 4-axis bottom, got %v", in)
	}
	g := &poolGeometry{global: p.GetGlobalPooling(), ceil: true}
	// BVLC's round_mode FLOOR and a fork's ceil_mode: false both ask for
	// rounding down; the default rounds up.
	if p.RoundMode != nil && p.GetRoundMode() == caffepb.PoolingParameter_FLOOR {
		g.ceil = false
	}
	if p.CeilMode != nil && !p.GetCeilMode() {
		g.ceil = false
	}
	pair := func(h, w *uint32, v *uint32, def int, name string) ([2]int, error) {
		switch {
		case h != nil || w != nil:
			if h == nil || w == nil {
				return [2]int{}, fmt.Errorf("give both %s_h and %s_w", name, name)
			}
			return [2]int{int(*h), int(*w)}, nil
		case v != nil:
			return [2]int{int(*v), int(*v)}, nil
		case def >= 0:
			return [2]int{def, def}, nil
		}
		return [2]int{}, fmt.Errorf("missing %s_size", name)
	}
	var err error
	if g.global {
		g.kernel = [2]int{in[2], in[3]}
		g.stride = [2]int{1, 1}
		if p.Pad != nil && p.GetPad() != 0 || p.GetPadH() != 0 || p.GetPadW() != 0 {
			return nil, fmt.Errorf("global pooling takes no padding")
		}
		return g, nil
	}
	if g.kernel, err = pair(p.KernelH, p.KernelW, p.KernelSize, -1, "kernel"); err != nil {
		return nil, err
	}
	if g.stride, err = pair(p.StrideH, p.StrideW, p.Stride, 1, "stride"); err != nil {
		return nil, err
	}
	if g.pad, err = pair(p.PadH, p.PadW, p.Pad, 0, "pad"); err != nil {
		return nil, err
	}
	for i := range 2 {
		if g.kernel[i] < 1 || g.stride[i] < 1 {
			return nil, fmt.Errorf("kernel %v and stride %v must be positive", g.kernel, g.stride)
		}
		if g.pad[i] >= g.kernel[i] {
			return nil, fmt.Errorf("pad %v must be smaller than the kernel %v", g.pad, g.kernel)
		}
	}
	return g, nil
}

// PooledSize is Caffe's pooling output size on one axis: (in + 2·pad − kernel) / stride + 1,
// rounded up by default (down with round_mode FLOOR), then, when there is
// padding, one less if the last window would start in the padding
// ((out − 1)·stride ≥ in + pad).
func PooledSize(in, k, s, pad int, ceil, padded bool) int {
	var out int
	if ceil {
		out = int(math.Ceil(float64(in+2*pad-k)/float64(s))) + 1
	} else {
		out = int(math.Floor(float64(in+2*pad-k)/float64(s))) + 1
	}
	if padded && (out-1)*s >= in+pad {
		out--
	}
	return out
}

func init() {
	register(&Rule{
		// Caffe's pooling_layer.cpp (Reshape): round up, then clip the last
		// window that starts in the padding; global_pooling gives 1×1.
		Types: []string{"Pooling"},
		Tops: func(c *Context) ([][]int, error) {
			g, err := poolParams(c)
			if err != nil {
				return nil, err
			}
			in := c.Bottoms[0]
			padded := g.pad[0] != 0 || g.pad[1] != 0
			h := PooledSize(in[2], g.kernel[0], g.stride[0], g.pad[0], g.ceil, padded)
			w := PooledSize(in[3], g.kernel[1], g.stride[1], g.pad[1], g.ceil, padded)
			if g.global {
				h, w = 1, 1
			}
			if h < 1 || w < 1 {
				return nil, fmt.Errorf("kernel %v is larger than the padded input %v", g.kernel, in[2:])
			}
			out := make([][]int, len(c.Layer.GetTop()))
			for i := range out {
				out[i] = []int{in[0], in[1], h, w} // a second top (MAX's mask) has the same shape
			}
			return out, nil
		},
		// Each output element reads one kernel window: one comparison or
		// addition per element of the window.
		Cost: func(c *Context, tops [][]int) (int64, int64) {
			g, err := poolParams(c)
			if err != nil || len(tops) == 0 {
				return 0, 0
			}
			return 0, prod(tops[0]) * int64(g.kernel[0]*g.kernel[1])
		},
		Window: func(c *Context) *Window {
			g, err := poolParams(c)
			if err != nil {
				return nil
			}
			return &Window{Kernel: g.kernel[:], Stride: g.stride[:], Pad: g.pad[:], Dilation: []int{1, 1}}
		},
	})
}
