package forward

import (
	"fmt"
	"math"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/graph"
)

// The BN layer of three forks, distinguished by the number of stored blobs
// as the graph rule does:
//   - 4 blobs, PSPNet (hszhao/PSPNet bn_layer.cpp): slope, bias, moving
//     mean and moving variance. In the TEST phase it computes
//     y = (x − mean)·(var + eps)^−½·slope + bias per channel.
//   - 2 blobs, SegNet (alexgkendall/caffe-segnet bn_layer.cpp) and ENet:
//     scale and shift. bn_mode INFERENCE computes y = x·scale + shift (the
//     released inference nets fold the statistics into those blobs).
//     bn_mode LEARN, the default, normalizes with the statistics of the
//     batch itself in every phase, as the fork does: per channel over
//     num, height and width, var = E(x²) − E(x)², and
//     y = (x − mean)/√(var + 1e−9)·scale + shift.

func buildBN(l *graph.Layer, c *compileContext) (kernel, error) {
	p := l.Param.GetBnParam()
	if p == nil {
		p = l.Param.GetBnParamPspnet()
	}
	in := l.Bottoms[0].Shape
	if len(in) < 2 || len(in) > 4 {
		return nil, fmt.Errorf("BN needs a bottom with 2 to 4 axes (num, channels, height, width), got %v", in)
	}
	channels := in[1]
	blobs := len(l.Param.GetBlobs())
	if blobs != 2 && blobs != 4 {
		return nil, fmt.Errorf("BN stores %d blobs; PSPNet's form has 4 (slope, bias, mean, variance) and SegNet's or ENet's 2 (scale, shift); give the weights", blobs)
	}
	values := make([][]float32, blobs)
	for i := range values {
		var err error
		if values[i], err = c.weights(l, i); err != nil {
			return nil, err
		}
		if len(values[i]) != channels {
			return nil, fmt.Errorf("BN blob %d has %d values for %d channels", i, len(values[i]), channels)
		}
	}
	if blobs == 4 {
		// NOTE: PSPNet's TRAIN phase with frozen false uses batch
		// statistics. The forward pass always uses the stored ones, as the
		// TEST phase does.
		eps := p.GetEps()
		k := &pspnetBN{slope: values[0], bias: values[1], mean: values[2], invStd: make([]float32, channels)}
		for i, v := range values[3] {
			k.invStd[i] = float32(math.Pow(float64(v+eps), -0.5))
		}
		return k, nil
	}
	if p.GetBnMode() == caffepb.BNParameter_INFERENCE {
		return &channelAffine{axis: 1, hasScale: true, scale: values[0], shift: values[1]}, nil
	}
	return &segnetBatchBN{scale: values[0], shift: values[1]}, nil
}

// pspnetBN applies PSPNet's test-time BN with float steps in the fork's
// order: subtract the mean, multiply by the inverse deviation, by the
// slope, then add the bias.
type pspnetBN struct {
	slope, bias, mean, invStd []float32
}

func (k *pspnetBN) forward(bottoms, tops []*Tensor) error {
	in, out := bottoms[0], tops[0]
	channels := len(k.mean)
	num := legacyDim(in.Shape, 0)
	plane := len(in.Data) / max(num*channels, 1)
	if num*channels*plane != len(in.Data) {
		return fmt.Errorf("bottom %v does not have %d channels", in.Shape, channels)
	}
	for n := range num {
		for c := range channels {
			base := (n*channels + c) * plane
			for i := base; i < base+plane; i++ {
				v := in.Data[i] - k.mean[c]
				v *= k.invStd[c]
				v *= k.slope[c]
				out.Data[i] = v + k.bias[c]
			}
		}
	}
	return nil
}

// segnetBatchBN is SegNet's bn_mode LEARN: batch statistics per channel.
type segnetBatchBN struct {
	scale, shift []float32
}

func (k *segnetBatchBN) forward(bottoms, tops []*Tensor) error {
	in, out := bottoms[0], tops[0]
	channels := len(k.scale)
	num := legacyDim(in.Shape, 0)
	plane := len(in.Data) / max(num*channels, 1)
	if num*channels*plane != len(in.Data) {
		return fmt.Errorf("bottom %v does not have %d channels", in.Shape, channels)
	}
	count := float64(num * plane)
	for c := range channels {
		var sum, sumSq float64
		for n := range num {
			base := (n*channels + c) * plane
			for _, v := range in.Data[base : base+plane] {
				sum += float64(v)
				sumSq += float64(v) * float64(v)
			}
		}
		mean := sum / count
		variance := sumSq/count - mean*mean
		std := float32(math.Sqrt(float64(float32(variance) + 1e-9)))
		m := float32(mean)
		for n := range num {
			base := (n*channels + c) * plane
			for i := base; i < base+plane; i++ {
				out.Data[i] = (in.Data[i]-m)/std*k.scale[c] + k.shift[c]
			}
		}
	}
	return nil
}

func init() {
	registerKernel(buildBN, "BN")
}
