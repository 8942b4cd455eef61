package caffe

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
)

// maxBlobAxes is Caffe's kMaxBlobAxes: Blob::Reshape rejects more axes.
const maxBlobAxes = 32

// BlobShape returns the shape of b as Caffe's Blob::FromProto reads it.
// When any of the legacy fields num, channels, height or width is set, the
// shape is num x channels x height x width (unset ones count as 0), even
// if shape is set too. Otherwise it is shape.dim, which may be empty (a
// scalar). Files written before BlobShape existed (V0 and V1 nets, older
// mean files) use the legacy fields; an InnerProduct weight stored that
// way is 1 x 1 x N x K. Dimensions are not checked; see BlobCount.
func BlobShape(b *caffepb.BlobProto) []int {
	dims := blobDims(b)
	if dims == nil {
		return nil
	}
	shape := make([]int, len(dims))
	for i, d := range dims {
		shape[i] = int(d)
	}
	return shape
}

// blobDims returns the shape of b as int64 values (see BlobShape).
func blobDims(b *caffepb.BlobProto) []int64 {
	if hasLegacyDims(b) {
		return []int64{int64(b.GetNum()), int64(b.GetChannels()), int64(b.GetHeight()), int64(b.GetWidth())}
	}
	return b.GetShape().GetDim()
}

func hasLegacyDims(b *caffepb.BlobProto) bool {
	return b.Num != nil || b.Channels != nil || b.Height != nil || b.Width != nil
}

// BlobCount returns the number of values the shape of b describes: the
// product of its dimensions, 1 for an empty shape (a scalar). It fails for
// a negative dimension and for a product that overflows int.
func BlobCount(b *caffepb.BlobProto) (int, error) {
	count := 1
	for i, d := range blobDims(b) {
		if d < 0 {
			return 0, fmt.Errorf("dimension %d of shape %v is negative", i, blobDims(b))
		}
		if d > 0 && int64(count) > int64(math.MaxInt)/d {
			return 0, fmt.Errorf("shape %v has more values than fit in an int", blobDims(b))
		}
		count *= int(d)
	}
	return count, nil
}

// CheckBlob returns a *FormatError at loc unless b's values agree with its
// shape: len(Data) (or of DoubleData or raw_data when Data is empty) must
// equal BlobCount, and so must len(Diff) when there is a diff. A blob with
// no values and a count of 0 passes; a blob read with structureOnly does
// not, unless its count is 0. Like Caffe, it also rejects shapes of more
// than 32 axes or more than 2^31-1 values.
func CheckBlob(b *caffepb.BlobProto, loc Location) error {
	fail := func(format string, args ...any) error {
		return &FormatError{
			Location: loc,
			Msg:      fmt.Sprintf(format, args...),
			Hint:     "the file is corrupt or was written by a broken tool; download or export the model again",
		}
	}
	dims := blobDims(b)
	if len(dims) > maxBlobAxes {
		return fail("blob shape %v has %d axes; Caffe allows at most %d", dims, len(dims), maxBlobAxes)
	}
	count, err := BlobCount(b)
	if err != nil {
		return fail("invalid blob shape: %v", err)
	}
	if count > math.MaxInt32 {
		return fail("blob shape %v has %d values; Caffe allows at most 2^31-1", dims, count)
	}

	values, source := len(b.Data), "data"
	switch {
	case len(b.DoubleData) > 0:
		values, source = len(b.DoubleData), "double_data"
	case len(b.Data) == 0 && b.RawData != nil:
		values, source = rawValueCount(b), "raw_data"
		if values < 0 {
			return fail("blob has raw_data without a floating-point raw_data_type (%v)", b.RawDataType)
		}
	}
	if values != count {
		return fail("blob has %d values in %s but its shape %v needs %d", values, source, dims, count)
	}

	diff, source := len(b.Diff), "diff"
	if len(b.DoubleDiff) > 0 {
		diff, source = len(b.DoubleDiff), "double_diff"
	}
	if diff > 0 && diff != count {
		return fail("blob has %d values in %s but its shape %v needs %d", diff, source, dims, count)
	}
	return nil
}

