package graph_test

import (
	"testing"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/graph"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
)

// BenchmarkInferResNet152 builds the layer graph of ResNet-152's deploy
// net (the TEST phase at its declared 1×3×224×224 input) and infers every
// blob's shape, the shape-only work of `tlsurgery inspect`.
func BenchmarkInferResNet152(b *testing.B) {
	net, err := caffe.ReadFile(corpus.Path(b, "prototxt", "resnet", "ResNet-152-deploy.prototxt"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		g := graph.Build(net, graph.Options{})
		g.Infer()
		if err := g.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSummarizeResNet152 adds what `tlsurgery inspect` computes for
// its table on top of shape inference: parameter counts, multiply-adds
// and activation memory per layer.
func BenchmarkSummarizeResNet152(b *testing.B) {
	net, err := caffe.ReadFile(corpus.Path(b, "prototxt", "resnet", "ResNet-152-deploy.prototxt"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if s, _ := graph.Summarize(net, graph.Options{}); len(s.Layers) == 0 {
			b.Fatal("the summary has no layers")
		}
	}
}
