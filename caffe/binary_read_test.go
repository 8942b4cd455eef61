package caffe

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
)

// manifestEntry is one row of the corpus MANIFEST.tsv.
type manifestEntry struct {
	path  string // relative to the corpus folder
	notes string // the format_notes column
}

func readManifest(t testing.TB) []manifestEntry {
	t.Helper()
	f, err := os.Open(corpus.Path(t, "MANIFEST.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	var entries []manifestEntry
	s := bufio.NewScanner(f)
	s.Buffer(nil, 1<<20)
	header := true
	for s.Scan() {
		if header {
			header = false
			continue
		}
		cols := strings.Split(s.Text(), "\t")
		if len(cols) < 7 {
			t.Fatalf("MANIFEST.tsv row has %d columns, want at least 7: %q", len(cols), s.Text())
		}
		entries = append(entries, manifestEntry{path: cols[0], notes: cols[6]})
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return entries
}

var storedValuesPattern = regexp.MustCompile(`stored values=(\d+)`)

// corpusModel is a protobuf caffemodel of the corpus and the number of
// values its blobs store according to MANIFEST.tsv.
type corpusModel struct {
	path   string // absolute
	name   string // relative to the corpus folder
	values int
}

// corpusModels returns every corpus file that MANIFEST.tsv gives a
// stored-values total, and checks that every .caffemodel file is one.
func corpusModels(t testing.TB) []corpusModel {
	t.Helper()
	var models []corpusModel
	known := map[string]bool{}
	for _, e := range readManifest(t) {
		m := storedValuesPattern.FindStringSubmatch(e.notes)
		if m == nil {
			continue
		}
		n, err := strconv.Atoi(m[1])
		if err != nil {
			t.Fatal(err)
		}
		path := corpus.Path(t, filepath.FromSlash(e.path))
		models = append(models, corpusModel{path: path, name: e.path, values: n})
		known[path] = true
	}
	for _, p := range corpus.Walk(t, ".caffemodel") {
		if !known[p] {
			t.Errorf("%s has no stored values in MANIFEST.tsv", p)
		}
	}
	if len(models) < 19 {
		t.Fatalf("MANIFEST.tsv lists %d caffemodels with stored values, want at least 19", len(models))
	}
	return models
}

// decodeFile decodes a file with its size known and r an *os.File.
func decodeFile(t testing.TB, path string, structureOnly bool) (*caffepb.NetParameter, []protowire.Number, []Note) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	net, order, notes, err := decodeBinary(f, info.Size(), path, structureOnly)
	if err != nil {
		t.Fatalf("decodeBinary(%s): %v", path, err)
	}
	return net, order, notes
}

// allBlobs returns the blobs of every layer of every generation in net.
func allBlobs(net *caffepb.NetParameter) []*caffepb.BlobProto {
	var blobs []*caffepb.BlobProto
	for _, l := range net.GetLayer() {
		blobs = append(blobs, l.GetBlobs()...)
	}
	for _, l := range net.GetLayers() {
		blobs = append(blobs, l.GetBlobs()...)
		blobs = append(blobs, l.GetLayer().GetBlobs()...)
	}
	return blobs
}

func TestDecodeCorpusValueCounts(t *testing.T) {
	for _, m := range corpusModels(t) {
		t.Run(m.name, func(t *testing.T) {
			net, order, _ := decodeFile(t, m.path, false)

			values := 0
			for i, b := range allBlobs(net) {
				values += len(b.GetData())
				if err := CheckBlob(b, Location{File: m.name, Blob: i, Offset: -1}); err != nil {
					t.Error(err)
				}
			}
			if values != m.values {
				t.Errorf("blobs store %d values, MANIFEST.tsv says %d", values, m.values)
			}
			if got, want := len(order), len(net.GetLayer())+len(net.GetLayers()); got != want {
				t.Errorf("order has %d entries, want one per layer (%d)", got, want)
			}
		})
	}
}

func TestDecodeCorpusMatchesUnmarshal(t *testing.T) {
	for _, m := range corpusModels(t) {
		t.Run(m.name, func(t *testing.T) {
			data, err := os.ReadFile(m.path)
			if err != nil {
				t.Fatal(err)
			}
			want := &caffepb.NetParameter{}
			if err := proto.Unmarshal(data, want); err != nil {
				t.Fatal(err)
			}

			got, _, notes := decodeFile(t, m.path, false)

			for _, n := range notes {
				if n.Kind != NoteUnknown {
					t.Errorf("note for a float32 file: %v", n)
				}
			}
			if !proto.Equal(got, want) {
				t.Error("decodeBinary and proto.Unmarshal disagree")
			}
		})
	}
}

func TestDecodeCorpusUnknownSize(t *testing.T) {
	for _, m := range corpusModels(t) {
		t.Run(m.name, func(t *testing.T) {
			data, err := os.ReadFile(m.path)
			if err != nil {
				t.Fatal(err)
			}
			want, _, _ := decodeFile(t, m.path, false)

			// A reader without Seek and without a size, like standard input.
			got, _, _, err := decodeBinary(io.MultiReader(bytes.NewReader(data)), -1, "-", false)

			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, want) {
				t.Error("decoding with unknown size gives another message")
			}
		})
	}
}

func TestDecodeLayerOrder(t *testing.T) {
	tests := []struct {
		file string
		want protowire.Number
	}{
		{"caffemodel/lenet/lenet_iter_10000.caffemodel", netLayerNumber},
		{"caffemodel/lenet_v1/lenet_iter_10000", netLayersNumber},
		{"caffemodel/cifar10_quick/cifar10_quick_iter_5000.caffemodel", netLayersNumber},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			net, order, _ := decodeFile(t, corpus.Path(t, filepath.FromSlash(tt.file)), false)

			if len(order) == 0 {
				t.Fatal("no layer entries")
			}
			for i, num := range order {
				if num != tt.want {
					t.Errorf("order[%d] = %d, want %d", i, num, tt.want)
				}
			}
			if tt.want == netLayersNumber && len(net.GetLayer()) != 0 {
				t.Errorf("V1 file decoded %d current-format layers", len(net.GetLayer()))
			}
		})
	}
}

