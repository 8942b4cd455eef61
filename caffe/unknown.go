package caffe

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// walkUnknown calls fn for every message reachable from m that has
// unknown bytes, with the message and its unknown bytes.
func walkUnknown(m protoreflect.Message, fn func(protoreflect.Message, []byte)) {
	if raw := m.GetUnknown(); len(raw) > 0 {
		fn(m, raw)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			list := v.List()
			for i := 0; i < list.Len(); i++ {
				walkUnknown(list.Get(i).Message(), fn)
			}
			return true
		}
		walkUnknown(v.Message(), fn)
		return true
	})
}

// binaryUnknownNotes notes each field of a binary file that the schema
// lacks: such fields are kept when the net is written as binary, and
// cannot be written as text.
func binaryUnknownNotes(net *Net) []Note {
	var notes []Note
	visit := func(layer string, m protoreflect.Message) {
		walkUnknown(m, func(msg protoreflect.Message, raw []byte) {
			for len(raw) > 0 {
				num, typ, n := protowire.ConsumeField(raw)
				if n < 0 {
					break
				}
				raw = raw[n:]
				if num == textKeepNumber {
					continue
				}
				loc := NoLocation(net.Source)
				loc.Layer = layer
				notes = append(notes, Note{Location: loc, Kind: NoteUnknown, Message: fmt.Sprintf(
					"%s field %d (wire type %d) is not in the schema; it is kept in binary output and has no text form", msg.Descriptor().Name(), num, typ)})
			}
		})
	}
	top := shallowCopy(net.Param)
	top.Layer = nil
	visit("", top.ProtoReflect())
	for _, l := range net.Param.GetLayer() {
		visit(l.GetName(), l.ProtoReflect())
	}
	return notes
}

// hasKeptText reports whether any message reachable from m carries fields
// kept by the text reader.
func hasKeptText(m protoreflect.Message) bool {
	found := false
	walkUnknown(m, func(_ protoreflect.Message, raw []byte) {
		if len(keptFields(raw)) > 0 {
			found = true
		}
	})
	return found
}

// dropKeptText removes the fields kept by the text reader from every
// message reachable from m, leaving other unknown fields.
func dropKeptText(m protoreflect.Message) {
	walkUnknown(m, func(msg protoreflect.Message, raw []byte) {
		var out []byte
		for len(raw) > 0 {
			num, _, n := protowire.ConsumeField(raw)
			if n < 0 {
				out = append(out, raw...)
				break
			}
			if num != textKeepNumber {
				out = append(out, raw[:n]...)
			}
			raw = raw[n:]
		}
		msg.SetUnknown(out)
	})
}
