package caffe

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
)

var (
	legacyDimsPattern = regexp.MustCompile(`legacy dims (\d+)x(\d+)x(\d+)x(\d+)`)
	floatCountPattern = regexp.MustCompile(`(\d+) floats`)
)

// corpusMean is a .binaryproto file of the corpus with the shape and value
// count MANIFEST.tsv gives for it.
type corpusMean struct {
	path, name string
	shape      []int
	values     int
}

func corpusMeans(t *testing.T) []corpusMean {
	t.Helper()
	var means []corpusMean
	for _, e := range readManifest(t) {
		if !strings.HasSuffix(e.path, ".binaryproto") {
			continue
		}
		dims := legacyDimsPattern.FindStringSubmatch(e.notes)
		count := floatCountPattern.FindStringSubmatch(e.notes)
		if dims == nil || count == nil {
			t.Fatalf("MANIFEST.tsv gives no legacy dims or float count for %s: %q", e.path, e.notes)
		}
		m := corpusMean{path: corpus.Path(t, filepath.FromSlash(e.path)), name: e.path}
		for _, d := range dims[1:] {
			n, _ := strconv.Atoi(d)
			m.shape = append(m.shape, n)
		}
		m.values, _ = strconv.Atoi(count[1])
		means = append(means, m)
	}
	if walked := corpus.Walk(t, ".binaryproto"); len(walked) != len(means) {
		t.Fatalf("MANIFEST.tsv describes %d .binaryproto files, the corpus has %d", len(means), len(walked))
	}
	return means
}

func TestReadMeanCorpus(t *testing.T) {
	for _, m := range corpusMeans(t) {
		t.Run(m.name, func(t *testing.T) {
			b, err := ReadMeanFile(m.path)
			if err != nil {
				t.Fatal(err)
			}

			if got := BlobShape(b); !equalInts(got, m.shape) {
				t.Errorf("shape %v, MANIFEST.tsv says %v", got, m.shape)
			}
			if len(b.GetData()) != m.values {
				t.Errorf("%d values, MANIFEST.tsv says %d", len(b.GetData()), m.values)
			}

			data, err := os.ReadFile(m.path)
			if err != nil {
				t.Fatal(err)
			}
			streamed, err := ReadMean(io.MultiReader(bytes.NewReader(data)), -1, "-")
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(streamed, b) {
				t.Error("reading with unknown size gives another blob")
			}
			want := &caffepb.BlobProto{}
			if err := proto.Unmarshal(data, want); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(b, want) {
				t.Error("ReadMean and proto.Unmarshal disagree")
			}
		})
	}
}

func TestReadMeanImageNetChannels(t *testing.T) {
	b, err := ReadMeanFile(corpus.Path(t, "caffemodel", "mean", "ILSVRC12_mean.binaryproto"))
	if err != nil {
		t.Fatal(err)
	}
	shape := BlobShape(b)
	if !equalInts(shape, []int{1, 3, 256, 256}) {
		t.Fatalf("shape %v, want [1 3 256 256]", shape)
	}

	// Published BGR channel means of this file: 104.009, 116.673, 122.674.
	want := []float64{104.009, 116.673, 122.674}
	plane := 256 * 256
	for c, w := range want {
		sum := 0.0
		for _, v := range b.GetData()[c*plane : (c+1)*plane] {
			sum += float64(v)
		}
		if got := sum / float64(plane); math.Abs(got-w) > 0.01 {
			t.Errorf("channel %d mean %.3f, want %.3f", c, got, w)
		}
	}
}

func TestReadMeanShapeField(t *testing.T) {
	tests := []struct {
		name  string
		data  wire
		shape []int
		want  []float32
	}{
		{"shape", wire(shapeOf(1, 2, 1, 2)).bytes(blobData, packedFloats(1, 2, 3, 4)), []int{1, 2, 1, 2}, []float32{1, 2, 3, 4}},
		{"legacy", wire(nil).varint(blobNum, 1).varint(blobChannels, 1).varint(blobHeight, 1).varint(blobWidth, 2).
			bytes(blobData, packedFloats(5, 6)), []int{1, 1, 1, 2}, []float32{5, 6}},
		{"double data", wire(shapeOf(2)).bytes(blobDoubleData, packedDoubles(0.5, 0.25)), []int{2}, []float32{0.5, 0.25}},
		{"float16 raw data", wire(shapeOf(2)).bytes(blobRawData, []byte{0x00, 0x3c, 0x00, 0x38}).
			varint(blobRawDataType, 2), []int{2}, []float32{1, 0.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int64{int64(len(tt.data)), -1} {
				b, err := ReadMean(io.MultiReader(bytes.NewReader(tt.data)), size, "mean.binaryproto")
				if err != nil {
					t.Fatalf("size %d: %v", size, err)
				}

				if got := BlobShape(b); !equalInts(got, tt.shape) {
					t.Errorf("size %d: shape %v, want %v", size, got, tt.shape)
				}
				assertFloats(t, b.GetData(), tt.want)
			}
		})
	}
}

