package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/convert/onnx/onnxpb"
	"github.com/tlsurgery/tlsurgery/graph"
)

// Helpers that emit nodes and constants for the layer being mapped.

// in returns the tensor name of bottom i of the current layer.
func (c *converter) in(i int) string { return c.names[c.layer.Bottoms[i]] }

// top returns the tensor name of top i of the current layer.
func (c *converter) top(i int) string { return c.names[c.layer.Tops[i]] }

// temp returns a new tensor name for an intermediate result of the
// current layer: "<layer>/<role>".
func (c *converter) temp(role string) string { return c.unique(c.layer.Name() + "/" + role) }

// node appends a node for the current layer. The first node takes the
// layer's name, later ones "<layer>/<OpType>".
func (c *converter) node(op string, inputs, outputs []string, attrs ...*onnxpb.AttributeProto) {
	name := c.layer.Name()
	if len(c.ops) > 0 || c.nodeNames[name] {
		name = c.layer.Name() + "/" + op
		base := name
		for i := 2; c.nodeNames[name]; i++ {
			name = fmt.Sprintf("%s_%d", base, i)
		}
	}
	c.nodeNames[name] = true
	n := &onnxpb.NodeProto{
		Name:      proto.String(name),
		OpType:    proto.String(op),
		Input:     inputs,
		Output:    outputs,
		Attribute: attrs,
	}
	c.out.Node = append(c.out.Node, n)
	c.ops = append(c.ops, op)
}

// unary emits op from one tensor to another.
func (c *converter) unary(op, input, output string, attrs ...*onnxpb.AttributeProto) {
	c.node(op, []string{input}, []string{output}, attrs...)
}

// floatConst adds a float32 initializer "<layer>/<role>" and returns its
// name. dims nil or empty makes a scalar. On a little-endian host the
// initializer's raw_data shares memory with values (see float32Bytes), so
// values must not change afterwards.
func (c *converter) floatConst(role string, dims []int, values []float32) string {
	return c.initializer(role, dims, onnxpb.TensorProto_FLOAT, float32Bytes(values))
}

// hostLittleEndian is true when the host stores float32 values in the
// little-endian byte order of ONNX's raw_data.
var hostLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// float32Bytes returns values as raw_data bytes: IEEE 754 binary32,
// little-endian. On a little-endian host the result is values' own
// memory, not a copy, so no weights are duplicated. On a big-endian host
// it is a converted copy. Empty values give an empty, non-nil slice, so
// that raw_data is still present in the encoding.
func float32Bytes(values []float32) []byte {
	if len(values) == 0 {
		return []byte{}
	}
	if hostLittleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(values))), 4*len(values))
	}
	// NOTE: this copy doubles the weights' memory on big-endian hosts.
	raw := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return raw
}

// scalarConst adds a float32 scalar initializer.
func (c *converter) scalarConst(role string, v float32) string {
	return c.floatConst(role, nil, []float32{v})
}

// int64Const adds an int64 initializer and returns its name.
func (c *converter) int64Const(role string, dims []int, values []int64) string {
	raw := make([]byte, 8*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return c.initializer(role, dims, onnxpb.TensorProto_INT64, raw)
}

func (c *converter) initializer(role string, dims []int, typ onnxpb.TensorProto_DataType, raw []byte) string {
	name := c.temp(role)
	t := &onnxpb.TensorProto{
		Name:     proto.String(name),
		Dims:     int64s(dims),
		DataType: proto.Int32(int32(typ)),
		RawData:  raw,
	}
	c.out.Initializer = append(c.out.Initializer, t)
	return name
}

// weights returns the values of blob i of the current layer, which must
// hold prod(shape) values (the blob's own shape may be a legacy 4-D one).
func (c *converter) weights(i int, shape []int) ([]float32, error) {
	l := c.layer
	blobs := l.Param.GetBlobs()
	if len(blobs) == 0 {
		return nil, fmt.Errorf("onnx: layer %q (%s) has no weights; export a caffemodel, give the weights file, or run tlsurgery init", l.Name(), l.Type())
	}
	if i >= len(blobs) {
		return nil, fmt.Errorf("onnx: layer %q (%s) has %d weight blobs, the export needs blob %d", l.Name(), l.Type(), len(blobs), i)
	}
	want := 1
	for _, d := range shape {
		want *= d
	}
	data := blobs[i].GetData()
	if len(data) != want {
		return nil, fmt.Errorf("onnx: layer %q (%s): weight blob %d has %d values (shape %v), the layer needs %d (shape %v); were the weights read with values?",
			l.Name(), l.Type(), i, len(data), caffe.BlobShape(blobs[i]), want, shape)
	}
	return data, nil
}

// weightConst adds blob i of the current layer as an initializer of the
// given shape.
func (c *converter) weightConst(i int, role string, shape []int) (string, error) {
	data, err := c.weights(i, shape)
	if err != nil {
		return "", err
	}
	return c.floatConst(role, shape, data), nil
}

func int64s(s []int) []int64 {
	out := make([]int64, len(s))
	for i, v := range s {
		out[i] = int64(v)
	}
	return out
}

func attrInt(name string, v int) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(int64(v))}
}

func attrInts(name string, v []int) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: int64s(v)}
}

func attrFloat(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

func attrString(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

func attrTensor(name string, t *onnxpb.TensorProto) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_TENSOR.Enum(), T: t}
}

// Operators whose form changed between opsets 9 and 17.

// reshape emits Reshape of input to shape; a 0 in shape copies the
// input's size on that axis, one −1 is inferred.
func (c *converter) reshape(input, output string, shape []int) {
	c.node("Reshape", []string{input, c.int64Const("shape", []int{len(shape)}, int64s(shape))}, []string{output})
}

