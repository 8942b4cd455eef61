package surgery

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tlsurgery/tlsurgery/graph"
)

// foldInPlaceNet is a 2-channel 1×1 convolution without bias, followed in
// place by a BatchNorm (eps 1, factor 2) and a Scale with bias.
const foldInPlaceNet = `
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 3 dim: 3 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 2 kernel_size: 1 bias_term: false }
  blobs { shape { dim: 2 dim: 1 dim: 1 dim: 1 } data: 2 data: -1 } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" batch_norm_param { eps: 1 }
  blobs { shape { dim: 2 } data: 2 data: -4 }
  blobs { shape { dim: 2 } data: 6 data: 48 }
  blobs { shape { dim: 1 } data: 2 } }
layer { name: "scale" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true }
  blobs { shape { dim: 2 } data: 3 data: 10 }
  blobs { shape { dim: 2 } data: 0.5 data: -1 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
`

// TestFoldBatchNormInPlaceExact checks the folded values computed by
// hand. The statistics are the stored sums ÷ factor 2: mean (1, −2) and
// variance (3, 24), so √(var + eps) = (2, 5). With γ = (3, 10) the
// channel factors are γ/√(var+eps) = (1.5, 2), so
//
//	w' = (2·1.5, −1·2) = (3, −2)
//	b' = (0 − 1)·1.5 + 0.5 = −1 and (0 + 2)·2 − 1 = 3.
func TestFoldBatchNormInPlaceExact(t *testing.T) {
	net := parseTestNet(t, foldInPlaceNet)
	before := snapshotNet(net)
	out, report, err := FoldBatchNorm(net, graph.Options{})
	if err != nil {
		t.Fatalf("FoldBatchNorm: %v", err)
	}
	before.check(t, net, "FoldBatchNorm")

	var names []string
	for _, l := range out.Param.GetLayer() {
		names = append(names, l.GetName())
	}
	if !slices.Equal(names, []string{"data", "conv", "relu"}) {
		t.Errorf("the folded net has the layers %q, want data, conv and relu", names)
	}
	conv := findLayer(t, out, "conv")
	blobs := conv.GetBlobs()
	if len(blobs) != 2 {
		t.Fatalf("conv has %d blobs, want weights and an added bias", len(blobs))
	}
	if got := blobs[0].GetData(); !slices.Equal(got, []float32{3, -2}) {
		t.Errorf("folded weights %v, want [3 -2]", got)
	}
	if got := blobs[1].GetData(); !slices.Equal(got, []float32{-1, 3}) {
		t.Errorf("folded bias %v, want [-1 3]", got)
	}
	if got := blobs[1].GetShape().GetDim(); !slices.Equal(got, []int64{2}) {
		t.Errorf("the added bias has shape %v, want [2]", got)
	}
	if p := conv.GetConvolutionParam(); p.BiasTerm == nil || !p.GetBiasTerm() {
		t.Errorf("conv has bias_term %v, want true", p.BiasTerm)
	}
	if !slices.Equal(conv.GetTop(), []string{"conv"}) {
		t.Errorf("conv writes %q, want conv", conv.GetTop())
	}

	if len(report.Changes) != 1 {
		t.Fatalf("report lists %d changes, want 1:\n%v", len(report.Changes), report)
	}
	want := `folded BatchNorm "bn" and Scale "scale" into the weights; bias added (bias_term: true)`
	if c := report.Changes[0]; c.Layer != "conv" || c.Detail != want {
		t.Errorf("change %s: %q, want conv: %q", c.Layer, c.Detail, want)
	}
	if len(report.Refused) != 0 || len(report.Warnings) != 0 {
		t.Errorf("unexpected refusals %v or warnings %q", report.Refused, report.Warnings)
	}
}

func TestFoldBatchNormTwice(t *testing.T) {
	out, _, err := FoldBatchNorm(parseTestNet(t, foldInPlaceNet), graph.Options{})
	if err != nil {
		t.Fatalf("FoldBatchNorm: %v", err)
	}
	before := snapshotNet(out)
	again, _, err := FoldBatchNorm(out, graph.Options{})
	if !errors.Is(err, ErrNothingToDo) || again != nil {
		t.Errorf("FoldBatchNorm of its own result returns (%v, %v), want an error wrapping ErrNothingToDo", again, err)
	}
	before.check(t, out, "FoldBatchNorm")
}

