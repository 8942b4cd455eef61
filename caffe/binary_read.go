package caffe

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
)

// Field numbers of caffe.proto that the streaming decoder handles itself.
// NetParameter's layer fields are netLayerNumber and netLayersNumber.
const (
	layerBlobs   protowire.Number = 7  // LayerParameter.blobs
	v1LayerBlobs protowire.Number = 6  // V1LayerParameter.blobs
	v1LayerV0    protowire.Number = 1  // V1LayerParameter.layer: V0LayerParameter
	v0LayerBlobs protowire.Number = 50 // V0LayerParameter.blobs

	blobNum         protowire.Number = 1
	blobChannels    protowire.Number = 2
	blobHeight      protowire.Number = 3
	blobWidth       protowire.Number = 4
	blobData        protowire.Number = 5
	blobDiff        protowire.Number = 6
	blobShape       protowire.Number = 7
	blobDoubleData  protowire.Number = 8
	blobDoubleDiff  protowire.Number = 9
	blobRawDataType protowire.Number = 10 // NVIDIA Caffe: Type of raw_data
	blobRawDiffType protowire.Number = 11 // NVIDIA Caffe: Type of raw_diff
	blobRawData     protowire.Number = 12 // NVIDIA Caffe: values as little-endian bytes
	blobRawDiff     protowire.Number = 13 // NVIDIA Caffe: gradients as little-endian bytes
)

const (
	// noLimit is the end offset of input whose size is unknown.
	noLimit = math.MaxInt64

	// maxChunk bounds each allocation step while reading input of unknown
	// size, so a forged length costs at most this much memory before the
	// input runs out.
	maxChunk = 1 << 20

	// maxGroupDepth bounds the nesting of group fields copied as unknown
	// fields.
	maxGroupDepth = 100

	readBufferSize = 64 << 10
)

// numpySignature starts every NumPy .npy file, a format in which mean
// images are also published. HDF5's signature is hdf5Signature.
var numpySignature = []byte("\x93NUMPY")

// littleEndian is true on hosts that store float32 in the byte order of
// the protobuf wire format, where float data is read and written in place.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// decoder reads the protobuf wire format from a stream and tracks the byte
// offset and the layer and blob being read, for error locations.
type decoder struct {
	br     *bufio.Reader
	src    io.Reader
	seeker io.Seeker // src when it can seek and size is known, else nil
	off    int64     // bytes consumed from src
	size   int64     // bytes src holds, or -1 when unknown
	file   string
	kind   string // expected input format, named in error hints

	structureOnly bool
	scratch       []byte // conversion buffer of at most maxChunk bytes

	layer      string // name or "#index" of the layer being read, or ""
	blob       int    // index of the blob being read within its list, or -1
	notes      []Note
	layerNotes []Note   // notes of the layer being read, labelled at its end
	converted  []string // conversions in the layer being read
	clashes    []string // fields of the layer whose wire type disagrees with the schema
	clashOff   int64    // offset of the first of clashes
}

func newDecoder(r io.Reader, size int64, file, kind string) *decoder {
	bufferSize := readBufferSize
	if size >= 0 && size < readBufferSize {
		// Small inputs get a small buffer; bufio uses at least 16 bytes,
		// more than the longest Peek here (a 10-byte varint).
		bufferSize = int(size)
	}
	d := &decoder{
		br:   bufio.NewReaderSize(r, bufferSize),
		src:  r,
		size: size,
		file: file,
		kind: kind,
		blob: -1,
	}
	if s, ok := r.(io.Seeker); ok && size >= 0 {
		d.seeker = s
	}
	return d
}

