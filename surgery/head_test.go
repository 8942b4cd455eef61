package surgery

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/graph"
)

// headTestNet is a small train net whose classifier fc8 is read by an
// in-place Dropout, a TEST-only Accuracy and a loss.
const headTestNet = `
name: "head"
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } shape { dim: 2 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "fc7" type: "InnerProduct" bottom: "conv1" top: "fc7"
  inner_product_param { num_output: 6 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "fc8" type: "InnerProduct" bottom: "fc7" top: "fc8"
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "drop8" type: "Dropout" bottom: "fc8" top: "fc8" }
layer { name: "accuracy" type: "Accuracy" bottom: "fc8" bottom: "label" top: "accuracy" include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc8" bottom: "label" top: "loss" }
`

// initTestNet returns text's net with weights from InitWeights.
func initTestNet(t *testing.T, text string) *caffe.Net {
	t.Helper()
	net, _, err := InitWeights(parseTestNet(t, text), InitOptions{Seed: 1})
	if err != nil {
		t.Fatalf("InitWeights: %v", err)
	}
	return net
}

func TestReplaceHeadInnerProduct(t *testing.T) {
	net := initTestNet(t, headTestNet)
	before := snapshotNet(net)
	out, report, err := ReplaceHead(net, HeadOptions{Classes: 3})
	if err != nil {
		t.Fatalf("ReplaceHead: %v", err)
	}
	before.check(t, net, "ReplaceHead")

	head := out.Param.GetLayer()[3]
	if head.GetName() != "fc8_new" || head.GetType() != "InnerProduct" {
		t.Fatalf("layer 3 is %s %q, want InnerProduct fc8_new", head.GetType(), head.GetName())
	}
	if !slices.Equal(head.GetBottom(), []string{"fc7"}) || !slices.Equal(head.GetTop(), []string{"fc8_new"}) {
		t.Errorf("fc8_new reads %q and writes %q, want fc7 and fc8_new", head.GetBottom(), head.GetTop())
	}
	p := head.GetInnerProductParam()
	if p.GetNumOutput() != 3 {
		t.Errorf("fc8_new has num_output %d, want 3", p.GetNumOutput())
	}
	wantWeight := &caffepb.FillerParameter{Type: proto.String("gaussian"), Std: proto.Float32(0.01)}
	wantBias := &caffepb.FillerParameter{Type: proto.String("constant"), Value: proto.Float32(0)}
	if !proto.Equal(p.GetWeightFiller(), wantWeight) || !proto.Equal(p.GetBiasFiller(), wantBias) {
		t.Errorf("fc8_new has the fillers %v and %v, want gaussian std 0.01 and constant 0", p.GetWeightFiller(), p.GetBiasFiller())
	}
	if got := multipliers(head); !slices.Equal(got, [][2]float32{{10, 1}, {20, 0}}) {
		t.Errorf("fc8_new has the multipliers %v, want [10 1] and [20 0]", got)
	}
	if len(head.GetBlobs()) != 0 {
		t.Errorf("fc8_new carries %d blobs; the old weights must not be in the result", len(head.GetBlobs()))
	}

	for _, name := range []string{"drop8", "accuracy", "loss"} {
		if got := findLayer(t, out, name).GetBottom()[0]; got != "fc8_new" {
			t.Errorf("%s reads %q, want fc8_new", name, got)
		}
	}
	if got := findLayer(t, out, "drop8").GetTop(); !slices.Equal(got, []string{"fc8_new"}) {
		t.Errorf("the in-place drop8 writes %q, want fc8_new", got)
	}
	for _, name := range []string{"conv1", "fc7"} {
		got, want := findLayer(t, out, name).GetBlobs(), findLayer(t, net, name).GetBlobs()
		if len(got) != 2 || &got[0].Data[0] != &want[0].Data[0] {
			t.Errorf("%s does not keep its weights", name)
		}
	}

	var changed []string
	for _, c := range report.Changes {
		changed = append(changed, c.Layer)
	}
	if !slices.Equal(changed, []string{"fc8", "drop8", "accuracy", "loss"}) {
		t.Errorf("report lists changes to %q, want fc8, drop8, accuracy and loss", changed)
	}
	if d := report.Changes[0].Detail; !strings.Contains(d, `replaced by InnerProduct "fc8_new" with 3 outputs (was 5)`) || !strings.Contains(d, "its 2 weight blobs are dropped") {
		t.Errorf("fc8's change %q does not name the new layer, the outputs and the dropped weights", d)
	}
}

