package forward

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/tlsurgery/tlsurgery/caffe"
)

// Table tests of the layout, detection, resampling and fork BN kernels on
// small tensors whose expected values are worked out by hand in the
// comments.

// bottom is one named input of a single-layer test net.
type bottom struct {
	name string
	t    *Tensor
}

func tensor(shape []int, values ...float32) *Tensor {
	if len(values) != product(shape) {
		panic(fmt.Sprintf("tensor: %d values for shape %v", len(values), shape))
	}
	return &Tensor{Shape: shape, Data: values}
}

// seq returns a tensor of the given shape holding 0, 1, 2, ...
func seq(shape ...int) *Tensor {
	t := NewTensor(shape...)
	for i := range t.Data {
		t.Data[i] = float32(i)
	}
	return t
}

// runLayer builds a net of one Input layer per bottom followed by layer
// (the text of one layer message), runs it, and returns the value of top.
func runLayer(layer string, top string, bottoms ...bottom) (*Tensor, error) {
	var text strings.Builder
	inputs := map[string]*Tensor{}
	for _, b := range bottoms {
		dims := ""
		for _, d := range b.t.Shape {
			dims += fmt.Sprintf(" dim: %d", d)
		}
		fmt.Fprintf(&text, "layer { name: %q type: \"Input\" top: %q input_param { shape {%s } } }\n", "input_"+b.name, b.name, dims)
		inputs[b.name] = b.t
	}
	text.WriteString(layer)
	net, err := caffe.Read(strings.NewReader(text.String()))
	if err != nil {
		return nil, err
	}
	fn, err := compileSafely(net, Options{})
	if err != nil {
		return nil, err
	}
	res, err := runSafely(fn, inputs)
	if err != nil {
		return nil, err
	}
	out := res.Blob(top)
	if out == nil {
		return nil, fmt.Errorf("no blob %q", top)
	}
	return out, nil
}

// layerCase is one run of one layer: the expected top, or a part of the
// expected error.
type layerCase struct {
	name    string
	layer   string
	bottoms []bottom
	want    *Tensor // top "out"
	wantErr string
}

func checkLayerCases(t *testing.T, cases []layerCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := runLayer(tc.layer, "out", tc.bottoms...)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("no error, top %v %v; want an error containing %q", got.Shape, got.Data, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %q, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Shape, tc.want.Shape) {
				t.Fatalf("top shape %v, want %v (values %v)", got.Shape, tc.want.Shape, got.Data)
			}
			for i := range tc.want.Data {
				if math.Abs(float64(got.Data[i]-tc.want.Data[i])) > 1e-6*max(1, math.Abs(float64(tc.want.Data[i]))) {
					t.Fatalf("top %v, want %v (first difference at %d)", got.Data, tc.want.Data, i)
				}
			}
		})
	}
}

func TestPermuteKernel(t *testing.T) {
	in := bottom{"in", seq(1, 2, 2, 3)}
	checkLayerCases(t, []layerCase{
		// out[0,h,w,c] = in[0,c,h,w] = c·6 + h·3 + w.
		{name: "SSD order", layer: `layer { name: "p" type: "Permute" bottom: "in" top: "out" permute_param { order: 0 order: 2 order: 3 order: 1 } }`,
			bottoms: []bottom{in}, want: tensor([]int{1, 2, 3, 2}, 0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11)},
		{name: "no order copies", layer: `layer { name: "p" type: "Permute" bottom: "in" top: "out" }`,
			bottoms: []bottom{in}, want: seq(1, 2, 2, 3)},
		// The axes order leaves out follow in order: [1] means [1, 0].
		{name: "partial order transposes", layer: `layer { name: "p" type: "Permute" bottom: "in" top: "out" permute_param { order: 1 } }`,
			bottoms: []bottom{{"in", seq(2, 3)}}, want: tensor([]int{3, 2}, 0, 3, 1, 4, 2, 5)},
		{name: "repeated axis", layer: `layer { name: "p" type: "Permute" bottom: "in" top: "out" permute_param { order: 1 order: 1 } }`,
			bottoms: []bottom{in}, wantErr: "twice"},
	})
}