// decodeBinary reads one serialized NetParameter (a .caffemodel) from r,
// which holds size bytes, or an unknown number when size is -1.
//
// The message is returned as stored: V0 and V1 layers stay in Layers. The
// second result lists the field number (100 for layer, 2 for layers) of
// each top-level layer entry in file order. Layer fields other than blobs
// are decoded by proto.Unmarshal, so unknown fields are kept as
// protobuf-go keeps them. A layer field whose wire type disagrees with
// caffe.proto is kept as an unknown field too, and reported in one
// NoteUnknown per layer. Blobs are decoded here, streaming: float values
// are read straight into BlobProto.Data, and double_data and NVIDIA
// Caffe's raw_data are converted to float32 in Data with one NoteConverted
// per layer. A blob field with the wrong wire type is a *FormatError.
// Blob value counts are not checked against shapes; use CheckBlob for that.
//
// With structureOnly, blob shapes are read and values are skipped, by
// seeking when r is an io.Seeker and size is known, so Data and Diff stay
// nil.
//
// Errors for malformed input are *FormatError or *UnsupportedError. Their
// Location.Layer is the layer's name when the name was read before the
// error, otherwise "#i" with i the 0-based position of the layer among the
// file's top-level layer entries. Location.Blob is the 0-based index of the
// blob in the layer's blobs (for V0 layers, in the nested layer's blobs).
func decodeBinary(r io.Reader, size int64, file string, structureOnly bool) (*caffepb.NetParameter, []protowire.Number, []Note, error) {
	d := newDecoder(r, size, file, "Caffe binary model (.caffemodel)")
	d.structureOnly = structureOnly
	net, order, err := d.readNet()
	if err != nil {
		return nil, nil, nil, err
	}
	return net, order, d.notes, nil
}

func (d *decoder) readNet() (*caffepb.NetParameter, []protowire.Number, error) {
	if err := d.checkSignature(); err != nil {
		return nil, nil, err
	}
	end := d.inputEnd()

	var (
		order  []protowire.Number
		layers []*caffepb.LayerParameter
		v1     []*caffepb.V1LayerParameter
		fields fieldBuffer // top-level fields other than layers
	)
	netDesc := (&caffepb.NetParameter{}).ProtoReflect().Descriptor()
	for {
		done, err := d.atEnd(end)
		if err != nil {
			return nil, nil, err
		}
		if done {
			break
		}

		tagOff := d.off
		num, typ, err := d.readTag(end)
		if err != nil {
			return nil, nil, err
		}
		if num != netLayerNumber && num != netLayersNumber {
			if err := d.copyCheckedField(&fields, netDesc, num, typ, tagOff, end); err != nil {
				return nil, nil, err
			}
			continue
		}

		if typ != protowire.BytesType {
			return nil, nil, d.corrupt(tagOff, "layer field %d has wire type %s, want length-delimited", num, wireTypeName(typ))
		}
		d.layer = fmt.Sprintf("#%d", len(order))
		msgEnd, err := d.readLength(end)
		if err != nil {
			return nil, nil, err
		}
		if num == netLayerNumber {
			l, err := d.readLayer(tagOff, msgEnd)
			if err != nil {
				return nil, nil, err
			}
			layers = append(layers, l)
		} else {
			l, err := d.readV1Layer(tagOff, msgEnd)
			if err != nil {
				return nil, nil, err
			}
			v1 = append(v1, l)
		}
		order = append(order, num)
		d.layer = ""
	}

	net := &caffepb.NetParameter{}
	if err := d.unmarshalFields(&fields, net); err != nil {
		return nil, nil, err
	}
	net.Layer = layers
	net.Layers = v1
	return net, order, nil
}

// inputEnd returns the end offset of the input.
func (d *decoder) inputEnd() int64 {
	if d.size < 0 {
		return noLimit
	}
	return d.size
}

// checkSignature rejects empty input and files of other formats with a
// message that names the format.
func (d *decoder) checkSignature() error {
	head, err := d.br.Peek(len(hdf5Signature))
	if err != nil && err != io.EOF {
		return d.ioError(err)
	}
	switch {
	case len(head) == 0 || d.size == 0:
		return &FormatError{
			Location: d.loc(0),
			Msg:      "empty file, expected a " + d.kind,
			Hint:     "the file is empty; download or copy it again",
		}
	case bytes.HasPrefix(head, hdf5Signature):
		return &UnsupportedError{
			Location: d.loc(0),
			What:     "HDF5 file (Caffe's snapshot_format: HDF5)",
			Hint:     "convert it to a binary protobuf file, e.g. load it with pycaffe caffe.Net(prototxt, file, caffe.TEST) and call net.save(\"out.caffemodel\")",
		}
	case bytes.HasPrefix(head, numpySignature):
		return &UnsupportedError{
			Location: d.loc(0),
			What:     "NumPy .npy file",
			Hint:     "convert the array to a BlobProto .binaryproto file, or pass the .binaryproto file instead",
		}
	}
	return nil
}