// rawValueCount returns how many values raw_data holds for its type, or -1
// when the type is missing or not a floating-point type.
func rawValueCount(b *caffepb.BlobProto) int {
	if b.RawDataType == nil {
		return -1
	}
	size := rawElementSizes[b.GetRawDataType()]
	if size == 0 {
		return -1
	}
	return len(b.RawData) / int(size)
}

// rawElementSizes maps the floating-point values of NVIDIA Caffe's enum
// Type, the types of raw_data and raw_diff, to their size in bytes.
var rawElementSizes = map[caffepb.Type]int64{
	caffepb.Type_DOUBLE:  8,
	caffepb.Type_FLOAT:   4,
	caffepb.Type_FLOAT16: 2,
}

// rawField is a raw_data or raw_diff field and its type field.
type rawField struct {
	name    string    // "raw_data" or "raw_diff"
	bytes   []float32 // the field's bytes, kept in float32-aligned memory
	length  int64     // length of the field in bytes
	off     int64     // offset of the field's tag
	present bool
	typ     caffepb.Type
	hasType bool
}

// blobFields collects the value fields of one BlobProto until the whole
// message was read, because which of them holds the values, and the types
// of raw_data and raw_diff, are only known at its end. Counts include
// values that structureOnly skipped.
type blobFields struct {
	data, diff           []float32
	dataCount, diffCount int64
	dataOff, diffOff     int64 // offsets of the first data and diff fields

	doubleData, doubleDiff           []float32 // converted to float32
	doubleDataCount, doubleDiffCount int64

	rawData, rawDiff rawField

	other fieldBuffer // shape, legacy dims and unknown fields
}

// readBlob reads a BlobProto whose bytes end at end (noLimit: at the end of
// the input).
func (d *decoder) readBlob(end int64) (*caffepb.BlobProto, error) {
	bf := blobFields{rawData: rawField{name: "raw_data"}, rawDiff: rawField{name: "raw_diff"}}
	for {
		done, err := d.atEnd(end)
		if err != nil {
			return nil, err
		}
		if done {
			break
		}
		tagOff := d.off
		num, typ, err := d.readTag(end)
		if err != nil {
			return nil, err
		}
		if err := d.readBlobField(&bf, num, typ, tagOff, end); err != nil {
			return nil, err
		}
	}
	return d.finishBlob(&bf)
}

// readBlobField reads one field of a BlobProto. Unlike layer fields, a
// blob field whose wire type disagrees with caffe.proto is an error,
// because the blob's shape or values would be lost.
func (d *decoder) readBlobField(bf *blobFields, num protowire.Number, typ protowire.Type, tagOff, end int64) error {
	var err error
	switch num {
	case blobNum, blobChannels, blobHeight, blobWidth:
		if typ != protowire.VarintType {
			return d.blobWireTypeError(num, typ, tagOff, "varint")
		}
		return d.copyBlobOther(bf, num, typ, tagOff, end)

	case blobShape:
		if typ != protowire.BytesType {
			return d.blobWireTypeError(num, typ, tagOff, "length-delimited")
		}
		return d.copyBlobOther(bf, num, typ, tagOff, end)

	case blobData, blobDiff:
		if typ != protowire.Fixed32Type && typ != protowire.BytesType {
			return d.blobWireTypeError(num, typ, tagOff, "fixed32 or length-delimited")
		}
		if num == blobData {
			if bf.dataCount == 0 {
				bf.dataOff = tagOff
			}
			bf.data, err = d.readFloats(bf.data, &bf.dataCount, num, typ, end)
		} else {
			if bf.diffCount == 0 {
				bf.diffOff = tagOff
			}
			bf.diff, err = d.readFloats(bf.diff, &bf.diffCount, num, typ, end)
		}
		return err

	case blobDoubleData, blobDoubleDiff:
		if typ != protowire.Fixed64Type && typ != protowire.BytesType {
			return d.blobWireTypeError(num, typ, tagOff, "fixed64 or length-delimited")
		}
		if num == blobDoubleData {
			bf.doubleData, err = d.readDoubles(bf.doubleData, &bf.doubleDataCount, num, typ, end)
		} else {
			bf.doubleDiff, err = d.readDoubles(bf.doubleDiff, &bf.doubleDiffCount, num, typ, end)
		}
		return err

	case blobRawDataType, blobRawDiffType:
		if typ != protowire.VarintType {
			return d.blobWireTypeError(num, typ, tagOff, "varint")
		}
		// The field is also kept in the blob, because without raw bytes
		// the type is an ordinary field; finishBlob clears it otherwise.
		start := len(bf.other.data)
		if err := d.copyBlobOther(bf, num, typ, tagOff, end); err != nil {
			return err
		}
		v, _ := protowire.ConsumeVarint(bf.other.data[start+protowire.SizeTag(num):])
		raw := &bf.rawData
		if num == blobRawDiffType {
			raw = &bf.rawDiff
		}
		// An enum is an int32 on the wire, as protobuf-go decodes it.
		raw.typ, raw.hasType = caffepb.Type(int32(v)), true
		return nil

	case blobRawData, blobRawDiff:
		if typ != protowire.BytesType {
			return d.blobWireTypeError(num, typ, tagOff, "length-delimited")
		}
		raw := &bf.rawData
		if num == blobRawDiff {
			raw = &bf.rawDiff
		}
		valuesEnd, err := d.readLength(end)
		if err != nil {
			return err
		}
		// A later field replaces an earlier one, as for any singular
		// protobuf field.
		n := valuesEnd - d.off
		raw.present, raw.length, raw.off = true, n, tagOff
		if d.structureOnly {
			return d.skip(n)
		}
		raw.bytes, err = d.readRawFloat32(raw.bytes[:0], n)
		return err
	}
	return d.copyBlobOther(bf, num, typ, tagOff, end)
}

