package graph

import (
	"fmt"
	"math"
)

func init() {
	register(&Rule{
		// Caffe's inner_product_layer.cpp: the axes from `axis` on
		// (default 1) flatten into K inputs; the top is the leading axes
		// plus num_output. Weights are N × K, or K × N with transpose.
		Types: []string{"InnerProduct"},
		Tops: func(c *Context) ([][]int, error) {
			axis, _, err := ipParams(c)
			if err != nil {
				return nil, err
			}
			out := append(append([]int(nil), c.Bottoms[0][:axis]...), int(c.Layer.GetInnerProductParam().GetNumOutput()))
			return [][]int{out}, nil
		},
		Blobs: func(c *Context) ([]ParamBlob, error) {
			_, k, err := ipParams(c)
			if err != nil {
				return nil, err
			}
			p := c.Layer.GetInnerProductParam()
			n := int(p.GetNumOutput())
			w := []int{n, k}
			if p.GetTranspose() {
				w = []int{k, n}
			}
			return withBias(w, n, p.GetBiasTerm()), nil
		},
		Cost: func(c *Context, tops [][]int) (int64, int64) {
			axis, k, err := ipParams(c)
			if err != nil {
				return 0, 0
			}
			m := prod(c.Bottoms[0][:axis])
			return m * int64(k) * int64(c.Layer.GetInnerProductParam().GetNumOutput()), 0
		},
	})
}

// ipParams returns an InnerProduct's canonical axis and input count K.
func ipParams(c *Context) (int, int, error) {
	p := c.Layer.GetInnerProductParam()
	if p == nil || p.GetNumOutput() == 0 {
		return 0, 0, fmt.Errorf("inner_product_param needs a positive num_output")
	}
	axis, err := canonicalAxis(int(p.GetAxis()), len(c.Bottoms[0]))
	if err != nil {
		return 0, 0, err
	}
	k := prod(c.Bottoms[0][axis:])
	if k > math.MaxInt32 {
		return 0, 0, fmt.Errorf("%d inputs per output exceed Caffe's limit", k)
	}
	return axis, int(k), nil
}