// foldInnerProductNet is an InnerProduct with bias whose BatchNorm (eps
// 1, factor 0.5) writes a new blob that a ReLU reads.
const foldInnerProductNet = `
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 } } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
  inner_product_param { num_output: 2 TRANSPOSE }
  blobs { shape { dim: 2 dim: 2 } WEIGHTS }
  blobs { shape { dim: 2 } data: 1 data: -1 } }
layer { name: "bn" type: "BatchNorm" bottom: "fc" top: "fc_bn" batch_norm_param { eps: 1 }
  blobs { shape { dim: 2 } data: 1 data: 0.5 }
  blobs { shape { dim: 2 } data: 1.5 data: 4 }
  blobs { shape { dim: 1 } data: 0.5 } }
layer { name: "relu" type: "ReLU" bottom: "fc_bn" top: "fc_bn" }
`

// TestFoldBatchNormInnerProductExact checks a chain that does not work
// in place. The statistics are the stored sums ÷ 0.5: mean (2, 1) and
// variance (3, 8), so the channel factors are 1/√(var+1) = (1/2, 1/3).
// The weights W = [[1 2] [3 4]] become [[0.5 1] [1 4/3]], and the bias
// (1, −1) becomes ((1 − 2)/2, (−1 − 1)/3) = (−0.5, −2/3).
func TestFoldBatchNormInnerProductExact(t *testing.T) {
	cases := []struct {
		name, transpose, weights string
		want                     []float32
	}{
		{"rows", "", "data: 1 data: 2 data: 3 data: 4", []float32{0.5, 1, 1, 4.0 / 3}},
		// transpose stores Wᵀ: output channel c is column c.
		{"transposed", "transpose: true", "data: 1 data: 3 data: 2 data: 4", []float32{0.5, 1, 1, 4.0 / 3}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			text := strings.NewReplacer("TRANSPOSE", c.transpose, "WEIGHTS", c.weights).Replace(foldInnerProductNet)
			net := parseTestNet(t, text)
			before := snapshotNet(net)
			out, report, err := FoldBatchNorm(net, graph.Options{})
			if err != nil {
				t.Fatalf("FoldBatchNorm: %v", err)
			}
			before.check(t, net, "FoldBatchNorm")
			fc := findLayer(t, out, "fc")
			if got := fc.GetBlobs()[0].GetData(); !slices.Equal(got, c.want) {
				t.Errorf("folded weights %v, want %v", got, c.want)
			}
			if got := fc.GetBlobs()[1].GetData(); !slices.Equal(got, []float32{-0.5, -2.0 / 3}) {
				t.Errorf("folded bias %v, want [-0.5 -0.6666667]", got)
			}
			if !slices.Equal(fc.GetTop(), []string{"fc_bn"}) {
				t.Errorf("fc writes %q, want fc_bn, the top of the removed BatchNorm", fc.GetTop())
			}
			if got := findLayer(t, out, "relu").GetBottom(); !slices.Equal(got, []string{"fc_bn"}) {
				t.Errorf("relu reads %q, want fc_bn", got)
			}
			if d := report.Changes[0].Detail; !strings.HasSuffix(d, `its top is now "fc_bn"`) {
				t.Errorf("change %q does not name the new top", d)
			}
			if !slices.Contains(report.Outputs, "fc_bn 1×2") {
				t.Errorf("report outputs %q, want fc_bn 1×2", report.Outputs)
			}
		})
	}
}

// TestFoldBatchNormZeroFactor checks that a factor of 0 means mean 0 and
// variance 0, as in Caffe: with eps 0.25 the channel factor is
// 1/√0.25 = 2, so w' = 2w and b' = 2b, and a warning names the stored
// statistics that Caffe ignores.
func TestFoldBatchNormZeroFactor(t *testing.T) {
	net := parseTestNet(t, `
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 2 dim: 2 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 2 kernel_size: 1 }
  blobs { shape { dim: 2 dim: 1 dim: 1 dim: 1 } data: 2 data: -1 }
  blobs { shape { dim: 2 } data: 1 data: 1 } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" batch_norm_param { eps: 0.25 use_global_stats: false }
  blobs { shape { dim: 2 } data: 5 data: 5 }
  blobs { shape { dim: 2 } data: 5 data: 5 }
  blobs { shape { dim: 1 } data: 0 } }
`)
	out, report, err := FoldBatchNorm(net, graph.Options{})
	if err != nil {
		t.Fatalf("FoldBatchNorm: %v", err)
	}
	conv := findLayer(t, out, "conv")
	if got := conv.GetBlobs()[0].GetData(); !slices.Equal(got, []float32{4, -2}) {
		t.Errorf("folded weights %v, want [4 -2]", got)
	}
	if got := conv.GetBlobs()[1].GetData(); !slices.Equal(got, []float32{2, 2}) {
		t.Errorf("folded bias %v, want [2 2]", got)
	}
	if len(report.Warnings) != 2 {
		t.Fatalf("warnings %q, want one for the factor of 0 and one for use_global_stats: false", report.Warnings)
	}
	if !strings.Contains(report.Warnings[0], "moving-average factor of 0") {
		t.Errorf("warning %q does not name the factor of 0", report.Warnings[0])
	}
	if !strings.Contains(report.Warnings[1], "use_global_stats: false") {
		t.Errorf("warning %q does not name use_global_stats: false", report.Warnings[1])
	}
}