func TestCropKernel(t *testing.T) {
	data := bottom{"data", seq(1, 1, 4, 4)}
	ref := bottom{"ref", NewTensor(1, 1, 2, 2)}
	checkLayerCases(t, []layerCase{
		{name: "default axis no offset", layer: `layer { name: "c" type: "Crop" bottom: "data" bottom: "ref" top: "out" }`,
			bottoms: []bottom{data, ref}, want: tensor([]int{1, 1, 2, 2}, 0, 1, 4, 5)},
		// Rows 1-2 and columns 1-2 of the 4×4 plane 0..15.
		{name: "one offset", layer: `layer { name: "c" type: "Crop" bottom: "data" bottom: "ref" top: "out" crop_param { offset: 1 } }`,
			bottoms: []bottom{data, ref}, want: tensor([]int{1, 1, 2, 2}, 5, 6, 9, 10)},
		{name: "offset per axis", layer: `layer { name: "c" type: "Crop" bottom: "data" bottom: "ref" top: "out" crop_param { offset: 1 offset: 2 } }`,
			bottoms: []bottom{data, ref}, want: tensor([]int{1, 1, 2, 2}, 6, 7, 10, 11)},
		// Channel 1 of a 2×3×3 block starts at 9; rows 1-2, columns 0-1.
		{name: "from axis 1", layer: `layer { name: "c" type: "Crop" bottom: "data" bottom: "ref" top: "out" crop_param { axis: 1 offset: 1 offset: 1 offset: 0 } }`,
			bottoms: []bottom{{"data", seq(1, 2, 3, 3)}, ref}, want: tensor([]int{1, 1, 2, 2}, 12, 13, 15, 16)},
		{name: "negative axis", layer: `layer { name: "c" type: "Crop" bottom: "data" bottom: "ref" top: "out" crop_param { axis: -1 offset: 2 } }`,
			bottoms: []bottom{data, {"ref", NewTensor(1, 1, 4, 2)}}, want: tensor([]int{1, 1, 4, 2}, 2, 3, 6, 7, 10, 11, 14, 15)},
		{name: "offset too large", layer: `layer { name: "c" type: "Crop" bottom: "data" bottom: "ref" top: "out" crop_param { offset: 3 } }`,
			bottoms: []bottom{data, ref}, wantErr: "offset 3"},
	})
}

func TestTileKernel(t *testing.T) {
	in := bottom{"in", tensor([]int{2, 2}, 1, 2, 3, 4)}
	checkLayerCases(t, []layerCase{
		{name: "axis 1", layer: `layer { name: "t" type: "Tile" bottom: "in" top: "out" tile_param { tiles: 2 } }`,
			bottoms: []bottom{in}, want: tensor([]int{2, 4}, 1, 2, 1, 2, 3, 4, 3, 4)},
		{name: "axis 0", layer: `layer { name: "t" type: "Tile" bottom: "in" top: "out" tile_param { axis: 0 tiles: 3 } }`,
			bottoms: []bottom{in}, want: tensor([]int{6, 2}, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4)},
		{name: "tiles missing", layer: `layer { name: "t" type: "Tile" bottom: "in" top: "out" }`,
			bottoms: []bottom{in}, wantErr: "tiles must be given"},
	})
}

func TestReductionKernel(t *testing.T) {
	in := bottom{"in", tensor([]int{2, 3}, 1, -2, 3, 4, 5, -6)}
	layer := func(params string) string {
		return `layer { name: "r" type: "Reduction" bottom: "in" top: "out" reduction_param { ` + params + ` } }`
	}
	checkLayerCases(t, []layerCase{
		{name: "SUM axis 1", layer: layer("axis: 1"), bottoms: []bottom{in}, want: tensor([]int{2}, 2, 3)},
		{name: "ASUM", layer: layer("operation: ASUM axis: 1"), bottoms: []bottom{in}, want: tensor([]int{2}, 6, 15)},
		{name: "SUMSQ", layer: layer("operation: SUMSQ axis: -1"), bottoms: []bottom{in}, want: tensor([]int{2}, 14, 77)},
		{name: "MEAN", layer: layer("operation: MEAN axis: 1"), bottoms: []bottom{in}, want: tensor([]int{2}, 2.0/3, 1)},
		{name: "SUM with coeff", layer: layer("axis: 1 coeff: 2"), bottoms: []bottom{in}, want: tensor([]int{2}, 4, 6)},
		// MEAN divides coeff 3 by the 3 values per row.
		{name: "MEAN with coeff", layer: layer("operation: MEAN axis: 1 coeff: 3"), bottoms: []bottom{in}, want: tensor([]int{2}, 2, 3)},
		// Axis 0 reduces everything to a 0-axis scalar.
		{name: "SUM axis 0", layer: layer("operation: SUM"), bottoms: []bottom{in}, want: tensor([]int{}, 5)},
		{name: "axis out of range", layer: layer("axis: 2"), bottoms: []bottom{in}, wantErr: "out of range"},
	})
}

func TestArgMaxKernel(t *testing.T) {
	// 3 appears at indexes 0 and 2: Caffe ranks (value, index) pairs with
	// std::greater, so index 2 comes first.
	flat := bottom{"in", tensor([]int{1, 5}, 3, 1, 3, 2, 0)}
	grid := bottom{"in", tensor([]int{2, 3}, 1, 5, 5, 7, 0, 7)}
	layer := func(params string) string {
		return `layer { name: "a" type: "ArgMax" bottom: "in" top: "out" argmax_param { ` + params + ` } }`
	}
	checkLayerCases(t, []layerCase{
		{name: "tie takes larger index", layer: layer("top_k: 1"), bottoms: []bottom{flat}, want: tensor([]int{1, 1, 1}, 2)},
		{name: "top 2", layer: layer("top_k: 2"), bottoms: []bottom{flat}, want: tensor([]int{1, 1, 2}, 2, 0)},
		{name: "top 3", layer: layer("top_k: 3"), bottoms: []bottom{flat}, want: tensor([]int{1, 1, 3}, 2, 0, 3)},
		{name: "indexes then values", layer: layer("top_k: 2 out_max_val: true"), bottoms: []bottom{flat}, want: tensor([]int{1, 2, 2}, 2, 0, 3, 3)},
		{name: "axis 1", layer: layer("axis: 1"), bottoms: []bottom{grid}, want: tensor([]int{2, 1}, 2, 2)},
		{name: "axis 1 values", layer: layer("axis: 1 out_max_val: true"), bottoms: []bottom{grid}, want: tensor([]int{2, 1}, 5, 7)},
		// Columns (1, 7), (5, 0), (5, 7).
		{name: "axis 0", layer: layer("axis: 0"), bottoms: []bottom{grid}, want: tensor([]int{1, 3}, 1, 0, 1)},
		{name: "axis 0 top 2", layer: layer("axis: 0 top_k: 2"), bottoms: []bottom{grid}, want: tensor([]int{2, 3}, 1, 0, 1, 0, 1, 0)},
		{name: "top_k too large", layer: layer("top_k: 6"), bottoms: []bottom{flat}, wantErr: "top_k 6"},
	})
}

