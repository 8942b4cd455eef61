package forward

import (
	"fmt"
	"math"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/graph"
)

// copyKernel copies its bottom into each top: Split, Flatten, Reshape,
// which change only the shape (C order is kept).
type copyKernel struct{}

func (copyKernel) forward(bottoms, tops []*Tensor) error {
	for _, t := range tops {
		if len(t.Data) != len(bottoms[0].Data) {
			return fmt.Errorf("top of %d values from a bottom of %d", len(t.Data), len(bottoms[0].Data))
		}
		copy(t.Data, bottoms[0].Data)
	}
	return nil
}

// axisKernel splits shapes around an axis: outer × axis × inner.
type axisKernel struct {
	axis int
}

func canonical(axis, rank int) int {
	if axis < 0 {
		return axis + rank
	}
	return axis
}

// concatKernel follows Caffe's concat_layer.cpp.
type concatKernel struct{ axisKernel }

func (k concatKernel) forward(bottoms, tops []*Tensor) error {
	out := tops[0]
	outer := product(out.Shape[:k.axis])
	inner := product(out.Shape[k.axis+1:])
	topAxis := out.Shape[k.axis]
	off := 0
	for _, b := range bottoms {
		n := b.Shape[k.axis] * inner
		for o := range outer {
			copy(out.Data[(o*topAxis)*inner+off:], b.Data[o*n:(o+1)*n])
		}
		off += n
	}
	return nil
}

// sliceKernel follows Caffe's slice_layer.cpp.
type sliceKernel struct{ axisKernel }

func (k sliceKernel) forward(bottoms, tops []*Tensor) error {
	in := bottoms[0]
	outer := product(in.Shape[:k.axis])
	inner := product(in.Shape[k.axis+1:])
	axisLen := in.Shape[k.axis]
	off := 0
	for _, t := range tops {
		n := t.Shape[k.axis] * inner
		for o := range outer {
			copy(t.Data[o*n:(o+1)*n], in.Data[o*axisLen*inner+off:])
		}
		off += n
	}
	return nil
}

// softmaxKernel follows Caffe's softmax_layer.cpp: along `axis`, subtract
// the maximum, exponentiate, divide by the sum.
type softmaxKernel struct{ axisKernel }

func (k softmaxKernel) forward(bottoms, tops []*Tensor) error {
	in, out := bottoms[0], tops[0]
	outer := product(in.Shape[:k.axis])
	inner := product(in.Shape[k.axis+1:])
	n := in.Shape[k.axis]
	for o := range outer {
		base := o * n * inner
		for i := range inner {
			mx := float32(math.Inf(-1))
			for c := range n {
				mx = max(mx, in.Data[base+c*inner+i])
			}
			var sum float32
			for c := range n {
				e := float32(math.Exp(float64(in.Data[base+c*inner+i] - mx)))
				out.Data[base+c*inner+i] = e
				sum += e
			}
			for c := range n {
				out.Data[base+c*inner+i] /= sum
			}
		}
	}
	return nil
}

// eltwiseKernel follows Caffe's eltwise_layer.cpp: SUM with optional
// coefficients, PROD, MAX.
type eltwiseKernel struct {
	op    caffepb.EltwiseParameter_EltwiseOp
	coeff []float32
}

func (k eltwiseKernel) forward(bottoms, tops []*Tensor) error {
	out := tops[0].Data
	for _, b := range bottoms {
		if len(b.Data) != len(out) {
			return fmt.Errorf("bottoms of %d and %d values", len(b.Data), len(out))
		}
	}
	switch k.op {
	case caffepb.EltwiseParameter_PROD:
		copy(out, bottoms[0].Data)
		for _, b := range bottoms[1:] {
			for i, v := range b.Data {
				out[i] *= v
			}
		}
	case caffepb.EltwiseParameter_MAX:
		copy(out, bottoms[0].Data)
		for _, b := range bottoms[1:] {
			for i, v := range b.Data {
				out[i] = max(out[i], v)
			}
		}
	default:
		clear(out)
		for j, b := range bottoms {
			c := float32(1)
			if k.coeff != nil {
				c = k.coeff[j]
			}
			for i, v := range b.Data {
				out[i] += c * v
			}
		}
	}
	return nil
}

func init() {
	registerKernel(func(l *graph.Layer, c *compileContext) (kernel, error) { return copyKernel{}, nil },
		"Split", "Flatten", "Reshape")
	registerKernel(func(l *graph.Layer, c *compileContext) (kernel, error) {
		p := l.Param.GetConcatParam()
		axis := int(p.GetAxis())
		if p != nil && p.ConcatDim != nil {
			axis = int(p.GetConcatDim())
		}
		return concatKernel{axisKernel{canonical(axis, len(l.Tops[0].Shape))}}, nil
	}, "Concat")
	registerKernel(func(l *graph.Layer, c *compileContext) (kernel, error) {
		p := l.Param.GetSliceParam()
		axis := int(p.GetAxis())
		if p != nil && p.SliceDim != nil {
			axis = int(p.GetSliceDim())
		}
		return sliceKernel{axisKernel{canonical(axis, len(l.Bottoms[0].Shape))}}, nil
	}, "Slice")
	registerKernel(func(l *graph.Layer, c *compileContext) (kernel, error) {
		axis := canonical(int(l.Param.GetSoftmaxParam().GetAxis()), len(l.Bottoms[0].Shape))
		return softmaxKernel{axisKernel{axis}}, nil
	}, "Softmax")
	registerKernel(func(l *graph.Layer, c *compileContext) (kernel, error) {
		p := l.Param.GetEltwiseParam()
		k := eltwiseKernel{op: p.GetOperation()}
		if len(p.GetCoeff()) > 0 {
			if len(p.GetCoeff()) != len(l.Bottoms) || k.op != caffepb.EltwiseParameter_SUM {
				return nil, fmt.Errorf("eltwise coeff needs SUM and one value per bottom, got %d for %d bottoms", len(p.GetCoeff()), len(l.Bottoms))
			}
			k.coeff = p.GetCoeff()
		}
		return k, nil
	}, "Eltwise")
}
