package forward

import (
	"fmt"
	"math"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/graph"
)

// poolKernel follows Caffe's pooling_layer.cpp Forward_cpu. Windows start
// at −pad; MAX takes the maximum over the part inside the image; AVE
// divides the sum over that part by the window's size clipped to the
// padded image (so padding counts, but not the extra end of a window that
// the round-up leaves hanging past it); STOCHASTIC at test time is the
// activation-weighted average Σx²/Σx.
type poolKernel struct {
	method         caffepb.PoolingParameter_PoolMethod
	kh, kw, sh, sw int
	ph, pw         int
}

func init() {
	registerKernel(func(l *graph.Layer, c *compileContext) (kernel, error) {
		p := l.Param.GetPoolingParam()
		in, out := l.Bottoms[0].Shape, l.Tops[0].Shape
		k := &poolKernel{method: p.GetPool()}
		switch {
		case p.GetGlobalPooling():
			k.kh, k.kw, k.sh, k.sw = in[2], in[3], 1, 1
		default:
			pair := func(h, w, v *uint32, def int) (int, int) {
				if h != nil || w != nil {
					return int(*h), int(*w)
				}
				if v != nil {
					return int(*v), int(*v)
				}
				return def, def
			}
			k.kh, k.kw = pair(p.KernelH, p.KernelW, p.KernelSize, 0)
			k.sh, k.sw = pair(p.StrideH, p.StrideW, p.Stride, 1)
			k.ph, k.pw = pair(p.PadH, p.PadW, p.Pad, 0)
		}
		if len(out) != 4 {
			return nil, fmt.Errorf("pooling output %v is not 4-D", out)
		}
		return k, nil
	}, "Pooling")
}

func (k *poolKernel) forward(bottoms, tops []*Tensor) error {
	in, out := bottoms[0], tops[0]
	h, w := in.Shape[2], in.Shape[3]
	oh, ow := out.Shape[2], out.Shape[3]
	planes := in.Shape[0] * in.Shape[1]
	var mask []float32
	if len(tops) > 1 {
		mask = tops[1].Data
	}
	for p := range planes {
		src := in.Data[p*h*w : (p+1)*h*w]
		dst := out.Data[p*oh*ow : (p+1)*oh*ow]
		for y := range oh {
			for x := range ow {
				hs, ws := y*k.sh-k.ph, x*k.sw-k.pw
				he, we := min(hs+k.kh, h+k.ph), min(ws+k.kw, w+k.pw)
				size := float32((he - hs) * (we - ws))
				hs, ws = max(hs, 0), max(ws, 0)
				he, we = min(he, h), min(we, w)
				i := y*ow + x
				switch k.method {
				case caffepb.PoolingParameter_MAX:
					best, at := float32(math.Inf(-1)), -1
					for yy := hs; yy < he; yy++ {
						for xx := ws; xx < we; xx++ {
							if v := src[yy*w+xx]; v > best {
								best, at = v, yy*w+xx
							}
						}
					}
					dst[i] = best
					if mask != nil {
						mask[p*oh*ow+i] = float32(at)
					}
				case caffepb.PoolingParameter_AVE:
					var sum float32
					for yy := hs; yy < he; yy++ {
						for xx := ws; xx < we; xx++ {
							sum += src[yy*w+xx]
						}
					}
					dst[i] = sum / size
				case caffepb.PoolingParameter_STOCHASTIC:
					var sum, sq float32
					for yy := hs; yy < he; yy++ {
						for xx := ws; xx < we; xx++ {
							v := src[yy*w+xx]
							sum += v
							sq += v * v
						}
					}
					if sum != 0 {
						dst[i] = sq / sum
					}
				}
			}
		}
	}
	return nil
}