// layerKind describes where blobs sit in one of the layer messages.
type layerKind struct {
	desc      protoreflect.MessageDescriptor
	blobField protowire.Number
	nameField protowire.Number
}

var (
	kindLayer   = newLayerKind(&caffepb.LayerParameter{}, layerBlobs)
	kindV1Layer = newLayerKind(&caffepb.V1LayerParameter{}, v1LayerBlobs)
	kindV0Layer = newLayerKind(&caffepb.V0LayerParameter{}, v0LayerBlobs)
)

func newLayerKind(m proto.Message, blobs protowire.Number) layerKind {
	desc := m.ProtoReflect().Descriptor()
	return layerKind{
		desc:      desc,
		blobField: blobs,
		nameField: desc.Fields().ByName("name").Number(),
	}
}

// layerFields collects what one layer message contains while it is read.
type layerFields struct {
	fields fieldBuffer
	blobs  []*caffepb.BlobProto
	name   string
	named  bool
}

// readLayer reads a LayerParameter whose bytes end at end.
func (d *decoder) readLayer(start, end int64) (*caffepb.LayerParameter, error) {
	var lf layerFields
	if err := d.walkLayer(kindLayer, &lf, end, nil); err != nil {
		return nil, err
	}
	l := &caffepb.LayerParameter{}
	if err := d.unmarshalFields(&lf.fields, l); err != nil {
		return nil, err
	}
	l.Blobs = lf.blobs
	d.finishLayer(start, lf)
	return l, nil
}

// readV1Layer reads a V1LayerParameter whose bytes end at end, including
// the blobs of a nested V0LayerParameter.
func (d *decoder) readV1Layer(start, end int64) (*caffepb.V1LayerParameter, error) {
	var lf, v0 layerFields
	hasV0 := false
	nested := func(num protowire.Number, typ protowire.Type, tagOff int64) (bool, error) {
		if num != v1LayerV0 || typ != protowire.BytesType {
			return false, nil
		}
		v0End, err := d.readLength(end)
		if err != nil {
			return true, err
		}
		hasV0 = true
		return true, d.walkLayer(kindV0Layer, &v0, v0End, nil)
	}
	if err := d.walkLayer(kindV1Layer, &lf, end, nested); err != nil {
		return nil, err
	}

	l := &caffepb.V1LayerParameter{}
	if err := d.unmarshalFields(&lf.fields, l); err != nil {
		return nil, err
	}
	l.Blobs = lf.blobs
	if hasV0 {
		l.Layer = &caffepb.V0LayerParameter{}
		if err := d.unmarshalFields(&v0.fields, l.Layer); err != nil {
			return nil, err
		}
		l.Layer.Blobs = v0.blobs
	}
	if !lf.named && v0.named {
		lf.name, lf.named = v0.name, true
	}
	d.finishLayer(start, lf)
	return l, nil
}

