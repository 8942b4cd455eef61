package caffe_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
)

// Shape of the benchmark caffemodel: a chain of fully connected layers,
// 1024×1024 weights and 1024 biases each, about 67 MB of float32 values.
const (
	benchLayers = 16
	benchWidth  = 1024
)

// writeBenchModel writes the benchmark caffemodel, seeded so that every
// run reads the same bytes, into a temporary directory and returns its
// path and size in bytes.
func writeBenchModel(b *testing.B) (string, int64) {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []float32 {
		values := make([]float32, n)
		for i := range values {
			values[i] = rng.Float32()*2 - 1
		}
		return values
	}

	param := &caffepb.NetParameter{Name: proto.String("bench")}
	param.Layer = append(param.Layer, &caffepb.LayerParameter{
		Name: proto.String("data"), Type: proto.String("Input"), Top: []string{"fc0"},
		InputParam: &caffepb.InputParameter{Shape: []*caffepb.BlobShape{{Dim: []int64{1, benchWidth}}}},
	})
	for i := 1; i <= benchLayers; i++ {
		name := fmt.Sprintf("fc%d", i)
		param.Layer = append(param.Layer, &caffepb.LayerParameter{
			Name: proto.String(name), Type: proto.String("InnerProduct"),
			Bottom: []string{fmt.Sprintf("fc%d", i-1)}, Top: []string{name},
			InnerProductParam: &caffepb.InnerProductParameter{NumOutput: proto.Uint32(benchWidth)},
			Blobs: []*caffepb.BlobProto{
				{Shape: &caffepb.BlobShape{Dim: []int64{benchWidth, benchWidth}}, Data: random(benchWidth * benchWidth)},
				{Shape: &caffepb.BlobShape{Dim: []int64{benchWidth}}, Data: random(benchWidth)},
			},
		})
	}

	path := filepath.Join(b.TempDir(), "bench.caffemodel")
	if err := (caffe.WriteOptions{}).WriteFile(&caffe.Net{Param: param}, path); err != nil {
		b.Fatalf("writing the benchmark model: %v", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return path, st.Size()
}

// BenchmarkReadWeights reads every weight value of the benchmark model.
// The MB/s figure is file bytes per second.
func BenchmarkReadWeights(b *testing.B) {
	path, size := writeBenchModel(b)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		net, err := caffe.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		if got := len(net.Param.GetLayer()); got != benchLayers+1 {
			b.Fatalf("read %d layers, want %d", got, benchLayers+1)
		}
	}
}

// BenchmarkReadStructure reads the benchmark model's layers and blob
// shapes and skips the values. The MB/s figure counts the whole file,
// skipped bytes included.
func BenchmarkReadStructure(b *testing.B) {
	path, size := writeBenchModel(b)
	b.SetBytes(size)
	b.ReportAllocs()
	opts := caffe.ReadOptions{StructureOnly: true}
	for b.Loop() {
		net, err := opts.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		if got := len(net.Param.GetLayer()); got != benchLayers+1 {
			b.Fatalf("read %d layers, want %d", got, benchLayers+1)
		}
	}
}

// BenchmarkParseTextResNet152 decodes ResNet-152's 98 KB deploy prototxt
// from memory, the text parsing that `tlsurgery inspect` starts with. The
// MB/s figure is text bytes per second.
func BenchmarkParseTextResNet152(b *testing.B) {
	text, err := os.ReadFile(corpus.Path(b, "prototxt", "resnet", "ResNet-152-deploy.prototxt"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		net, err := caffe.Read(bytes.NewReader(text))
		if err != nil {
			b.Fatal(err)
		}
		if len(net.Param.GetLayer()) == 0 {
			b.Fatal("parsed no layers")
		}
	}
}