func TestReadMeanErrors(t *testing.T) {
	lenet, err := os.ReadFile(corpus.Path(t, "caffemodel", "mtcnn", "det1.caffemodel"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		data    []byte
		message string
	}{
		{"empty", nil, "empty"},
		{"count disagrees with shape", wire(shapeOf(1, 3, 2, 2)).bytes(blobData, packedFloats(1, 2, 3)), "needs 12"},
		{"legacy count disagrees", wire(nil).varint(blobNum, 1).varint(blobChannels, 3).bytes(blobData, packedFloats(1)), "needs 0"},
		{"no values", wire(shapeOf(4)), "has 0 values"},
		{"no shape and no values", wire(nil).varint(99, 1), "has 0 values"},
		{"zero count", wire(shapeOf(0, 3)), "no values"},
		{"negative dimension", wire(shapeOf(-1)).bytes(blobData, packedFloats(1)), "negative"},
		{"packed length", wire(shapeOf(1)).bytes(blobData, make([]byte, 3)), "not a multiple of 4"},
		{"caffemodel", lenet, "want varint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadMean(bytes.NewReader(tt.data), int64(len(tt.data)), "mean.binaryproto")

			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v, want *FormatError", err)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not contain %q", err, tt.message)
			}
			if fe.File != "mean.binaryproto" {
				t.Errorf("error names file %q, want mean.binaryproto", fe.File)
			}
			if fe.Hint == "" {
				t.Errorf("error %v has no hint", err)
			}
		})
	}
}

func TestReadMeanTruncated(t *testing.T) {
	data, err := os.ReadFile(corpus.Path(t, "caffemodel", "mean", "cifar10_mean.binaryproto"))
	if err != nil {
		t.Fatal(err)
	}

	for cut := 0; cut < len(data); cut++ {
		for _, size := range []int64{int64(cut), -1} {
			_, err := ReadMean(io.MultiReader(bytes.NewReader(data[:cut])), size, "cut")

			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("cut at %d, size %d: error %v, want *FormatError", cut, size, err)
			}
			if fe.Offset > int64(cut) {
				t.Errorf("cut at %d: error offset %d beyond the data", cut, fe.Offset)
			}
		}
	}
}

func TestReadMeanFileErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.binaryproto")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		path        string
		unsupported bool
	}{
		{"directory", dir, false},
		{"empty file", empty, false},
		{"HDF5", corpus.Path(t, "caffemodel", "hdf5_snapshot", "cifar10_quick_iter_5000.caffemodel.h5"), true},
		{"NumPy", corpus.Path(t, "caffemodel", "mean", "bvlc_ilsvrc_2012_mean.npy"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadMeanFile(tt.path)

			if tt.unsupported {
				if !errors.Is(err, ErrUnsupported) {
					t.Errorf("error %v, want an UnsupportedError", err)
				}
				return
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %v, want a FormatError", err)
			}
		})
	}
}

func TestReadMeanFileMissing(t *testing.T) {
	_, err := ReadMeanFile(filepath.Join(t.TempDir(), "missing.binaryproto"))

	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v, want one that matches os.ErrNotExist", err)
	}
}

func FuzzReadMean(f *testing.F) {
	for _, seed := range fuzzSeeds(f, ".binaryproto") {
		f.Add(seed)
	}
	f.Add([]byte(wire(shapeOf(2)).bytes(blobRawData, []byte{0x00, 0x3c, 0x00, 0x38}).varint(blobRawDataType, 2)))
	f.Add([]byte(wire(shapeOf(1)).fixed64(blobDoubleData, math.Float64bits(2)).varint(77, 1)))
	f.Add([]byte(wire(nil).varint(blobNum, 1).varint(blobChannels, 1).varint(blobHeight, 1).varint(blobWidth, 1).
		fixed32(blobData, 0)))

	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ReadMean(bytes.NewReader(data), int64(len(data)), "fuzz")
		_, streamErr := ReadMean(io.MultiReader(bytes.NewReader(data)), -1, "-")
		if (err == nil) != (streamErr == nil) {
			t.Fatalf("errors disagree: sized %v, stream %v", err, streamErr)
		}
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v (%T) is neither FormatError nor UnsupportedError", err, err)
			}
			return
		}

		var buf bytes.Buffer
		if err := encodeBlob(&buf, b); err != nil {
			t.Fatalf("encodeBlob: %v", err)
		}
		if want, err := (proto.MarshalOptions{Deterministic: true}).Marshal(b); err != nil || !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("encodeBlob output differs from deterministic proto.Marshal (%v)", err)
		}
		again, err := ReadMean(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "again")
		if err != nil {
			t.Fatalf("reading the encoded blob: %v", err)
		}
		if !proto.Equal(again, b) {
			t.Fatal("encode then read changed the blob")
		}
	})
}
