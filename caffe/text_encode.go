package caffe

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// textEncoder writes messages in the layout of Caffe's own prototxt files:
// two spaces of indentation per level, `name {` blocks, fields in the
// order the schema declares them, floats in their shortest form. The
// output depends only on the message, so it can be golden-tested.
type textEncoder struct {
	w      *bufio.Writer
	indent int
}

func encodeText(w io.Writer, m protoreflect.Message) error {
	e := &textEncoder{w: bufio.NewWriter(w)}
	e.message(m)
	return e.w.Flush()
}

func (e *textEncoder) line(s string) {
	for i := 0; i < e.indent; i++ {
		e.w.WriteString("  ")
	}
	e.w.WriteString(s)
	e.w.WriteByte('\n')
}

func (e *textEncoder) message(m protoreflect.Message) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		v := m.Get(fd)
		switch {
		case fd.IsList():
			list := v.List()
			for j := 0; j < list.Len(); j++ {
				e.value(fd, list.Get(j))
			}
		case fd.IsMap():
			// Caffe's schema has no map fields.
		default:
			e.value(fd, v)
		}
	}
	e.unknown(m.GetUnknown())
}

func (e *textEncoder) value(fd protoreflect.FieldDescriptor, v protoreflect.Value) {
	name := string(fd.Name())
	if fd.Kind() == protoreflect.GroupKind {
		name = string(fd.Message().Name())
	}
	if fd.Message() != nil {
		e.line(name + " {")
		e.indent++
		e.message(v.Message())
		e.indent--
		e.line("}")
		return
	}
	e.line(name + ": " + formatTextScalar(fd, v))
}

// unknown writes back the fields kept by the text reader and marks binary
// fields that text cannot express.
func (e *textEncoder) unknown(raw []byte) {
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeField(raw)
		if n < 0 {
			e.line(fmt.Sprintf("# %d bytes of undecodable unknown fields omitted", len(raw)))
			return
		}
		field := raw[:n]
		raw = raw[n:]
		if num == textKeepNumber && typ == protowire.BytesType {
			_, _, tn := protowire.ConsumeTag(field)
			s, _ := protowire.ConsumeString(field[tn:])
			e.keptField(s)
			continue
		}
		e.line(fmt.Sprintf("# binary field %d (wire type %d, %d bytes) has no text form and is omitted", num, typ, n))
	}
}

// keptField re-parses a field kept by the text reader and writes it with
// this encoder's indentation.
func (e *textEncoder) keptField(s string) {
	tm, err := parseText(s, "")
	if err != nil || len(tm.fields) != 1 {
		e.line(s)
		return
	}
	e.genericField(tm.fields[0])
}

func (e *textEncoder) genericField(f *textField) {
	if f.msg != nil {
		e.line(f.name + " {")
		e.indent++
		for _, sub := range f.msg.fields {
			e.genericField(sub)
		}
		e.indent--
		e.line("}")
		return
	}
	var b strings.Builder
	formatTextField(&b, f)
	e.line(b.String())
}

// formatTextScalar formats a scalar as protobuf's text format expects.
func formatTextScalar(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return quoteText([]byte(v.String()))
	case protoreflect.BytesKind:
		return quoteText(v.Bytes())
	case protoreflect.BoolKind:
		return strconv.FormatBool(v.Bool())
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return strconv.Itoa(int(v.Enum()))
	case protoreflect.FloatKind:
		return formatTextFloat(v.Float(), 32)
	case protoreflect.DoubleKind:
		return formatTextFloat(v.Float(), 64)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return strconv.FormatInt(v.Int(), 10)
	default:
		return strconv.FormatUint(v.Uint(), 10)
	}
}

// formatTextFloat writes the shortest decimal that reads back to the same
// value at the given precision, in C's %g style (1e-05, 0.0001, 100).
func formatTextFloat(f float64, bits int) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

// quoteText writes a double-quoted string with C escapes for quotes,
// backslashes and control bytes; other bytes, UTF-8 included, stay as
// they are.
func quoteText(s []byte) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < ' ' || c == 0x7f {
				fmt.Fprintf(&b, `\%03o`, c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
