package caffe

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
)

const writeBufferSize = 64 << 10

var deterministic = proto.MarshalOptions{Deterministic: true}

// encodeBinary writes p, a net in the current format, as a binary
// NetParameter (.caffemodel).
//
// It streams: lengths are computed up front and float values are written
// from the slices' memory, so nothing the size of the weights is buffered.
// The output equals proto.MarshalOptions{Deterministic: true}.Marshal(p)
// byte for byte: fields in field-number order, blobs at their field
// number inside each layer, unknown fields last in each message.
//
// It fails when p.Layers holds V1 layers (upgrade the net first) and for a
// blob that has a non-empty shape but no values, as after a structure-only
// read, because writing it would lose the weights.
func encodeBinary(w io.Writer, p *caffepb.NetParameter) error {
	if n := len(p.GetLayers()); n > 0 {
		return fmt.Errorf("caffe: cannot write a net with %d V1 layers in field layers; upgrade it to the current format first", n)
	}
	layers := make([]layerPlan, len(p.GetLayer()))
	for i, l := range p.GetLayer() {
		var err error
		if layers[i], err = planLayer(l, i); err != nil {
			return err
		}
	}

	head, err := deterministic.Marshal(messageWithout(p, netLayerNumber))
	if err != nil {
		return fmt.Errorf("caffe: encoding net parameters: %w", err)
	}

	bw := bufio.NewWriterSize(w, writeBufferSize)
	if _, err := bw.Write(head); err != nil {
		return err
	}
	for _, lp := range layers {
		if err := writeLayer(bw, lp); err != nil {
			return err
		}
	}
	if _, err := bw.Write(p.ProtoReflect().GetUnknown()); err != nil {
		return err
	}
	return bw.Flush()
}

// messageWithout returns a shallow copy of m's known fields other than
// field skip. Unknown fields are left out, so the caller can place them.
func messageWithout(m proto.Message, skip protowire.Number) proto.Message {
	src := m.ProtoReflect()
	dst := src.Type().New()
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Number() != skip {
			dst.Set(fd, v)
		}
		return true
	})
	return dst.Interface()
}

// layerPlan is a LayerParameter ready to write: its encoded fields other
// than blobs, split where field 7 (blobs) belongs, and its blobs.
type layerPlan struct {
	before, after []byte // known fields numbered below and above 7
	unknown       []byte
	blobs         []blobPlan
	size          int // encoded size of the whole layer message
}

func planLayer(l *caffepb.LayerParameter, index int) (layerPlan, error) {
	if l == nil {
		return layerPlan{}, fmt.Errorf("caffe: layer %d is nil", index)
	}
	known, err := deterministic.Marshal(messageWithout(l, layerBlobs))
	if err != nil {
		return layerPlan{}, fmt.Errorf("caffe: encoding layer %q: %w", l.GetName(), err)
	}
	split := splitBefore(known, layerBlobs)
	lp := layerPlan{
		before:  known[:split],
		after:   known[split:],
		unknown: l.ProtoReflect().GetUnknown(),
	}
	lp.size = len(known) + len(lp.unknown)
	for i, b := range l.GetBlobs() {
		bp, err := planBlob(b)
		if err != nil {
			return layerPlan{}, fmt.Errorf("caffe: layer %q blob %d: %w", l.GetName(), i, err)
		}
		lp.blobs = append(lp.blobs, bp)
		lp.size += protowire.SizeTag(layerBlobs) + protowire.SizeVarint(uint64(bp.size)) + bp.size
	}
	return lp, nil
}

// splitBefore returns the offset of the first field in b, a deterministic
// encoding with fields in number order, whose number is above num.
func splitBefore(b []byte, num protowire.Number) int {
	off := 0
	for off < len(b) {
		n, _, size := protowire.ConsumeField(b[off:])
		if size < 0 || n > num {
			break
		}
		off += size
	}
	return off
}