// TestFoldBatchNormRefusals lists BatchNorm and Scale layers that must
// stay, each with its reason.
func TestFoldBatchNormRefusals(t *testing.T) {
	const stats = `blobs { shape { dim: 2 } data: 0 data: 0 } blobs { shape { dim: 2 } data: 1 data: 1 } blobs { shape { dim: 1 } data: 1 }`
	const convWeights = `blobs { shape { dim: 2 dim: 1 dim: 1 dim: 1 } data: 1 data: 1 }`
	net := parseTestNet(t, `
layer { name: "data" type: "Input" top: "data" top: "other" input_param { shape { dim: 1 dim: 1 dim: 2 dim: 2 } shape { dim: 1 dim: 2 dim: 2 dim: 2 } } }
layer { name: "conv_a" type: "Convolution" bottom: "data" top: "a" convolution_param { num_output: 2 kernel_size: 1 bias_term: false } `+convWeights+` }
layer { name: "bn_a" type: "BatchNorm" bottom: "a" top: "a_bn" `+stats+` }
layer { name: "side" type: "ReLU" bottom: "a" top: "side" }
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" pooling_param { pool: MAX kernel_size: 1 } }
layer { name: "bn_pool" type: "BatchNorm" bottom: "pool" top: "pool" blobs { shape { dim: 1 } data: 0 } blobs { shape { dim: 1 } data: 1 } blobs { shape { dim: 1 } data: 1 } }
layer { name: "conv_b" type: "Convolution" bottom: "data" top: "b" convolution_param { num_output: 2 kernel_size: 1 bias_term: false } }
layer { name: "bn_b" type: "BatchNorm" bottom: "b" top: "b" }
layer { name: "conv_c" type: "Convolution" bottom: "data" top: "c" param { name: "shared" } convolution_param { num_output: 2 kernel_size: 1 bias_term: false } `+convWeights+` }
layer { name: "bn_c" type: "BatchNorm" bottom: "c" top: "c" `+stats+` }
layer { name: "conv_d" type: "Convolution" bottom: "data" top: "d" param { name: "shared" } convolution_param { num_output: 2 kernel_size: 1 bias_term: false } `+convWeights+` }
layer { name: "bn_d" type: "BatchNorm" bottom: "other" top: "other" blobs { shape { dim: 2 } } }
`)
	before := snapshotNet(net)
	out, report, err := FoldBatchNorm(net, graph.Options{})
	before.check(t, net, "FoldBatchNorm")
	if !errors.Is(err, ErrNothingToDo) || out != nil {
		t.Fatalf("FoldBatchNorm returns (%v, %v), want no net and an error wrapping ErrNothingToDo", out, err)
	}
	if !strings.Contains(err.Error(), "none of the 5 BatchNorm layers can be folded") {
		t.Errorf("error %q does not count the BatchNorm layers", err)
	}
	want := map[string]string{
		"bn_a":    `the output "a" of "conv_a" is also read by "side", which needs it unnormalized`,
		"bn_pool": `its input "pool" comes from the Pooling layer "pool"; only a Convolution or InnerProduct output folds`,
		"bn_b":    `"conv_b" carries no weight values; give the caffemodel`,
		"bn_c":    `"conv_c" shares its blob "shared" with layer "conv_d", which would change too`,
		"bn_d":    `its input "other" comes from the Input layer "data"; only a Convolution or InnerProduct output folds`,
	}
	got := map[string]string{}
	for _, c := range report.Refused {
		got[c.Layer] = c.Detail
	}
	if len(got) != len(want) {
		t.Errorf("report refuses %d layers, want %d:\n%v", len(got), len(want), report)
	}
	for layer, reason := range want {
		if got[layer] != reason {
			t.Errorf("%s: reason %q, want %q", layer, got[layer], reason)
		}
	}
}

