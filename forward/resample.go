package forward

import (
	"cmp"
	"fmt"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/graph"
)

// interpKernel follows the Interp layer of PSPNet and DeepLab v2
// (interp_layer.cpp with caffe_cpu_interp2 in util/interp.cpp). The input
// is first cropped by −pad_beg at the top and left and by −pad_end at the
// bottom and right. Bilinear interpolation then maps the corners of the
// cropped input onto the corners of the output (align-corners), with the
// source positions and weights computed in float. Equal sizes copy.
type interpKernel struct {
	padBeg, padEnd int
}

func buildInterp(l *graph.Layer, c *compileContext) (kernel, error) {
	p := cmp.Or(l.Param.GetInterpParam(), &caffepb.InterpParameter{})
	k := &interpKernel{padBeg: int(p.GetPadBeg()), padEnd: int(p.GetPadEnd())}
	if k.padBeg > 0 || k.padEnd > 0 {
		return nil, fmt.Errorf("interp_param pad_beg %d and pad_end %d must be 0 or negative (the fork crops only)", k.padBeg, k.padEnd)
	}
	if len(l.Bottoms[0].Shape) != 4 {
		return nil, fmt.Errorf("Interp needs a bottom with 4 axes (num, channels, height, width), got %v", l.Bottoms[0].Shape)
	}
	return k, nil
}

func (k *interpKernel) forward(bottoms, tops []*Tensor) error {
	in, out := bottoms[0], tops[0]
	if len(in.Shape) != 4 || len(out.Shape) != 4 || in.Shape[0] != out.Shape[0] || in.Shape[1] != out.Shape[1] {
		return fmt.Errorf("bottom %v and top %v need 4 axes and the same num and channels", in.Shape, out.Shape)
	}
	fullH, fullW := in.Shape[2], in.Shape[3]
	h1, w1 := fullH+k.padBeg+k.padEnd, fullW+k.padBeg+k.padEnd
	h2, w2 := out.Shape[2], out.Shape[3]
	if h1 < 1 || w1 < 1 || h2 < 1 || w2 < 1 {
		return fmt.Errorf("the cropped input %d×%d and the output %d×%d must not be empty", h1, w1, h2, w2)
	}
	y0, x0 := -k.padBeg, -k.padBeg
	planes := in.Shape[0] * in.Shape[1]
	for p := range planes {
		src := in.Data[p*fullH*fullW : (p+1)*fullH*fullW]
		dst := out.Data[p*h2*w2 : (p+1)*h2*w2]
		if h1 == h2 && w1 == w2 {
			for y := range h2 {
				copy(dst[y*w2:(y+1)*w2], src[(y0+y)*fullW+x0:])
			}
			continue
		}
		interpolatePlane(src, fullW, y0, x0, h1, w1, dst, h2, w2)
	}
	return nil
}

// interpolatePlane is caffe_cpu_interp2 for one plane: the h1×w1 window of
// src (row length stride) at (y0, x0) onto the h2×w2 dst.
func interpolatePlane(src []float32, stride, y0, x0, h1, w1 int, dst []float32, h2, w2 int) {
	var rh, rw float32
	if h2 > 1 {
		rh = float32(h1-1) / float32(h2-1)
	}
	if w2 > 1 {
		rw = float32(w1-1) / float32(w2-1)
	}
	for y := range h2 {
		fy := rh * float32(y)
		iy := int(fy)
		dy := 0
		if iy < h1-1 {
			dy = stride
		}
		ly1 := fy - float32(iy)
		ly0 := 1 - ly1
		for x := range w2 {
			fx := rw * float32(x)
			ix := int(fx)
			dx := 0
			if ix < w1-1 {
				dx = 1
			}
			lx1 := fx - float32(ix)
			lx0 := 1 - lx1
			at := (y0+iy)*stride + x0 + ix
			dst[y*w2+x] = ly0*(lx0*src[at]+lx1*src[at+dx]) + ly1*(lx0*src[at+dy]+lx1*src[at+dy+dx])
		}
	}
}