func TestReplaceHeadTwice(t *testing.T) {
	net := initTestNet(t, headTestNet)
	out, _, err := ReplaceHead(net, HeadOptions{Classes: 3})
	if err != nil {
		t.Fatalf("ReplaceHead: %v", err)
	}
	before := snapshotNet(out)
	again, _, err := ReplaceHead(out, HeadOptions{Classes: 3})
	if !errors.Is(err, ErrNothingToDo) || again != nil {
		t.Errorf("ReplaceHead of its own result returns (%v, %v), want an error wrapping ErrNothingToDo", again, err)
	}
	_, _, err = ReplaceHead(out, HeadOptions{Classes: 3, Layer: "fc8"})
	if err == nil || !strings.Contains(err.Error(), `no layer "fc8"`) {
		t.Errorf("ReplaceHead of fc8 in its own result returns %v, want an error that fc8 is gone", err)
	}
	before.check(t, out, "ReplaceHead")
}

func TestReplaceHeadConvolutionClassifier(t *testing.T) {
	net := parseTestNet(t, `
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 8 dim: 7 dim: 7 } } }
layer { name: "conv5" type: "Convolution" bottom: "data" top: "conv5" convolution_param { num_output: 8 kernel_size: 3 } }
layer { name: "pool" type: "Pooling" bottom: "conv5" top: "pool" pooling_param { pool: AVE global_pooling: true } }
layer { name: "classifier" type: "Convolution" bottom: "pool" top: "score" convolution_param { num_output: 1000 kernel_size: 1 } }
layer { name: "prob" type: "Softmax" bottom: "score" top: "prob" }
`)
	out, report, err := ReplaceHead(net, HeadOptions{Classes: 10, Name: "classifier_pets"})
	if err != nil {
		t.Fatalf("ReplaceHead: %v", err)
	}
	head := findLayer(t, out, "classifier_pets")
	if head.GetType() != "Convolution" || head.GetConvolutionParam().GetNumOutput() != 10 {
		t.Errorf("the new layer is a %s with %d outputs, want a Convolution with 10", head.GetType(), head.GetConvolutionParam().GetNumOutput())
	}
	if got := head.GetConvolutionParam().GetKernelSize(); !slices.Equal(got, []uint32{1}) {
		t.Errorf("the new layer has kernel_size %v, want the old 1", got)
	}
	// The top is not named like the layer, so it keeps its name.
	if !slices.Equal(head.GetTop(), []string{"score"}) || !slices.Equal(findLayer(t, out, "prob").GetBottom(), []string{"score"}) {
		t.Errorf("the new layer writes %q and prob reads %q, want score for both", head.GetTop(), findLayer(t, out, "prob").GetBottom())
	}
	if !slices.Contains(report.Outputs, "prob 1×10×1×1") {
		t.Errorf("report outputs %q, want prob 1×10×1×1", report.Outputs)
	}
}

