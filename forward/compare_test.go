package forward

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/surgery"
)

func TestCompareDiffs(t *testing.T) {
	inf := math.Inf(1)
	nan := float32(math.NaN())
	tests := []struct {
		name           string
		a, b           *Tensor
		maxAbs, maxRel float64
	}{
		{"equal", &Tensor{Shape: []int{2}, Data: []float32{1, -2}}, &Tensor{Shape: []int{2}, Data: []float32{1, -2}}, 0, 0},
		{"one value off", &Tensor{Shape: []int{2}, Data: []float32{1, -2.5}}, &Tensor{Shape: []int{2}, Data: []float32{1, -2}}, 0.5, 0.25},
		{"trailing unit axes", &Tensor{Shape: []int{1, 2, 1, 1}, Data: []float32{1, 4}}, &Tensor{Shape: []int{1, 2}, Data: []float32{1, 3}}, 1, 1.0 / 3},
		{"other shape", &Tensor{Shape: []int{2, 1}, Data: []float32{1, 2}}, &Tensor{Shape: []int{1, 2}, Data: []float32{1, 2}}, inf, inf},
		{"zero reference", &Tensor{Shape: []int{2}, Data: []float32{0, 1}}, &Tensor{Shape: []int{2}, Data: []float32{0, 0}}, 1, inf},
		{"both zero", &Tensor{Shape: []int{2}, Data: []float32{0, 0}}, &Tensor{Shape: []int{2}, Data: []float32{0, 0}}, 0, 0},
		{"NaN in both", &Tensor{Shape: []int{2}, Data: []float32{nan, 2}}, &Tensor{Shape: []int{2}, Data: []float32{nan, 2}}, 0, 0},
		{"NaN in one", &Tensor{Shape: []int{2}, Data: []float32{nan, 2}}, &Tensor{Shape: []int{2}, Data: []float32{1, 2}}, inf, inf},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Compare(tt.a, tt.b)
			if d.MaxAbs != tt.maxAbs {
				t.Errorf("MaxAbs %g, want %g", d.MaxAbs, tt.maxAbs)
			}
			if math.Abs(d.MaxRel-tt.maxRel) > 1e-12 && d.MaxRel != tt.maxRel {
				t.Errorf("MaxRel %g, want %g", d.MaxRel, tt.maxRel)
			}
		})
	}
}

