package caffe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
)

func marshalDeterministic(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func encode(t *testing.T, net *caffepb.NetParameter) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := encodeBinary(&buf, net); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// firstDifference returns the first offset at which a and b differ.
func firstDifference(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestEncodeCorpusRoundTrip(t *testing.T) {
	for _, m := range corpusModels(t) {
		t.Run(m.name, func(t *testing.T) {
			net, _, notes := decodeFile(t, m.path, false)
			if len(net.GetLayers()) > 0 {
				t.Skip("V1 file; encodeBinary writes the current format only")
			}

			encoded := encode(t, net)

			if want := marshalDeterministic(t, net); !bytes.Equal(encoded, want) {
				t.Errorf("output differs from deterministic proto.Marshal at byte %d (%d and %d bytes)",
					firstDifference(encoded, want), len(encoded), len(want))
			}
			again, _, _, err := decodeBinary(bytes.NewReader(encoded), int64(len(encoded)), "encoded", false)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(again, net) {
				t.Error("decode, encode, decode changed the net")
			}
			// Caffe's C++ protobuf also writes fields in number order, so
			// an unchanged net comes out as the original bytes, unless it
			// has unknown fields, which protobuf-go writes last.
			if len(notes) > 0 {
				return
			}
			original, err := os.ReadFile(m.path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(encoded, original) {
				t.Errorf("output differs from the original file at byte %d", firstDifference(encoded, original))
			}
		})
	}
}

func TestEncodeFieldsAndUnknowns(t *testing.T) {
	negative := int32(-3)
	blob := &caffepb.BlobProto{
		Num: &negative, Channels: proto.Int32(0), Height: proto.Int32(2), Width: proto.Int32(1),
		Data:        []float32{1, float32(math.NaN()), float32(math.Inf(-1))},
		Diff:        []float32{0.5},
		Shape:       &caffepb.BlobShape{Dim: []int64{3}},
		DoubleData:  []float64{1e300},
		DoubleDiff:  []float64{-2},
		RawDataType: caffepb.Type_FLOAT16.Enum(),
		RawDiffType: caffepb.Type_FLOAT.Enum(),
		RawData:     []byte{},
		RawDiff:     []byte{1, 2, 3, 4},
	}
	blob.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 5))
	emptyShape := &caffepb.BlobProto{Shape: &caffepb.BlobShape{}, Data: []float32{4}}
	layer := &caffepb.LayerParameter{
		Name:   proto.String("conv1"),
		Type:   proto.String("Convolution"),
		Bottom: []string{"data"},
		Top:    []string{"conv1"},
		Blobs:  []*caffepb.BlobProto{blob, emptyShape, {}},
		ConvolutionParam: &caffepb.ConvolutionParameter{
			NumOutput:  proto.Uint32(8),
			KernelSize: []uint32{3},
		},
	}
	layer.ProtoReflect().SetUnknown(protowire.AppendFixed32(protowire.AppendTag(nil, 3, protowire.Fixed32Type), 7))
	net := &caffepb.NetParameter{
		Name:  proto.String("net"),
		Input: []string{"data"},
		State: &caffepb.NetState{Phase: caffepb.Phase_TEST.Enum()},
		Layer: []*caffepb.LayerParameter{layer, {Name: proto.String("empty")}},
	}
	net.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, 5000, protowire.BytesType), []byte("x")))

	encoded := encode(t, net)

	if want := marshalDeterministic(t, net); !bytes.Equal(encoded, want) {
		t.Errorf("output differs from deterministic proto.Marshal at byte %d", firstDifference(encoded, want))
	}
	again := &caffepb.NetParameter{}
	if err := proto.Unmarshal(encoded, again); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(again, net) {
		t.Error("proto.Unmarshal of the output gives another net")
	}
}

// TestBlobProtoFields fails when caffe.proto gains a BlobProto field that
// writeBlob does not write.
func TestBlobProtoFields(t *testing.T) {
	handled := map[protowire.Number]bool{
		blobNum: true, blobChannels: true, blobHeight: true, blobWidth: true,
		blobData: true, blobDiff: true, blobShape: true, blobDoubleData: true, blobDoubleDiff: true,
		blobRawDataType: true, blobRawDiffType: true, blobRawData: true, blobRawDiff: true,
	}
	fields := (&caffepb.BlobProto{}).ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		if fd := fields.Get(i); !handled[fd.Number()] {
			t.Errorf("BlobProto field %d (%s) is not handled by the blob encoder and decoder", fd.Number(), fd.Name())
		}
	}
	if fields.Len() != len(handled) {
		t.Errorf("BlobProto has %d fields, the encoder handles %d", fields.Len(), len(handled))
	}
}

