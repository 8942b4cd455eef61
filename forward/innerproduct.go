package forward

import (
	"github.com/tlsurgery/tlsurgery/graph"
)

// ipKernel follows Caffe's inner_product_layer.cpp: the bottom is an
// M×K matrix (M the product of the axes before `axis`), the weights N×K
// (K×N with transpose), top = bottom · Wᵀ + bias.
type ipKernel struct {
	m, k, n       int
	transpose     bool
	weights, bias []float32
}

func init() {
	registerKernel(func(l *graph.Layer, c *compileContext) (kernel, error) {
		p := l.Param.GetInnerProductParam()
		in := l.Bottoms[0].Shape
		axis := int(p.GetAxis())
		if axis < 0 {
			axis += len(in)
		}
		k := &ipKernel{m: product(in[:axis]), k: product(in[axis:]), n: int(p.GetNumOutput()), transpose: p.GetTranspose()}
		var err error
		if k.weights, err = c.weights(l, 0); err != nil {
			return nil, err
		}
		if p.GetBiasTerm() {
			if k.bias, err = c.weights(l, 1); err != nil {
				return nil, err
			}
		}
		return k, nil
	}, "InnerProduct")
}

func (k *ipKernel) forward(bottoms, tops []*Tensor) error {
	gemm(false, !k.transpose, k.m, k.n, k.k, bottoms[0].Data, k.weights, tops[0].Data)
	if k.bias != nil {
		for i := range k.m {
			row := tops[0].Data[i*k.n : (i+1)*k.n]
			for j, b := range k.bias {
				row[j] += b
			}
		}
	}
	return nil
}