// walkLayer reads the fields of a layer message up to end: blobs are
// decoded into lf.blobs and every other field is copied to lf.fields.
// nested, when non-nil, gets the first look at each field and reports
// whether it consumed the field.
func (d *decoder) walkLayer(kind layerKind, lf *layerFields, end int64,
	nested func(protowire.Number, protowire.Type, int64) (bool, error)) error {
	for d.off < end {
		tagOff := d.off
		num, typ, err := d.readTag(end)
		if err != nil {
			return err
		}

		if nested != nil {
			done, err := nested(num, typ, tagOff)
			if err != nil {
				return err
			}
			if done {
				continue
			}
		}

		switch num {
		case kind.blobField:
			if typ != protowire.BytesType {
				return d.corrupt(tagOff, "blobs field %d has wire type %s, want length-delimited", num, wireTypeName(typ))
			}
			blobEnd, err := d.readLength(end)
			if err != nil {
				return err
			}
			d.blob = len(lf.blobs)
			b, err := d.readBlob(blobEnd)
			if err != nil {
				return err
			}
			lf.blobs = append(lf.blobs, b)
			d.blob = -1

		case kind.nameField:
			before := len(lf.fields.data)
			if err := d.copyCheckedField(&lf.fields, kind.desc, num, typ, tagOff, end); err != nil {
				return err
			}
			if typ == protowire.BytesType && len(lf.fields.data) > before {
				name, n := protowire.ConsumeBytes(lf.fields.data[before+protowire.SizeTag(num):])
				if n > 0 && !lf.named {
					lf.name, lf.named = string(name), true
					d.layer = lf.name
				}
			}

		default:
			if err := d.copyCheckedField(&lf.fields, kind.desc, num, typ, tagOff, end); err != nil {
				return err
			}
		}
	}
	return nil
}

// finishLayer labels the layer's notes with its name, which may have come
// after the fields the notes are about, and records its conversions.
func (d *decoder) finishLayer(start int64, lf layerFields) {
	label := d.layer
	if lf.named {
		label = lf.name
	}
	for _, n := range d.layerNotes {
		n.Layer = label
		d.notes = append(d.notes, n)
	}
	d.layerNotes = d.layerNotes[:0]

	if len(d.clashes) > 0 {
		loc := d.loc(d.clashOff)
		loc.Layer = label
		msg := "kept as unknown fields because their wire types disagree with caffe.proto: " + strings.Join(d.clashes, ", ")
		d.notes = append(d.notes, Note{Location: loc, Kind: NoteUnknown, Message: msg})
		d.clashes = d.clashes[:0]
	}
	if len(d.converted) > 0 {
		loc := d.loc(start)
		loc.Layer = label
		msg := "converted to float32: " + strings.Join(d.converted, ", ")
		d.notes = append(d.notes, Note{Location: loc, Kind: NoteConverted, Message: msg})
		d.converted = d.converted[:0]
	}
}

// addNote records a note about the current position. Inside a layer it
// waits until the layer's name is known.
func (d *decoder) addNote(off int64, kind NoteKind, format string, args ...any) {
	n := Note{Location: d.loc(off), Kind: kind, Message: fmt.Sprintf(format, args...)}
	if d.layer != "" {
		d.layerNotes = append(d.layerNotes, n)
		return
	}
	d.notes = append(d.notes, n)
}

// fieldBuffer holds encoded fields for proto.Unmarshal, with the file
// offset of each field so that an error can name the field's offset.
type fieldBuffer struct {
	data   []byte
	starts []int   // start of each field in data
	offs   []int64 // file offset of each field's tag
}

// unmarshalFields decodes the buffered fields into m. On failure it finds
// the first field that does not decode alone, to report its offset.
func (d *decoder) unmarshalFields(fb *fieldBuffer, m proto.Message) error {
	err := proto.Unmarshal(fb.data, m)
	if err == nil {
		return nil
	}
	off := int64(-1)
	for i, start := range fb.starts {
		stop := len(fb.data)
		if i+1 < len(fb.starts) {
			stop = fb.starts[i+1]
		}
		probe := m.ProtoReflect().Type().New().Interface()
		if proto.Unmarshal(fb.data[start:stop], probe) != nil {
			off = fb.offs[i]
			break
		}
	}
	return d.corrupt(off, "invalid %s field: %v",
		m.ProtoReflect().Descriptor().Name(), err)
}