// TestFoldBatchNormKeepsTwoBottomScale folds a BatchNorm whose Scale
// takes its factor from a second bottom, which stays with a reason.
func TestFoldBatchNormKeepsTwoBottomScale(t *testing.T) {
	net := parseTestNet(t, `
layer { name: "data" type: "Input" top: "data" top: "gamma" input_param { shape { dim: 1 dim: 1 dim: 2 dim: 2 } shape { dim: 2 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 2 kernel_size: 1 }
  blobs { shape { dim: 2 dim: 1 dim: 1 dim: 1 } data: 1 data: 1 } blobs { shape { dim: 2 } data: 0 data: 0 } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv"
  blobs { shape { dim: 2 } data: 0 data: 0 } blobs { shape { dim: 2 } data: 1 data: 1 } blobs { shape { dim: 1 } data: 1 } }
layer { name: "scale" type: "Scale" bottom: "conv" bottom: "gamma" top: "conv" }
`)
	out, report, err := FoldBatchNorm(net, graph.Options{})
	if err != nil {
		t.Fatalf("FoldBatchNorm: %v", err)
	}
	if countType(out, "BatchNorm") != 0 || countType(out, "Scale") != 1 {
		t.Errorf("the folded net has %d BatchNorm and %d Scale layers, want 0 and 1", countType(out, "BatchNorm"), countType(out, "Scale"))
	}
	if len(report.Refused) != 1 || report.Refused[0].Layer != "scale" || !strings.Contains(report.Refused[0].Detail, "takes its factor from a second bottom") {
		t.Errorf("refused %v, want scale with its two bottoms as the reason", report.Refused)
	}
}

// TestFoldBatchNormScaleBias folds NVIDIA Caffe's BatchNorm with
// scale_bias, whose blobs 3 and 4 are its own γ and β: with variance
// (3, 0) and eps 1, √(var+eps) = (2, 1), so with γ = (4, 3) the channel
// factors are (2, 3), and the bias is β = (1, 2).
func TestFoldBatchNormScaleBias(t *testing.T) {
	net := parseTestNet(t, `
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 2 dim: 2 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 2 kernel_size: 1 bias_term: false }
  blobs { shape { dim: 2 dim: 1 dim: 1 dim: 1 } data: 1 data: 1 } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" batch_norm_param { eps: 1 scale_bias: true }
  blobs { shape { dim: 2 } data: 0 data: 0 } blobs { shape { dim: 2 } data: 3 data: 0 } blobs { shape { dim: 1 } data: 1 }
  blobs { shape { dim: 2 } data: 4 data: 3 } blobs { shape { dim: 2 } data: 1 data: 2 } }
`)
	out, _, err := FoldBatchNorm(net, graph.Options{})
	if err != nil {
		t.Fatalf("FoldBatchNorm: %v", err)
	}
	conv := findLayer(t, out, "conv")
	if got := conv.GetBlobs()[0].GetData(); !slices.Equal(got, []float32{2, 3}) {
		t.Errorf("folded weights %v, want [2 3]", got)
	}
	if got := conv.GetBlobs()[1].GetData(); !slices.Equal(got, []float32{1, 2}) {
		t.Errorf("folded bias %v, want [1 2]", got)
	}
}

// TestFoldBatchNormOtherPhaseReader keeps a BatchNorm that writes a new
// blob when a layer of the other phase reads the convolution's output:
// renaming that output would break the other phase.
func TestFoldBatchNormOtherPhaseReader(t *testing.T) {
	net := parseTestNet(t, `
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 2 dim: 2 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 2 kernel_size: 1 bias_term: false }
  blobs { shape { dim: 2 dim: 1 dim: 1 dim: 1 } data: 1 data: 1 } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv_bn"
  blobs { shape { dim: 2 } data: 0 data: 0 } blobs { shape { dim: 2 } data: 1 data: 1 } blobs { shape { dim: 1 } data: 1 } }
layer { name: "train_only" type: "ReLU" bottom: "conv" top: "train_only" include { phase: TRAIN } }
`)
	_, report, err := FoldBatchNorm(net, graph.Options{})
	if !errors.Is(err, ErrNothingToDo) {
		t.Fatalf("FoldBatchNorm returns %v, want an error wrapping ErrNothingToDo", err)
	}
	want := `"conv" would take the name "conv_bn" of the folded output, but layer "train_only" (of any phase) reads its own output "conv"`
	if len(report.Refused) != 1 || report.Refused[0].Detail != want {
		t.Errorf("refused %v, want bn: %s", report.Refused, want)
	}
}