func (d *decoder) blobWireTypeError(num protowire.Number, typ protowire.Type, tagOff int64, want string) error {
	return d.corrupt(tagOff, "BlobProto field %d has wire type %s, want %s", num, wireTypeName(typ), want)
}

// copyBlobOther keeps a field for proto.Unmarshal into the BlobProto.
func (d *decoder) copyBlobOther(bf *blobFields, num protowire.Number, typ protowire.Type, tagOff, end int64) error {
	bf.other.starts = append(bf.other.starts, len(bf.other.data))
	bf.other.offs = append(bf.other.offs, tagOff)
	return d.copyField(&bf.other.data, num, typ, end)
}

// finishBlob builds the BlobProto from its fields. Like Blob::FromProto in
// BVLC Caffe and NVIDIA Caffe, it takes the values from double_data when
// that is non-empty, else from data, else from raw_data, and the gradient
// likewise from double_diff, diff or raw_diff. Values it does not take are
// dropped with a NoteSkipped. raw_data and raw_diff never appear in the
// result, nor do their type fields when the raw field is present.
func (d *decoder) finishBlob(bf *blobFields) (*caffepb.BlobProto, error) {
	b := &caffepb.BlobProto{}
	if err := d.unmarshalFields(&bf.other, b); err != nil {
		return nil, err
	}
	if bf.rawData.present {
		b.RawDataType = nil
	}
	if bf.rawDiff.present {
		b.RawDiffType = nil
	}

	useRawData := bf.rawData.present && bf.doubleDataCount == 0 && bf.dataCount == 0
	useRawDiff := bf.rawDiff.present && bf.doubleDiffCount == 0 && bf.diffCount == 0
	for _, use := range []struct {
		raw *rawField
		ok  bool
	}{{&bf.rawData, useRawData}, {&bf.rawDiff, useRawDiff}} {
		if use.ok {
			if _, err := d.rawElementSize(use.raw); err != nil {
				return nil, err
			}
		}
	}
	if d.structureOnly {
		return b, nil
	}

	var err error
	b.Data, err = d.pickValues("data", bf.data, bf.dataCount, bf.dataOff, bf.doubleData, bf.doubleDataCount, &bf.rawData, useRawData)
	if err != nil {
		return nil, err
	}
	b.Diff, err = d.pickValues("diff", bf.diff, bf.diffCount, bf.diffOff, bf.doubleDiff, bf.doubleDiffCount, &bf.rawDiff, useRawDiff)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// pickValues returns the values of one of a blob's value sets (name is
// "data" or "diff") in the order of precedence that finishBlob describes.
func (d *decoder) pickValues(name string, floats []float32, floatCount, floatOff int64,
	doubles []float32, doubleCount int64, raw *rawField, useRaw bool) ([]float32, error) {
	var values []float32
	switch {
	case doubleCount > 0:
		values = doubles
		d.converted = append(d.converted, fmt.Sprintf("blob %d %s from double_%s", d.blob, name, name))
		if floatCount > 0 {
			d.addNote(floatOff, NoteSkipped,
				"blob %d: ignored %d float values in %s because double_%s is present, as Caffe does", d.blob, floatCount, name, name)
		}
	case floatCount > 0:
		values = floats
	case useRaw:
		var err error
		if values, err = d.convertRaw(raw); err != nil {
			return nil, err
		}
		d.converted = append(d.converted, fmt.Sprintf("blob %d %s from %s %s", d.blob, name, raw.typ, raw.name))
	}
	if raw.present && !useRaw {
		d.addNote(raw.off, NoteSkipped,
			"blob %d: ignored %s because %s or double_%s is present, as NVIDIA Caffe does", d.blob, raw.name, name, name)
	}
	return values, nil
}

// rawElementSize checks the type and length of a raw_data or raw_diff
// field and returns the size of one value in bytes.
func (d *decoder) rawElementSize(raw *rawField) (int64, error) {
	if !raw.hasType {
		return 0, &FormatError{
			Location: d.loc(raw.off),
			Msg:      fmt.Sprintf("blob has %s but no %s_type", raw.name, raw.name),
			Hint:     "NVIDIA Caffe always writes the type with the raw bytes; the file is corrupt or was written by another tool",
		}
	}
	size, ok := rawElementSizes[raw.typ]
	if !ok {
		return 0, &UnsupportedError{
			Location: d.loc(raw.off),
			What:     fmt.Sprintf("%s_type %s (%d); only DOUBLE, FLOAT and FLOAT16 hold weights", raw.name, raw.typ, int32(raw.typ)),
			Hint:     "convert the model to float32 with the Caffe fork that wrote it",
		}
	}
	if raw.length%size != 0 {
		return 0, d.corrupt(raw.off, "%s length %d is not a multiple of %d bytes (%s_type %s)",
			raw.name, raw.length, size, raw.name, raw.typ)
	}
	return size, nil
}

// convertRaw returns the values of a raw_data or raw_diff field as float32.
// FLOAT values are used in place.
func (d *decoder) convertRaw(raw *rawField) ([]float32, error) {
	size, err := d.rawElementSize(raw)
	if err != nil {
		return nil, err
	}
	src := float32Bytes(raw.bytes)[:raw.length]
	count := raw.length / size

	switch raw.typ {
	case caffepb.Type_FLOAT:
		values := raw.bytes[:count]
		fixByteOrder(values)
		return values, nil
	case caffepb.Type_FLOAT16:
		values := make([]float32, count)
		for i := range values {
			values[i] = float16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
		}
		return values, nil
	}
	values := make([]float32, count)
	for i := range values {
		values[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:])))
	}
	return values, nil
}