func TestReplaceHeadErrors(t *testing.T) {
	net := parseTestNet(t, headTestNet)
	noClassifier := parseTestNet(t, `
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 4 kernel_size: 3 } }
`)
	after := parseTestNet(t, headTestNet+`
layer { name: "fc9" type: "InnerProduct" bottom: "fc8" top: "fc9" inner_product_param { num_output: 2 } }
`)
	cases := []struct {
		name string
		net  *caffe.Net
		opts HeadOptions
		want string
	}{
		{"no classes", net, HeadOptions{}, "number of classes must be positive"},
		{"missing layer", net, HeadOptions{Classes: 2, Layer: "fc9"}, `no layer "fc9"`},
		{"not a classifier", net, HeadOptions{Classes: 2, Layer: "drop8"}, `layer "drop8" is a Dropout`},
		{"layer name taken", net, HeadOptions{Classes: 2, Name: "fc7"}, `already has a layer "fc7"`},
		{"blob name taken", net, HeadOptions{Classes: 2, Name: "label"}, `already uses a blob "label"`},
		{"same name", net, HeadOptions{Classes: 2, Name: "fc8"}, `already has a layer "fc8"`},
		{"no 1×1 classifier", noClassifier, HeadOptions{Classes: 2}, `last Convolution "conv" is not 1×1`},
		// fc9's 2×5 weights take 5 inputs, so a 3-output fc8 makes the
		// net invalid.
		{"later layer depends on classes", withWeights(t, after, "fc9", []int{2, 5}), HeadOptions{Classes: 3, Layer: "fc8"}, "does a later layer depend on the number of classes?"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := ReplaceHead(c.net, c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("ReplaceHead returns %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// withWeights gives layer name of net a zero weight blob of the given
// shape and a zero bias.
func withWeights(t *testing.T, net *caffe.Net, name string, shape []int) *caffe.Net {
	t.Helper()
	l := findLayer(t, net, name)
	dims := []int64{int64(shape[0]), int64(shape[1])}
	l.Blobs = []*caffepb.BlobProto{
		{Shape: &caffepb.BlobShape{Dim: dims}, Data: make([]float32, shape[0]*shape[1])},
		{Shape: &caffepb.BlobShape{Dim: dims[:1]}, Data: make([]float32, shape[0])},
	}
	return net
}

func TestReplaceHeadSharedParamsWarn(t *testing.T) {
	net := parseTestNet(t, strings.Replace(headTestNet, "param { lr_mult: 1 decay_mult: 1 }", `param { name: "fc8_w" lr_mult: 1 decay_mult: 1 }`, 1))
	_, report, err := ReplaceHead(net, HeadOptions{Classes: 3})
	if err != nil {
		t.Fatalf("ReplaceHead: %v", err)
	}
	if len(report.Warnings) != 1 || !strings.Contains(report.Warnings[0], `shared blobs by param name ["fc8_w"]`) {
		t.Errorf("warnings %q, want one naming the shared blob fc8_w", report.Warnings)
	}
}

func TestFinetuneSolverText(t *testing.T) {
	solver, err := FinetuneSolver(SolverOptions{Net: "out/pets.prototxt", HeadLR: 0.01, StepSize: 2000, MaxIter: 10000, SnapshotPrefix: "out/pets"})
	if err != nil {
		t.Fatalf("FinetuneSolver: %v", err)
	}
	var b strings.Builder
	if err := caffe.WriteText(&b, solver); err != nil {
		t.Fatal(err)
	}
	want := `net: "out/pets.prototxt"
base_lr: 0.001
max_iter: 10000
lr_policy: "step"
gamma: 0.1
momentum: 0.9
weight_decay: 0.0005
stepsize: 2000
snapshot_prefix: "out/pets"
`
	if b.String() != want {
		t.Errorf("solver text:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestFinetuneSolverErrors(t *testing.T) {
	valid := SolverOptions{Net: "n.prototxt", HeadLR: 0.01, StepSize: 1, MaxIter: 1, SnapshotPrefix: "s"}
	cases := []struct {
		name string
		edit func(o *SolverOptions)
		want string
	}{
		{"no net", func(o *SolverOptions) { o.Net = "" }, "missing the net file"},
		{"zero rate", func(o *SolverOptions) { o.HeadLR = 0 }, "learning rate must be positive"},
		{"zero stepsize", func(o *SolverOptions) { o.StepSize = 0 }, "stepsize must be between"},
		{"huge max_iter", func(o *SolverOptions) { o.MaxIter = 1 << 40 }, "max_iter must be between"},
		{"no prefix", func(o *SolverOptions) { o.SnapshotPrefix = "" }, "missing the snapshot prefix"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := valid
			c.edit(&o)
			if _, err := FinetuneSolver(o); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("FinetuneSolver returns %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// TestReplaceHeadGraphOptions replaces a head that only the TRAIN phase
// selects.
func TestReplaceHeadGraphOptions(t *testing.T) {
	net := parseTestNet(t, `
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4 } } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" include { phase: TRAIN } inner_product_param { num_output: 2 } }
`)
	if _, _, err := ReplaceHead(net, HeadOptions{Classes: 3}); err == nil {
		t.Errorf("ReplaceHead finds a classifier in the TEST phase, which has none")
	}
	out, _, err := ReplaceHead(net, HeadOptions{Classes: 3, Graph: graph.Options{Train: true}})
	if err != nil {
		t.Fatalf("ReplaceHead in the TRAIN phase: %v", err)
	}
	if findLayer(t, out, "fc_new").GetInnerProductParam().GetNumOutput() != 3 {
		t.Errorf("fc_new does not have 3 outputs")
	}
}
