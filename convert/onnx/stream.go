package onnx

import (
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tlsurgery/tlsurgery/convert/onnx/onnxpb"
)

// A model file is mostly the raw_data of its initializers. Encoding it
// with one proto.Marshal call would hold all of those bytes a second
// time. So the encoder below marshals everything except raw_data
// normally, and writes each raw_data slice from the model's own memory.
// The lengths of the enclosing fields are computed from the sizes of the
// parts before anything is written.

// Field numbers from onnx.proto of the fields that the encoder writes
// itself rather than through proto.Marshal.
const (
	modelGraphField       protowire.Number = 7 // ModelProto.graph, a GraphProto
	graphInitializerField protowire.Number = 5 // GraphProto.initializer, repeated TensorProto
	tensorRawDataField    protowire.Number = 9 // TensorProto.raw_data, bytes
)

// encoding is a protobuf encoding kept as a sequence of byte slices.
// Small slices are marshalled parts and field headers, and large ones
// are raw_data fields of the model, shared with it rather than copied.
type encoding struct {
	parts [][]byte
	size  int // total length of parts
}

func (e *encoding) add(b []byte) {
	if len(b) == 0 {
		return
	}
	e.parts = append(e.parts, b)
	e.size += len(b)
}

// addField appends a length-delimited field: its tag, the length of
// value, then value's parts.
func (e *encoding) addField(num protowire.Number, value *encoding) {
	header := protowire.AppendTag(nil, num, protowire.BytesType)
	e.add(protowire.AppendVarint(header, uint64(value.size)))
	for _, p := range value.parts {
		e.add(p)
	}
}

// writeTo writes the parts to w in order.
func (e *encoding) writeTo(w io.Writer) error {
	for _, p := range e.parts {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// encodeModel plans the encoding of model. The result has the bytes of
// proto.MarshalOptions{Deterministic: true}.Marshal(model), which orders
// known fields by number and puts unknown fields last. It refers to the
// model's raw_data slices, so the model must not change until the
// encoding is written.
func encodeModel(model *onnxpb.ModelProto) (*encoding, error) {
	out := &encoding{}
	if model.GetGraph() == nil {
		whole, err := marshalDeterministic(model)
		if err != nil {
			return nil, err
		}
		out.add(whole)
		return out, nil
	}

	head, tail, err := marshalAround(model, modelGraphField)
	if err != nil {
		return nil, err
	}
	graph, err := encodeGraph(model.GetGraph())
	if err != nil {
		return nil, err
	}
	out.add(head)
	out.addField(modelGraphField, graph)
	out.add(tail)
	return out, nil
}

// encodeGraph plans the encoding of a graph with its initializers.
func encodeGraph(g *onnxpb.GraphProto) (*encoding, error) {
	head, tail, err := marshalAround(g, graphInitializerField)
	if err != nil {
		return nil, err
	}
	out := &encoding{}
	out.add(head)
	for _, t := range g.GetInitializer() {
		tensor, err := encodeTensor(t)
		if err != nil {
			return nil, err
		}
		out.addField(graphInitializerField, tensor)
	}
	out.add(tail)
	return out, nil
}

// encodeTensor plans the encoding of a tensor whose raw_data is written
// from the tensor's own slice.
func encodeTensor(t *onnxpb.TensorProto) (*encoding, error) {
	head, tail, err := marshalAround(t, tensorRawDataField)
	if err != nil {
		return nil, err
	}
	out := &encoding{}
	out.add(head)
	// A nil raw_data is absent, but an empty one is present with length 0.
	if raw := t.GetRawData(); raw != nil {
		header := protowire.AppendTag(nil, tensorRawDataField, protowire.BytesType)
		out.add(protowire.AppendVarint(header, uint64(len(raw))))
		out.add(raw)
	}
	out.add(tail)
	return out, nil
}

// marshalAround marshals m without field skip. head contains the fields
// numbered below skip, and tail the fields numbered above it followed by
// m's unknown fields. The two marshalled messages share m's values, so no
// field is copied deeply.
func marshalAround(m proto.Message, skip protowire.Number) (head, tail []byte, err error) {
	src := m.ProtoReflect()
	below, above := src.New(), src.New()
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Number() < skip:
			below.Set(fd, v)
		case fd.Number() > skip:
			above.Set(fd, v)
		}
		return true
	})
	above.SetUnknown(src.GetUnknown())

	if head, err = marshalDeterministic(below.Interface()); err != nil {
		return nil, nil, err
	}
	if tail, err = marshalDeterministic(above.Interface()); err != nil {
		return nil, nil, err
	}
	return head, tail, nil
}

func marshalDeterministic(m proto.Message) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("onnx: encoding the model: %w", err)
	}
	return b, nil
}