func TestShuffleChannelKernel(t *testing.T) {
	in := bottom{"in", seq(1, 6, 1, 1)}
	layer := func(group int) string {
		return fmt.Sprintf(`layer { name: "s" type: "ShuffleChannel" bottom: "in" top: "out" shuffle_channel_param { group: %d } }`, group)
	}
	checkLayerCases(t, []layerCase{
		// Channel g·(C/group) + j moves to j·group + g.
		{name: "group 2", layer: layer(2), bottoms: []bottom{in}, want: tensor([]int{1, 6, 1, 1}, 0, 3, 1, 4, 2, 5)},
		{name: "group 3", layer: layer(3), bottoms: []bottom{in}, want: tensor([]int{1, 6, 1, 1}, 0, 2, 4, 1, 3, 5)},
		{name: "group 1", layer: layer(1), bottoms: []bottom{in}, want: seq(1, 6, 1, 1)},
		{name: "planes move whole", layer: layer(2), bottoms: []bottom{{"in", seq(1, 4, 1, 2)}}, want: tensor([]int{1, 4, 1, 2}, 0, 1, 4, 5, 2, 3, 6, 7)},
		{name: "group does not divide", layer: layer(4), bottoms: []bottom{in}, wantErr: "divide"},
	})
}

func TestEmbedKernel(t *testing.T) {
	table := `blobs { shape { dim: 3 dim: 2 } data: 1 data: 2 data: 3 data: 4 data: 5 data: 6 }`
	bias := `blobs { shape { dim: 2 } data: 0.5 data: -1 }`
	withBias := `layer { name: "e" type: "Embed" bottom: "in" top: "out" embed_param { num_output: 2 input_dim: 3 } ` + table + bias + ` }`
	noBias := `layer { name: "e" type: "Embed" bottom: "in" top: "out" embed_param { num_output: 2 input_dim: 3 bias_term: false } ` + table + ` }`
	checkLayerCases(t, []layerCase{
		{name: "rows plus bias", layer: withBias, bottoms: []bottom{{"in", tensor([]int{3}, 2, 0, 2)}}, want: tensor([]int{3, 2}, 5.5, 5, 1.5, 1, 5.5, 5)},
		{name: "rows", layer: noBias, bottoms: []bottom{{"in", tensor([]int{1, 2}, 1, 2)}}, want: tensor([]int{1, 2, 2}, 3, 4, 5, 6)},
		// Caffe's release build truncates 1.7 to row 1.
		{name: "fraction truncates", layer: noBias, bottoms: []bottom{{"in", tensor([]int{1}, 1.7)}}, want: tensor([]int{1, 2}, 3, 4)},
		{name: "index past table", layer: noBias, bottoms: []bottom{{"in", tensor([]int{1}, 3)}}, wantErr: "not an index"},
		{name: "negative index", layer: noBias, bottoms: []bottom{{"in", tensor([]int{1}, -1)}}, wantErr: "not an index"},
		{name: "missing weights", layer: `layer { name: "e" type: "Embed" bottom: "in" top: "out" embed_param { num_output: 2 input_dim: 3 } }`,
			bottoms: []bottom{{"in", tensor([]int{1}, 0)}}, wantErr: "give the weights"},
	})
}

