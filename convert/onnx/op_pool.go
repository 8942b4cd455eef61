package onnx

import (
	"fmt"
	"math"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/convert/onnx/onnxpb"
	"github.com/tlsurgery/tlsurgery/graph"
)

func init() {
	register(mapPooling, "Pooling")
}

// poolWindow is a Pooling layer's window as Caffe's pooling_layer.cpp
// reads it (LayerSetUp and Reshape).
type poolWindow struct {
	kernel, stride, pad [2]int
	global              bool
	ceil                bool // round the output size up (Caffe's default)
}

func readPoolWindow(l *graph.Layer) (*poolWindow, error) {
	p := l.Param.GetPoolingParam()
	in := l.Bottoms[0].Shape
	if len(in) != 4 {
		return nil, unsupported(l, "pooling needs a 4-axis bottom, got %v", in)
	}
	w := &poolWindow{global: p.GetGlobalPooling(), ceil: true}
	// BVLC's round_mode FLOOR and a fork's ceil_mode: false round down.
	if p.RoundMode != nil && p.GetRoundMode() == caffepb.PoolingParameter_FLOOR {
		w.ceil = false
	}
	if p.CeilMode != nil && !p.GetCeilMode() {
		w.ceil = false
	}
	pair := func(h, wv, v *uint32, def int) [2]int {
		switch {
		case h != nil && wv != nil:
			return [2]int{int(*h), int(*wv)}
		case v != nil:
			return [2]int{int(*v), int(*v)}
		}
		return [2]int{def, def}
	}
	if w.global {
		w.kernel, w.stride = [2]int{in[2], in[3]}, [2]int{1, 1}
		return w, nil
	}
	w.kernel = pair(p.KernelH, p.KernelW, p.KernelSize, 0)
	w.stride = pair(p.StrideH, p.StrideW, p.Stride, 1)
	w.pad = pair(p.PadH, p.PadW, p.Pad, 0)
	for i := range 2 {
		if w.kernel[i] < 1 || w.stride[i] < 1 || w.pad[i] >= w.kernel[i] {
			return nil, unsupported(l, "kernel %v, stride %v and pad %v are invalid", w.kernel, w.stride, w.pad)
		}
	}
	return w, nil
}

// poolPlan is the ONNX form of a pooling window: end pads and ceil_mode.
type poolPlan struct {
	out      [2]int // Caffe's output size per axis
	endPad   [2]int // ONNX end padding per axis
	ceil     bool   // ONNX ceil_mode 1
	overhang bool   // on some axis the last window reaches past the padded input
}

// planPool chooses ONNX end pads and ceil_mode so that ONNX's output size,
// floor or ceil of (in + pad + endPad − k) / s + 1, equals Caffe's on both
// axes. Caffe's size is the floor or the ceil value with symmetric
// padding, because its clip removes a window only when the ceil value
// exceeds the floor value. ceil_mode (opset 10 and later) applies to both
// axes, so it is used only when every axis takes the ceil value. Otherwise
// an axis that needs the ceil value gets the extra end padding that makes
// the floor value equal to it.
func planPool(in [2]int, w *poolWindow, ceilMode bool) (poolPlan, error) {
	padded := w.pad[0] != 0 || w.pad[1] != 0
	var plan poolPlan
	var floorOut, ceilOut [2]int
	allCeil, anyDiffer := true, false
	for i := range 2 {
		k, s, pad := w.kernel[i], w.stride[i], w.pad[i]
		out := graph.PooledSize(in[i], k, s, pad, w.ceil, padded)
		if out < 1 {
			return plan, fmt.Errorf("kernel %d is larger than the padded input %d", k, in[i]+2*pad)
		}
		plan.out[i] = out
		plan.endPad[i] = pad
		plan.overhang = plan.overhang || (out-1)*s+k > in[i]+2*pad
		floorOut[i] = (in[i]+2*pad-k)/s + 1
		ceilOut[i] = int(math.Ceil(float64(in[i]+2*pad-k)/float64(s))) + 1
		allCeil = allCeil && out == ceilOut[i]
		anyDiffer = anyDiffer || out != floorOut[i]
	}
	if !anyDiffer {
		return plan, nil
	}
	if ceilMode && allCeil {
		plan.ceil = true
		return plan, nil
	}
	for i := range 2 {
		if plan.out[i] == floorOut[i] {
			continue
		}
		k, s, pad := w.kernel[i], w.stride[i], w.pad[i]
		plan.endPad[i] = (plan.out[i]-1)*s + k - in[i] - pad
		if plan.endPad[i] < 0 || (in[i]+pad+plan.endPad[i]-k)/s+1 != plan.out[i] {
			return plan, fmt.Errorf("no end padding gives Caffe's output size %d on axis %d", plan.out[i], 2+i)
		}
	}
	return plan, nil
}

