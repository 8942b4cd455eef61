package surgery_test

import (
	"testing"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
	"github.com/tlsurgery/tlsurgery/surgery"
)

// BenchmarkFCToConvVGG16 converts the three InnerProduct layers of VGG-16
// (123 million of its 138 million weights) into convolutions. The weights
// come from InitWeights with the deploy net's default fillers (zeros),
// which fc2conv treats like any other values. The converted net shares
// the weight values instead of copying them, so the time measures the
// graph work and does not grow with the weights' size.
func BenchmarkFCToConvVGG16(b *testing.B) {
	net, err := caffe.ReadFile(corpus.Path(b, "prototxt", "vgg", "VGG_ILSVRC_16_layers_deploy_upgraded_V2.prototxt"))
	if err != nil {
		b.Fatal(err)
	}
	net, _, err = surgery.InitWeights(net, surgery.InitOptions{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		converted, _, err := surgery.FCToConv(net, surgery.FCToConvOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range converted.Param.GetLayer() {
			if l.GetType() == "InnerProduct" {
				b.Fatalf("layer %q is still an InnerProduct", l.GetName())
			}
		}
	}
}