func writeLayer(bw *bufio.Writer, lp layerPlan) error {
	var hdr []byte
	hdr = protowire.AppendTag(hdr, netLayerNumber, protowire.BytesType)
	hdr = protowire.AppendVarint(hdr, uint64(lp.size))
	hdr = append(hdr, lp.before...)
	if _, err := bw.Write(hdr); err != nil {
		return err
	}
	for _, bp := range lp.blobs {
		if err := writeField(bw, layerBlobs, bp.size); err != nil {
			return err
		}
		if err := writeBlob(bw, bp); err != nil {
			return err
		}
	}
	if _, err := bw.Write(lp.after); err != nil {
		return err
	}
	_, err := bw.Write(lp.unknown)
	return err
}

// blobPlan is a BlobProto ready to write.
type blobPlan struct {
	b     *caffepb.BlobProto
	shape []byte // encoded BlobShape, or nil when shape is unset
	size  int    // encoded size of the whole blob message
}

func planBlob(b *caffepb.BlobProto) (blobPlan, error) {
	if b == nil {
		return blobPlan{}, fmt.Errorf("blob is nil")
	}
	if len(b.Data) == 0 && len(b.DoubleData) == 0 && b.RawData == nil && len(blobDims(b)) > 0 {
		if count, err := BlobCount(b); err != nil || count > 0 {
			return blobPlan{}, fmt.Errorf("blob of shape %v has no values, as after a structure-only read; read the net with its weights before writing it", blobDims(b))
		}
	}

	bp := blobPlan{b: b}
	for _, v := range legacyDims(b) {
		if v.set {
			bp.size += protowire.SizeTag(v.num) + protowire.SizeVarint(uint64(int64(v.value)))
		}
	}
	bp.size += packedSize(blobData, len(b.Data), 4)
	bp.size += packedSize(blobDiff, len(b.Diff), 4)
	if b.Shape != nil {
		var err error
		if bp.shape, err = deterministic.Marshal(b.Shape); err != nil {
			return blobPlan{}, fmt.Errorf("encoding blob shape: %w", err)
		}
		bp.size += bytesFieldSize(blobShape, len(bp.shape))
	}
	bp.size += packedSize(blobDoubleData, len(b.DoubleData), 8)
	bp.size += packedSize(blobDoubleDiff, len(b.DoubleDiff), 8)
	for _, t := range rawTypes(b) {
		if t.set {
			bp.size += protowire.SizeTag(t.num) + protowire.SizeVarint(uint64(int64(t.value)))
		}
	}
	if b.RawData != nil {
		bp.size += bytesFieldSize(blobRawData, len(b.RawData))
	}
	if b.RawDiff != nil {
		bp.size += bytesFieldSize(blobRawDiff, len(b.RawDiff))
	}
	bp.size += len(b.ProtoReflect().GetUnknown())
	return bp, nil
}

// varintField is an optional int32 or enum field of BlobProto.
type varintField struct {
	num   protowire.Number
	value int32
	set   bool
}

func legacyDims(b *caffepb.BlobProto) [4]varintField {
	return [4]varintField{
		{blobNum, b.GetNum(), b.Num != nil},
		{blobChannels, b.GetChannels(), b.Channels != nil},
		{blobHeight, b.GetHeight(), b.Height != nil},
		{blobWidth, b.GetWidth(), b.Width != nil},
	}
}

func rawTypes(b *caffepb.BlobProto) [2]varintField {
	return [2]varintField{
		{blobRawDataType, int32(b.GetRawDataType()), b.RawDataType != nil},
		{blobRawDiffType, int32(b.GetRawDiffType()), b.RawDiffType != nil},
	}
}

// packedSize returns the encoded size of a packed repeated field of count
// values of elemSize bytes. An empty field is not written, so its size is 0.
func packedSize(num protowire.Number, count, elemSize int) int {
	if count == 0 {
		return 0
	}
	return bytesFieldSize(num, count*elemSize)
}

func bytesFieldSize(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeVarint(uint64(n)) + n
}