// mapPooling maps Caffe's MAX and AVE pooling. ONNX MaxPool ignores
// padding, as Caffe's MAX does. For AVE, Caffe divides each sum by the
// window clipped to the padded input (in + 2·pad), not to the input:
//
//   - When no window reaches past the padded input, the divisor is always
//     the kernel size, which is ONNX's count_include_pad=1 with the
//     symmetric pads.
//   - When a window reaches past it and there is no padding, the divisor
//     is the number of input elements in the window, which is
//     count_include_pad=0.
//   - When a window reaches past it and there is padding, neither ONNX
//     setting matches: the input is zero-padded with an explicit Pad
//     node and then averaged with count_include_pad=0, so the divisor
//     counts the padded elements but not the ones beyond.
func mapPooling(c *converter, l *graph.Layer) error {
	w, err := readPoolWindow(l)
	if err != nil {
		return err
	}
	method := l.Param.GetPoolingParam().GetPool()
	var op string
	switch method {
	case caffepb.PoolingParameter_MAX:
		op = "MaxPool"
	case caffepb.PoolingParameter_AVE:
		op = "AveragePool"
	default:
		return unsupported(l, "%v pooling has no ONNX operator (at test time Caffe weights each value by its share of the window's sum)", method)
	}
	if len(l.Tops) > 2 || len(l.Tops) == 2 && method != caffepb.PoolingParameter_MAX {
		return unsupported(l, "only MAX pooling has a second top (the mask)")
	}
	outputs := []string{c.top(0)}
	if len(l.Tops) == 2 {
		// The mask of Caffe's MAX pooling becomes ONNX's MaxPool indices,
		// which only an ONNX MaxUnpool (from SegNet's Upsample) can read.
		outputs = append(outputs, c.top(1))
		c.poolMasks[l.Tops[1]] = true
	}

	if w.global {
		if len(l.Tops) == 2 {
			return unsupported(l, "global pooling with a mask has no ONNX form")
		}
		c.unary("Global"+op, c.in(0), c.top(0))
		return nil
	}

	in := l.Bottoms[0].Shape
	plan, err := planPool([2]int{in[2], in[3]}, w, c.opset >= 10)
	if err != nil {
		return unsupported(l, "%v", err)
	}
	if want := l.Tops[0].Shape[2:]; plan.out[0] != want[0] || plan.out[1] != want[1] {
		return fmt.Errorf("onnx: layer %q: pooled size %v differs from the inferred shape %v", l.Name(), plan.out, want)
	}

	input := c.in(0)
	padded := w.pad[0] != 0 || w.pad[1] != 0
	pads := []int{w.pad[0], w.pad[1], plan.endPad[0], plan.endPad[1]}
	countIncludePad := false
	if method == caffepb.PoolingParameter_AVE && padded {
		if !plan.overhang {
			countIncludePad = true
		} else {
			input = c.temp("padded")
			c.pad(c.in(0), input, []int{0, 0, w.pad[0], w.pad[1], 0, 0, w.pad[0], w.pad[1]})
			pads = []int{0, 0, plan.endPad[0] - w.pad[0], plan.endPad[1] - w.pad[1]}
		}
	}
	attrs := []*onnxpb.AttributeProto{
		attrInts("kernel_shape", w.kernel[:]),
		attrInts("strides", w.stride[:]),
		attrInts("pads", pads),
	}
	if plan.ceil {
		attrs = append(attrs, attrInt("ceil_mode", 1))
	}
	if countIncludePad {
		attrs = append(attrs, attrInt("count_include_pad", 1))
	}
	c.node(op, []string{input}, outputs, attrs...)
	return nil
}