func TestNormalizeKernel(t *testing.T) {
	// Channel 0 holds [3, 0] and channel 1 [4, 1] at the 2 positions.
	in := bottom{"in", tensor([]int{1, 2, 1, 2}, 3, 0, 4, 1)}
	layer := func(params, blob string) string {
		return `layer { name: "n" type: "Normalize" bottom: "in" top: "out" norm_param { ` + params + ` } ` + blob + ` }`
	}
	shared := `blobs { shape { dim: 1 } data: 2 }`
	r26 := float32(1 / math.Sqrt(26))
	checkLayerCases(t, []layerCase{
		// Norms 5 and 1 per position, times the shared scale 2.
		{name: "per position", layer: layer("across_spatial: false eps: 0", shared), bottoms: []bottom{in}, want: tensor([]int{1, 2, 1, 2}, 1.2, 0, 1.6, 2)},
		// One norm √(9+0+16+1) for the image.
		{name: "across spatial", layer: layer("eps: 0", shared), bottoms: []bottom{in}, want: tensor([]int{1, 2, 1, 2}, 6*r26, 0, 8*r26, 2*r26)},
		{name: "per channel scale", layer: layer("across_spatial: false channel_shared: false eps: 0", `blobs { shape { dim: 2 } data: 1 data: 10 }`),
			bottoms: []bottom{in}, want: tensor([]int{1, 2, 1, 2}, 0.6, 0, 8, 10)},
		// eps 24 joins the sum of squares before the root: √(9+16+24) = 7.
		{name: "eps inside the root", layer: layer("eps: 24", `blobs { shape { dim: 1 } data: 1 }`),
			bottoms: []bottom{{"in", tensor([]int{1, 2}, 3, 4)}}, want: tensor([]int{1, 2}, 3.0/7, 4.0/7)},
		// SSD stores the shared scale as a 0-axis blob.
		{name: "0-axis scale", layer: layer("eps: 0", `blobs { shape { } data: 1 }`),
			bottoms: []bottom{{"in", tensor([]int{1, 2}, 3, 4)}}, want: tensor([]int{1, 2}, 0.6, 0.8)},
		{name: "per image", layer: layer("eps: 0", `blobs { shape { dim: 1 } data: 1 }`),
			bottoms: []bottom{{"in", tensor([]int{2, 2}, 3, 4, 0, 2)}}, want: tensor([]int{2, 2}, 0.6, 0.8, 0, 1)},
		{name: "wrong scale count", layer: layer("channel_shared: false", `blobs { shape { dim: 3 } data: 1 data: 1 data: 1 }`),
			bottoms: []bottom{in}, wantErr: "blob 0 has shape [3]"},
	})
}

func TestPriorBoxKernel(t *testing.T) {
	cell := bottom{"feature", NewTensor(1, 1, 1, 1)}
	image := bottom{"image", NewTensor(1, 3, 10, 10)}
	layer := func(params string) string {
		return `layer { name: "p" type: "PriorBox" bottom: "feature" bottom: "image" top: "out" prior_box_param { ` + params + ` } }`
	}
	// One cell centred at (5, 5) in a 10×10 image. Aspect ratio 2 gives a
	// 4√2 × 4/√2 box: half sizes 2.828 and 1.414.
	s2 := float32(2 * math.Sqrt2)
	r2 := float32(math.Sqrt2)
	wide := []float32{(5 - s2) / 10, (5 - r2) / 10, (5 + s2) / 10, (5 + r2) / 10}
	tall := []float32{(5 - r2) / 10, (5 - s2) / 10, (5 + r2) / 10, (5 + s2) / 10}
	priors := func(boxes []float32, variances ...float32) *Tensor {
		out := slices.Clone(boxes)
		for i := range boxes {
			out = append(out, variances[i%len(variances)])
		}
		return tensor([]int{1, 2, len(boxes)}, out...)
	}
	square := []float32{0.3, 0.3, 0.7, 0.7}
	checkLayerCases(t, []layerCase{
		{name: "min size", layer: layer("min_size: 4"), bottoms: []bottom{cell, image}, want: priors(square, 0.1)},
		{name: "aspect ratio with flip", layer: layer("min_size: 4 aspect_ratio: 2"), bottoms: []bottom{cell, image},
			want: priors(slices.Concat(square, wide, tall), 0.1)},
		{name: "no flip", layer: layer("min_size: 4 aspect_ratio: 2 flip: false"), bottoms: []bottom{cell, image},
			want: priors(slices.Concat(square, wide), 0.1)},
		// A repeated ratio, and 1, add nothing.
		{name: "ratios deduplicated", layer: layer("min_size: 4 aspect_ratio: 2 aspect_ratio: 2 aspect_ratio: 1 flip: false"), bottoms: []bottom{cell, image},
			want: priors(slices.Concat(square, wide), 0.1)},
		// √(4·9) = 6 comes second; the ratio prior stays sized by min_size.
		{name: "max size", layer: layer("min_size: 4 max_size: 9 aspect_ratio: 2 flip: false"), bottoms: []bottom{cell, image},
			want: priors(slices.Concat(square, []float32{0.2, 0.2, 0.8, 0.8}, wide), 0.1)},
		// SSD keeps sizes in an int: 4.9 is 4.
		{name: "size truncated", layer: layer("min_size: 4.9"), bottoms: []bottom{cell, image}, want: priors(square, 0.1)},
		{name: "clip", layer: layer("min_size: 12 clip: true"), bottoms: []bottom{cell, image}, want: priors([]float32{0, 0, 1, 1}, 0.1)},
		{name: "unclipped", layer: layer("min_size: 12"), bottoms: []bottom{cell, image}, want: priors([]float32{-0.1, -0.1, 1.1, 1.1}, 0.1)},
		{name: "four variances", layer: layer("min_size: 4 aspect_ratio: 2 variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2"), bottoms: []bottom{cell, image},
			want: priors(slices.Concat(square, wide, tall), 0.1, 0.1, 0.2, 0.2)},
		// 2×2 cells over 8×8: centres 2 and 6, with x varying fastest.
		{name: "grid", layer: layer("min_size: 2"), bottoms: []bottom{{"feature", NewTensor(1, 1, 2, 2)}, {"image", NewTensor(1, 3, 8, 8)}},
			want: priors([]float32{
				0.125, 0.125, 0.375, 0.375, 0.625, 0.125, 0.875, 0.375,
				0.125, 0.625, 0.375, 0.875, 0.625, 0.625, 0.875, 0.875}, 0.1)},
		// img_size, step and offset replace the image bottom: centre 0.
		{name: "explicit geometry", layer: `layer { name: "p" type: "PriorBox" bottom: "feature" top: "out" prior_box_param { min_size: 20 img_size: 100 step: 10 offset: 0 } }`,
			bottoms: []bottom{cell}, want: priors([]float32{-0.1, -0.1, 0.1, 0.1}, 0.1)},
		{name: "img_h without img_w", layer: layer("min_size: 4 img_h: 10"), bottoms: []bottom{cell, image}, wantErr: "img_w"},
		{name: "two variances", layer: layer("min_size: 4 variance: 0.1 variance: 0.2"), bottoms: []bottom{cell, image}, wantErr: "variance"},
		{name: "max not above min", layer: layer("min_size: 4 max_size: 4"), bottoms: []bottom{cell, image}, wantErr: "must exceed"},
		{name: "OpenCV sizes", layer: layer("width: 4 height: 4"), bottoms: []bottom{cell, image}, wantErr: "OpenCV"},
		{name: "no image size", layer: `layer { name: "p" type: "PriorBox" bottom: "feature" top: "out" prior_box_param { min_size: 4 } }`,
			bottoms: []bottom{cell}, wantErr: "bottom 1"},
	})
}