func TestDecodeStructureOnly(t *testing.T) {
	for _, m := range corpusModels(t) {
		t.Run(m.name, func(t *testing.T) {
			full, _, fullNotes := decodeFile(t, m.path, false)
			data, err := os.ReadFile(m.path)
			if err != nil {
				t.Fatal(err)
			}
			seeking, _, seekNotes := decodeFile(t, m.path, true)
			streaming, _, streamNotes, err := decodeBinary(io.MultiReader(bytes.NewReader(data)), int64(len(data)), m.name, true)
			if err != nil {
				t.Fatal(err)
			}

			if len(seekNotes) != len(fullNotes) || len(streamNotes) != len(fullNotes) {
				t.Errorf("structure-only reads give %d and %d notes, the full read %d", len(seekNotes), len(streamNotes), len(fullNotes))
			}
			fullBlobs := allBlobs(full)
			for _, net := range []*caffepb.NetParameter{seeking, streaming} {
				blobs := allBlobs(net)
				if len(blobs) != len(fullBlobs) {
					t.Fatalf("%d blobs, full read has %d", len(blobs), len(fullBlobs))
				}
				for i, b := range blobs {
					if b.Data != nil || b.Diff != nil {
						t.Errorf("blob %d has values after a structure-only read", i)
					}
					if got, want := BlobShape(b), BlobShape(fullBlobs[i]); !equalInts(got, want) {
						t.Errorf("blob %d shape %v, full read %v", i, got, want)
					}
					withData := proto.Clone(b).(*caffepb.BlobProto)
					withData.Data = fullBlobs[i].Data
					withData.Diff = fullBlobs[i].Diff
					if !proto.Equal(withData, fullBlobs[i]) {
						t.Errorf("blob %d differs from the full read in more than its values", i)
					}
				}
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// topLevelBoundaries returns the offsets at which data can be cut into a
// shorter valid NetParameter: the starts of its top-level fields and its end.
func topLevelBoundaries(t *testing.T, data []byte) map[int]bool {
	t.Helper()
	bounds := map[int]bool{}
	for off := 0; off < len(data); {
		bounds[off] = true
		_, _, n := protowire.ConsumeField(data[off:])
		if n < 0 {
			t.Fatalf("invalid field at offset %d", off)
		}
		off += n
	}
	bounds[len(data)] = true
	return bounds
}

// assertFormatError fails unless err is a *FormatError whose offset lies
// in [0, maxOffset], whose message names the offset, and which has a hint.
func assertFormatError(t *testing.T, err error, maxOffset int64) *FormatError {
	t.Helper()
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T), want *FormatError", err, err)
	}
	if fe.Offset < 0 || fe.Offset > maxOffset {
		t.Errorf("error offset %d, want within [0, %d]: %v", fe.Offset, maxOffset, err)
	}
	if !strings.Contains(err.Error(), "byte offset") {
		t.Errorf("error does not name the byte offset: %v", err)
	}
	if fe.Hint == "" {
		t.Errorf("error has no hint: %v", err)
	}
	return fe
}

func TestDecodeTruncated(t *testing.T) {
	data, err := os.ReadFile(corpus.Path(t, "caffemodel", "mtcnn", "det1.caffemodel"))
	if err != nil {
		t.Fatal(err)
	}
	bounds := topLevelBoundaries(t, data)

	for cut := 0; cut < len(data); cut++ {
		part := data[:cut]
		_, _, _, errSized := decodeBinary(bytes.NewReader(part), int64(cut), "cut", false)
		if cut == 0 || !bounds[cut] {
			if errSized == nil {
				t.Fatalf("cut at %d: no error", cut)
			}
			assertFormatError(t, errSized, int64(cut))
		} else if errSized != nil {
			t.Fatalf("cut at field boundary %d: %v", cut, errSized)
		}

		if cut%7 != 0 {
			continue
		}
		// The same bytes from a stream of unknown length, and a stream
		// that is shorter than the size given.
		_, _, _, errStream := decodeBinary(io.MultiReader(bytes.NewReader(part)), -1, "cut", false)
		if (errStream == nil) != (errSized == nil) {
			t.Fatalf("cut at %d: error %v with size, %v without", cut, errSized, errStream)
		}
		if errStream != nil {
			assertFormatError(t, errStream, int64(cut))
		}
		_, _, _, errShort := decodeBinary(bytes.NewReader(part), int64(len(data)), "cut", true)
		if errShort == nil {
			t.Fatalf("cut at %d of a %d-byte stream: no error", cut, len(data))
		}
		// The error offset lies where the given size puts the missing data.
		assertFormatError(t, errShort, int64(len(data)))
	}
}

func TestDecodeEmpty(t *testing.T) {
	for _, size := range []int64{0, -1} {
		_, _, _, err := decodeBinary(bytes.NewReader(nil), size, "empty.caffemodel", false)

		fe := assertFormatError(t, err, 0)
		if !strings.Contains(fe.Msg, "empty") {
			t.Errorf("size %d: message %q does not say the file is empty", size, fe.Msg)
		}
	}
}

func TestDecodeHDF5(t *testing.T) {
	f, err := os.Open(corpus.Path(t, "caffemodel", "hdf5_snapshot", "cifar10_quick_iter_5000.caffemodel.h5"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	_, _, _, err = decodeBinary(f, -1, "snapshot.h5", false)

	var ue *UnsupportedError
	if !errors.As(err, &ue) {
		t.Fatalf("error %v, want *UnsupportedError", err)
	}
	if !strings.Contains(ue.What, "HDF5") {
		t.Errorf("error %v does not name HDF5", err)
	}
	if ue.Hint == "" {
		t.Errorf("error %v has no hint", err)
	}
}

// wire builds protobuf wire-format bytes for tests.
type wire []byte

func (w wire) bytes(num protowire.Number, b []byte) wire {
	w = protowire.AppendTag(w, num, protowire.BytesType)
	return protowire.AppendBytes(w, b)
}

func (w wire) str(num protowire.Number, s string) wire { return w.bytes(num, []byte(s)) }

func (w wire) varint(num protowire.Number, v uint64) wire {
	w = protowire.AppendTag(w, num, protowire.VarintType)
	return protowire.AppendVarint(w, v)
}

func (w wire) fixed32(num protowire.Number, v uint32) wire {
	w = protowire.AppendTag(w, num, protowire.Fixed32Type)
	return protowire.AppendFixed32(w, v)
}

func (w wire) fixed64(num protowire.Number, v uint64) wire {
	w = protowire.AppendTag(w, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(w, v)
}

// header writes a length-delimited tag and length with no payload, for
// lengths that the test does not back with bytes.
func (w wire) header(num protowire.Number, n uint64) wire {
	w = protowire.AppendTag(w, num, protowire.BytesType)
	return protowire.AppendVarint(w, n)
}

func packedFloats(values ...float32) []byte {
	var b []byte
	for _, v := range values {
		b = protowire.AppendFixed32(b, math.Float32bits(v))
	}
	return b
}

func packedDoubles(values ...float64) []byte {
	var b []byte
	for _, v := range values {
		b = protowire.AppendFixed64(b, math.Float64bits(v))
	}
	return b
}

func shapeOf(dims ...int64) []byte {
	var packed []byte
	for _, d := range dims {
		packed = protowire.AppendVarint(packed, uint64(d))
	}
	return wire(nil).bytes(blobShape, wire(nil).bytes(1, packed))
}

// netOf returns a NetParameter holding one current-format layer.
func netOf(name string, blobs ...wire) []byte {
	layer := wire(nil).str(1, name).str(2, "Convolution")
	for _, b := range blobs {
		layer = layer.bytes(layerBlobs, b)
	}
	return wire(nil).str(1, "net").bytes(netLayerNumber, layer)
}

// decodeBoth decodes data with its size known and from a stream of
// unknown size, and fails unless both give the same result.
func decodeBoth(t *testing.T, data []byte) (*caffepb.NetParameter, []Note, error) {
	t.Helper()
	net, _, notes, err := decodeBinary(bytes.NewReader(data), int64(len(data)), "test.caffemodel", false)
	streamNet, _, streamNotes, streamErr := decodeBinary(io.MultiReader(bytes.NewReader(data)), -1, "-", false)
	if (err == nil) != (streamErr == nil) {
		t.Fatalf("error %v with size, %v without", err, streamErr)
	}
	if err == nil && !proto.Equal(net, streamNet) {
		t.Fatal("decoding with and without size disagree")
	}
	if len(notes) != len(streamNotes) {
		t.Fatalf("%d notes with size, %d without", len(notes), len(streamNotes))
	}
	return net, notes, err
}

func assertFloats(t *testing.T, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("values %v, want %v", got, want)
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Errorf("value %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestDecodeValueEncodings(t *testing.T) {
	// float16 bit patterns of 1, -2, 0.5 and 65504, the largest float16.
	half := []byte{0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38, 0xff, 0x7b}
	halfValues := []float32{1, -2, 0.5, 65504}
	shape := shapeOf(4)

	tests := []struct {
		name      string
		blob      wire
		want      []float32
		converted string // expected in the NoteConverted message, or ""
	}{
		{"packed data", wire(shape).bytes(blobData, packedFloats(1, 2, 3, 4)), []float32{1, 2, 3, 4}, ""},
		{"unpacked data", wire(shape).fixed32(blobData, math.Float32bits(1)).fixed32(blobData, math.Float32bits(2)).
			fixed32(blobData, math.Float32bits(3)).fixed32(blobData, math.Float32bits(4)), []float32{1, 2, 3, 4}, ""},
		{"packed chunks", wire(shape).bytes(blobData, packedFloats(1)).bytes(blobData, packedFloats(2, 3)).
			fixed32(blobData, math.Float32bits(4)), []float32{1, 2, 3, 4}, ""},
		{"double data packed", wire(shape).bytes(blobDoubleData, packedDoubles(1.5, -2, 1e-3, 4)),
			[]float32{1.5, -2, float32(1e-3), 4}, "blob 0 data from double_data"},
		{"double data unpacked", wire(shape).fixed64(blobDoubleData, math.Float64bits(1)).
			bytes(blobDoubleData, packedDoubles(2, 3)).fixed64(blobDoubleData, math.Float64bits(4)),
			[]float32{1, 2, 3, 4}, "blob 0 data from double_data"},
		{"float16 type first", wire(shape).varint(blobRawDataType, uint64(caffepb.Type_FLOAT16)).bytes(blobRawData, half),
			halfValues, "blob 0 data from FLOAT16 raw_data"},
		{"float16 type last", wire(shape).bytes(blobRawData, half).varint(blobRawDataType, uint64(caffepb.Type_FLOAT16)),
			halfValues, "blob 0 data from FLOAT16 raw_data"},
		{"float raw", wire(shape).bytes(blobRawData, packedFloats(1, 2, 3, 4)).varint(blobRawDataType, uint64(caffepb.Type_FLOAT)),
			[]float32{1, 2, 3, 4}, "blob 0 data from FLOAT raw_data"},
		{"double raw", wire(shape).varint(blobRawDataType, uint64(caffepb.Type_DOUBLE)).bytes(blobRawData, packedDoubles(1, 2, 3, 0.25)),
			[]float32{1, 2, 3, 0.25}, "blob 0 data from DOUBLE raw_data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			net, notes, err := decodeBoth(t, netOf("conv1", tt.blob))
			if err != nil {
				t.Fatal(err)
			}

			b := net.GetLayer()[0].GetBlobs()[0]
			assertFloats(t, b.GetData(), tt.want)
			if b.RawData != nil || b.RawDataType != nil || b.DoubleData != nil {
				t.Errorf("source fields kept: raw_data %v, raw_data_type %v, double_data %v", b.RawData, b.RawDataType, b.DoubleData)
			}
			if tt.converted == "" {
				if len(notes) != 0 {
					t.Errorf("notes %v, want none", notes)
				}
				return
			}
			if len(notes) != 1 {
				t.Fatalf("notes %v, want one NoteConverted", notes)
			}
			n := notes[0]
			if n.Kind != NoteConverted {
				t.Errorf("note kind %v, want converted", n.Kind)
			}
			if n.Layer != "conv1" {
				t.Errorf("note layer %q, want conv1", n.Layer)
			}
			if !strings.Contains(n.Message, tt.converted) {
				t.Errorf("note %q does not contain %q", n.Message, tt.converted)
			}
		})
	}
}

func TestDecodeDiffEncodings(t *testing.T) {
	tests := []struct {
		name string
		blob wire
		want []float32
	}{
		{"diff", wire(shapeOf(2)).bytes(blobData, packedFloats(1, 2)).bytes(blobDiff, packedFloats(3, 4)), []float32{3, 4}},
		{"double diff", wire(shapeOf(2)).bytes(blobData, packedFloats(1, 2)).bytes(blobDoubleDiff, packedDoubles(5, 6)), []float32{5, 6}},
		{"float16 raw diff", wire(shapeOf(2)).bytes(blobData, packedFloats(1, 2)).
			bytes(blobRawDiff, []byte{0x00, 0x3c, 0x00, 0x40}).varint(blobRawDiffType, uint64(caffepb.Type_FLOAT16)), []float32{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			net, _, err := decodeBoth(t, netOf("conv1", tt.blob))
			if err != nil {
				t.Fatal(err)
			}

			b := net.GetLayer()[0].GetBlobs()[0]
			assertFloats(t, b.GetData(), []float32{1, 2})
			assertFloats(t, b.GetDiff(), tt.want)
			if b.DoubleDiff != nil || b.RawDiff != nil || b.RawDiffType != nil {
				t.Error("diff source fields kept")
			}
		})
	}
}

func TestDecodeValuePrecedence(t *testing.T) {
	blob := wire(shapeOf(2)).
		bytes(blobData, packedFloats(1, 2)).
		bytes(blobDoubleData, packedDoubles(3, 4)).
		varint(blobRawDataType, uint64(caffepb.Type_FLOAT)).
		bytes(blobRawData, packedFloats(5, 6))

	net, notes, err := decodeBoth(t, netOf("conv1", blob))
	if err != nil {
		t.Fatal(err)
	}

	b := net.GetLayer()[0].GetBlobs()[0]
	assertFloats(t, b.GetData(), []float32{3, 4})
	kinds := map[NoteKind]int{}
	for _, n := range notes {
		kinds[n.Kind]++
	}
	if kinds[NoteSkipped] != 2 {
		t.Errorf("notes %v, want two NoteSkipped (data and raw_data)", notes)
	}
	if kinds[NoteConverted] != 1 {
		t.Errorf("notes %v, want one NoteConverted", notes)
	}
}

func TestDecodeRawTypeWithoutRaw(t *testing.T) {
	blob := wire(shapeOf(1)).bytes(blobData, packedFloats(7)).varint(blobRawDataType, uint64(caffepb.Type_FLOAT16))

	net, _, err := decodeBoth(t, netOf("conv1", blob))
	if err != nil {
		t.Fatal(err)
	}

	if got := net.GetLayer()[0].GetBlobs()[0].RawDataType; got == nil || *got != caffepb.Type_FLOAT16 {
		t.Errorf("raw_data_type %v, want FLOAT16 kept as an ordinary field", got)
	}
}

func TestDecodeBlobErrors(t *testing.T) {
	shape := shapeOf(2)
	tests := []struct {
		name        string
		data        []byte
		unsupported bool
		message     string
	}{
		{"packed float length", netOf("conv1", wire(shape).bytes(blobData, make([]byte, 6))), false, "not a multiple of 4"},
		{"packed double length", netOf("conv1", wire(shape).bytes(blobDoubleData, make([]byte, 12))), false, "not a multiple of 8"},
		{"raw without type", netOf("conv1", wire(shape).bytes(blobRawData, make([]byte, 8))), false, "no raw_data_type"},
		{"raw float16 odd length", netOf("conv1", wire(shape).varint(blobRawDataType, uint64(caffepb.Type_FLOAT16)).
			bytes(blobRawData, make([]byte, 3))), false, "not a multiple of 2"},
		{"raw INT type", netOf("conv1", wire(shape).varint(blobRawDataType, uint64(caffepb.Type_INT)).
			bytes(blobRawData, make([]byte, 8))), true, "raw_data_type INT"},
		{"raw unknown type", netOf("conv1", wire(shape).varint(blobRawDataType, 99).
			bytes(blobRawData, make([]byte, 8))), true, "raw_data_type 99"},
		{"data as varint", netOf("conv1", wire(shape).varint(blobData, 1)), false, "wire type varint"},
		{"shape as varint", netOf("conv1", wire(nil).varint(blobShape, 1)), false, "wire type varint"},
		{"blobs as varint", wire(nil).bytes(netLayerNumber, wire(nil).str(1, "conv1").varint(layerBlobs, 3)), false, "blobs field 7"},
		{"layer as varint", wire(nil).varint(netLayerNumber, 3), false, "layer field 100"},
		{"blob longer than layer", wire(nil).bytes(netLayerNumber, wire(nil).str(1, "conv1").header(layerBlobs, 50)).
			str(1, strings.Repeat("x", 60)), false, "enclosing message"},
		{"field number zero", wire(nil).varint(0, 1), false, "invalid field number 0"},
		{"wire type 6", []byte{0x0e, 0x00}, false, "invalid wire type 6"},
		{"lone end group", []byte{0x0c}, false, "end-group"},
		{"varint overflow", append([]byte{0x08}, bytes.Repeat([]byte{0xff}, 10)...), false, "longer than 64 bits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := decodeBoth(t, tt.data)

			if tt.unsupported {
				var ue *UnsupportedError
				if !errors.As(err, &ue) {
					t.Fatalf("error %v, want *UnsupportedError", err)
				}
			} else {
				assertFormatError(t, err, int64(len(tt.data)))
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not contain %q", err, tt.message)
			}
		})
	}
}

func TestDecodeErrorLocation(t *testing.T) {
	badBlob := wire(shapeOf(2)).bytes(blobData, make([]byte, 5))
	good := wire(shapeOf(1)).bytes(blobData, packedFloats(1))
	nameFirst := wire(nil).bytes(netLayerNumber, wire(nil).str(1, "data")).
		bytes(netLayerNumber, wire(nil).str(1, "conv1").bytes(layerBlobs, good).bytes(layerBlobs, badBlob))
	nameLast := wire(nil).bytes(netLayerNumber, wire(nil).str(1, "data")).
		bytes(netLayerNumber, wire(nil).bytes(layerBlobs, good).bytes(layerBlobs, badBlob).str(1, "conv1"))

	tests := []struct {
		name  string
		data  []byte
		layer string
	}{
		{"name first", nameFirst, "conv1"},
		{"name last", nameLast, "#1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := decodeBoth(t, tt.data)

			fe := assertFormatError(t, err, int64(len(tt.data)))
			if fe.Layer != tt.layer {
				t.Errorf("layer %q, want %q", fe.Layer, tt.layer)
			}
			if fe.Blob != 1 {
				t.Errorf("blob %d, want 1", fe.Blob)
			}
			if fe.File != "test.caffemodel" && fe.File != "-" {
				t.Errorf("file %q", fe.File)
			}
		})
	}
}

func TestDecodeWireTypeClash(t *testing.T) {
	blob := wire(shapeOf(2)).bytes(blobData, packedFloats(1, 2))
	// LayerParameter.type (2) is a string and LayerParameter.phase (10)
	// an enum; here they are a varint after the blob and a fixed32.
	layer := wire(nil).bytes(layerBlobs, blob).varint(2, 5).str(1, "conv1").str(3, "data").fixed32(10, 1)
	// NetParameter.force_backward (5) is a bool; here it is a fixed64.
	data := wire(nil).fixed64(5, 1).bytes(netLayerNumber, layer)
	clashOffset := int64(len(wire(nil).fixed64(5, 1).header(netLayerNumber, uint64(len(layer)))) +
		len(wire(nil).bytes(layerBlobs, blob)))

	net, notes, err := decodeBoth(t, data)
	if err != nil {
		t.Fatal(err)
	}

	want := &caffepb.NetParameter{}
	if err := proto.Unmarshal(data, want); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(net, want) {
		t.Error("decodeBinary and proto.Unmarshal disagree")
	}
	l := net.GetLayer()[0]
	if len(l.GetBlobs()) != 1 {
		t.Fatalf("layer has %d blobs, want 1", len(l.GetBlobs()))
	}
	assertFloats(t, l.GetBlobs()[0].GetData(), []float32{1, 2})
	if l.GetName() != "conv1" || len(l.GetBottom()) != 1 {
		t.Errorf("layer fields lost: %v", l)
	}
	if l.Type != nil || len(l.ProtoReflect().GetUnknown()) == 0 {
		t.Errorf("clashing field not kept as an unknown field: type %v", l.Type)
	}
	if len(notes) != 2 {
		t.Fatalf("notes %v, want two NoteUnknown", notes)
	}
	top, layerNote := notes[0], notes[1]
	if top.Kind != NoteUnknown || layerNote.Kind != NoteUnknown {
		t.Errorf("note kinds %v and %v, want unknown", top.Kind, layerNote.Kind)
	}
	if top.Offset != 0 || top.Layer != "" {
		t.Errorf("net note at offset %d in layer %q, want offset 0 and no layer", top.Offset, top.Layer)
	}
	if !strings.Contains(top.Message, "field 5 ") {
		t.Errorf("net note %q does not name field 5", top.Message)
	}
	if layerNote.Offset != clashOffset {
		t.Errorf("layer note offset %d, want %d", layerNote.Offset, clashOffset)
	}
	if layerNote.Layer != "conv1" {
		t.Errorf("layer note names layer %q, want conv1", layerNote.Layer)
	}
	for _, field := range []string{"field 2 ", "field 10 "} {
		if !strings.Contains(layerNote.Message, field) {
			t.Errorf("layer note %q does not name %s", layerNote.Message, field)
		}
	}
}

func TestDecodeUnknownFields(t *testing.T) {
	blob := wire(shapeOf(1)).bytes(blobData, packedFloats(1)).varint(99, 7).str(98, "x")
	layer := wire(nil).str(1, "conv1").bytes(layerBlobs, blob).varint(9999, 3)
	group := protowire.AppendTag(nil, 500, protowire.StartGroupType)
	group = append(group, wire(nil).varint(1, 2)...)
	group = protowire.AppendTag(group, 500, protowire.EndGroupType)
	data := append(wire(nil).str(1, "net").bytes(netLayerNumber, layer).fixed32(777, 5), group...)

	net, notes, err := decodeBoth(t, data)
	if err != nil {
		t.Fatal(err)
	}

	want := &caffepb.NetParameter{}
	if err := proto.Unmarshal(data, want); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(net, want) {
		t.Error("unknown fields differ from proto.Unmarshal")
	}
	if len(notes) != 0 {
		t.Errorf("notes %v, want none", notes)
	}
	if len(net.GetLayer()[0].GetBlobs()[0].ProtoReflect().GetUnknown()) == 0 {
		t.Error("blob unknown fields lost")
	}
}

func TestDecodeV0Layer(t *testing.T) {
	v0Blob := wire(nil).varint(blobNum, 1).varint(blobChannels, 1).varint(blobHeight, 1).varint(blobWidth, 2).
		bytes(blobData, packedFloats(1, 2))
	v0 := wire(nil).str(1, "fc").str(2, "innerproduct").bytes(v0LayerBlobs, v0Blob)
	v1 := wire(nil).bytes(v1LayerV0, v0).str(2, "data").str(3, "fc")
	data := wire(nil).bytes(netLayersNumber, v1)

	net, order, _, err := decodeBinary(bytes.NewReader(data), int64(len(data)), "v0", false)
	if err != nil {
		t.Fatal(err)
	}

	if len(order) != 1 || order[0] != netLayersNumber {
		t.Errorf("order %v, want [2]", order)
	}
	l := net.GetLayers()[0]
	if l.GetLayer().GetName() != "fc" || len(l.GetBottom()) != 1 {
		t.Errorf("V1/V0 fields lost: %v", l)
	}
	blobs := l.GetLayer().GetBlobs()
	if len(blobs) != 1 {
		t.Fatalf("V0 layer has %d blobs, want 1", len(blobs))
	}
	assertFloats(t, blobs[0].GetData(), []float32{1, 2})
	if got := BlobShape(blobs[0]); !equalInts(got, []int{1, 1, 1, 2}) {
		t.Errorf("shape %v, want [1 1 1 2]", got)
	}
}

// allocatedDuring returns the bytes f allocates on the heap.
func allocatedDuring(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestDecodeHostileLength(t *testing.T) {
	const huge = 1 << 40
	tests := []struct {
		name string
		data []byte
	}{
		{"layer", wire(nil).header(netLayerNumber, huge).str(1, "conv1")},
		{"layer field", wire(nil).header(netLayerNumber, huge).header(3000, huge-10).str(1, "x")},
		{"blob", wire(nil).header(netLayerNumber, huge).str(1, "conv1").header(layerBlobs, huge-20).header(blobData, huge-40).str(1, "x")},
		{"raw data", wire(nil).header(netLayerNumber, huge).header(layerBlobs, huge-20).header(blobRawData, huge-40).str(1, "x")},
		{"double data", wire(nil).header(netLayerNumber, huge).header(layerBlobs, huge-20).header(blobDoubleData, huge-40).str(1, "x")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := decodeBinary(bytes.NewReader(tt.data), int64(len(tt.data)), "sized", false)
			fe := assertFormatError(t, err, int64(len(tt.data)))
			if !strings.Contains(fe.Msg, "bytes left") {
				t.Errorf("message %q does not compare the length with the bytes left", fe.Msg)
			}

			var streamErr error
			allocated := allocatedDuring(func() {
				_, _, _, streamErr = decodeBinary(io.MultiReader(bytes.NewReader(tt.data)), -1, "-", false)
			})
			assertFormatError(t, streamErr, int64(len(tt.data)))
			// Buffers are the 64 KiB reader buffer and at most one
			// maxChunk step per field.
			if allocated > 8*maxChunk {
				t.Errorf("decoding allocated %d bytes for a %d-byte input", allocated, len(tt.data))
			}
		})
	}
}

func TestFloat16ToFloat32(t *testing.T) {
	tests := []struct {
		bits uint16
		want float32
	}{
		{0x0000, 0},
		{0x3c00, 1},
		{0xc000, -2},
		{0x3555, 0.333251953125},
		{0x7bff, 65504},
		{0x0400, 1.0 / (1 << 14)},       // smallest normal
		{0x0001, 1.0 / (1 << 24)},       // smallest subnormal
		{0x83ff, -1023.0 / (1 << 24)},   // largest negative subnormal
		{0x7c00, float32(math.Inf(1))},  // +infinity
		{0xfc00, float32(math.Inf(-1))}, // -infinity
	}
	for _, tt := range tests {
		if got := float16ToFloat32(tt.bits); got != tt.want {
			t.Errorf("float16ToFloat32(%#04x) = %v, want %v", tt.bits, got, tt.want)
		}
	}
	if got := float16ToFloat32(0x8000); got != 0 || !math.Signbit(float64(got)) {
		t.Errorf("float16ToFloat32(0x8000) = %v, want -0", got)
	}
	if got := float16ToFloat32(0x7e00); !math.IsNaN(float64(got)) {
		t.Errorf("float16ToFloat32(0x7e00) = %v, want NaN", got)
	}
}

// fuzzSeeds returns the small corpus files of the given suffixes, for fuzz
// seeds.
func fuzzSeeds(f *testing.F, suffixes ...string) [][]byte {
	f.Helper()
	var seeds [][]byte
	for _, p := range corpus.Walk(f, suffixes...) {
		info, err := os.Stat(p)
		if err != nil {
			f.Fatal(err)
		}
		if info.Size() >= 100<<10 {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, data)
	}
	return seeds
}

func FuzzDecodeBinary(f *testing.F) {
	for _, seed := range fuzzSeeds(f, ".caffemodel") {
		f.Add(seed)
	}
	half := []byte{0x00, 0x3c, 0x00, 0xc0}
	f.Add(netOf("conv1", wire(shapeOf(2)).bytes(blobRawData, half).varint(blobRawDataType, uint64(caffepb.Type_FLOAT16))))
	f.Add(netOf("conv1", wire(shapeOf(2)).bytes(blobDoubleData, packedDoubles(1, 2)).fixed32(blobData, 0)))
	f.Add(netOf("conv1", wire(nil).varint(blobNum, 1).varint(blobWidth, 1).fixed32(blobData, 0).varint(99, 1)))
	f.Add([]byte(wire(nil).bytes(netLayersNumber, wire(nil).bytes(v1LayerV0, wire(nil).str(1, "fc").
		bytes(v0LayerBlobs, wire(shapeOf(1)).bytes(blobData, packedFloats(1)))))))
	f.Add([]byte(wire(nil).fixed64(5, 1).bytes(netLayerNumber, wire(nil).varint(2, 5).str(1, "conv1"))))

	f.Fuzz(checkDecodeBinary)
}

// checkDecodeBinary decodes data in three ways that must agree and, when
// it decodes, checks that encoding and decoding again round-trips.
func checkDecodeBinary(t *testing.T, data []byte) {
	net, order, notes, err := decodeBinary(bytes.NewReader(data), int64(len(data)), "fuzz", false)
	_, _, _, streamErr := decodeBinary(io.MultiReader(bytes.NewReader(data)), -1, "-", false)
	_, _, _, structErr := decodeBinary(bytes.NewReader(data), int64(len(data)), "fuzz", true)
	if (err == nil) != (streamErr == nil) || (err == nil) != (structErr == nil) {
		t.Fatalf("errors disagree: sized %v, stream %v, structure only %v", err, streamErr, structErr)
	}
	if err != nil {
		var fe *FormatError
		var ue *UnsupportedError
		if !errors.As(err, &fe) && !errors.As(err, &ue) {
			t.Fatalf("error %v (%T) is neither FormatError nor UnsupportedError", err, err)
		}
		return
	}
	if len(order) != len(net.GetLayer())+len(net.GetLayers()) {
		t.Fatalf("order has %d entries for %d layers", len(order), len(net.GetLayer())+len(net.GetLayers()))
	}

	converted := false
	for _, n := range notes {
		converted = converted || n.Kind != NoteUnknown
	}
	if !converted {
		// Without conversions and skipped fields, the streaming
		// decoder must agree with protobuf-go.
		want := &caffepb.NetParameter{}
		if err := proto.Unmarshal(data, want); err != nil {
			t.Fatalf("decodeBinary accepted input that proto.Unmarshal rejects: %v", err)
		}
		if !proto.Equal(net, want) {
			t.Fatal("decodeBinary and proto.Unmarshal disagree")
		}
	}

	if len(net.GetLayers()) > 0 {
		return
	}
	var buf bytes.Buffer
	if err := encodeBinary(&buf, net); err != nil {
		if strings.Contains(err.Error(), "has no values") {
			return
		}
		t.Fatalf("encodeBinary: %v", err)
	}
	marshalled, err := proto.MarshalOptions{Deterministic: true}.Marshal(net)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), marshalled) {
		t.Fatal("encodeBinary output differs from deterministic proto.Marshal")
	}
	if buf.Len() == 0 {
		// An empty net encodes to no bytes, which the decoder rejects as
		// an empty file.
		return
	}
	again, _, _, err := decodeBinary(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "again", false)
	if err != nil {
		t.Fatalf("decoding the encoded net: %v", err)
	}
	if !proto.Equal(again, net) {
		t.Fatal("encode then decode changed the net")
	}
}

func TestBlobShape(t *testing.T) {
	tests := []struct {
		name string
		blob *caffepb.BlobProto
		want []int
	}{
		{"shape", &caffepb.BlobProto{Shape: &caffepb.BlobShape{Dim: []int64{20, 1, 5, 5}}}, []int{20, 1, 5, 5}},
		{"legacy", &caffepb.BlobProto{Num: proto.Int32(1), Channels: proto.Int32(1), Height: proto.Int32(10), Width: proto.Int32(500)}, []int{1, 1, 10, 500}},
		{"legacy partly set", &caffepb.BlobProto{Width: proto.Int32(7)}, []int{0, 0, 0, 7}},
		{"legacy wins over shape", &caffepb.BlobProto{Num: proto.Int32(2), Shape: &caffepb.BlobShape{Dim: []int64{9}}}, []int{2, 0, 0, 0}},
		{"empty shape", &caffepb.BlobProto{Shape: &caffepb.BlobShape{}}, nil},
		{"nothing", &caffepb.BlobProto{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BlobShape(tt.blob); !equalInts(got, tt.want) {
				t.Errorf("BlobShape = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBlobCount(t *testing.T) {
	tests := []struct {
		name    string
		dims    []int64
		want    int
		wantErr string
	}{
		{"matrix", []int64{500, 800}, 400000, ""},
		{"scalar", nil, 1, ""},
		{"zero", []int64{3, 0, 5}, 0, ""},
		{"negative", []int64{3, -1}, 0, "negative"},
		{"overflow", []int64{1 << 40, 1 << 40}, 0, "more values"},
		{"zero after huge", []int64{1 << 62, 1 << 62, 0}, 0, "more values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BlobCount(&caffepb.BlobProto{Shape: &caffepb.BlobShape{Dim: tt.dims}})

			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("BlobCount = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestCheckBlob(t *testing.T) {
	shape := func(dims ...int64) *caffepb.BlobShape { return &caffepb.BlobShape{Dim: dims} }
	tests := []struct {
		name    string
		blob    *caffepb.BlobProto
		wantErr string
	}{
		{"matching", &caffepb.BlobProto{Shape: shape(2, 2), Data: make([]float32, 4)}, ""},
		{"matching diff", &caffepb.BlobProto{Shape: shape(2), Data: make([]float32, 2), Diff: make([]float32, 2)}, ""},
		{"scalar", &caffepb.BlobProto{Data: []float32{1}}, ""},
		{"zero count", &caffepb.BlobProto{Shape: shape(0)}, ""},
		{"double data", &caffepb.BlobProto{Shape: shape(3), DoubleData: make([]float64, 3)}, ""},
		{"raw data", &caffepb.BlobProto{Shape: shape(3), RawDataType: caffepb.Type_FLOAT16.Enum(), RawData: make([]byte, 6)}, ""},
		{"too few", &caffepb.BlobProto{Shape: shape(2, 2), Data: make([]float32, 3)}, "3 values in data but its shape [2 2] needs 4"},
		{"too many", &caffepb.BlobProto{Shape: shape(2), Data: make([]float32, 3)}, "needs 2"},
		{"no values", &caffepb.BlobProto{Shape: shape(5)}, "0 values"},
		{"diff count", &caffepb.BlobProto{Shape: shape(2), Data: make([]float32, 2), Diff: make([]float32, 1)}, "in diff"},
		{"legacy", &caffepb.BlobProto{Num: proto.Int32(1), Channels: proto.Int32(3), Data: make([]float32, 3)}, "needs 0"},
		{"negative", &caffepb.BlobProto{Shape: shape(-2), Data: make([]float32, 2)}, "negative"},
		{"too many axes", &caffepb.BlobProto{Shape: shape(make([]int64, 33)...)}, "33 axes"},
		{"beyond int32", &caffepb.BlobProto{Shape: shape(1<<16, 1<<16)}, "at most 2^31-1"},
	}
	if strconv.IntSize == 32 {
		// BlobCount already fails for more than 2^31-1 values in an int.
		tests[len(tests)-1].wantErr = "more values than fit in an int"
	}
	loc := Location{File: "w.caffemodel", Offset: -1, Layer: "fc", Blob: 1}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckBlob(tt.blob, loc)

			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("CheckBlob: %v", err)
				}
				return
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v, want *FormatError", err)
			}
			if !strings.Contains(fe.Msg, tt.wantErr) {
				t.Errorf("message %q does not contain %q", fe.Msg, tt.wantErr)
			}
			if fe.Location != loc || fe.Hint == "" {
				t.Errorf("error %v lacks the location or a hint", err)
			}
		})
	}
}

// BenchmarkDecodeBinary decodes the largest corpus caffemodel from its
// file; BenchmarkReadFileBaseline reads the same file with os.ReadFile.
func BenchmarkDecodeBinary(b *testing.B) {
	path := corpus.Path(b, "caffemodel", "mtcnn", "det4.caffemodel")
	info, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(info.Size())
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, _, err := decodeBinary(f, info.Size(), path, false); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

func BenchmarkReadFileBaseline(b *testing.B) {
	path := corpus.Path(b, "caffemodel", "mtcnn", "det4.caffemodel")
	info, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(info.Size())
	for b.Loop() {
		if _, err := os.ReadFile(path); err != nil {
			b.Fatal(err)
		}
	}
}
