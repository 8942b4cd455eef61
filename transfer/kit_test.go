package transfer

import (
	"encoding/json"
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

// runOpenCV runs a Caffe net in OpenCV on an .npy input and returns the
// named layers' outputs.
func runOpenCV(t *testing.T, prototxt, caffemodel, input string, outputs []string) map[string]*npy.Array {
	t.Helper()
	oracle.Python(t)
	dir := t.TempDir()
	script, err := os.ReadFile(filepath.Join("..", "internal", "oracle", "opencv_run_npy.py"))
	if err != nil {
		t.Fatal(err)
	}
	job, _ := json.Marshal(map[string]any{"prototxt": prototxt, "caffemodel": caffemodel, "input": input, "outputs": outputs, "out_dir": dir})
	oracle.RunPython(t, string(script), job)
	out := map[string]*npy.Array{}
	for _, name := range outputs {
		a, err := npy.ReadFile(filepath.Join(dir, name+".npy"))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = a
	}
	return out
}

func argmaxRows(data []float32, k int) []int {
	out := make([]int, len(data)/k)
	for i := range out {
		row := data[i*k : (i+1)*k]
		for j := range row {
			if row[j] > row[out[i]] {
				out[i] = j
			}
		}
	}
	return out
}

// TestAppendedClassifierOpenCV: LeNet truncated at ip1 with a linear
// classifier appended classifies the digits; OpenCV running the written
// files predicts what the forward pass predicts.
func TestAppendedClassifierOpenCV(t *testing.T) {
	im, err := ReadDigitsCSV(filepath.Join(corpus.Shared(t), "datasets", "digits", "digits.csv.gz"), 1.0/256)
	if err != nil {
		t.Fatal(err)
	}
	net := lenet(t)
	trunc, _, err := surgery.Truncate(net, "ip1", graph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := codes(t, trunc, im, "ip1")
	perm := rand.New(rand.NewPCG(1, 2)).Perm(im.N)
	train, test := perm[:300], perm[300:]
	xtr, ytr := subset(out["ip1"], 500, im.Labels, train)
	c, _, err := TrainLinear(xtr, 500, ytr, LinearOptions{Val: -1})
	if err != nil {
		t.Fatal(err)
	}
	full, err := AppendClassifier(trunc, "ip1", c, "digits", graph.Options{})
	if err != nil {
		t.Fatal(err)
	}

	// The test images, as one batch.
	xte := gather(im.Data, 28*28, test)
	n := len(test)
	dir := t.TempDir()
	proto, model, input := filepath.Join(dir, "net.prototxt"), filepath.Join(dir, "net.caffemodel"), filepath.Join(dir, "x.npy")
	if err := (caffe.WriteOptions{}).WriteFile(full, proto); err != nil {
		t.Fatal(err)
	}
	if err := (caffe.WriteOptions{}).WriteFile(full, model); err != nil {
		t.Fatal(err)
	}
	if err := npy.WriteFile(input, &npy.Array{Shape: []int{n, 1, 28, 28}, Data: xte}); err != nil {
		t.Fatal(err)
	}

	fn, err := forward.Compile(full, forward.Options{Graph: graph.Options{Inputs: map[string][]int{"": {n, 1, 28, 28}}}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := fn.Run(map[string]*forward.Tensor{"data": {Shape: []int{n, 1, 28, 28}, Data: xte}})
	if err != nil {
		t.Fatal(err)
	}
	ours := argmaxRows(res.Blob("digits_prob").Data, 10)
	cv := runOpenCV(t, proto, model, input, []string{"digits_prob"})
	theirs := argmaxRows(cv["digits_prob"].Data, 10)
	same, right := 0, 0
	for i := range ours {
		if ours[i] == theirs[i] {
			same++
		}
		if ours[i] == im.Labels[test[i]] {
			right++
		}
	}
	t.Logf("%d of %d predictions agree with OpenCV; accuracy %.4f", same, n, float64(right)/float64(n))
	if same != n {
		t.Errorf("OpenCV predicts differently on %d of %d images", n-same, n)
	}
}

// TestFinetuneKit: the deploy net loads and runs in OpenCV, and the
// train_val net and solver read back with the intended multipliers.
func TestFinetuneKit(t *testing.T) {
	net := lenet(t)
	kit, err := Finetune(net, FinetuneOptions{Classes: 5, FreezeThrough: "conv2", BaseLR: 0.01, Dir: "out"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	deploy, weights := filepath.Join(dir, "deploy.prototxt"), filepath.Join(dir, "weights.caffemodel")
	tv := filepath.Join(dir, "train_val.prototxt")
	for path, n := range map[string]*caffe.Net{deploy: kit.Deploy, weights: kit.Deploy, tv: kit.TrainVal} {
		if err := (caffe.WriteOptions{}).WriteFile(n, path); err != nil {
			t.Fatal(err)
		}
	}
	if got := kit.Solver.GetBaseLr(); got != 0.001 {
		t.Errorf("base_lr %g, want 0.001", got)
	}

	back, err := caffe.ReadFile(tv)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]float32{"conv1": {0, 0}, "conv2": {0, 0}, "ip2_new": {10, 20}}
	for _, l := range back.Param.GetLayer() {
		w, ok := want[l.GetName()]
		if !ok {
			continue
		}
		ps := l.GetParam()
		if len(ps) != 2 || ps[0].GetLrMult() != w[0] || ps[1].GetLrMult() != w[1] {
			t.Errorf("layer %s params %v, want lr_mult %v", l.GetName(), ps, w)
		}
		delete(want, l.GetName())
	}
	if len(want) > 0 {
		t.Errorf("layers missing from train_val: %v", want)
	}
	g := graph.Build(back, graph.Options{Train: true, Inputs: map[string][]int{"data": {32, 1, 28, 28}, "label": {32}}})
	g.Infer()
	if err := g.Validate(); err != nil {
		t.Errorf("train_val: %v", err)
	}

	// The new head has no weights yet (Caffe fills it when training
	// starts), so OpenCV can load the deploy net and the weights but not
	// run them.
	oracle.Python(t)
	job, _ := json.Marshal([]map[string]any{{"id": "deploy", "prototxt": deploy, "caffemodel": weights}})
	var loaded []struct {
		OK     bool     `json:"ok"`
		Error  string   `json:"error"`
		Layers []string `json:"layers"`
	}
	if err := json.Unmarshal(oracle.RunPython(t, oracle.OpenCVLoadScript, job), &loaded); err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 1 || !loaded[0].OK {
		t.Fatalf("OpenCV cannot load the deploy net: %+v", loaded)
	}
	if !slices.Contains(loaded[0].Layers, "ip2_new") {
		t.Errorf("OpenCV's layers %v lack the new head ip2_new", loaded[0].Layers)
	}
}