// unpoolKernel follows SegNet's upsample_layer.cpp
// (alexgkendall/caffe-segnet): the top starts at zero, and each bottom
// value is written at the position within its output plane that the mask
// (bottom 1, from a MAX pooling layer's second top) gives.
type unpoolKernel struct{}

func (unpoolKernel) forward(bottoms, tops []*Tensor) error {
	in, mask, out := bottoms[0], bottoms[1], tops[0]
	if len(in.Shape) != 4 || len(out.Shape) != 4 || len(mask.Data) != len(in.Data) {
		return fmt.Errorf("the data %v, mask %v and top %v need 4 axes and the mask the data's size", in.Shape, mask.Shape, out.Shape)
	}
	planes := in.Shape[0] * in.Shape[1]
	inPlane := in.Shape[2] * in.Shape[3]
	outPlane := out.Shape[2] * out.Shape[3]
	clear(out.Data)
	for p := range planes {
		dst := out.Data[p*outPlane : (p+1)*outPlane]
		for i, v := range in.Data[p*inPlane : (p+1)*inPlane] {
			m := mask.Data[p*inPlane+i]
			// SegNet aborts on an index past the plane. A negative one is
			// undefined there, so it is rejected too.
			if !(m > -1 && m < float32(outPlane)) {
				return fmt.Errorf("mask value %v at plane %d, position %d is outside the %d×%d output plane; check that the scale matches the pooling layer that made the mask", m, p, i, out.Shape[2], out.Shape[3])
			}
			dst[int(m)] = v
		}
	}
	return nil
}

// repeatKernel is Upsample with one bottom and a scale, as the Caffe forks
// for YOLOv3 define it: nearest-neighbour upsampling, where output pixel
// (y, x) copies input pixel (y/scale_h, x/scale_w).
// NOTE: BVLC and SegNet have no one-bottom Upsample. This follows the
// forks that add it, which have no single reference source.
type repeatKernel struct {
	scaleH, scaleW int
}

func (k *repeatKernel) forward(bottoms, tops []*Tensor) error {
	in, out := bottoms[0], tops[0]
	if len(in.Shape) != 4 || len(out.Shape) != 4 {
		return fmt.Errorf("bottom %v and top %v need 4 axes", in.Shape, out.Shape)
	}
	h, w := in.Shape[2], in.Shape[3]
	oh, ow := out.Shape[2], out.Shape[3]
	if (oh-1)/k.scaleH >= h || (ow-1)/k.scaleW >= w {
		return fmt.Errorf("top %v is larger than scale %d×%d times bottom %v", out.Shape, k.scaleH, k.scaleW, in.Shape)
	}
	planes := in.Shape[0] * in.Shape[1]
	for p := range planes {
		src := in.Data[p*h*w : (p+1)*h*w]
		dst := out.Data[p*oh*ow : (p+1)*oh*ow]
		for y := range oh {
			row := src[(y/k.scaleH)*w : (y/k.scaleH+1)*w]
			for x := range ow {
				dst[y*ow+x] = row[x/k.scaleW]
			}
		}
	}
	return nil
}

func buildUpsample(l *graph.Layer, c *compileContext) (kernel, error) {
	if len(l.Bottoms) == 2 {
		return unpoolKernel{}, nil
	}
	p := cmp.Or(l.Param.GetUpsampleParam(), &caffepb.UpsampleParameter{})
	if p.UpsampleH != nil || p.UpsampleW != nil {
		return nil, fmt.Errorf("Upsample with one bottom takes scale (or scale_h and scale_w), not upsample_h and upsample_w")
	}
	k := &repeatKernel{scaleH: int(p.GetScale()), scaleW: int(p.GetScale())}
	if p.ScaleH != nil && p.ScaleW != nil {
		k.scaleH, k.scaleW = int(p.GetScaleH()), int(p.GetScaleW())
	}
	if k.scaleH < 1 || k.scaleW < 1 {
		return nil, fmt.Errorf("upsample_param scale %d×%d must be positive", k.scaleH, k.scaleW)
	}
	return k, nil
}

func init() {
	registerKernel(buildInterp, "Interp")
	registerKernel(buildUpsample, "Upsample")
}
