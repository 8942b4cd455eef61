package onnx

import (
	"fmt"
	"slices"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/convert/onnx/onnxpb"
	"github.com/tlsurgery/tlsurgery/graph"
)

// Layers that combine, split or rearrange blobs.
func init() {
	register(mapEltwise, "Eltwise")
	register(mapConcat, "Concat")
	register(mapSlice, "Slice")
	register(mapReshapeLike, "Flatten", "Reshape")
	register(mapSoftmax, "Softmax")
	register(mapCrop, "Crop")
	register(mapPermute, "Permute")
	register(mapTile, "Tile")
	register(mapReduction, "Reduction")
	register(mapArgMax, "ArgMax")
	register(mapShuffleChannel, "ShuffleChannel")
}

// mapEltwise follows eltwise_layer.cpp: SUM adds the bottoms, each times
// its coeff (default 1), PROD multiplies them and MAX takes the maximum.
func mapEltwise(c *converter, l *graph.Layer) error {
	p := l.Param.GetEltwiseParam()
	inputs := make([]string, len(l.Bottoms))
	for i := range inputs {
		inputs[i] = c.in(i)
	}
	switch p.GetOperation() {
	case caffepb.EltwiseParameter_SUM:
		coeff := p.GetCoeff()
		if len(coeff) != 0 && len(coeff) != len(inputs) {
			return unsupported(l, "eltwise_param has %d coeff values for %d bottoms", len(coeff), len(inputs))
		}
		for i := range coeff {
			inputs[i] = c.mulConst(inputs[i], fmt.Sprintf("coeff%d", i), coeff[i])
		}
		op := "Sum"
		if len(inputs) == 2 {
			op = "Add"
		}
		c.node(op, inputs, []string{c.top(0)})
	case caffepb.EltwiseParameter_PROD:
		x := inputs[0]
		for i, y := range inputs[1:] {
			out := c.top(0)
			if i < len(inputs)-2 {
				out = c.temp("product")
			}
			c.node("Mul", []string{x, y}, []string{out})
			x = out
		}
	case caffepb.EltwiseParameter_MAX:
		c.node("Max", inputs, []string{c.top(0)})
	default:
		return unsupported(l, "eltwise operation %v", p.GetOperation())
	}
	return nil
}

// legacyAxis returns Caffe's axis, or the older *_dim field when that is
// set instead (concat_dim, slice_dim).
func legacyAxis(axis *int32, dim *uint32, rank int) (int, error) {
	a := 1
	switch {
	case axis != nil:
		a = int(*axis)
	case dim != nil:
		a = int(*dim)
	}
	return canonicalAxis(a, rank)
}

// mapConcat follows concat_layer.cpp: concatenation along axis (default
// 1; concat_dim is the older spelling).
func mapConcat(c *converter, l *graph.Layer) error {
	p := l.Param.GetConcatParam()
	if p == nil {
		p = &caffepb.ConcatParameter{}
	}
	axis, err := legacyAxis(p.Axis, p.ConcatDim, len(l.Bottoms[0].Shape))
	if err != nil {
		return unsupported(l, "%v", err)
	}
	inputs := make([]string, len(l.Bottoms))
	for i := range inputs {
		inputs[i] = c.in(i)
	}
	c.node("Concat", inputs, []string{c.top(0)}, attrInt("axis", axis))
	return nil
}

// mapSlice follows slice_layer.cpp: the bottom is cut along axis (default
// 1; slice_dim is the older spelling) at slice_point, or into equal parts,
// which is ONNX's Split with the part sizes.
func mapSlice(c *converter, l *graph.Layer) error {
	p := l.Param.GetSliceParam()
	if p == nil {
		p = &caffepb.SliceParameter{}
	}
	axis, err := legacyAxis(p.Axis, p.SliceDim, len(l.Bottoms[0].Shape))
	if err != nil {
		return unsupported(l, "%v", err)
	}
	if c.batchAxes(l.Bottoms[0])[axis] {
		return unsupported(l, "slicing the batch axis needs a fixed batch size")
	}
	sizes := make([]int, len(l.Tops))
	outputs := make([]string, len(l.Tops))
	for i, t := range l.Tops {
		sizes[i] = t.Shape[axis]
		outputs[i] = c.top(i)
	}
	c.split(c.in(0), outputs, axis, sizes)
	return nil
}

// mapReshapeLike maps flatten_layer.cpp (axes axis..end_axis merged into
// one) and reshape_layer.cpp (0 copies a size, −1 is inferred) to Reshape
// with the top shape that the graph inferred. ONNX's Flatten always makes
// a 2-axis result, so it fits only some Caffe Flatten layers and is not
// used.
func mapReshapeLike(c *converter, l *graph.Layer) error {
	return c.reshapeValue(c.in(0), c.top(0), l.Bottoms[0], l.Tops[0])
}