func TestEncodeRejects(t *testing.T) {
	tests := []struct {
		name    string
		net     *caffepb.NetParameter
		message string
	}{
		{"V1 layers", &caffepb.NetParameter{Layers: []*caffepb.V1LayerParameter{{Name: proto.String("fc")}}}, "upgrade"},
		{"no values", &caffepb.NetParameter{Layer: []*caffepb.LayerParameter{{
			Name:  proto.String("fc"),
			Blobs: []*caffepb.BlobProto{{Shape: &caffepb.BlobShape{Dim: []int64{10, 20}}}},
		}}}, "has no values"},
		{"legacy dims without values", &caffepb.NetParameter{Layer: []*caffepb.LayerParameter{{
			Name:  proto.String("fc"),
			Blobs: []*caffepb.BlobProto{{Num: proto.Int32(1), Channels: proto.Int32(1), Height: proto.Int32(2), Width: proto.Int32(2)}},
		}}}, "has no values"},
		{"nil layer", &caffepb.NetParameter{Layer: []*caffepb.LayerParameter{nil}}, "nil"},
		{"nil blob", &caffepb.NetParameter{Layer: []*caffepb.LayerParameter{{Blobs: []*caffepb.BlobProto{nil}}}}, "nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer

			err := encodeBinary(&buf, tt.net)

			if err == nil {
				t.Fatal("encodeBinary succeeded")
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not contain %q", err, tt.message)
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %d bytes before failing", buf.Len())
			}
		})
	}
}

func TestEncodeZeroCountBlob(t *testing.T) {
	net := &caffepb.NetParameter{Layer: []*caffepb.LayerParameter{{
		Name:  proto.String("empty"),
		Blobs: []*caffepb.BlobProto{{Shape: &caffepb.BlobShape{Dim: []int64{0, 5}}}},
	}}}

	encoded := encode(t, net)

	if want := marshalDeterministic(t, net); !bytes.Equal(encoded, want) {
		t.Error("output differs from deterministic proto.Marshal")
	}
}

func TestEncodeStructureOnlyRead(t *testing.T) {
	data := netOf("conv1", wire(shapeOf(2)).bytes(blobData, packedFloats(1, 2)))
	net, _, _, err := decodeBinary(bytes.NewReader(data), int64(len(data)), "s", true)
	if err != nil {
		t.Fatal(err)
	}

	err = encodeBinary(io.Discard, net)

	if err == nil || !strings.Contains(err.Error(), "structure-only") {
		t.Errorf("error %v, want a rejection that names structure-only reads", err)
	}
}

type failingWriter struct{ after int }

var errDiskFull = errors.New("disk full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.after {
		n := w.after
		w.after = 0
		return n, errDiskFull
	}
	w.after -= len(p)
	return len(p), nil
}

func TestEncodeWriteError(t *testing.T) {
	values := make([]float32, 1<<20)
	net := &caffepb.NetParameter{Layer: []*caffepb.LayerParameter{{
		Name:  proto.String("fc"),
		Blobs: []*caffepb.BlobProto{{Shape: &caffepb.BlobShape{Dim: []int64{1 << 20}}, Data: values}},
	}}}
	for _, after := range []int{0, 10, writeBufferSize + 3, 3 << 20} {
		err := encodeBinary(&failingWriter{after: after}, net)

		if !errors.Is(err, errDiskFull) {
			t.Errorf("failure after %d bytes: error %v, want the writer's error", after, err)
		}
	}
}

// TestEncodeStreams checks that writing does not buffer the weights: the
// heap grows by far less than the 64 MiB of values written.
func TestEncodeStreams(t *testing.T) {
	const count = 16 << 20
	net := &caffepb.NetParameter{Layer: []*caffepb.LayerParameter{{
		Name:  proto.String("fc"),
		Blobs: []*caffepb.BlobProto{{Shape: &caffepb.BlobShape{Dim: []int64{count}}, Data: make([]float32, count)}},
	}}}
	counter := &countingWriter{}

	allocated := allocatedDuring(func() {
		if err := encodeBinary(counter, net); err != nil {
			t.Fatal(err)
		}
	})

	if counter.n < 4*count {
		t.Errorf("wrote %d bytes, want more than %d", counter.n, 4*count)
	}
	if allocated > 1<<20 {
		t.Errorf("encoding allocated %d bytes", allocated)
	}
}

type countingWriter struct{ n int }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	return len(p), nil
}

// TestByteOrderPaths runs the code for big-endian hosts, which converts
// values through binary.LittleEndian instead of using the slices' memory.
// On a little-endian host the conversion is the identity, so the output
// must not change.
func TestByteOrderPaths(t *testing.T) {
	path := corpus.Path(t, "caffemodel", "mtcnn", "det1.caffemodel")
	want, _, _ := decodeFile(t, path, false)
	wantBytes := encode(t, want)
	littleEndian = false
	t.Cleanup(func() { littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1 })

	got, _, _ := decodeFile(t, path, false)
	gotBytes := encode(t, got)

	if !proto.Equal(got, want) {
		t.Error("decoding through the big-endian path gives another net")
	}
	if !bytes.Equal(gotBytes, wantBytes) {
		t.Errorf("encoding through the big-endian path differs at byte %d", firstDifference(gotBytes, wantBytes))
	}
}
