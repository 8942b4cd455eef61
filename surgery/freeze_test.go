package surgery

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/graph"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
)

// parseTestNet reads a net written as prototxt text.
func parseTestNet(t *testing.T, text string) *caffe.Net {
	t.Helper()
	net, err := caffe.Read(strings.NewReader(text))
	if err != nil {
		t.Fatalf("reading the test net: %v", err)
	}
	return net
}

// findLayer returns the first layer of net named name, failing the test
// when there is none.
func findLayer(t *testing.T, net *caffe.Net, name string) *caffepb.LayerParameter {
	t.Helper()
	for _, l := range net.Param.GetLayer() {
		if l.GetName() == name {
			return l
		}
	}
	t.Fatalf("the net has no layer %q", name)
	return nil
}

// multipliers returns the (lr_mult, decay_mult) pairs of a layer's param
// entries, with Caffe's default 1 for unset fields.
func multipliers(l *caffepb.LayerParameter) [][2]float32 {
	var out [][2]float32
	for _, p := range l.GetParam() {
		out = append(out, [2]float32{p.GetLrMult(), p.GetDecayMult()})
	}
	return out
}

// freezeTestNet has a BatchNorm and Scale pair, a layer with one of its
// two param entries given (and a sharing name), and layers after the
// one frozen through.
const freezeTestNet = `
name: "freeze"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { name: "conv1_w" lr_mult: 1 decay_mult: 1 }
  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
  convolution_param { num_output: 4 kernel_size: 3 bias_term: false } }
layer { name: "fc" type: "InnerProduct" bottom: "conv2" top: "fc" inner_product_param { num_output: 2 } }
`

func TestFreezeThroughScale(t *testing.T) {
	net := initTestNet(t, freezeTestNet)
	before := snapshotNet(net)
	out, report, err := Freeze(net, "relu1", graph.Options{})
	if err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	before.check(t, net, "Freeze")
	if got, want := findLayer(t, out, "conv1").GetBlobs(), findLayer(t, net, "conv1").GetBlobs(); len(got) != 2 || &got[0].Data[0] != &want[0].Data[0] {
		t.Errorf("conv1 does not keep its weights")
	}

	zero := [2]float32{0, 0}
	if got := multipliers(findLayer(t, out, "conv1")); !slices.Equal(got, [][2]float32{zero, zero}) {
		t.Errorf("conv1 has the multipliers %v, want two entries of 0, 0", got)
	}
	if name := findLayer(t, out, "conv1").GetParam()[0].GetName(); name != "conv1_w" {
		t.Errorf("conv1's first param entry has the name %q, want conv1_w kept", name)
	}
	if got := multipliers(findLayer(t, out, "scale1")); !slices.Equal(got, [][2]float32{zero, zero}) {
		t.Errorf("scale1 has the multipliers %v, want two entries of 0, 0", got)
	}
	if got := findLayer(t, out, "bn1").GetParam(); len(got) != 0 {
		t.Errorf("bn1 gets %d param entries; its statistics are not learned, so it needs none", len(got))
	}
	for _, name := range []string{"conv2", "fc"} {
		if got := findLayer(t, out, name).GetParam(); len(got) != 0 {
			t.Errorf("layer %s after relu1 gets %d param entries, want none", name, len(got))
		}
	}

	var changed []string
	for _, c := range report.Changes {
		changed = append(changed, c.Layer+": "+c.Detail)
	}
	want := []string{
		"conv1: lr_mult 0, decay_mult 0 on blobs 0, 1 (1 param entry added)",
		"scale1: lr_mult 0, decay_mult 0 on blobs 0, 1 (2 param entries added)",
	}
	if !slices.Equal(changed, want) {
		t.Errorf("report changes:\n%q\nwant:\n%q", changed, want)
	}
	if len(report.Warnings) != 0 {
		t.Errorf("unexpected warnings: %q", report.Warnings)
	}
}

func TestFreezeTwiceIsNothingToDo(t *testing.T) {
	net := parseTestNet(t, freezeTestNet)
	out, _, err := Freeze(net, "fc", graph.Options{})
	if err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	before := snapshotNet(out)
	again, report, err := Freeze(out, "fc", graph.Options{})
	if !errors.Is(err, ErrNothingToDo) || again != nil {
		t.Fatalf("Freeze of its own result returns (%v, %v), want no net and an error wrapping ErrNothingToDo", again, err)
	}
	if report == nil || len(report.Changes) != 0 {
		t.Errorf("report %v, want one with no changes", report)
	}
	before.check(t, out, "Freeze")
}

func TestFreezeUnknownLayer(t *testing.T) {
	net := parseTestNet(t, freezeTestNet)
	_, _, err := Freeze(net, "conv9", graph.Options{})
	if err == nil || !strings.Contains(err.Error(), `no layer "conv9"`) {
		t.Errorf("Freeze through a missing layer returns %v, want an error naming it", err)
	}
}