// copyCheckedField copies a field of a message described by desc into fb.
// A field whose wire type disagrees with the schema is copied too, so that
// proto.Unmarshal keeps it as an unknown field as protobuf-go does for the
// whole file, and it is reported in a NoteUnknown.
func (d *decoder) copyCheckedField(fb *fieldBuffer, desc protoreflect.MessageDescriptor,
	num protowire.Number, typ protowire.Type, tagOff, end int64) error {
	if fd := desc.Fields().ByNumber(num); fd != nil && !wireTypeFits(fd, typ) {
		c := fmt.Sprintf("field %d %s.%s (%s, declared %s) at byte offset %d",
			num, desc.Name(), fd.Name(), wireTypeName(typ), fd.Kind(), tagOff)
		if d.layer == "" {
			d.addNote(tagOff, NoteUnknown, "kept as an unknown field because its wire type disagrees with caffe.proto: %s", c)
		} else {
			if len(d.clashes) == 0 {
				d.clashOff = tagOff
			}
			d.clashes = append(d.clashes, c)
		}
	}
	fb.starts = append(fb.starts, len(fb.data))
	fb.offs = append(fb.offs, tagOff)
	return d.copyField(&fb.data, num, typ, end)
}

// wireTypeFits reports whether a field of typ can hold a value of fd.
// Repeated scalar numbers may also be packed (length-delimited).
func wireTypeFits(fd protoreflect.FieldDescriptor, typ protowire.Type) bool {
	var want protowire.Type
	switch fd.Kind() {
	case protoreflect.BoolKind, protoreflect.EnumKind,
		protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Uint32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Uint64Kind:
		want = protowire.VarintType
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		want = protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		want = protowire.Fixed64Type
	case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.MessageKind:
		return typ == protowire.BytesType
	case protoreflect.GroupKind:
		return typ == protowire.StartGroupType
	default:
		return true
	}
	return typ == want || (fd.IsList() && typ == protowire.BytesType)
}

func wireTypeName(typ protowire.Type) string {
	switch typ {
	case protowire.VarintType:
		return "varint"
	case protowire.Fixed32Type:
		return "fixed32"
	case protowire.Fixed64Type:
		return "fixed64"
	case protowire.BytesType:
		return "length-delimited"
	case protowire.StartGroupType:
		return "start-group"
	case protowire.EndGroupType:
		return "end-group"
	}
	return fmt.Sprintf("%d (invalid)", typ)
}

// copyField reads the value of a field whose tag was just read and appends
// the tag and the value's encoded bytes to *dst. The tag is re-encoded and
// the value is copied byte for byte, as protobuf-go does for unknown
// fields, so that proto.Unmarshal of *dst keeps what it would keep from
// the whole file.
func (d *decoder) copyField(dst *[]byte, num protowire.Number, typ protowire.Type, end int64) error {
	*dst = protowire.AppendTag(*dst, num, typ)
	return d.copyValue(dst, num, typ, end, 0)
}

// copyValue appends the encoded bytes of a field value to *dst. depth
// counts the enclosing groups.
func (d *decoder) copyValue(dst *[]byte, num protowire.Number, typ protowire.Type, end int64, depth int) error {
	switch typ {
	case protowire.VarintType:
		_, err := d.readVarintTo(end, dst)
		return err

	case protowire.Fixed32Type, protowire.Fixed64Type:
		n := int64(4)
		if typ == protowire.Fixed64Type {
			n = 8
		}
		if err := d.checkRemaining(n, end); err != nil {
			return err
		}
		var err error
		*dst, err = d.appendBytes(*dst, n)
		return err

	case protowire.BytesType:
		valueEnd, err := d.readLengthTo(end, dst)
		if err != nil {
			return err
		}
		*dst, err = d.appendBytes(*dst, valueEnd-d.off)
		return err

	case protowire.StartGroupType:
		if depth >= maxGroupDepth {
			return d.corrupt(d.off, "groups nested more than %d deep", maxGroupDepth)
		}
		for {
			tagOff := d.off
			inner, innerTyp, err := d.readTagTo(end, dst)
			if err != nil {
				return err
			}
			if innerTyp == protowire.EndGroupType {
				if inner != num {
					return d.corrupt(tagOff, "end-group tag of field %d inside group field %d", inner, num)
				}
				return nil
			}
			if err := d.copyValue(dst, inner, innerTyp, end, depth+1); err != nil {
				return err
			}
		}

	case protowire.EndGroupType:
		return d.corrupt(d.off, "end-group tag of field %d without a start-group tag", num)
	}
	return d.corrupt(d.off, "invalid wire type %d in field %d", typ, num)
}