func TestSameShape(t *testing.T) {
	tests := []struct {
		a, b []int
		same bool
	}{
		{[]int{10, 4096}, []int{10, 4096, 1, 1}, true},
		{[]int{10, 4096, 1}, []int{10, 4096, 1, 1}, true},
		{[]int{10, 1}, []int{10}, false},
		{[]int{1, 1000}, []int{1, 1000, 8, 8}, false},
		{[]int{2, 3, 4}, []int{2, 3, 4}, true},
	}
	for _, tt := range tests {
		if got := SameShape(tt.a, tt.b); got != tt.same {
			t.Errorf("SameShape(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.same)
		}
	}
}

// verifyTestNet ends in an InnerProduct over a 2-D map and a Softmax, so
// fc2conv turns fc1 into a 6×6 convolution.
const verifyTestNet = `
name: "small"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3
          weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "fc1" type: "InnerProduct" bottom: "conv1" top: "fc1"
        inner_product_param { num_output: 5
          weight_filler { type: "gaussian" std: 0.2 } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "prob" type: "Softmax" bottom: "fc1" top: "prob" }
`

// verifyTestPair returns the test net with random weights and its fc2conv
// result, written with the given input sizes.
func verifyTestPair(t *testing.T, newInputs map[string][]int) (*caffe.Net, *caffe.Net) {
	t.Helper()
	net, err := caffe.Read(strings.NewReader(verifyTestNet))
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := surgery.InitWeights(net, surgery.InitOptions{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := surgery.FCToConv(a, surgery.FCToConvOptions{NewInputs: newInputs})
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

func TestVerifyFCToConvWithin(t *testing.T) {
	a, b := verifyTestPair(t, nil)
	report, err := Verify(a, b, VerifyOptions{Seed: 1, Tolerance: 1e-5, Blobs: []string{"fc1", "conv1"}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, row := range report.Rows {
		names = append(names, row.Blob)
		t.Logf("%s: %v vs %v, max abs %.3g, max rel %.3g", row.Blob, row.ShapeA, row.ShapeB, row.Diff.MaxAbs, row.Diff.MaxRel)
	}
	if want := []string{"prob", "fc1", "conv1"}; !slices.Equal(names, want) {
		t.Fatalf("compared blobs %v, want %v", names, want)
	}
	if !report.Within() {
		t.Errorf("fc2conv result differs beyond 1e-5: %+v", report.Rows)
	}
	if fc1 := report.Rows[1]; !slices.Equal(fc1.ShapeA, []int{2, 5}) || !slices.Equal(fc1.ShapeB, []int{2, 5, 1, 1}) {
		t.Errorf("fc1 shapes %v and %v, want 2×5 and 2×5×1×1", fc1.ShapeA, fc1.ShapeB)
	}
	if report.Rerun != "" {
		t.Errorf("Rerun %q for nets of the same input size", report.Rerun)
	}
	if !slices.Equal(report.Random, []string{"data"}) {
		t.Errorf("random inputs %v, want [data]", report.Random)
	}
}

func TestVerifyAlteredWeightBeyond(t *testing.T) {
	a, b := verifyTestPair(t, nil)
	for _, l := range b.Param.GetLayer() {
		if l.GetName() == "fc1" {
			// The converted layer may share its values with net A.
			w := slices.Clone(l.Blobs[0].Data)
			w[7] += 0.5
			l.Blobs[0].Data = w
		}
	}
	report, err := Verify(a, b, VerifyOptions{Seed: 1, Tolerance: 1e-5, Blobs: []string{"fc1"}})
	if err != nil {
		t.Fatal(err)
	}
	if report.Within() {
		t.Fatalf("a changed weight stayed within 1e-5: %+v", report.Rows)
	}
	for _, row := range report.Rows {
		if row.Within || row.Diff.MaxRel < 1e-3 {
			t.Errorf("%s: within %v, max rel %.3g; want a difference", row.Blob, row.Within, row.Diff.MaxRel)
		}
	}
}

func TestVerifyLargerInputRerun(t *testing.T) {
	a, b := verifyTestPair(t, map[string][]int{"": {2, 3, 12, 12}})
	report, err := Verify(a, b, VerifyOptions{Seed: 1, Tolerance: 1e-5})
	if err != nil {
		t.Fatal(err)
	}
	if !report.Within() {
		t.Errorf("differs beyond 1e-5 at net A's input size: %+v", report.Rows)
	}
	for _, want := range []string{`"data" as 2×3×12×12`, "2×3×8×8"} {
		if !strings.Contains(report.Rerun, want) {
			t.Errorf("Rerun %q lacks %q", report.Rerun, want)
		}
	}
}

func TestVerifyGivenInputs(t *testing.T) {
	a, b := verifyTestPair(t, nil)
	in := RandomTensor(5, 0, 1, 3, 8, 8)
	report, err := Verify(a, b, VerifyOptions{Inputs: map[string]*Tensor{"": in}, Tolerance: 1e-5})
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Random) != 0 {
		t.Errorf("random inputs %v, want none", report.Random)
	}
	if got := report.Rows[0].ShapeA; !slices.Equal(got, []int{1, 5}) {
		t.Errorf("prob shape %v with a 1×3×8×8 input, want 1×5", got)
	}
	if !report.Within() {
		t.Errorf("differs beyond 1e-5: %+v", report.Rows)
	}

	_, err = Verify(a, b, VerifyOptions{Inputs: map[string]*Tensor{"image": in}})
	if err == nil || !strings.Contains(err.Error(), `net A has no input "image"`) {
		t.Errorf("unknown input name: error %v", err)
	}
}

func TestVerifyMissingBlob(t *testing.T) {
	a, b := verifyTestPair(t, nil)
	_, err := Verify(a, b, VerifyOptions{Blobs: []string{"fc7"}})
	if err == nil || !strings.Contains(err.Error(), `net A has no blob "fc7"`) {
		t.Errorf("error %v, want one naming fc7", err)
	}
}

func TestRandomTensorRepeats(t *testing.T) {
	x, y := RandomTensor(1, 0, 2, 3), RandomTensor(1, 0, 2, 3)
	if !slices.Equal(x.Data, y.Data) {
		t.Error("the same seed gave different values")
	}
	if z := RandomTensor(2, 0, 2, 3); slices.Equal(x.Data, z.Data) {
		t.Error("seeds 1 and 2 gave the same values")
	}
}
