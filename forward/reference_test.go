package forward

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/convert/npy"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
)

// relDiff is max |a − b| ÷ max |b|.
func relDiff(a, b []float32) float64 {
	var d, m float64
	for i := range b {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
		m = math.Max(m, math.Abs(float64(b[i])))
	}
	if m == 0 {
		return d
	}
	return d / m
}

// TestCaffeReferenceLayers runs the single-layer nets whose outputs real
// Caffe computed, and requires our outputs within 1e-5 relative.
func TestCaffeReferenceLayers(t *testing.T) {
	dir := corpus.Path(t, "reference", "opencv_contrib_dnn_layers_2015")
	tests := []struct {
		name, input string
		weights     bool
	}{
		{"layer_convolution", "blob.npy", true},
		{"layer_deconvolution", "layer_deconvolution.input.npy", true},
		{"layer_inner_product", "blob.npy", true},
		{"layer_pooling_max", "blob.npy", false},
		{"layer_pooling_ave", "blob.npy", false},
		{"layer_lrn_channels", "blob.npy", false},
		{"layer_lrn_spatial", "blob.npy", false},
		{"layer_mvn", "blob.npy", false},
		{"layer_softmax", "blob.npy", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			net, err := caffe.ReadFile(filepath.Join(dir, tt.name+".prototxt"))
			if err != nil {
				t.Fatal(err)
			}
			if tt.weights {
				w, err := caffe.ReadFile(filepath.Join(dir, tt.name+".caffemodel"))
				if err != nil {
					t.Fatal(err)
				}
				if net, _, err = caffe.AttachWeights(net, w); err != nil {
					t.Fatal(err)
				}
			}
			in, err := npy.ReadFile(filepath.Join(dir, tt.input))
			if err != nil {
				t.Fatal(err)
			}
			want, err := npy.ReadFile(filepath.Join(dir, tt.name+".npy"))
			if err != nil {
				t.Fatal(err)
			}
			fn, err := Compile(net, Options{})
			if err != nil {
				t.Fatal(err)
			}
			res, err := fn.Run(map[string]*Tensor{"input": {Shape: in.Shape, Data: in.Data}})
			if err != nil {
				t.Fatal(err)
			}
			got := res.Blob("output")
			if !slices.Equal(got.Shape, want.Shape) {
				t.Fatalf("shape %v, Caffe's %v", got.Shape, want.Shape)
			}
			d := relDiff(got.Data, want.Data)
			t.Logf("relative difference %.3g", d)
			if d > 1e-5 {
				t.Errorf("relative difference %.3g from Caffe's output, want ≤ 1e-5", d)
			}
		})
	}
}