// readFloats appends the values of a data or diff field to dst: one
// fixed32 value, or a packed run of them read straight into the slice's
// memory. *count grows by the number of values, also when structureOnly
// skips them.
func (d *decoder) readFloats(dst []float32, count *int64, num protowire.Number, typ protowire.Type, end int64) ([]float32, error) {
	if typ == protowire.Fixed32Type {
		if err := d.checkRemaining(4, end); err != nil {
			return nil, err
		}
		*count++
		if d.structureOnly {
			return dst, d.skip(4)
		}
		b, err := d.next(4)
		if err != nil {
			return nil, err
		}
		return append(dst, math.Float32frombits(binary.LittleEndian.Uint32(b))), nil
	}

	lenOff := d.off
	valuesEnd, err := d.readLength(end)
	if err != nil {
		return nil, err
	}
	n := valuesEnd - d.off
	if n%4 != 0 {
		return nil, d.corrupt(lenOff, "packed float field %d is %d bytes long, not a multiple of 4", num, n)
	}
	*count += n / 4
	if d.structureOnly {
		return dst, d.skip(n)
	}
	start := len(dst)
	dst, err = d.readRawFloat32(dst, n)
	if err != nil {
		return nil, err
	}
	fixByteOrder(dst[start:])
	return dst, nil
}