// atEnd reports whether the message that ends at end is complete. With an
// unknown end (noLimit) that is the end of the input.
func (d *decoder) atEnd(end int64) (bool, error) {
	if end != noLimit {
		return d.off >= end, nil
	}
	_, err := d.br.Peek(1)
	if err == io.EOF {
		return true, nil
	}
	if err != nil {
		return false, d.ioError(err)
	}
	return false, nil
}

// readVarint reads a varint that must end by end.
func (d *decoder) readVarint(end int64) (uint64, error) {
	return d.readVarintTo(end, nil)
}

// readVarintTo reads a varint that must end by end and, when raw is not
// nil, appends its encoded bytes to *raw.
func (d *decoder) readVarintTo(end int64, raw *[]byte) (uint64, error) {
	want := min(int64(binary.MaxVarintLen64), end-d.off)
	b, err := d.br.Peek(int(want))
	if err != nil && err != io.EOF {
		return 0, d.ioError(err)
	}
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		if len(b) < binary.MaxVarintLen64 {
			return 0, d.truncated(d.off+int64(len(b)), "a varint that starts at byte offset %d", d.off)
		}
		return 0, d.corrupt(d.off, "invalid varint: longer than 64 bits")
	}
	if raw != nil {
		*raw = append(*raw, b[:n]...)
	}
	d.discard(n)
	return v, nil
}

// readTag reads a field tag and checks its field number and wire type
// with the rules of protobuf-go's decoder.
func (d *decoder) readTag(end int64) (protowire.Number, protowire.Type, error) {
	return d.readTagTo(end, nil)
}

// readTagTo is readTag that appends the tag's encoded bytes to *raw when
// raw is not nil.
func (d *decoder) readTagTo(end int64, raw *[]byte) (protowire.Number, protowire.Type, error) {
	off := d.off
	v, err := d.readVarintTo(end, raw)
	if err != nil {
		return 0, 0, err
	}
	if n := v >> 3; n < uint64(protowire.MinValidNumber) || n > uint64(protowire.MaxValidNumber) {
		return 0, 0, d.corrupt(off, "invalid field number %d", n)
	}
	num, typ := protowire.Number(v>>3), protowire.Type(v&7)
	if typ > protowire.Fixed32Type {
		return 0, 0, d.corrupt(off, "invalid wire type %d in field %d", typ, num)
	}
	return num, typ, nil
}

// readLength reads the length of a length-delimited field, checks that
// the value fits before end, and returns the value's end offset. Nothing is
// allocated from the length here.
func (d *decoder) readLength(end int64) (int64, error) {
	return d.readLengthTo(end, nil)
}

// readLengthTo is readLength that appends the length's encoded bytes to
// *raw when raw is not nil.
func (d *decoder) readLengthTo(end int64, raw *[]byte) (int64, error) {
	off := d.off
	v, err := d.readVarintTo(end, raw)
	if err != nil {
		return 0, err
	}
	left := end - d.off
	if v <= uint64(left) {
		return d.off + int64(v), nil
	}
	switch {
	case end == noLimit:
		return 0, d.corrupt(off, "invalid length %d", v)
	case end == d.size:
		return 0, d.truncated(off, "a field of %d bytes with %d bytes left in the file", v, left)
	}
	return 0, d.corrupt(off, "field length %d exceeds the %d bytes left in the enclosing message", v, left)
}

// checkRemaining fails unless n more bytes fit before end.
func (d *decoder) checkRemaining(n, end int64) error {
	if n <= end-d.off {
		return nil
	}
	if end == d.size {
		return d.truncated(d.off, "a %d-byte value with %d bytes left in the file", n, end-d.off)
	}
	return d.corrupt(d.off, "a %d-byte value exceeds the %d bytes left in the enclosing message", n, end-d.off)
}