func TestDetectionOutputKernel(t *testing.T) {
	// Two priors with IoU 0.09 / (0.16 + 0.16 − 0.09) ≈ 0.391, variances
	// 0.1. With zero location offsets CORNER decoding returns the priors.
	p0 := []float32{0.1, 0.1, 0.5, 0.5}
	p1 := []float32{0.2, 0.2, 0.6, 0.6}
	priors := bottom{"prior", tensor([]int{1, 2, 8}, slices.Concat(p0, p1, slices.Repeat([]float32{0.1}, 8))...)}
	zeroLoc := bottom{"loc", NewTensor(1, 8)}
	// Scores per prior for classes 0 (background), 1 and 2.
	conf := bottom{"conf", tensor([]int{1, 6}, 0.1, 0.8, 0.1, 0.2, 0.7, 0.6)}
	layer := func(params string) string {
		return `layer { name: "d" type: "DetectionOutput" bottom: "loc" bottom: "conf" bottom: "prior" top: "out"
			detection_output_param { num_classes: 3 ` + params + ` } }`
	}
	row := func(image, label, score float32, box []float32) []float32 {
		return append([]float32{image, label, score}, box...)
	}
	rows := func(r ...[]float32) *Tensor { return tensor([]int{1, 1, len(r), 7}, slices.Concat(r...)...) }
	checkLayerCases(t, []layerCase{
		// Class 1: prior 0 (0.8) suppresses prior 1 (0.7) at IoU 0.391 >
		// 0.3. Class 2: prior 1 (0.6) suppresses prior 0 (0.1).
		{name: "suppression per class", layer: layer("nms_param { nms_threshold: 0.3 } confidence_threshold: 0.05"),
			bottoms: []bottom{zeroLoc, conf, priors}, want: rows(row(0, 1, 0.8, p0), row(0, 2, 0.6, p1))},
		// At 0.5 nothing overlaps enough; rows go by label, then score.
		{name: "no suppression", layer: layer("nms_param { nms_threshold: 0.5 } confidence_threshold: 0.05"),
			bottoms: []bottom{zeroLoc, conf, priors}, want: rows(row(0, 1, 0.8, p0), row(0, 1, 0.7, p1), row(0, 2, 0.6, p1), row(0, 2, 0.1, p0))},
		// Without confidence_threshold every score counts.
		{name: "background skipped", layer: layer("nms_param { nms_threshold: 0.5 }"),
			bottoms: []bottom{zeroLoc, conf, priors}, want: rows(row(0, 1, 0.8, p0), row(0, 1, 0.7, p1), row(0, 2, 0.6, p1), row(0, 2, 0.1, p0))},
		{name: "other background", layer: layer("nms_param { nms_threshold: 0.5 } background_label_id: 2 confidence_threshold: 0.15"),
			bottoms: []bottom{zeroLoc, conf, priors}, want: rows(row(0, 0, 0.2, p1), row(0, 1, 0.8, p0), row(0, 1, 0.7, p1))},
		// The best 3 of 0.8, 0.7, 0.6, 0.1, regrouped by label.
		{name: "keep_top_k", layer: layer("nms_param { nms_threshold: 0.5 } keep_top_k: 3 confidence_threshold: 0.05"),
			bottoms: []bottom{zeroLoc, conf, priors}, want: rows(row(0, 1, 0.8, p0), row(0, 1, 0.7, p1), row(0, 2, 0.6, p1))},
		{name: "keep_top_k 1", layer: layer("nms_param { nms_threshold: 0.5 } keep_top_k: 1"),
			bottoms: []bottom{zeroLoc, conf, priors}, want: rows(row(0, 1, 0.8, p0))},
		{name: "nms top_k", layer: layer("nms_param { nms_threshold: 0.5 top_k: 1 }"),
			bottoms: []bottom{zeroLoc, conf, priors}, want: rows(row(0, 1, 0.8, p0), row(0, 2, 0.6, p1))},
		// eta 0.5 lowers the threshold 0.6 to 0.3 after the first kept box,
		// so 0.391 then suppresses.
		{name: "adaptive eta", layer: layer("nms_param { nms_threshold: 0.6 eta: 0.5 } confidence_threshold: 0.05"),
			bottoms: []bottom{zeroLoc, conf, priors}, want: rows(row(0, 1, 0.8, p0), row(0, 2, 0.6, p1))},
		{name: "eta 1", layer: layer("nms_param { nms_threshold: 0.6 } confidence_threshold: 0.05"),
			bottoms: []bottom{zeroLoc, conf, priors}, want: rows(row(0, 1, 0.8, p0), row(0, 1, 0.7, p1), row(0, 2, 0.6, p1), row(0, 2, 0.1, p0))},
		// Nothing above 0.9: Caffe writes one row of −1s per image, with
		// the image's id first.
		{name: "no detection", layer: layer("confidence_threshold: 0.9"),
			bottoms: []bottom{zeroLoc, conf, priors}, want: rows(row(0, -1, -1, []float32{-1, -1, -1, -1}))},
		{name: "no detection in a batch", layer: layer("confidence_threshold: 0.9"),
			bottoms: []bottom{{"loc", NewTensor(2, 8)}, {"conf", tensor([]int{2, 6}, slices.Repeat([]float32{0.5}, 12)...)}, priors},
			want:    rows(row(0, -1, -1, []float32{-1, -1, -1, -1}), row(1, -1, -1, []float32{-1, -1, -1, -1}))},
		// Image 1 has only the class 2 box of prior 0.
		{name: "batch", layer: layer("nms_param { nms_threshold: 0.3 } confidence_threshold: 0.5"),
			bottoms: []bottom{{"loc", NewTensor(2, 8)}, {"conf", tensor([]int{2, 6}, 0.1, 0.8, 0.1, 0.2, 0.7, 0.6, 0, 0, 0.9, 0, 0, 0)}, priors},
			want:    rows(row(0, 1, 0.8, p0), row(0, 2, 0.6, p1), row(1, 2, 0.9, p0))},
		// CORNER: prior + variance · offset; 0.1 · 1 moves prior 0 by 0.1.
		{name: "corner offsets", layer: layer("nms_param { nms_threshold: 0.3 } confidence_threshold: 0.65 code_type: CORNER"),
			bottoms: []bottom{{"loc", tensor([]int{1, 8}, 1, 1, 1, 1, 0, 0, 0, 0)}, conf, priors},
			want:    rows(row(0, 1, 0.8, []float32{0.2, 0.2, 0.6, 0.6}))},
		{name: "corner in target", layer: layer("confidence_threshold: 0.75 variance_encoded_in_target: true"),
			bottoms: []bottom{{"loc", tensor([]int{1, 8}, 0.1, 0, -0.1, 0, 0, 0, 0, 0)}, conf, priors},
			want:    rows(row(0, 1, 0.8, []float32{0.2, 0.1, 0.4, 0.5}))},
		// CENTER_SIZE with variances [0.1 0.1 0.2 0.2]: prior 0 has centre
		// (0.3, 0.3) and size 0.4. x offset 1 moves the centre by
		// 0.1·1·0.4; width offset 5·ln 2 doubles the width to 0.8.
		{name: "center size", layer: layer("confidence_threshold: 0.75 code_type: CENTER_SIZE"),
			bottoms: []bottom{
				{"loc", tensor([]int{1, 8}, 1, 0, float32(5*math.Ln2), 0, 0, 0, 0, 0)}, conf,
				{"prior", tensor([]int{1, 2, 8}, slices.Concat(p0, p1, []float32{0.1, 0.1, 0.2, 0.2, 0.1, 0.1, 0.2, 0.2})...)}},
			want: rows(row(0, 1, 0.8, []float32{-0.06, 0.1, 0.74, 0.5}))},
		// CORNER_SIZE: prior + variance · offset · prior size (0.4).
		{name: "corner size", layer: layer("confidence_threshold: 0.75 code_type: CORNER_SIZE"),
			bottoms: []bottom{{"loc", tensor([]int{1, 8}, 1, 0, 0, -1, 0, 0, 0, 0)}, conf, priors},
			want:    rows(row(0, 1, 0.8, []float32{0.14, 0.1, 0.5, 0.46}))},
		// Without share_location each class has its own boxes; class 1's
		// offsets move prior 0 onto prior 1, so they overlap fully.
		{name: "location per class", layer: layer("nms_param { nms_threshold: 0.3 } share_location: false confidence_threshold: 0.05"),
			bottoms: []bottom{{"loc", tensor([]int{1, 24}, 9, 9, 9, 9, 1, 1, 1, 1, 0, 0, 0, 0, 9, 9, 9, 9, 0, 0, 0, 0, 0, 0, 0, 0)}, conf, priors},
			want:    rows(row(0, 1, 0.8, p1), row(0, 2, 0.6, p1))},
		{name: "shared boxes as background", layer: layer("background_label_id: -1"),
			bottoms: []bottom{zeroLoc, conf, priors}, wantErr: "background_label_id -1"},
		{name: "eta above 1", layer: layer("nms_param { eta: 2 }"), bottoms: []bottom{zeroLoc, conf, priors}, wantErr: "eta"},
		{name: "wrong confidence size", layer: layer(""), bottoms: []bottom{zeroLoc, {"conf", NewTensor(1, 4)}, priors}, wantErr: "confidence"},
	})
}

