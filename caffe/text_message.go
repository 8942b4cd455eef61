package caffe

import (
	"io"

	"google.golang.org/protobuf/proto"
)

// WriteText writes any message of Caffe's schema (a SolverParameter, say)
// in the text layout that WriteOptions uses for nets: two spaces of
// indentation, fields in schema order, floats in their shortest form.
func WriteText(w io.Writer, m proto.Message) error {
	return encodeText(w, m.ProtoReflect())
}