// readDoubles appends the values of a double_data or double_diff field to
// dst, converted to float32: one fixed64 value or a packed run of them.
func (d *decoder) readDoubles(dst []float32, count *int64, num protowire.Number, typ protowire.Type, end int64) ([]float32, error) {
	if typ == protowire.Fixed64Type {
		if err := d.checkRemaining(8, end); err != nil {
			return nil, err
		}
		*count++
		if d.structureOnly {
			return dst, d.skip(8)
		}
		b, err := d.next(8)
		if err != nil {
			return nil, err
		}
		return append(dst, float32(math.Float64frombits(binary.LittleEndian.Uint64(b)))), nil
	}

	lenOff := d.off
	valuesEnd, err := d.readLength(end)
	if err != nil {
		return nil, err
	}
	n := valuesEnd - d.off
	if n%8 != 0 {
		return nil, d.corrupt(lenOff, "packed double field %d is %d bytes long, not a multiple of 8", num, n)
	}
	*count += n / 8
	if d.structureOnly {
		return dst, d.skip(n)
	}
	if d.size >= 0 && n/8 <= int64(math.MaxInt-len(dst)) {
		// The length was checked against the input size, so this
		// allocation is backed by bytes in the file.
		dst = slices.Grow(dst, int(n/8))
	}
	for n > 0 {
		chunk := min(n, maxChunk)
		b, err := d.readChunk(chunk)
		if err != nil {
			return nil, err
		}
		for i := 0; i < len(b); i += 8 {
			dst = append(dst, float32(math.Float64frombits(binary.LittleEndian.Uint64(b[i:]))))
		}
		n -= chunk
	}
	return dst, nil
}

// readRawFloat32 reads n bytes into float32 memory appended to dst, the
// last value zero-padded when n is not a multiple of 4. The bytes keep
// file order, so the caller fixes the byte order on big-endian hosts. When
// the input size is known, the bytes are read by one io.ReadFull into one
// allocation. Otherwise the slice grows in steps of at most maxChunk bytes
// as the bytes arrive.
func (d *decoder) readRawFloat32(dst []float32, n int64) ([]float32, error) {
	for n > 0 {
		chunk := n
		if d.size < 0 {
			chunk = min(n, maxChunk)
		}
		count := (chunk + 3) / 4
		if count > int64(math.MaxInt-len(dst)) {
			return nil, d.corrupt(d.off, "a blob of %d bytes is larger than this platform can address", n)
		}
		start := len(dst)
		if len(dst) == 0 && cap(dst) < int(count) {
			// make gets fresh pages from the OS without clearing them,
			// where slices.Grow would clear the memory that the read is
			// about to fill.
			dst = make([]float32, count)
		} else {
			dst = slices.Grow(dst, int(count))[:start+int(count)]
		}
		if err := d.readFull(float32Bytes(dst[start:])[:chunk]); err != nil {
			return nil, err
		}
		n -= chunk
	}
	return dst, nil
}

// float32Bytes returns the memory of s as bytes.
func float32Bytes(s []float32) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 4*len(s))
}

// fixByteOrder converts values read as little-endian bytes to host order.
// NOTE: the big-endian branch here and in writeFloats is tested only on a
// little-endian host, where TestByteOrderPaths forces it.
func fixByteOrder(values []float32) {
	if littleEndian {
		return
	}
	b := float32Bytes(values)
	for i := range values {
		values[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
}

// float16ToFloat32 converts an IEEE 754 half-precision value exactly.
func float16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // infinity or NaN, keeping the NaN payload
		return math.Float32frombits(sign | 0x7f800000 | frac<<13)
	case exp != 0: // normal: rebias the exponent from 15 to 127
		return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
	case frac == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal: frac * 2^-24, exact in float32.
	v := float32(frac) / (1 << 24)
	if sign != 0 {
		v = -v
	}
	return v
}