func TestInterpKernel(t *testing.T) {
	in := bottom{"in", tensor([]int{1, 1, 2, 2}, 0, 1, 2, 3)}
	layer := func(params string) string {
		return `layer { name: "i" type: "Interp" bottom: "in" top: "out" interp_param { ` + params + ` } }`
	}
	// Corners map to corners: output (y, x) samples the input at
	// (y/2, x/2), and the values are linear in position.
	grid3 := tensor([]int{1, 1, 3, 3}, 0, 0.5, 1, 1, 1.5, 2, 2, 2.5, 3)
	checkLayerCases(t, []layerCase{
		{name: "height and width", layer: layer("height: 3 width: 3"), bottoms: []bottom{in}, want: grid3},
		{name: "zoom", layer: layer("zoom_factor: 2"), bottoms: []bottom{in}, want: grid3},
		{name: "shrink", layer: layer("shrink_factor: 2"), bottoms: []bottom{{"in", seq(1, 1, 3, 3)}}, want: tensor([]int{1, 1, 2, 2}, 0, 2, 6, 8)},
		{name: "one row", layer: layer("height: 1 width: 3"), bottoms: []bottom{in}, want: tensor([]int{1, 1, 1, 3}, 0, 0.5, 1)},
		{name: "second bottom", layer: `layer { name: "i" type: "Interp" bottom: "in" bottom: "ref" top: "out" }`,
			bottoms: []bottom{in, {"ref", NewTensor(1, 1, 3, 3)}}, want: grid3},
		// pad −1 crops the 4×4 input 0..15 to its centre; equal sizes copy.
		{name: "crop", layer: layer("pad_beg: -1 pad_end: -1 height: 2 width: 2"), bottoms: []bottom{{"in", seq(1, 1, 4, 4)}},
			want: tensor([]int{1, 1, 2, 2}, 5, 6, 9, 10)},
		// Crop to 2×2 (5, 6, 9, 10), then interpolate to 3×3.
		{name: "crop and resize", layer: layer("pad_beg: -1 pad_end: -1 height: 3 width: 3"), bottoms: []bottom{{"in", seq(1, 1, 4, 4)}},
			want: tensor([]int{1, 1, 3, 3}, 5, 5.5, 6, 7, 7.5, 8, 9, 9.5, 10)},
		{name: "planes", layer: layer("height: 1 width: 1"), bottoms: []bottom{{"in", seq(1, 2, 2, 2)}}, want: tensor([]int{1, 2, 1, 1}, 0, 4)},
		{name: "positive pad", layer: layer("pad_beg: 1 height: 3 width: 3"), bottoms: []bottom{in}, wantErr: "pad_beg"},
	})
}

