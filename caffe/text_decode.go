package caffe

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// textKeepNumber is the field number under which a text field that the
// schema lacks (or whose enum value it lacks) is kept inside the
// message's unknown bytes, as its own text. Kept there, the field
// survives proto.Clone and proto.Merge and the text writer prints it back;
// the binary writer drops it, since it has no wire meaning. The number is
// the largest valid protobuf field number, which no Caffe fork uses.
const textKeepNumber protowire.Number = protowire.MaxValidNumber

// textDecoder fills generated messages from a parsed text tree.
type textDecoder struct {
	file  string
	notes []Note
}

func (d *textDecoder) location(pos textPos, layer string) Location {
	loc := NoLocation(d.file)
	loc.Line, loc.Column, loc.Layer = pos.line, pos.col, layer
	return loc
}

func (d *textDecoder) errorf(pos textPos, layer, hint, format string, args ...any) error {
	return &FormatError{Location: d.location(pos, layer), Msg: fmt.Sprintf(format, args...), Hint: hint}
}

// layerName returns the `name` of a layer-like text message, or "".
func layerName(tm *textMessage) string {
	for _, f := range tm.fields {
		if f.name == "name" && len(f.values) == 1 && f.values[0].kind == textString {
			return f.values[0].str
		}
	}
	return ""
}

// decodeMessage sets the fields of m from tm. layer names the enclosing
// layer for notes and errors.
func (d *textDecoder) decodeMessage(m protoreflect.Message, tm *textMessage, layer string) error {
	desc := m.Descriptor()
	if isLayerMessage(desc) {
		layer = layerName(tm)
	}
	seen := map[protoreflect.FieldNumber]textPos{}
	for _, f := range tm.fields {
		fd := desc.Fields().ByName(protoreflect.Name(f.name))
		if fd == nil {
			fd = desc.Fields().ByTextName(f.name) // group names
		}
		if fd == nil {
			d.keep(m, f, layer, fmt.Sprintf("field %q is not in the schema of %s", f.name, desc.Name()))
			continue
		}

		if fd.Message() != nil {
			if f.msg == nil {
				return d.errorf(f.pos, layer, "", "field %q is a message and needs { ... }", f.name)
			}
			var sub protoreflect.Message
			switch {
			case fd.IsList():
				sub = m.Mutable(fd).List().AppendMutable().Message()
			case fd.IsMap():
				return d.errorf(f.pos, layer, "", "map field %q is not supported", f.name)
			default:
				if prev, ok := seen[fd.Number()]; ok {
					d.note(f.pos, layer, NoteUnknown, fmt.Sprintf("message field %q appears again (first at %d:%d); the two are merged", f.name, prev.line, prev.col))
				}
				sub = m.Mutable(fd).Message()
			}
			seen[fd.Number()] = f.pos
			if err := d.decodeMessage(sub, f.msg, layer); err != nil {
				return err
			}
			continue
		}

		if f.msg != nil {
			return d.errorf(f.pos, layer, "", "field %q is a %s, not a message", f.name, fd.Kind())
		}
		if f.list && !fd.IsList() {
			return d.errorf(f.pos, layer, "", "field %q is not repeated and cannot take a [ ] list", f.name)
		}
		values := make([]protoreflect.Value, 0, len(f.values))
		unknownEnum := false
		for _, v := range f.values {
			pv, err := d.scalar(fd, v, layer)
			if err == errUnknownEnum {
				unknownEnum = true
				break
			}
			if err != nil {
				return err
			}
			values = append(values, pv)
		}
		if unknownEnum {
			d.keep(m, f, layer, fmt.Sprintf("field %q has a value that enum %s lacks", f.name, fd.Enum().Name()))
			continue
		}
		if fd.IsList() {
			list := m.Mutable(fd).List()
			for _, v := range values {
				list.Append(v)
			}
			continue
		}
		if prev, ok := seen[fd.Number()]; ok {
			d.note(f.pos, layer, NoteUnknown, fmt.Sprintf("field %q is not repeated but appears again (first at %d:%d); the last value is kept", f.name, prev.line, prev.col))
		}
		seen[fd.Number()] = f.pos
		m.Set(fd, values[0])
	}
	return nil
}

func isLayerMessage(desc protoreflect.MessageDescriptor) bool {
	switch desc.Name() {
	case "LayerParameter", "V1LayerParameter", "V0LayerParameter":
		return true
	}
	return false
}

func (d *textDecoder) note(pos textPos, layer string, kind NoteKind, msg string) {
	d.notes = append(d.notes, Note{Location: d.location(pos, layer), Kind: kind, Message: msg})
}

// keep stores f in m's unknown bytes under textKeepNumber and notes it.
func (d *textDecoder) keep(m protoreflect.Message, f *textField, layer, why string) {
	var b strings.Builder
	formatTextField(&b, f)
	raw := m.GetUnknown()
	raw = protowire.AppendTag(raw, textKeepNumber, protowire.BytesType)
	raw = protowire.AppendString(raw, b.String())
	m.SetUnknown(raw)
	d.note(f.pos, layer, NoteUnknown, why+"; kept as written")
}

var errUnknownEnum = fmt.Errorf("unknown enum value")