// reshapeValue emits a Reshape from value in to value out, whose shapes
// the graph inferred. With DynamicBatch the batch axis is written as 0
// (copied) when both values follow the batch, or the one axis of out that
// changes with the batch as −1.
func (c *converter) reshapeValue(input, output string, in, out *graph.Value) error {
	shape := append([]int(nil), out.Shape...)
	outAxes := c.batchAxes(out)
	changing := 0
	for _, b := range outAxes {
		if b {
			changing++
		}
	}
	switch {
	case changing == 0:
	case c.followsBatch(out) && c.followsBatch(in) && in.Shape[0] == out.Shape[0]:
		shape[0] = 0
	case changing == 1:
		for i, b := range outAxes {
			if b {
				shape[i] = -1
			}
		}
	default:
		return unsupported(c.layer, "with a dynamic batch size, %d axes of the output shape %v change with the batch; export with a fixed batch size", changing, out.Shape)
	}
	c.reshape(input, output, shape)
	return nil
}

// slice emits Slice on the given axes: attributes before opset 10,
// inputs since.
func (c *converter) slice(input, output string, starts, ends, axes []int) {
	if c.opset < 10 {
		c.node("Slice", []string{input}, []string{output}, attrInts("starts", starts), attrInts("ends", ends), attrInts("axes", axes))
		return
	}
	n := []int{len(axes)}
	c.node("Slice", []string{input,
		c.int64Const("starts", n, int64s(starts)),
		c.int64Const("ends", n, int64s(ends)),
		c.int64Const("axes", n, int64s(axes)),
	}, []string{output})
}

// split emits Split along axis into parts of the given sizes: the sizes
// are an attribute before opset 13 and an input since.
func (c *converter) split(input string, outputs []string, axis int, sizes []int) {
	if c.opset < 13 {
		c.node("Split", []string{input}, outputs, attrInt("axis", axis), attrInts("split", sizes))
		return
	}
	c.node("Split", []string{input, c.int64Const("split", []int{len(sizes)}, int64s(sizes))}, outputs, attrInt("axis", axis))
}

// clip emits Clip: min and max are attributes before opset 11 and scalar
// inputs since.
func (c *converter) clip(input, output string, lo, hi float32) {
	if c.opset < 11 {
		c.node("Clip", []string{input}, []string{output}, attrFloat("min", lo), attrFloat("max", hi))
		return
	}
	c.node("Clip", []string{input, c.scalarConst("min", lo), c.scalarConst("max", hi)}, []string{output})
}

// reduce emits a Reduce* operator over axes. ReduceSum takes its axes as
// an input from opset 13 on; the others do so only from opset 18, beyond
// MaxOpset.
func (c *converter) reduce(op, input, output string, axes []int, keepDims bool) {
	keep := 0
	if keepDims {
		keep = 1
	}
	if op == "ReduceSum" && c.opset >= 13 {
		c.node(op, []string{input, c.int64Const("axes", []int{len(axes)}, int64s(axes))}, []string{output}, attrInt("keepdims", keep))
		return
	}
	c.node(op, []string{input}, []string{output}, attrInts("axes", axes), attrInt("keepdims", keep))
}

// pad emits a constant zero Pad: pads is an attribute before opset 11 and
// an input since. pads lists the begin values of every axis, then the end
// values.
func (c *converter) pad(input, output string, pads []int) {
	if c.opset < 11 {
		c.node("Pad", []string{input}, []string{output}, attrString("mode", "constant"), attrInts("pads", pads))
		return
	}
	c.node("Pad", []string{input, c.int64Const("pads", []int{len(pads)}, int64s(pads))}, []string{output}, attrString("mode", "constant"))
}

// mulConst multiplies input by a scalar, or passes it through when the
// factor is 1 (returning input unchanged).
func (c *converter) mulConst(input, role string, factor float32) string {
	if factor == 1 {
		return input
	}
	out := c.temp(role)
	c.node("Mul", []string{input, c.scalarConst(role, factor)}, []string{out})
	return out
}

// addConst adds a scalar to input, or passes it through when it is 0.
func (c *converter) addConst(input, role string, term float32) string {
	if term == 0 {
		return input
	}
	out := c.temp(role)
	c.node("Add", []string{input, c.scalarConst(role, term)}, []string{out})
	return out
}

// finish makes the tensor result appear under the name output. When
// result is the last node's output, that node is renamed. Otherwise (the
// layer's input passed through unchanged) an Identity copies it.
func (c *converter) finish(result, output string) {
	if result == output {
		return
	}
	last := c.out.Node[len(c.out.Node)-1]
	if len(c.ops) > 0 && len(last.Output) == 1 && last.Output[0] == result {
		last.Output[0] = output
		return
	}
	c.unary("Identity", result, output)
}

// broadcastShape returns shape s placed at axis of a tensor of rank r
// with trailing 1s, so that ONNX's right-aligned broadcasting applies it
// from that axis, as Caffe's Scale and Bias do.
func broadcastShape(s []int, axis, rank int) []int {
	out := append([]int(nil), s...)
	for len(out) < rank-axis {
		out = append(out, 1)
	}
	return out
}

// canonicalAxis maps a negative Caffe axis to its index from the front.
func canonicalAxis(axis, rank int) (int, error) {
	if axis < -rank || axis >= rank {
		return 0, fmt.Errorf("axis %d is out of range for %d axes", axis, rank)
	}
	if axis < 0 {
		axis += rank
	}
	return axis, nil
}