func TestUpsampleKernel(t *testing.T) {
	data := bottom{"data", tensor([]int{1, 1, 2, 2}, 1, 2, 3, 4)}
	checkLayerCases(t, []layerCase{
		{name: "mask", layer: `layer { name: "u" type: "Upsample" bottom: "data" bottom: "mask" top: "out" upsample_param { scale: 2 } }`,
			bottoms: []bottom{data, {"mask", tensor([]int{1, 1, 2, 2}, 0, 3, 9, 14)}},
			want:    tensor([]int{1, 1, 4, 4}, 1, 0, 0, 2, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 4, 0)},
		{name: "explicit size", layer: `layer { name: "u" type: "Upsample" bottom: "data" bottom: "mask" top: "out" upsample_param { upsample_h: 3 upsample_w: 3 } }`,
			bottoms: []bottom{data, {"mask", tensor([]int{1, 1, 2, 2}, 0, 2, 6, 8)}},
			want:    tensor([]int{1, 1, 3, 3}, 1, 0, 2, 0, 0, 0, 3, 0, 4)},
		// The mask indexes each plane separately.
		{name: "two planes", layer: `layer { name: "u" type: "Upsample" bottom: "data" bottom: "mask" top: "out" upsample_param { scale: 2 } }`,
			bottoms: []bottom{{"data", tensor([]int{1, 2, 1, 1}, 7, 8)}, {"mask", tensor([]int{1, 2, 1, 1}, 1, 2)}},
			want:    tensor([]int{1, 2, 2, 2}, 0, 7, 0, 0, 0, 0, 8, 0)},
		{name: "mask past plane", layer: `layer { name: "u" type: "Upsample" bottom: "data" bottom: "mask" top: "out" upsample_param { scale: 2 } }`,
			bottoms: []bottom{data, {"mask", tensor([]int{1, 1, 2, 2}, 0, 3, 9, 16)}}, wantErr: "outside"},
		{name: "repeat", layer: `layer { name: "u" type: "Upsample" bottom: "data" top: "out" upsample_param { scale: 2 } }`,
			bottoms: []bottom{data}, want: tensor([]int{1, 1, 4, 4}, 1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4)},
		{name: "repeat with pad_out", layer: `layer { name: "u" type: "Upsample" bottom: "data" top: "out" upsample_param { scale: 2 pad_out_h: true } }`,
			bottoms: []bottom{data}, want: tensor([]int{1, 1, 3, 4}, 1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4)},
	})
}

