package graph

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
)

// Layers whose tops have the shape of their first bottom. The costs count
// one operation per element for cheap element-wise functions and state
// other counts where they differ.
func init() {
	sameShape := func(c *Context) ([][]int, error) {
		out := make([][]int, len(c.Layer.GetTop()))
		for i := range out {
			out[i] = slices.Clone(c.Bottoms[0])
		}
		return out, nil
	}
	perElement := func(ops int64) func(c *Context, tops [][]int) (int64, int64) {
		return func(c *Context, tops [][]int) (int64, int64) {
			return 0, ops * prod(c.Bottoms[0])
		}
	}

	register(&Rule{
		// Caffe's neuron layers (relu_layer.cpp and its siblings): one value
		// in, one out; Dropout is the identity at test time and costs nothing.
		Types: []string{"ReLU", "ELU", "Sigmoid", "TanH", "AbsVal", "BNLL", "Exp", "Log", "Threshold", "Clip", "Swish", "ReLU6", "Power"},
		Tops:  sameShape,
		Cost:  perElement(1),
	})
	register(&Rule{Types: []string{"Dropout"}, Tops: sameShape})

	register(&Rule{
		// Caffe's prelu_layer.cpp: one slope per channel (axis 1), or, with
		// channel_shared, one scalar (a blob of no axes).
		Types: []string{"PReLU"},
		Tops:  sameShape,
		Blobs: func(c *Context) ([]ParamBlob, error) {
			if c.Layer.GetPreluParam().GetChannelShared() {
				return []ParamBlob{{Shape: []int{}}}, nil
			}
			return []ParamBlob{{Shape: []int{channels(c.Bottoms[0])}}}, nil
		},
		Cost: perElement(1),
	})

	register(&Rule{
		// Caffe's lrn_layer.cpp: ACROSS_CHANNELS sums local_size squares per
		// element, WITHIN_CHANNEL local_size² (counted as that many
		// multiply-adds, plus a power and a division).
		Types: []string{"LRN"},
		Tops:  sameShape,
		Cost: func(c *Context, tops [][]int) (int64, int64) {
			n := int64(c.Layer.GetLrnParam().GetLocalSize())
			if c.Layer.GetLrnParam().GetNormRegion() != 0 {
				n *= n
			}
			return 0, (n + 2) * prod(c.Bottoms[0])
		},
	})
	register(&Rule{
		// Caffe's mvn_layer.cpp: mean, then optionally variance, per
		// channel or across channels (about four operations per element).
		Types: []string{"MVN"},
		Tops:  sameShape,
		Cost:  perElement(4),
	})

	register(&Rule{
		// Caffe's batch_norm_layer.cpp stores mean (C), variance (C) and the
		// moving-average factor (1): statistics, not learned. OpenCV's
		// scale_bias adds a learned scale and shift.
		Types: []string{"BatchNorm"},
		Tops:  sameShape,
		Blobs: func(c *Context) ([]ParamBlob, error) {
			ch := channels(c.Bottoms[0])
			out := []ParamBlob{{Shape: []int{ch}, Statistic: true}, {Shape: []int{ch}, Statistic: true}, {Shape: []int{1}, Statistic: true}}
			if c.Layer.GetBatchNormParam().GetScaleBias() {
				out = append(out, ParamBlob{Shape: []int{ch}}, ParamBlob{Shape: []int{ch}})
			}
			return out, nil
		},
		Cost: perElement(2),
	})

	register(&Rule{
		// The BN layers of the PSPNet, SegNet and ENet forks store scale
		// and shift as 1×C×1×1; PSPNet's also stores mean and variance
		// (statistics) the same way. With weights, their blob count
		// decides; without, PSPNet-only fields (slope_filler, bias_filler,
		// momentum, eps, frozen) select PSPNet's four blobs.
		Types: []string{"BN"},
		Tops:  sameShape,
		Blobs: func(c *Context) ([]ParamBlob, error) {
			s := []int{1, channels(c.Bottoms[0]), 1, 1}
			n := 2
			p := cmp.Or(c.Layer.GetBnParam(), &caffepb.BNParameter{})
			if p.SlopeFiller != nil || p.BiasFiller != nil || p.Momentum != nil || p.Eps != nil || p.Frozen != nil || c.Layer.GetBnParamPspnet() != nil {
				n = 4
			}
			if len(c.Weights) > 0 {
				n = len(c.Weights)
			}
			out := make([]ParamBlob, n)
			for i := range out {
				out[i] = ParamBlob{Shape: slices.Clone(s), Statistic: i >= 2}
			}
			return out, nil
		},
		Cost: perElement(2),
	})

	register(&Rule{
		// Caffe's scale_layer.cpp: with one bottom, the scale is a learned
		// blob of bottom[axis : axis+num_axes] (axis 1, num_axes 1 by
		// default; −1 means all remaining axes); with two, the second
		// bottom is the scale. bias_term adds a learned bias of that shape.
		Types: []string{"Scale"},
		Tops:  sameShape,
		Blobs: func(c *Context) ([]ParamBlob, error) {
			p := c.Layer.GetScaleParam()
			shape, err := scaleShape(c, int(p.GetAxis()), int(p.GetNumAxes()))
			if err != nil {
				return nil, err
			}
			var out []ParamBlob
			if len(c.Bottoms) == 1 {
				out = append(out, ParamBlob{Shape: shape})
			}
			if p.GetBiasTerm() {
				out = append(out, ParamBlob{Shape: slices.Clone(shape)})
			}
			return out, nil
		},
		Cost: func(c *Context, tops [][]int) (int64, int64) {
			n := int64(1)
			if c.Layer.GetScaleParam().GetBiasTerm() {
				n = 2
			}
			return 0, n * prod(c.Bottoms[0])
		},
	})
	register(&Rule{
		// Caffe's bias_layer.cpp: like Scale, an added learned blob or a
		// second bottom.
		Types: []string{"Bias"},
		Tops:  sameShape,
		Blobs: func(c *Context) ([]ParamBlob, error) {
			if len(c.Bottoms) > 1 {
				return nil, nil
			}
			p := c.Layer.GetBiasParam()
			shape, err := scaleShape(c, int(p.GetAxis()), int(p.GetNumAxes()))
			if err != nil {
				return nil, err
			}
			return []ParamBlob{{Shape: shape}}, nil
		},
		Cost: perElement(1),
	})
}

// channels returns axis 1 of a shape, or 1 for shapes with fewer axes.
func channels(s []int) int {
	if len(s) < 2 {
		return 1
	}
	return s[1]
}

// scaleShape returns the shape of a Scale or Bias operand: the operand
// bottom's shape when there are two bottoms, else bottom[axis :
// axis+numAxes] (numAxes −1: to the end).
func scaleShape(c *Context, axis, numAxes int) ([]int, error) {
	in := c.Bottoms[0]
	if len(c.Bottoms) > 1 {
		return slices.Clone(c.Bottoms[1]), nil
	}
	a, err := canonicalAxis(axis, len(in))
	if err != nil {
		return nil, err
	}
	end := len(in)
	if numAxes >= 0 {
		end = a + numAxes
	}
	if numAxes < -1 || end > len(in) {
		return nil, fmt.Errorf("num_axes %d from axis %d exceeds the %d axes of the bottom", numAxes, a, len(in))
	}
	return slices.Clone(in[a:end]), nil
}