// next returns the next n bytes (n at most readBufferSize), valid until
// the next read.
func (d *decoder) next(n int) ([]byte, error) {
	b, err := d.br.Peek(n)
	if len(b) < n {
		if err != nil && err != io.EOF {
			return nil, d.ioError(err)
		}
		return nil, d.truncated(d.off+int64(len(b)), "a %d-byte value that starts at byte offset %d", n, d.off)
	}
	d.discard(n)
	return b, nil
}

// readChunk reads n bytes (n at most maxChunk) into the scratch buffer,
// valid until the next readChunk.
func (d *decoder) readChunk(n int64) ([]byte, error) {
	if int64(cap(d.scratch)) < n {
		d.scratch = make([]byte, n)
	}
	b := d.scratch[:n]
	return b, d.readFull(b)
}

// appendBytes appends the next n bytes to dst. Input of unknown size is
// read in steps of at most maxChunk, so a forged length cannot allocate
// memory ahead of the bytes that arrive.
func (d *decoder) appendBytes(dst []byte, n int64) ([]byte, error) {
	for n > 0 {
		chunk := n
		if d.size < 0 {
			chunk = min(n, maxChunk)
		}
		if chunk > int64(math.MaxInt-len(dst)) {
			return nil, d.corrupt(d.off, "a field of %d bytes is larger than this platform can address", n)
		}
		start := len(dst)
		dst = slices.Grow(dst, int(chunk))[:start+int(chunk)]
		if err := d.readFull(dst[start:]); err != nil {
			return nil, err
		}
		n -= chunk
	}
	return dst, nil
}

// readFull fills p from the input.
func (d *decoder) readFull(p []byte) error {
	start := d.off
	n, err := io.ReadFull(d.br, p)
	d.off += int64(n)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return d.truncated(d.off, "%d bytes that start at byte offset %d", len(p), start)
	}
	if err != nil {
		return d.ioError(err)
	}
	return nil
}

// discard drops n bytes that were peeked.
func (d *decoder) discard(n int) {
	// bufio.Reader.Discard fails only for bytes not yet read, and these were peeked.
	_, _ = d.br.Discard(n)
	d.off += int64(n)
}

// skip moves past n bytes that the caller checked against the enclosing
// end. A seekable input of known size seeks past bytes not yet buffered.
func (d *decoder) skip(n int64) error {
	buffered := int64(d.br.Buffered())
	if n > buffered && d.seeker != nil {
		d.discard(int(buffered))
		if _, err := d.seeker.Seek(n-buffered, io.SeekCurrent); err != nil {
			return d.ioError(err)
		}
		d.br.Reset(d.src)
		d.off += n - buffered
		return nil
	}

	start := d.off
	for n > 0 {
		m, err := d.br.Discard(int(min(n, math.MaxInt32)))
		d.off += int64(m)
		n -= int64(m)
		if err == io.EOF {
			return d.truncated(d.off, "%d bytes that start at byte offset %d", n+d.off-start, start)
		}
		if err != nil {
			return d.ioError(err)
		}
	}
	return nil
}

// loc returns the location of offset off in the current layer and blob.
func (d *decoder) loc(off int64) Location {
	l := NoLocation(d.file)
	l.Offset = off
	l.Layer = d.layer
	l.Blob = d.blob
	return l
}

// corrupt returns a FormatError for invalid bytes at off.
func (d *decoder) corrupt(off int64, format string, args ...any) error {
	return &FormatError{
		Location: d.loc(off),
		Msg:      fmt.Sprintf(format, args...),
		Hint:     "the file is corrupt or is not a " + d.kind + "; download or copy it again",
	}
}

// truncated returns a FormatError for input that ends at off, before the
// item that what describes.
func (d *decoder) truncated(off int64, format string, args ...any) error {
	return &FormatError{
		Location: d.loc(off),
		Msg:      "unexpected end of file while reading " + fmt.Sprintf(format, args...),
		Hint:     "the file is truncated or is not a " + d.kind + "; download or copy it again",
	}
}

// ioError wraps a read error that is not about the format.
func (d *decoder) ioError(err error) error {
	return fmt.Errorf("caffe: %s: read failed at byte offset %d: %w", d.file, d.off, err)
}