// scalar converts one text value to the kind of fd, with the range checks
// of protobuf's text format.
func (d *textDecoder) scalar(fd protoreflect.FieldDescriptor, v textValue, layer string) (protoreflect.Value, error) {
	bad := func(what string) error {
		return d.errorf(v.pos, layer, "", "field %q: %s %s", fd.Name(), what, v.raw)
	}
	switch fd.Kind() {
	case protoreflect.StringKind, protoreflect.BytesKind:
		if v.kind != textString {
			return protoreflect.Value{}, bad("expected a quoted string, found")
		}
		if fd.Kind() == protoreflect.BytesKind {
			return protoreflect.ValueOfBytes([]byte(v.str)), nil
		}
		return protoreflect.ValueOfString(v.str), nil

	case protoreflect.BoolKind:
		switch v.raw {
		case "true", "True", "t", "1":
			return protoreflect.ValueOfBool(true), nil
		case "false", "False", "f", "0":
			return protoreflect.ValueOfBool(false), nil
		}
		return protoreflect.Value{}, bad("expected true or false, found")

	case protoreflect.EnumKind:
		if v.kind == textIdent {
			ev := fd.Enum().Values().ByName(protoreflect.Name(v.raw))
			if ev == nil {
				return protoreflect.Value{}, errUnknownEnum
			}
			return protoreflect.ValueOfEnum(ev.Number()), nil
		}
		n, err := parseTextInt(v.raw, 32)
		if v.kind != textNumber || err != nil {
			return protoreflect.Value{}, bad("expected an enum value name, found")
		}
		if fd.Enum().Values().ByNumber(protoreflect.EnumNumber(n)) == nil {
			return protoreflect.Value{}, errUnknownEnum
		}
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(n)), nil

	case protoreflect.FloatKind, protoreflect.DoubleKind:
		bits := 64
		if fd.Kind() == protoreflect.FloatKind {
			bits = 32
		}
		f, err := parseTextFloat(v, bits)
		if err != nil {
			return protoreflect.Value{}, bad("invalid number")
		}
		if bits == 32 {
			return protoreflect.ValueOfFloat32(float32(f)), nil
		}
		return protoreflect.ValueOfFloat64(f), nil
	}

	if v.kind != textNumber {
		return protoreflect.Value{}, bad("expected an integer, found")
	}
	switch fd.Kind() {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		n, err := parseTextInt(v.raw, 32)
		if err != nil {
			return protoreflect.Value{}, bad("invalid 32-bit integer")
		}
		return protoreflect.ValueOfInt32(int32(n)), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		n, err := parseTextInt(v.raw, 64)
		if err != nil {
			return protoreflect.Value{}, bad("invalid 64-bit integer")
		}
		return protoreflect.ValueOfInt64(n), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		n, err := parseTextUint(v.raw, 32)
		if err != nil {
			return protoreflect.Value{}, bad("invalid unsigned 32-bit integer")
		}
		return protoreflect.ValueOfUint32(uint32(n)), nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		n, err := parseTextUint(v.raw, 64)
		if err != nil {
			return protoreflect.Value{}, bad("invalid unsigned 64-bit integer")
		}
		return protoreflect.ValueOfUint64(n), nil
	}
	return protoreflect.Value{}, d.errorf(v.pos, layer, "", "field %q has kind %s, which the text reader does not handle", fd.Name(), fd.Kind())
}

// parseTextInt accepts decimal, 0x hexadecimal and 0-prefixed octal, as
// protobuf's text format does.
func parseTextInt(s string, bits int) (int64, error) {
	neg := strings.HasPrefix(s, "-")
	u, err := parseTextUint(strings.TrimPrefix(s, "-"), 64)
	if err != nil {
		return 0, err
	}
	limit := uint64(1) << (bits - 1)
	if neg {
		if u > limit {
			return 0, strconv.ErrRange
		}
		return -int64(u), nil
	}
	if u >= limit {
		return 0, strconv.ErrRange
	}
	return int64(u), nil
}

func parseTextUint(s string, bits int) (uint64, error) {
	base := 10
	switch {
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	return strconv.ParseUint(s, base, bits)
}

// parseTextFloat accepts decimal and exponent forms with an optional f
// suffix, integers, and the words inf, infinity and nan in any case.
func parseTextFloat(v textValue, bits int) (float64, error) {
	s := v.raw
	if v.kind == textIdent || v.kind == textNumber && (strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+")) {
		word := strings.ToLower(strings.TrimLeft(s, "+-"))
		sign := 1.0
		if strings.HasPrefix(s, "-") {
			sign = -1
		}
		switch word {
		case "inf", "infinity", "inff", "infinityf":
			return math.Inf(int(sign)), nil
		case "nan", "nanf":
			return math.NaN(), nil
		}
		if v.kind == textIdent {
			return 0, strconv.ErrSyntax
		}
	}
	if v.kind != textNumber {
		return 0, strconv.ErrSyntax
	}
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") || strings.HasPrefix(s, "-0x") {
		n, err := parseTextInt(s, 64)
		return float64(n), err
	}
	if t := strings.TrimRight(s, "fF"); t != s && !strings.ContainsAny(t, "xX") {
		s = t
	}
	f, err := strconv.ParseFloat(s, bits)
	if err != nil && !isRangeErr(err) {
		return 0, err
	}
	return f, nil // an out-of-range value becomes ±Inf or 0 as in C's strtod
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// formatTextField writes f on one line in text format, as it was written
// (scalar tokens keep their source spelling).
func formatTextField(b *strings.Builder, f *textField) {
	b.WriteString(f.name)
	if f.msg != nil {
		b.WriteString(" {")
		for _, sub := range f.msg.fields {
			b.WriteByte(' ')
			formatTextField(b, sub)
		}
		b.WriteString(" }")
		return
	}
	b.WriteString(": ")
	if f.list {
		b.WriteByte('[')
	}
	for i, v := range f.values {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(v.raw)
	}
	if f.list {
		b.WriteByte(']')
	}
}
