package onnx

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/convert/npy"
	"github.com/tlsurgery/tlsurgery/forward"
	"github.com/tlsurgery/tlsurgery/graph"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
	"github.com/tlsurgery/tlsurgery/internal/oracle"
	"github.com/tlsurgery/tlsurgery/surgery"
)

// TestRuntimeFCToConvLargerInput: every real caffemodel with an
// InnerProduct, after fc2conv at twice its input size, exports to ONNX and
// runs in ONNX Runtime, producing the output maps shape inference predicts
// and the values our forward pass computes.
func TestRuntimeFCToConvLargerInput(t *testing.T) {
	oracle.Node(t)
	pairs := []struct{ name, prototxt, caffemodel string }{
		{"lenet", "caffemodel/lenet/lenet.prototxt", "caffemodel/lenet/lenet_iter_10000.caffemodel"},
		{"cifar10_quick", "prototxt/bvlc/cifar10_quick.prototxt", "caffemodel/cifar10_quick/cifar10_quick_iter_5000.caffemodel"},
		{"cifar10_full", "caffemodel/cifar10_full/cifar10_full.prototxt", "caffemodel/cifar10_full/cifar10_full_iter_70000.caffemodel"},
		{"det2", "caffemodel/mtcnn/det2.prototxt", "caffemodel/mtcnn/det2.caffemodel"},
		{"det3", "caffemodel/mtcnn/det3.prototxt", "caffemodel/mtcnn/det3.caffemodel"},
		{"det4", "caffemodel/mtcnn/det4.prototxt", "caffemodel/mtcnn/det4.caffemodel"},
		{"character", "caffemodel/hyperlpr/CharacterRecognization.prototxt", "caffemodel/hyperlpr/CharacterRecognization.caffemodel"},
		{"segmentation", "caffemodel/hyperlpr/Segmentation.prototxt", "caffemodel/hyperlpr/Segmentation.caffemodel"},
		{"finemapping", "caffemodel/hyperlpr/HorizonalFinemapping.prototxt", "caffemodel/hyperlpr/HorizonalFinemapping_v2020-07.caffemodel"},
	}
	dir := t.TempDir()
	type job struct {
		ID     string            `json:"id"`
		Model  string            `json:"model"`
		Inputs map[string]string `json:"inputs"`
		OutDir string            `json:"out_dir"`
	}
	var jobs []job
	want := map[string]*forward.Result{}
	for i, p := range pairs {
		net, err := caffe.ReadFile(corpus.Path(t, p.prototxt))
		if err != nil {
			t.Fatal(err)
		}
		w, err := caffe.ReadFile(corpus.Path(t, p.caffemodel))
		if err != nil {
			t.Fatal(err)
		}
		if net, _, err = caffe.AttachWeights(net, w); err != nil {
			t.Fatal(err)
		}
		g := graph.Build(net, graph.Options{})
		g.Infer()
		in := firstInput(g)
		big := []int{1, in.Shape[1], 2 * in.Shape[2], 2 * in.Shape[3]}
		conv, _, err := surgery.FCToConv(net, surgery.FCToConvOptions{NewInputs: map[string][]int{"": big}})
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		model := filepath.Join(dir, p.name+".onnx")
		if err := WriteFile(model, conv, Options{Opset: 13}); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}

		x := &forward.Tensor{Shape: big, Data: make([]float32, big[0]*big[1]*big[2]*big[3])}
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		for j := range x.Data {
			x.Data[j] = float32(rng.NormFloat64())
		}
		xPath := filepath.Join(dir, p.name+".npy")
		if err := npy.WriteFile(xPath, &npy.Array{Shape: x.Shape, Data: x.Data}); err != nil {
			t.Fatal(err)
		}
		fn, err := forward.Compile(conv, forward.Options{})
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		res, err := fn.Run(map[string]*forward.Tensor{in.Blob: x})
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		want[p.name] = res
		jobs = append(jobs, job{ID: p.name, Model: model, Inputs: map[string]string{in.Blob: xPath}, OutDir: filepath.Join(dir, fmt.Sprint(i))})
	}
	for _, j := range jobs {
		if err := mkdir(j.OutDir); err != nil {
			t.Fatal(err)
		}
	}
	input, _ := json.Marshal(jobs)
	var results []forwardResult
	if err := json.Unmarshal(oracle.RunNode(t, oracle.ORTRunScript, input), &results); err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		t.Run(r.ID, func(t *testing.T) {
			if !r.OK {
				t.Fatalf("ONNX Runtime: %s", r.Error)
			}
			res := want[r.ID]
			for _, o := range r.Outputs {
				ours := res.Blob(o.Name)
				if ours == nil {
					t.Errorf("output %q is not a blob of the converted net", o.Name)
					continue
				}
				if !slices.Equal(o.Shape, ours.Shape) {
					t.Errorf("output %q: ONNX Runtime gives %v, shape inference predicts %v", o.Name, o.Shape, ours.Shape)
					continue
				}
				a, err := npy.ReadFile(o.Path)
				if err != nil {
					t.Fatal(err)
				}
				var d, m float64
				for k := range a.Data {
					d = math.Max(d, math.Abs(float64(a.Data[k]-ours.Data[k])))
					m = math.Max(m, math.Abs(float64(ours.Data[k])))
				}
				t.Logf("%s %v: relative difference %.3g", o.Name, o.Shape, d/m)
				if d > 1e-4*m {
					t.Errorf("output %q differs from the forward pass by %.3g relative", o.Name, d/m)
				}
			}
		})
	}
}

// firstInput returns the first input value of g (an Input layer's top).
func firstInput(g *graph.Graph) *graph.Value {
	if len(g.Inputs) > 0 {
		return g.Inputs[0]
	}
	for _, l := range g.Layers {
		if l.Type() == "Input" {
			return l.Tops[0]
		}
	}
	return nil
}

func mkdir(dir string) error { return os.MkdirAll(dir, 0o755) }