func TestBNKernel(t *testing.T) {
	// Channel 0 holds [1, 3] and channel 1 [2, 4].
	in := bottom{"in", tensor([]int{1, 2, 1, 2}, 1, 3, 2, 4)}
	blob := func(a, b float32) string {
		return fmt.Sprintf("blobs { shape { dim: 1 dim: 2 dim: 1 dim: 1 } data: %g data: %g }", a, b)
	}
	pspnet := blob(2, 1) + blob(0.5, 0) + blob(1, 2) + blob(3, 0.25)
	segnet := blob(2, 3) + blob(1, -1)
	layer := func(params, blobs string) string {
		return `layer { name: "b" type: "BN" bottom: "in" top: "out" bn_param { ` + params + ` } ` + blobs + ` }`
	}
	checkLayerCases(t, []layerCase{
		// Slope [2 1], bias [0.5 0], mean [1 2], variance [3 0.25], eps 1:
		// channel 0 is (x − 1)·(3+1)^−½·2 + 0.5, channel 1 (x − 2)/√1.25.
		{name: "PSPNet", layer: layer("eps: 1", pspnet), bottoms: []bottom{in},
			want: tensor([]int{1, 2, 1, 2}, 0.5, 2.5, 0, float32(2/math.Sqrt(1.25)))},
		// The default eps is 1e-5.
		{name: "PSPNet default eps", layer: layer("", blob(1, 1)+blob(0, 0)+blob(0, 0)+blob(1, 4)), bottoms: []bottom{in},
			want: tensor([]int{1, 2, 1, 2}, float32(1/math.Sqrt(1+1e-5)), float32(3/math.Sqrt(1+1e-5)), float32(2/math.Sqrt(4+1e-5)), float32(4/math.Sqrt(4+1e-5)))},
		{name: "SegNet inference", layer: layer("bn_mode: INFERENCE", segnet), bottoms: []bottom{in},
			want: tensor([]int{1, 2, 1, 2}, 3, 7, 5, 11)},
		// LEARN normalizes by the batch: each channel has mean ± 1, so it
		// becomes [−1, 1] (up to the 1e−9 eps) times scale plus shift.
		{name: "SegNet learn", layer: layer("", segnet), bottoms: []bottom{in}, want: tensor([]int{1, 2, 1, 2}, -1, 3, -4, 2)},
		{name: "three blobs", layer: layer("", segnet+blob(0, 0)), bottoms: []bottom{in}, wantErr: "3 blobs"},
		{name: "no weights", layer: layer("", ""), bottoms: []bottom{in}, wantErr: "give the weights"},
	})
}

// TestDetectionOutputResizesTop checks that Run stores the detections at
// their own size, not the graph's 1×1×1×7 placeholder.
func TestDetectionOutputResizesTop(t *testing.T) {
	text := `layer { name: "loc" type: "Input" top: "loc" input_param { shape { dim: 1 dim: 8 } } }
layer { name: "conf" type: "Input" top: "conf" input_param { shape { dim: 1 dim: 4 } } }
layer { name: "prior" type: "Input" top: "prior" input_param { shape { dim: 1 dim: 2 dim: 8 } } }
layer { name: "d" type: "DetectionOutput" bottom: "loc" bottom: "conf" bottom: "prior" top: "out" detection_output_param { num_classes: 2 } }`
	net, err := caffe.Read(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	fn, err := Compile(net, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := fn.Graph().Final["out"].Shape; !slices.Equal(got, []int{1, 1, 1, 7}) {
		t.Fatalf("graph shape %v, want the placeholder [1 1 1 7]", got)
	}
	// Two disjoint priors, both scoring 0.9 for class 1.
	res, err := fn.Run(map[string]*Tensor{
		"loc":   NewTensor(1, 8),
		"conf":  tensor([]int{1, 4}, 0.1, 0.9, 0.1, 0.9),
		"prior": tensor([]int{1, 2, 8}, 0, 0, 0.1, 0.1, 0.5, 0.5, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Blob("out").Shape; !slices.Equal(got, []int{1, 1, 2, 7}) {
		t.Errorf("top shape %v, want [1 1 2 7]", got)
	}
}

// TestForkKernelsRegistered checks that every layer type these kernels
// cover has one.
func TestForkKernelsRegistered(t *testing.T) {
	for _, typ := range []string{"Permute", "Crop", "Tile", "Reduction", "ArgMax", "ShuffleChannel", "Embed",
		"Normalize", "PriorBox", "DetectionOutput", "Interp", "Upsample", "BN"} {
		if !slices.Contains(SupportedTypes(), typ) {
			t.Errorf("no kernel for layer type %s", typ)
		}
	}
}
