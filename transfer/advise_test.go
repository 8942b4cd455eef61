package transfer

import (
	"testing"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
)

func TestAdviseLayersFromStructure(t *testing.T) {
	tests := []struct {
		net                  string
		samples              int
		similar              bool
		classifier, features string
	}{
		{"caffemodel/lenet/lenet.prototxt", 300, true, "ip2", "ip1"},
		{"caffemodel/lenet/lenet.prototxt", 1000, false, "ip2", "pool2"},
		{"prototxt/bvlc/bvlc_reference_caffenet_deploy.prototxt", 500, true, "fc8", "fc7"},
		{"prototxt/bvlc/bvlc_reference_caffenet_deploy.prototxt", 500, false, "fc8", "pool5"},
		{"prototxt/resnet/ResNet-50-deploy.prototxt", 500, true, "fc1000", "pool5"},
		{"prototxt/resnet/ResNet-50-deploy.prototxt", 500, false, "fc1000", "res5c"},
		{"prototxt/bvlc/bvlc_googlenet_deploy.prototxt", 500, false, "loss3/classifier", "inception_5b/output"},
		{"prototxt/squeezenet/SqueezeNet_v1.1_deploy.prototxt", 500, true, "conv10", "fire9/concat"},
	}
	for _, tt := range tests {
		t.Run(tt.net, func(t *testing.T) {
			net, err := caffe.ReadFile(corpus.Path(t, tt.net))
			if err != nil {
				t.Fatal(err)
			}
			a, err := Advise(net, AdviseOptions{Samples: tt.samples, Similar: tt.similar, Classes: 10, NetPath: "net.prototxt"})
			if err != nil {
				t.Fatal(err)
			}
			if a.Classifier != tt.classifier || a.Features != tt.features {
				t.Errorf("classifier %q features %q, want %q and %q (%s)", a.Classifier, a.Features, tt.classifier, tt.features, a.Reason)
			}
		})
	}
}
