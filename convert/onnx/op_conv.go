package onnx

import (
	"fmt"

	"github.com/tlsurgery/tlsurgery/graph"
)

func init() {
	register(mapConvolution, "Convolution", "DepthwiseConvolution", "ConvolutionDepthwise")
	register(mapDeconvolution, "Deconvolution")
}

// convWindow is a convolution's geometry read as Caffe's
// base_conv_layer.cpp reads it.
type convWindow struct {
	group                         int
	outputs                       int
	kernel, stride, pad, dilation []int
}

// readConvWindow reads kernel_size (or kernel_h/kernel_w), stride, pad and
// dilation, each one value for all spatial axes or one per axis, with
// Caffe's defaults (stride 1, pad 0, dilation 1). The channel axis must be
// 1, as ONNX's Conv requires.
func readConvWindow(l *graph.Layer) (*convWindow, error) {
	p := l.Param.GetConvolutionParam()
	in := l.Bottoms[0].Shape
	if p == nil {
		return nil, unsupported(l, "missing convolution_param")
	}
	if axis, err := canonicalAxis(int(p.GetAxis()), len(in)); err != nil || axis != 1 {
		return nil, unsupported(l, "convolution_param.axis %d: ONNX convolutions take channels on axis 1", p.GetAxis())
	}
	axes := len(in) - 2
	w := &convWindow{group: int(p.GetGroup()), outputs: int(p.GetNumOutput())}
	pair := func(h, wv *uint32, list []uint32, def int, name string) ([]int, error) {
		if h != nil || wv != nil {
			if h == nil || wv == nil || axes != 2 {
				return nil, fmt.Errorf("%s_h and %s_w need each other and 2 spatial axes", name, name)
			}
			return []int{int(*h), int(*wv)}, nil
		}
		out := make([]int, axes)
		for i := range out {
			switch len(list) {
			case 0:
				out[i] = def
			case 1:
				out[i] = int(list[0])
			case axes:
				out[i] = int(list[i])
			default:
				return nil, fmt.Errorf("%s has %d values for %d spatial axes", name, len(list), axes)
			}
		}
		return out, nil
	}
	var err error
	if w.kernel, err = pair(p.KernelH, p.KernelW, p.GetKernelSize(), 0, "kernel"); err != nil {
		return nil, unsupported(l, "%v", err)
	}
	if w.stride, err = pair(p.StrideH, p.StrideW, p.GetStride(), 1, "stride"); err != nil {
		return nil, unsupported(l, "%v", err)
	}
	if w.pad, err = pair(p.PadH, p.PadW, p.GetPad(), 0, "pad"); err != nil {
		return nil, unsupported(l, "%v", err)
	}
	if w.dilation, err = pair(nil, nil, p.GetDilation(), 1, "dilation"); err != nil {
		return nil, unsupported(l, "%v", err)
	}
	for i := range w.kernel {
		if w.kernel[i] < 1 || w.stride[i] < 1 || w.dilation[i] < 1 {
			return nil, unsupported(l, "kernel %v, stride %v and dilation %v must be positive", w.kernel, w.stride, w.dilation)
		}
	}
	return w, nil
}

func mapConvolution(c *converter, l *graph.Layer) error {
	w, err := readConvWindow(l)
	if err != nil {
		return err
	}
	in := l.Bottoms[0].Shape
	channels := in[1]
	// The depthwise fork layers (DepthwiseConvolution, ConvolutionDepthwise)
	// compute Caffe's grouped convolution with group equal to the channel
	// count, which their prototxts set, so they map as Convolution does.
	if w.group < 1 || channels%w.group != 0 || w.outputs%w.group != 0 {
		return unsupported(l, "group %d must divide the %d input channels and num_output %d", w.group, channels, w.outputs)
	}
	shape := append([]int{w.outputs, channels / w.group}, w.kernel...)
	return emitConv(c, l, "Conv", w, shape)
}

// mapDeconvolution maps Caffe's deconv_layer.cpp to ConvTranspose. Caffe
// stores the weights as input channels × (num_output / group) × kernel,
// which is ONNX's ConvTranspose layout too, and its output size
// stride·(in − 1) + dilation·(k − 1) + 1 − 2·pad is ONNX's with
// output_padding 0.
func mapDeconvolution(c *converter, l *graph.Layer) error {
	w, err := readConvWindow(l)
	if err != nil {
		return err
	}
	channels := l.Bottoms[0].Shape[1]
	if w.group < 1 || channels%w.group != 0 || w.outputs%w.group != 0 {
		return unsupported(l, "group %d must divide the %d input channels and num_output %d", w.group, channels, w.outputs)
	}
	shape := append([]int{channels, w.outputs / w.group}, w.kernel...)
	return emitConv(c, l, "ConvTranspose", w, shape)
}

// emitConv emits one Conv or ConvTranspose per top (Caffe applies the
// same filters to each bottom), with the bias when bias_term is set and
// the weights hold it.
func emitConv(c *converter, l *graph.Layer, op string, w *convWindow, weightShape []int) error {
	weight, err := c.weightConst(0, "weight", weightShape)
	if err != nil {
		return err
	}
	inputs := []string{"", weight}
	if l.Param.GetConvolutionParam().GetBiasTerm() {
		bias, err := c.weightConst(1, "bias", []int{w.outputs})
		if err != nil {
			return err
		}
		inputs = append(inputs, bias)
	}
	// Caffe pads both ends of an axis by the same amount, so ONNX's pads
	// [x1_begin, x2_begin, ..., x1_end, x2_end] repeat the list.
	pads := append(append([]int(nil), w.pad...), w.pad...)
	for i := range l.Tops {
		inputs[0] = c.in(i)
		c.node(op, append([]string(nil), inputs...), []string{c.top(i)},
			attrInts("kernel_shape", w.kernel),
			attrInts("strides", w.stride),
			attrInts("pads", pads),
			attrInts("dilations", w.dilation),
			attrInt("group", w.group),
		)
	}
	return nil
}