// mapSoftmax follows softmax_layer.cpp: softmax along softmax_param.axis
// (default 1). From opset 13 ONNX's Softmax takes that axis directly.
// Before, it coerces the input to 2 axes at axis and normalizes each row,
// which is the same only when every axis after the softmax axis has size
// 1; otherwise the axis is moved last with Transpose and back after.
func mapSoftmax(c *converter, l *graph.Layer) error {
	in := l.Bottoms[0].Shape
	axis, err := canonicalAxis(int(l.Param.GetSoftmaxParam().GetAxis()), len(in))
	if err != nil {
		return unsupported(l, "softmax_param.axis: %v", err)
	}
	trailing := 1
	for _, d := range in[axis+1:] {
		trailing *= d
	}
	if c.opset >= 13 || trailing == 1 {
		c.unary("Softmax", c.in(0), c.top(0), attrInt("axis", axis))
		return nil
	}
	perm := make([]int, 0, len(in))
	for a := range in {
		if a != axis {
			perm = append(perm, a)
		}
	}
	perm = append(perm, axis)
	inverse := make([]int, len(perm))
	for i, a := range perm {
		inverse[a] = i
	}
	moved := c.temp("axis_last")
	c.unary("Transpose", c.in(0), moved, attrInts("perm", perm))
	soft := c.temp("softmax")
	c.unary("Softmax", moved, soft, attrInt("axis", len(in)-1))
	c.unary("Transpose", soft, c.top(0), attrInts("perm", inverse))
	return nil
}

// mapCrop follows crop_layer.cpp: every axis from crop_param.axis (default
// 2) on is cut to bottom 1's size, starting at offset (one value for all
// those axes or one per axis, default 0).
func mapCrop(c *converter, l *graph.Layer) error {
	p := l.Param.GetCropParam()
	in := l.Bottoms[0].Shape
	if len(l.Bottoms) != 2 {
		return unsupported(l, "Crop takes 2 bottoms, the layer has %d", len(l.Bottoms))
	}
	axisField := int32(2)
	if p != nil && p.Axis != nil {
		axisField = p.GetAxis()
	}
	axis, err := canonicalAxis(int(axisField), len(in))
	if err != nil {
		return unsupported(l, "crop_param.axis: %v", err)
	}
	offsets := p.GetOffset()
	var starts, ends, axes []int
	for a := axis; a < len(in); a++ {
		off := 0
		switch len(offsets) {
		case 0:
		case 1:
			off = int(offsets[0])
		default:
			if a-axis >= len(offsets) {
				return unsupported(l, "crop_param has %d offsets for %d axes", len(offsets), len(in)-axis)
			}
			off = int(offsets[a-axis])
		}
		size := l.Tops[0].Shape[a]
		if c.batchAxes(l.Tops[0])[a] {
			return unsupported(l, "cropping the batch axis needs a fixed batch size")
		}
		if off == 0 && size == in[a] {
			continue
		}
		starts, ends, axes = append(starts, off), append(ends, off+size), append(axes, a)
	}
	if len(axes) == 0 {
		c.unary("Identity", c.in(0), c.top(0))
		return nil
	}
	c.slice(c.in(0), c.top(0), starts, ends, axes)
	return nil
}

// mapPermute follows SSD's permute_layer.cpp: top axis i is bottom axis
// order[i], and the axes order leaves out follow in their original order.
func mapPermute(c *converter, l *graph.Layer) error {
	rank := len(l.Bottoms[0].Shape)
	var perm []int
	for _, o := range l.Param.GetPermuteParam().GetOrder() {
		a := int(o)
		if a >= rank || slices.Contains(perm, a) {
			return unsupported(l, "permute_param.order %v is invalid for %d axes", l.Param.GetPermuteParam().GetOrder(), rank)
		}
		perm = append(perm, a)
	}
	for a := range rank {
		if !slices.Contains(perm, a) {
			perm = append(perm, a)
		}
	}
	c.unary("Transpose", c.in(0), c.top(0), attrInts("perm", perm))
	return nil
}

// mapTile follows tile_layer.cpp: axis (default 1) repeated tiles times.
func mapTile(c *converter, l *graph.Layer) error {
	p := l.Param.GetTileParam()
	rank := len(l.Bottoms[0].Shape)
	axis, err := canonicalAxis(int(p.GetAxis()), rank)
	if err != nil {
		return unsupported(l, "tile_param.axis: %v", err)
	}
	repeats := make([]int64, rank)
	for i := range repeats {
		repeats[i] = 1
	}
	repeats[axis] = int64(p.GetTiles())
	c.node("Tile", []string{c.in(0), c.int64Const("repeats", []int{rank}, repeats)}, []string{c.top(0)})
	return nil
}