// writeField writes the tag and length of a length-delimited field.
func writeField(bw *bufio.Writer, num protowire.Number, n int) error {
	var hdr [2 * binary.MaxVarintLen64]byte
	b := protowire.AppendTag(hdr[:0], num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	_, err := bw.Write(b)
	return err
}

// writeBlob writes the fields of a BlobProto in field-number order, then
// its unknown fields, as protobuf-go's deterministic Marshal does.
func writeBlob(bw *bufio.Writer, bp blobPlan) error {
	b := bp.b
	var hdr []byte
	for _, v := range legacyDims(b) {
		if v.set {
			hdr = protowire.AppendTag(hdr, v.num, protowire.VarintType)
			hdr = protowire.AppendVarint(hdr, uint64(int64(v.value)))
		}
	}
	if _, err := bw.Write(hdr); err != nil {
		return err
	}

	if err := writeFloats(bw, blobData, b.Data); err != nil {
		return err
	}
	if err := writeFloats(bw, blobDiff, b.Diff); err != nil {
		return err
	}
	if b.Shape != nil {
		if err := writeField(bw, blobShape, len(bp.shape)); err != nil {
			return err
		}
		if _, err := bw.Write(bp.shape); err != nil {
			return err
		}
	}

	if err := writeDoubles(bw, blobDoubleData, b.DoubleData); err != nil {
		return err
	}
	if err := writeDoubles(bw, blobDoubleDiff, b.DoubleDiff); err != nil {
		return err
	}

	hdr = hdr[:0]
	for _, t := range rawTypes(b) {
		if t.set {
			hdr = protowire.AppendTag(hdr, t.num, protowire.VarintType)
			hdr = protowire.AppendVarint(hdr, uint64(int64(t.value)))
		}
	}
	if _, err := bw.Write(hdr); err != nil {
		return err
	}

	for _, raw := range []struct {
		num   protowire.Number
		bytes []byte
	}{{blobRawData, b.RawData}, {blobRawDiff, b.RawDiff}} {
		if raw.bytes == nil {
			continue
		}
		if err := writeField(bw, raw.num, len(raw.bytes)); err != nil {
			return err
		}
		if _, err := bw.Write(raw.bytes); err != nil {
			return err
		}
	}

	_, err := bw.Write(b.ProtoReflect().GetUnknown())
	return err
}

// writeFloats writes values as a packed float field. On little-endian
// hosts the bytes come straight from the slice's memory, and bufio.Writer
// copies at most one buffer of them before it writes the rest directly.
func writeFloats(bw *bufio.Writer, num protowire.Number, values []float32) error {
	if len(values) == 0 {
		return nil
	}
	if err := writeField(bw, num, 4*len(values)); err != nil {
		return err
	}
	if littleEndian {
		_, err := bw.Write(float32Bytes(values))
		return err
	}
	var buf [4096]byte
	for len(values) > 0 {
		n := min(len(values), len(buf)/4)
		for i, v := range values[:n] {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		if _, err := bw.Write(buf[:4*n]); err != nil {
			return err
		}
		values = values[n:]
	}
	return nil
}

// writeDoubles writes values as a packed double field.
func writeDoubles(bw *bufio.Writer, num protowire.Number, values []float64) error {
	if len(values) == 0 {
		return nil
	}
	if err := writeField(bw, num, 8*len(values)); err != nil {
		return err
	}
	var buf [4096]byte
	for len(values) > 0 {
		n := min(len(values), len(buf)/8)
		for i, v := range values[:n] {
			binary.LittleEndian.PutUint64(buf[8*i:], math.Float64bits(v))
		}
		if _, err := bw.Write(buf[:8*n]); err != nil {
			return err
		}
		values = values[n:]
	}
	return nil
}

// encodeBlob writes b as a top-level BlobProto message, the content of a
// .binaryproto mean file.
func encodeBlob(w io.Writer, b *caffepb.BlobProto) error {
	bp, err := planBlob(b)
	if err != nil {
		return fmt.Errorf("caffe: %w", err)
	}
	bw := bufio.NewWriterSize(w, writeBufferSize)
	if err := writeBlob(bw, bp); err != nil {
		return err
	}
	return bw.Flush()
}