// TestFreezeTrainNetWithoutShapes freezes a train net whose Data layer
// states no size, so no shape is known and the learnable blobs follow
// from the layers' parameters.
func TestFreezeTrainNetWithoutShapes(t *testing.T) {
	net := parseTestNet(t, `
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN } data_param { source: "train_lmdb" batch_size: 8 } }
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TEST } data_param { source: "val_lmdb" batch_size: 8 } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 4 kernel_size: 3 bias_term: false } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" batch_norm_param { scale_bias: true } }
layer { name: "prelu1" type: "PReLU" bottom: "conv1" top: "conv1" }
layer { name: "fc" type: "InnerProduct" bottom: "conv1" top: "fc" inner_product_param { num_output: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
`)
	out, _, err := Freeze(net, "prelu1", graph.Options{Train: true})
	if err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	zero := [2]float32{0, 0}
	if got := multipliers(findLayer(t, out, "conv1")); !slices.Equal(got, [][2]float32{zero}) {
		t.Errorf("conv1 (no bias) has the multipliers %v, want one entry of 0, 0", got)
	}
	// NVIDIA Caffe's scale_bias stores a learned scale and bias as blobs 3
	// and 4, after the statistics, so entries 0 to 2 must exist too.
	if got := multipliers(findLayer(t, out, "bn1")); !slices.Equal(got, [][2]float32{zero, zero, zero, zero, zero}) {
		t.Errorf("bn1 with scale_bias has the multipliers %v, want five entries of 0, 0", got)
	}
	if got := multipliers(findLayer(t, out, "prelu1")); !slices.Equal(got, [][2]float32{zero}) {
		t.Errorf("prelu1 has the multipliers %v, want one entry of 0, 0", got)
	}
	if got := findLayer(t, out, "fc").GetParam(); len(got) != 0 {
		t.Errorf("fc after prelu1 gets %d param entries, want none", len(got))
	}
}

// TestFreezeOtherPhaseCopies freezes both per-phase copies of a layer,
// although only the TEST phase's copy is in the selected graph.
func TestFreezeOtherPhaseCopies(t *testing.T) {
	net := parseTestNet(t, `
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4 } } }
layer { name: "fc1" type: "InnerProduct" bottom: "data" top: "fc1" include { phase: TRAIN } inner_product_param { num_output: 3 } }
layer { name: "fc1" type: "InnerProduct" bottom: "data" top: "fc1" include { phase: TEST } inner_product_param { num_output: 3 } }
`)
	out, report, err := Freeze(net, "fc1", graph.Options{})
	if err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	for i, l := range out.Param.GetLayer()[1:] {
		if got := multipliers(l); !slices.Equal(got, [][2]float32{{0, 0}, {0, 0}}) {
			t.Errorf("copy %d of fc1 has the multipliers %v, want two entries of 0, 0", i, got)
		}
	}
	if len(report.Changes) != 2 {
		t.Errorf("report lists %d changes, want 2 (one per copy)", len(report.Changes))
	}
}

func TestFreezeUnknownTypeWarns(t *testing.T) {
	net := parseTestNet(t, `
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4 } } }
layer { name: "custom" type: "Python" bottom: "data" top: "custom" param { lr_mult: 1 } python_param { module: "m" layer: "L" } }
`)
	out, report, err := Freeze(net, "custom", graph.Options{})
	if err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	if got := multipliers(findLayer(t, out, "custom")); !slices.Equal(got, [][2]float32{{0, 0}}) {
		t.Errorf("the Python layer has the multipliers %v, want its one entry set to 0, 0", got)
	}
	if len(report.Warnings) != 1 || !strings.Contains(report.Warnings[0], `layer "custom" (Python): the number of its learnable blobs is unknown`) {
		t.Errorf("warnings %q, want one about the unknown blob count of custom", report.Warnings)
	}
}

// TestFreezeSiameseSharedWarning freezes one branch of the MNIST siamese
// net, whose two branches share every blob by param name: each frozen
// blob gets a warning naming the trainable sharer.
func TestFreezeSiameseSharedWarning(t *testing.T) {
	net, err := caffe.ReadFile(corpus.Path(t, "prototxt", "bvlc", "mnist_siamese_train_test.prototxt"))
	if err != nil {
		t.Fatal(err)
	}
	before := snapshotNet(net)
	out, report, err := Freeze(net, "conv1", graph.Options{Train: true})
	if err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	before.check(t, net, "Freeze")
	if got := multipliers(findLayer(t, out, "conv1")); !slices.Equal(got, [][2]float32{{0, 0}, {0, 0}}) {
		t.Errorf("conv1 has the multipliers %v, want two entries of 0, 0", got)
	}
	if got := multipliers(findLayer(t, out, "conv1_p")); slices.Equal(got, [][2]float32{{0, 0}, {0, 0}}) {
		t.Errorf("conv1_p, in the other branch, is frozen too")
	}
	if len(report.Warnings) != 2 {
		t.Fatalf("warnings %q, want one per shared blob of conv1", report.Warnings)
	}
	for i, w := range report.Warnings {
		if !strings.Contains(w, `with "conv1_p", which stays trainable`) || !strings.Contains(w, "has mismatched lr_mult") {
			t.Errorf("warning %d %q does not name conv1_p and Caffe's error", i, w)
		}
	}
}