// mapReduction follows reduction_layer.cpp: every axis from axis (default
// 0) on is reduced by SUM, ASUM (sum of absolute values), SUMSQ or MEAN,
// and the result multiplied by coeff (default 1).
func mapReduction(c *converter, l *graph.Layer) error {
	p := l.Param.GetReductionParam()
	rank := len(l.Bottoms[0].Shape)
	axis, err := canonicalAxis(int(p.GetAxis()), rank)
	if err != nil {
		return unsupported(l, "reduction_param.axis: %v", err)
	}
	if axis == 0 && c.batchAxes(l.Bottoms[0])[0] {
		return unsupported(l, "reducing the batch axis needs a fixed batch size")
	}
	var axes []int
	for a := axis; a < rank; a++ {
		axes = append(axes, a)
	}
	op := map[caffepb.ReductionParameter_ReductionOp]string{
		caffepb.ReductionParameter_SUM:   "ReduceSum",
		caffepb.ReductionParameter_ASUM:  "ReduceL1",
		caffepb.ReductionParameter_SUMSQ: "ReduceSumSquare",
		caffepb.ReductionParameter_MEAN:  "ReduceMean",
	}[p.GetOperation()]
	if op == "" {
		return unsupported(l, "reduction operation %v", p.GetOperation())
	}
	reduced := c.temp("reduced")
	c.reduce(op, c.in(0), reduced, axes, false)
	c.finish(c.mulConst(reduced, "coeff", p.GetCoeff()), c.top(0))
	return nil
}

// mapArgMax follows argmax_layer.cpp for top_k 1. With axis, the top
// holds the index of the maximum along that axis (its value with
// out_max_val). Without axis, the maximum is over all axes after the
// first, and the top is N × 1 × 1 (the index) or N × 2 × 1 (index and
// value with out_max_val). Indices are floats, as in Caffe. Caffe sorts
// (value, index) pairs in descending order, so of equal maxima the last
// index wins; ArgMax's select_last_index (opset 12) does the same, and
// before opset 12 ties resolve to the first index.
func mapArgMax(c *converter, l *graph.Layer) error {
	p := l.Param.GetArgmaxParam()
	if p.GetTopK() != 1 {
		return unsupported(l, "argmax_param.top_k %d: only top_k 1 is exported (ONNX's TopK orders ties differently from Caffe's sort)", p.GetTopK())
	}
	in := l.Bottoms[0].Shape
	argmax := func(input, output string, axis int) {
		attrs := []*onnxpb.AttributeProto{attrInt("axis", axis), attrInt("keepdims", 1)}
		if c.opset >= 12 {
			attrs = append(attrs, attrInt("select_last_index", 1))
		}
		index := c.temp("index")
		c.unary("ArgMax", input, index, attrs...)
		c.unary("Cast", index, output, attrInt("to", int(onnxpb.TensorProto_FLOAT)))
	}
	if p.Axis != nil {
		axis, err := canonicalAxis(int(p.GetAxis()), len(in))
		if err != nil {
			return unsupported(l, "argmax_param.axis: %v", err)
		}
		if p.GetOutMaxVal() {
			c.reduce("ReduceMax", c.in(0), c.top(0), []int{axis}, true)
			return nil
		}
		argmax(c.in(0), c.top(0), axis)
		return nil
	}

	flat := c.temp("flat")
	batch := in[0]
	if c.batchAxes(l.Bottoms[0])[0] {
		batch = 0
	}
	c.reshape(c.in(0), flat, []int{batch, -1})
	result := c.temp("result")
	if !p.GetOutMaxVal() {
		argmax(flat, result, 1)
	} else {
		index := c.temp("max_index")
		argmax(flat, index, 1)
		value := c.temp("max_value")
		c.reduce("ReduceMax", flat, value, []int{1}, true)
		c.node("Concat", []string{index, value}, []string{result}, attrInt("axis", 1))
	}
	target := slices.Clone(l.Tops[0].Shape)
	if c.batchAxes(l.Tops[0])[0] {
		target[0] = 0
	}
	c.reshape(result, c.top(0), target)
	return nil
}

// mapShuffleChannel follows ShuffleNet's shuffle_channel_layer.cpp: the
// channels, viewed as group × (C / group), are transposed to (C / group) ×
// group.
func mapShuffleChannel(c *converter, l *graph.Layer) error {
	in := l.Bottoms[0].Shape
	g := int(l.Param.GetShuffleChannelParam().GetGroup())
	if len(in) < 2 || g < 1 || in[1]%g != 0 {
		return unsupported(l, "group %d must divide the channels of %v", g, in)
	}
	grouped := append([]int{0, g, in[1] / g}, in[2:]...)
	if !c.batchAxes(l.Bottoms[0])[0] {
		grouped[0] = in[0]
	}
	split := c.temp("grouped")
	c.reshape(c.in(0), split, grouped)
	perm := []int{0, 2, 1}
	for a := 3; a < len(grouped); a++ {
		perm = append(perm, a)
	}
	swapped := c.temp("transposed")
	c.unary("Transpose", split, swapped, attrInts("perm", perm))
	target := slices.Clone(in)
	if c.batchAxes(l.Bottoms[0])[0] {
		target[0] = 0
	}
	c.reshape(swapped, c.top(0), target)
	return nil
}
