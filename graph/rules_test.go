package graph

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
)

// shapeCase is one top-shape check of a rule: a layer in Caffe's text
// format, its bottom shapes, and the expected top shapes or a substring
// of the expected error.
type shapeCase struct {
	name    string
	layer   string
	bottoms [][]int
	tops    int // tops to add when the text names none: 0 means 1, -1 none
	want    [][]int
	wantErr string
}

// parseLayer parses a LayerParameter from text, naming bottoms b0, b1, ...
// and tops t0, t1, ... when the text gives none.
func parseLayer(t *testing.T, text string, bottoms, tops int) *caffepb.LayerParameter {
	t.Helper()
	lp := &caffepb.LayerParameter{}
	if err := prototext.Unmarshal([]byte(text), lp); err != nil {
		t.Fatalf("invalid layer text %q: %v", text, err)
	}
	if len(lp.Bottom) == 0 {
		for i := range bottoms {
			lp.Bottom = append(lp.Bottom, fmt.Sprintf("b%d", i))
		}
	}
	if len(lp.Top) == 0 {
		if tops == 0 {
			tops = 1
		}
		for i := range max(tops, 0) {
			lp.Top = append(lp.Top, fmt.Sprintf("t%d", i))
		}
	}
	return lp
}

func newContext(t *testing.T, text string, bottoms [][]int, tops int) *Context {
	t.Helper()
	lp := parseLayer(t, text, len(bottoms), tops)
	return &Context{Layer: lp, Bottoms: bottoms, Weights: lp.GetBlobs()}
}

// runShapeCases runs the Tops function of each case's layer type.
func runShapeCases(t *testing.T, cases []shapeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newContext(t, tc.layer, tc.bottoms, tc.tops)
			r := rules[c.Layer.GetType()]
			if r == nil {
				t.Fatalf("no rule for layer type %q", c.Layer.GetType())
			}
			got, err := r.Tops(c)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("tops %v, want an error containing %q", got, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %q does not contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d tops %v, want %d %v", len(got), got, len(tc.want), tc.want)
			}
			for i := range got {
				if got[i] == nil {
					t.Errorf("top %d is nil (unknown), want %v", i, tc.want[i])
				}
				if !slices.Equal(got[i], tc.want[i]) {
					t.Errorf("top %d is %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestEltwiseTops(t *testing.T) {
	runShapeCases(t, []shapeCase{
		{name: "sum", layer: `type: "Eltwise"`, bottoms: [][]int{{1, 8, 4, 4}, {1, 8, 4, 4}}, want: [][]int{{1, 8, 4, 4}}},
		{name: "three", layer: `type: "Eltwise" eltwise_param { operation: MAX }`, bottoms: [][]int{{2, 3}, {2, 3}, {2, 3}}, want: [][]int{{2, 3}}},
		{name: "shape mismatch", layer: `type: "Eltwise"`, bottoms: [][]int{{1, 8, 4, 4}, {1, 8, 4, 5}}, wantErr: "bottom 1 has shape [1 8 4 5]"},
		{name: "rank mismatch", layer: `type: "Eltwise"`, bottoms: [][]int{{8, 4}, {8, 4, 1}}, wantErr: "Eltwise needs equal shapes"},
		{name: "one bottom", layer: `type: "Eltwise"`, bottoms: [][]int{{1, 2}}, wantErr: "at least 2 bottoms"},
		{name: "coeff count", layer: `type: "Eltwise" eltwise_param { coeff: 1 coeff: -1 coeff: 2 }`, bottoms: [][]int{{2}, {2}}, wantErr: "3 coeff values for 2 bottoms"},
		{name: "coeff with prod", layer: `type: "Eltwise" eltwise_param { operation: PROD coeff: 1 coeff: 2 }`, bottoms: [][]int{{2}, {2}}, wantErr: "SUM only"},
	})
}

func TestConcatTops(t *testing.T) {
	runShapeCases(t, []shapeCase{
		{name: "channels", layer: `type: "Concat"`, bottoms: [][]int{{1, 64, 7, 7}, {1, 32, 7, 7}, {1, 16, 7, 7}}, want: [][]int{{1, 112, 7, 7}}},
		{name: "negative axis", layer: `type: "Concat" concat_param { axis: -1 }`, bottoms: [][]int{{1, 5, 3}, {1, 5, 4}}, want: [][]int{{1, 5, 7}}},
		{name: "concat_dim", layer: `type: "Concat" concat_param { concat_dim: 0 }`, bottoms: [][]int{{2, 5}, {3, 5}}, want: [][]int{{5, 5}}},
		{name: "single bottom", layer: `type: "Concat"`, bottoms: [][]int{{1, 4}}, want: [][]int{{1, 4}}},
		{name: "both fields", layer: `type: "Concat" concat_param { axis: 1 concat_dim: 1 }`, bottoms: [][]int{{1, 4}, {1, 4}}, wantErr: "both axis and concat_dim"},
		{name: "axis too big", layer: `type: "Concat" concat_param { axis: 4 }`, bottoms: [][]int{{1, 4, 2, 2}, {1, 4, 2, 2}}, wantErr: "axis 4 is out of range for a bottom with 4 axes"},
		{name: "axis too small", layer: `type: "Concat" concat_param { axis: -5 }`, bottoms: [][]int{{1, 4, 2, 2}}, wantErr: "axis -5 is out of range"},
		{name: "concat_dim too big", layer: `type: "Concat" concat_param { concat_dim: 2 }`, bottoms: [][]int{{1, 4}, {1, 4}}, wantErr: "concat_dim 2 is out of range"},
		{name: "other axis differs", layer: `type: "Concat"`, bottoms: [][]int{{1, 4, 7, 7}, {1, 4, 7, 8}}, wantErr: "may differ only on the concatenation axis 1"},
		{name: "rank differs", layer: `type: "Concat"`, bottoms: [][]int{{1, 4, 7, 7}, {1, 4, 49}}, wantErr: "same number of axes"},
	})
}

func TestSliceTops(t *testing.T) {
	runShapeCases(t, []shapeCase{
		{name: "equal split", layer: `type: "Slice"`, bottoms: [][]int{{1, 6, 2}}, tops: 3, want: [][]int{{1, 2, 2}, {1, 2, 2}, {1, 2, 2}}},
		{name: "points", layer: `type: "Slice" slice_param { axis: -1 slice_point: 1 slice_point: 4 }`, bottoms: [][]int{{2, 10}}, tops: 3, want: [][]int{{2, 1}, {2, 3}, {2, 6}}},
		{name: "slice_dim", layer: `type: "Slice" slice_param { slice_dim: 0 }`, bottoms: [][]int{{4, 3}}, tops: 2, want: [][]int{{2, 3}, {2, 3}}},
		{name: "uneven", layer: `type: "Slice"`, bottoms: [][]int{{1, 7}}, tops: 2, wantErr: "2 tops do not divide the 7 values"},
		{name: "point count", layer: `type: "Slice" slice_param { slice_point: 2 }`, bottoms: [][]int{{1, 7}}, tops: 3, wantErr: "1 slice_point values for 3 tops"},
		{name: "decreasing", layer: `type: "Slice" slice_param { slice_point: 4 slice_point: 2 }`, bottoms: [][]int{{1, 7}}, tops: 3, wantErr: "must increase strictly"},
		{name: "point at end", layer: `type: "Slice" slice_param { slice_point: 7 }`, bottoms: [][]int{{1, 7}}, tops: 2, wantErr: "within 1 to 6"},
		{name: "zero point", layer: `type: "Slice" slice_param { slice_point: 0 }`, bottoms: [][]int{{1, 7}}, tops: 2, wantErr: "must increase strictly"},
		{name: "axis range", layer: `type: "Slice" slice_param { axis: 2 }`, bottoms: [][]int{{1, 7}}, tops: 2, wantErr: "axis 2 is out of range"},
		{name: "both fields", layer: `type: "Slice" slice_param { axis: 1 slice_dim: 1 }`, bottoms: [][]int{{1, 8}}, tops: 2, wantErr: "both axis and slice_dim"},
	})
}

func TestSplitSilenceTops(t *testing.T) {
	runShapeCases(t, []shapeCase{
		{name: "split two", layer: `type: "Split"`, bottoms: [][]int{{1, 3, 5}}, tops: 2, want: [][]int{{1, 3, 5}, {1, 3, 5}}},
		{name: "split in place", layer: `type: "Split" bottom: "x" top: "x" top: "y"`, bottoms: [][]int{{1, 3}}, wantErr: "does not work in place"},
		{name: "silence", layer: `type: "Silence"`, bottoms: [][]int{{1, 3}, {4}}, tops: -1, want: [][]int{}},
	})
}

func TestFlattenTops(t *testing.T) {
	runShapeCases(t, []shapeCase{
		{name: "default", layer: `type: "Flatten"`, bottoms: [][]int{{2, 3, 4, 5}}, want: [][]int{{2, 60}}},
		{name: "middle", layer: `type: "Flatten" flatten_param { axis: 1 end_axis: 2 }`, bottoms: [][]int{{2, 3, 4, 5}}, want: [][]int{{2, 12, 5}}},
		{name: "negative", layer: `type: "Flatten" flatten_param { axis: -3 end_axis: -2 }`, bottoms: [][]int{{2, 3, 4, 5}}, want: [][]int{{2, 12, 5}}},
		{name: "all", layer: `type: "Flatten" flatten_param { axis: 0 }`, bottoms: [][]int{{2, 3, 4}}, want: [][]int{{24}}},
		{name: "insert axis", layer: `type: "Flatten" flatten_param { axis: 2 end_axis: 1 }`, bottoms: [][]int{{2, 3, 4}}, want: [][]int{{2, 3, 1, 4}}},
		{name: "end before axis", layer: `type: "Flatten" flatten_param { axis: 2 end_axis: 0 }`, bottoms: [][]int{{2, 3, 4}}, wantErr: "end_axis 0 comes before axis 2"},
		{name: "axis range", layer: `type: "Flatten" flatten_param { axis: 3 }`, bottoms: [][]int{{2, 3, 4}}, wantErr: "flatten_param.axis 3 is out of range"},
		{name: "in place", layer: `type: "Flatten" bottom: "x" top: "x"`, bottoms: [][]int{{2, 3}}, wantErr: "does not work in place"},
	})
}

func TestReshapeTops(t *testing.T) {
	runShapeCases(t, []shapeCase{
		{name: "copy and infer", layer: `type: "Reshape" reshape_param { shape { dim: 0 dim: 2 dim: -1 dim: 0 } }`, bottoms: [][]int{{1, 18, 38, 63}}, want: [][]int{{1, 2, 342, 63}}},
		{name: "explicit", layer: `type: "Reshape" reshape_param { shape { dim: 6 dim: 4 } }`, bottoms: [][]int{{2, 3, 4}}, want: [][]int{{6, 4}}},
		{name: "axis range", layer: `type: "Reshape" reshape_param { shape { dim: 2 dim: 2 } axis: 1 num_axes: 1 }`, bottoms: [][]int{{3, 4, 5}}, want: [][]int{{3, 2, 2, 5}}},
		{name: "append axis", layer: `type: "Reshape" reshape_param { shape { dim: 1 } axis: -1 num_axes: 0 }`, bottoms: [][]int{{3, 4}}, want: [][]int{{3, 4, 1}}},
		{name: "empty shape", layer: `type: "Reshape" reshape_param { shape { } axis: 1 num_axes: 1 }`, bottoms: [][]int{{3, 1, 5}}, want: [][]int{{3, 5}}},
		{name: "infer ssd conf", layer: `type: "Reshape" reshape_param { shape { dim: 0 dim: -1 dim: 21 } }`, bottoms: [][]int{{1, 183372}}, want: [][]int{{1, 8732, 21}}},
		{name: "two infers", layer: `type: "Reshape" reshape_param { shape { dim: -1 dim: -1 } }`, bottoms: [][]int{{4}}, wantErr: "more than one -1"},
		{name: "not divisible", layer: `type: "Reshape" reshape_param { shape { dim: 0 dim: 5 dim: -1 } }`, bottoms: [][]int{{2, 3, 4}}, wantErr: "24 elements, which the other dimensions"},
		{name: "count differs", layer: `type: "Reshape" reshape_param { shape { dim: 5 dim: 5 } }`, bottoms: [][]int{{2, 3, 4}}, wantErr: "gives 25 elements, bottom [2 3 4] has 24"},
		{name: "copy past end", layer: `type: "Reshape" reshape_param { shape { dim: 0 dim: 0 dim: 0 } }`, bottoms: [][]int{{2, 12}}, wantErr: "no axis 2 to copy"},
		{name: "negative dim", layer: `type: "Reshape" reshape_param { shape { dim: -2 } }`, bottoms: [][]int{{2}}, wantErr: "invalid dimension -2"},
		{name: "axis out of range", layer: `type: "Reshape" reshape_param { shape { dim: 1 } axis: 3 }`, bottoms: [][]int{{2, 3}}, wantErr: "reshape_param.axis 3 is out of range"},
		{name: "num_axes too big", layer: `type: "Reshape" reshape_param { shape { dim: 6 } axis: 1 num_axes: 3 }`, bottoms: [][]int{{2, 3, 2}}, wantErr: "exceeds the 3 axes"},
		{name: "in place", layer: `type: "Reshape" bottom: "x" top: "x" reshape_param { shape { dim: -1 } }`, bottoms: [][]int{{2, 3}}, wantErr: "does not work in place"},
	})
}

func TestSoftmaxArgMaxTops(t *testing.T) {
	runShapeCases(t, []shapeCase{
		{name: "softmax", layer: `type: "Softmax"`, bottoms: [][]int{{1, 10, 3, 3}}, want: [][]int{{1, 10, 3, 3}}},
		{name: "softmax axis 2", layer: `type: "Softmax" softmax_param { axis: 2 }`, bottoms: [][]int{{1, 8732, 21}}, want: [][]int{{1, 8732, 21}}},
		{name: "softmax bad axis", layer: `type: "Softmax" softmax_param { axis: 2 }`, bottoms: [][]int{{1, 10}}, wantErr: "softmax_param.axis 2 is out of range"},
		{name: "argmax flat", layer: `type: "ArgMax"`, bottoms: [][]int{{5, 1000}}, want: [][]int{{5, 1, 1}}},
		{name: "argmax flat 4d", layer: `type: "ArgMax" argmax_param { top_k: 3 out_max_val: true }`, bottoms: [][]int{{2, 10, 4, 4}}, want: [][]int{{2, 2, 3, 1}}},
		{name: "argmax axis", layer: `type: "ArgMax" argmax_param { axis: 1 }`, bottoms: [][]int{{1, 21, 500, 500}}, want: [][]int{{1, 1, 500, 500}}},
		{name: "argmax axis max val", layer: `type: "ArgMax" argmax_param { axis: -1 top_k: 2 out_max_val: true }`, bottoms: [][]int{{4, 6}}, want: [][]int{{4, 2}}},
		{name: "argmax k too big", layer: `type: "ArgMax" argmax_param { axis: 1 top_k: 22 }`, bottoms: [][]int{{1, 21, 5, 5}}, wantErr: "top_k 22 exceeds the 21 values on axis 1"},
		{name: "argmax k flat", layer: `type: "ArgMax" argmax_param { top_k: 11 }`, bottoms: [][]int{{3, 10}}, wantErr: "top_k 11 exceeds the 10 values per item"},
		{name: "argmax k zero", layer: `type: "ArgMax" argmax_param { top_k: 0 }`, bottoms: [][]int{{3, 10}}, wantErr: "at least 1"},
		{name: "argmax axis range", layer: `type: "ArgMax" argmax_param { axis: 2 }`, bottoms: [][]int{{3, 10}}, wantErr: "argmax_param.axis 2 is out of range"},
	})
}

func TestCropTops(t *testing.T) {
	runShapeCases(t, []shapeCase{
		{name: "fcn", layer: `type: "Crop" crop_param { axis: 2 offset: 31 }`, bottoms: [][]int{{1, 21, 568, 568}, {1, 3, 500, 500}}, want: [][]int{{1, 21, 500, 500}}},
		{name: "default axis", layer: `type: "Crop"`, bottoms: [][]int{{1, 21, 10, 12}, {1, 3, 10, 11}}, want: [][]int{{1, 21, 10, 11}}},
		{name: "per axis offsets", layer: `type: "Crop" crop_param { axis: 1 offset: 0 offset: 2 offset: 1 }`, bottoms: [][]int{{1, 4, 10, 10}, {1, 4, 8, 9}}, want: [][]int{{1, 4, 8, 9}}},
		{name: "negative axis", layer: `type: "Crop" crop_param { axis: -1 offset: 2 }`, bottoms: [][]int{{2, 3, 9}, {2, 3, 5}}, want: [][]int{{2, 3, 5}}},
		{name: "one bottom", layer: `type: "Crop"`, bottoms: [][]int{{2, 3, 9}}, wantErr: "takes 2 bottoms, the layer has 1"},
		{name: "offset overflow", layer: `type: "Crop" crop_param { offset: 32 }`, bottoms: [][]int{{1, 21, 568, 568}, {1, 3, 537, 500}}, wantErr: "offset 32 + size 537 = 569 values"},
		{name: "reference larger", layer: `type: "Crop"`, bottoms: [][]int{{1, 2, 4, 4}, {1, 2, 5, 4}}, wantErr: "offset 0 + size 5"},
		{name: "offset count", layer: `type: "Crop" crop_param { offset: 1 offset: 1 offset: 1 }`, bottoms: [][]int{{1, 2, 8, 8}, {1, 2, 4, 4}}, wantErr: "3 offset values for the 2 axes"},
		{name: "rank differs", layer: `type: "Crop"`, bottoms: [][]int{{1, 2, 8, 8}, {1, 8, 8}}, wantErr: "different numbers of axes"},
		{name: "axis range", layer: `type: "Crop" crop_param { axis: 4 }`, bottoms: [][]int{{1, 2, 8, 8}, {1, 2, 8, 8}}, wantErr: "crop_param.axis 4 is out of range"},
	})
}

func TestEmbedTileReductionTops(t *testing.T) {
	runShapeCases(t, []shapeCase{
		{name: "embed", layer: `type: "Embed" embed_param { num_output: 1000 input_dim: 8801 }`, bottoms: [][]int{{20, 1}}, want: [][]int{{20, 1, 1000}}},
		{name: "embed no input_dim", layer: `type: "Embed" embed_param { num_output: 10 }`, bottoms: [][]int{{4}}, wantErr: "positive num_output and input_dim, got 10 and 0"},
		{name: "tile", layer: `type: "Tile" tile_param { axis: 1 tiles: 3 }`, bottoms: [][]int{{2, 4, 5}}, want: [][]int{{2, 12, 5}}},
		{name: "tile negative axis", layer: `type: "Tile" tile_param { axis: -1 tiles: 2 }`, bottoms: [][]int{{2, 4, 5}}, want: [][]int{{2, 4, 10}}},
		{name: "tile missing", layer: `type: "Tile"`, bottoms: [][]int{{2, 4}}, wantErr: "tiles must be given and positive"},
		{name: "tile zero", layer: `type: "Tile" tile_param { tiles: 0 }`, bottoms: [][]int{{2, 4}}, wantErr: "got 0"},
		{name: "reduction all", layer: `type: "Reduction"`, bottoms: [][]int{{2, 3, 4}}, want: [][]int{{}}},
		{name: "reduction tail", layer: `type: "Reduction" reduction_param { axis: -1 operation: MEAN }`, bottoms: [][]int{{2, 3, 4}}, want: [][]int{{2, 3}}},
		{name: "reduction range", layer: `type: "Reduction" reduction_param { axis: 3 }`, bottoms: [][]int{{2, 3, 4}}, wantErr: "reduction_param.axis 3 is out of range"},
	})
}

func TestPermuteShuffleTops(t *testing.T) {
	runShapeCases(t, []shapeCase{
		{name: "ssd order", layer: `type: "Permute" permute_param { order: 0 order: 2 order: 3 order: 1 }`, bottoms: [][]int{{1, 84, 19, 19}}, want: [][]int{{1, 19, 19, 84}}},
		{name: "partial order", layer: `type: "Permute" permute_param { order: 2 }`, bottoms: [][]int{{1, 2, 3, 4}}, want: [][]int{{3, 1, 2, 4}}},
		{name: "no order", layer: `type: "Permute"`, bottoms: [][]int{{1, 2, 3}}, want: [][]int{{1, 2, 3}}},
		{name: "duplicate", layer: `type: "Permute" permute_param { order: 0 order: 0 }`, bottoms: [][]int{{1, 2}}, wantErr: "names axis 0 twice"},
		{name: "out of range", layer: `type: "Permute" permute_param { order: 4 }`, bottoms: [][]int{{1, 2, 3, 4}}, wantErr: "names axis 4"},
		{name: "shuffle", layer: `type: "ShuffleChannel" shuffle_channel_param { group: 3 }`, bottoms: [][]int{{1, 240, 28, 28}}, want: [][]int{{1, 240, 28, 28}}},
		{name: "shuffle indivisible", layer: `type: "ShuffleChannel" shuffle_channel_param { group: 7 }`, bottoms: [][]int{{1, 240, 28, 28}}, wantErr: "group 7 must be positive and divide the 240 channels"},
		{name: "shuffle zero", layer: `type: "ShuffleChannel" shuffle_channel_param { group: 0 }`, bottoms: [][]int{{1, 240}}, wantErr: "group 0"},
	})
}

func TestBatchReindexParameterTops(t *testing.T) {
	runShapeCases(t, []shapeCase{
		{name: "reindex", layer: `type: "BatchReindex"`, bottoms: [][]int{{5, 3, 8}, {7}}, want: [][]int{{7, 3, 8}}},
		{name: "reindex 2d index", layer: `type: "BatchReindex"`, bottoms: [][]int{{5, 3}, {7, 1}}, wantErr: "needs 1 axis"},
		{name: "reindex one bottom", layer: `type: "BatchReindex"`, bottoms: [][]int{{5, 3}}, wantErr: "takes 2 bottoms, the layer has 1"},
		{name: "parameter", layer: `type: "Parameter" parameter_param { shape { dim: 10 dim: 3 } }`, want: [][]int{{10, 3}}},
		{name: "parameter missing", layer: `type: "Parameter"`, wantErr: "missing parameter_param.shape"},
		{name: "parameter negative", layer: `type: "Parameter" parameter_param { shape { dim: -1 } }`, wantErr: "negative dimension -1"},
	})
}

func TestIm2colSPPTops(t *testing.T) {
	runShapeCases(t, []shapeCase{
		{name: "im2col", layer: `type: "Im2col" convolution_param { kernel_size: 3 stride: 2 pad: 1 }`, bottoms: [][]int{{2, 4, 9, 9}}, want: [][]int{{2, 36, 5, 5}}},
		{name: "im2col hw", layer: `type: "Im2col" convolution_param { kernel_h: 2 kernel_w: 3 }`, bottoms: [][]int{{1, 2, 5, 5}}, want: [][]int{{1, 12, 4, 3}}},
		{name: "im2col dilation", layer: `type: "Im2col" convolution_param { kernel_size: 3 dilation: 2 }`, bottoms: [][]int{{1, 1, 9, 9}}, want: [][]int{{1, 9, 5, 5}}},
		{name: "im2col too big", layer: `type: "Im2col" convolution_param { kernel_size: 7 }`, bottoms: [][]int{{1, 1, 5, 5}}, wantErr: "kernel extent 7 is larger than the padded input 5"},
		{name: "im2col no kernel", layer: `type: "Im2col" convolution_param { stride: 2 }`, bottoms: [][]int{{1, 1, 5, 5}}, wantErr: "missing convolution_param.kernel"},
		{name: "spp three levels", layer: `type: "SPP" spp_param { pyramid_height: 3 }`, bottoms: [][]int{{2, 256, 13, 13}}, want: [][]int{{2, 256 * (1 + 4 + 16)}}},
		{name: "spp one level", layer: `type: "SPP" spp_param { pyramid_height: 1 }`, bottoms: [][]int{{2, 8, 6, 7}}, want: [][]int{{2, 8, 1, 1}}},
		{name: "spp uneven", layer: `type: "SPP" spp_param { pyramid_height: 2 }`, bottoms: [][]int{{1, 4, 5, 6}}, want: [][]int{{1, 4 * (1 + 4)}}},
		{name: "spp padding too big", layer: `type: "SPP" spp_param { pyramid_height: 3 }`, bottoms: [][]int{{1, 4, 5, 5}}, wantErr: "needs the padding below the kernel"},
		{name: "spp zero", layer: `type: "SPP"`, bottoms: [][]int{{1, 4, 5, 5}}, wantErr: "pyramid_height must be at least 1"},
		{name: "spp rank", layer: `type: "SPP" spp_param { pyramid_height: 1 }`, bottoms: [][]int{{1, 4, 5}}, wantErr: "4 axes"},
	})
}

func TestNormalizePriorBoxTops(t *testing.T) {
	// SSD300's conv4_3 head: min 30, max 60, aspect ratio 2, flip: 4 priors.
	const conv43 = `type: "PriorBox" prior_box_param { min_size: 30 max_size: 60 aspect_ratio: 2 flip: true step: 8 }`
	runShapeCases(t, []shapeCase{
		{name: "normalize", layer: `type: "Normalize"`, bottoms: [][]int{{1, 512, 38, 38}}, want: [][]int{{1, 512, 38, 38}}},
		{name: "normalize 5d", layer: `type: "Normalize"`, bottoms: [][]int{{1, 2, 3, 4, 5}}, wantErr: "2 to 4 axes"},
		{name: "prior conv4_3", layer: conv43, bottoms: [][]int{{1, 512, 38, 38}, {1, 3, 300, 300}}, want: [][]int{{1, 2, 38 * 38 * 4 * 4}}},
		{name: "prior two ratios", layer: `type: "PriorBox" prior_box_param { min_size: 105 max_size: 150 aspect_ratio: 2 aspect_ratio: 3 }`, bottoms: [][]int{{1, 512, 10, 10}, {1, 3, 300, 300}}, want: [][]int{{1, 2, 10 * 10 * 6 * 4}}},
		{name: "prior repeats", layer: `type: "PriorBox" prior_box_param { min_size: 60 aspect_ratio: 2 aspect_ratio: 0.5 aspect_ratio: 1 aspect_ratio: 2.0000001 }`, bottoms: [][]int{{1, 8, 19, 19}, {1, 3, 300, 300}}, want: [][]int{{1, 2, 19 * 19 * 3 * 4}}},
		{name: "prior no flip", layer: `type: "PriorBox" prior_box_param { min_size: 60 aspect_ratio: 2 aspect_ratio: 3 flip: false }`, bottoms: [][]int{{1, 8, 2, 2}, {1, 3, 300, 300}}, want: [][]int{{1, 2, 2 * 2 * 3 * 4}}},
		{name: "prior two min sizes", layer: `type: "PriorBox" prior_box_param { min_size: 30 min_size: 40 max_size: 50 max_size: 60 aspect_ratio: 2 }`, bottoms: [][]int{{1, 8, 1, 1}, {1, 3, 300, 300}}, want: [][]int{{1, 2, (3*2 + 2) * 4}}},
		{name: "prior explicit boxes", layer: `type: "PriorBox" prior_box_param { width: 16 width: 32 height: 16 height: 32 offset_h: 0.25 offset_h: 0.75 offset_w: 0.25 offset_w: 0.75 }`, bottoms: [][]int{{1, 8, 3, 3}, {1, 3, 48, 48}}, want: [][]int{{1, 2, 9 * 4 * 4}}},
		{name: "prior no min", layer: `type: "PriorBox" prior_box_param { aspect_ratio: 2 }`, bottoms: [][]int{{1, 8, 3, 3}, {1, 3, 48, 48}}, wantErr: "needs min_size"},
		{name: "prior max count", layer: `type: "PriorBox" prior_box_param { min_size: 30 max_size: 60 max_size: 90 }`, bottoms: [][]int{{1, 8, 3, 3}, {1, 3, 48, 48}}, wantErr: "2 max_size values for 1 min_size"},
		{name: "prior max below min", layer: `type: "PriorBox" prior_box_param { min_size: 30 max_size: 20 }`, bottoms: [][]int{{1, 8, 3, 3}, {1, 3, 48, 48}}, wantErr: "must exceed min_size"},
		{name: "prior 5d", layer: conv43, bottoms: [][]int{{1, 8, 3, 3, 3}, {1, 3, 48, 48}}, wantErr: "at most 4 axes"},
	})
}

func TestDetectionOutputTops(t *testing.T) {
	const ssd = `type: "DetectionOutput" detection_output_param { num_classes: 21 }`
	runShapeCases(t, []shapeCase{
		{name: "ssd300", layer: ssd, bottoms: [][]int{{1, 34928}, {1, 183372}, {1, 2, 34928}}, want: [][]int{{1, 1, 1, 7}}},
		{name: "per class loc", layer: `type: "DetectionOutput" detection_output_param { num_classes: 3 share_location: false }`, bottoms: [][]int{{2, 10 * 3 * 4}, {2, 30}, {1, 2, 40}}, want: [][]int{{1, 1, 1, 7}}},
		{name: "loc mismatch", layer: ssd, bottoms: [][]int{{1, 34924}, {1, 183372}, {1, 2, 34928}}, wantErr: "8732 priors × 1 location classes × 4 need 34928"},
		{name: "conf mismatch", layer: ssd, bottoms: [][]int{{1, 34928}, {1, 183371}, {1, 2, 34928}}, wantErr: "8732 priors × 21 classes need 183372"},
		{name: "priors not 4", layer: ssd, bottoms: [][]int{{1, 8}, {1, 42}, {1, 2, 9}}, wantErr: "not a multiple of 4"},
		{name: "batch mismatch", layer: ssd, bottoms: [][]int{{2, 8}, {1, 42}, {1, 2, 8}}, wantErr: "different batch sizes"},
		{name: "no classes", layer: `type: "DetectionOutput"`, bottoms: [][]int{{1, 8}, {1, 42}, {1, 2, 8}}, wantErr: "num_classes must be given"},
	})
}

func TestRegionPoolingTops(t *testing.T) {
	runShapeCases(t, []shapeCase{
		{name: "roi", layer: `type: "ROIPooling" roi_pooling_param { pooled_h: 7 pooled_w: 7 spatial_scale: 0.0625 }`, bottoms: [][]int{{1, 512, 38, 63}, {300, 5}}, want: [][]int{{300, 512, 7, 7}}},
		{name: "roi 4d regions", layer: `type: "ROIPooling" roi_pooling_param { pooled_h: 6 pooled_w: 6 }`, bottoms: [][]int{{1, 256, 13, 13}, {128, 5, 1, 1}}, want: [][]int{{128, 256, 6, 6}}},
		{name: "roi zero size", layer: `type: "ROIPooling" roi_pooling_param { pooled_h: 0 pooled_w: 7 }`, bottoms: [][]int{{1, 512, 38, 63}, {300, 5}}, wantErr: "pooled_h 0 and pooled_w 7 must be positive"},
		{name: "roi 4 values", layer: `type: "ROIPooling" roi_pooling_param { pooled_h: 7 pooled_w: 7 }`, bottoms: [][]int{{1, 512, 38, 63}, {300, 4}}, wantErr: "4 values per region; it needs 5"},
		{name: "psroi", layer: `type: "PSROIPooling" psroi_pooling_param { spatial_scale: 0.0625 output_dim: 21 group_size: 7 }`, bottoms: [][]int{{1, 1029, 38, 63}, {300, 5}}, want: [][]int{{300, 21, 7, 7}}},
		{name: "psroi channels", layer: `type: "PSROIPooling" psroi_pooling_param { spatial_scale: 0.0625 output_dim: 21 group_size: 7 }`, bottoms: [][]int{{1, 1024, 38, 63}, {300, 5}}, wantErr: "bottom 0 has 1024 channels; output_dim 21 × group_size² 49 needs 1029"},
		{name: "psroi zero group", layer: `type: "PSROIPooling" psroi_pooling_param { spatial_scale: 1 output_dim: 21 group_size: 0 }`, bottoms: [][]int{{1, 21, 8, 8}, {300, 5}}, wantErr: "must be positive"},
	})
}

func TestProposalTops(t *testing.T) {
	runShapeCases(t, []shapeCase{
		{name: "default", layer: `type: "Proposal"`, bottoms: [][]int{{1, 18, 38, 63}, {1, 36, 38, 63}, {1, 3}}, want: [][]int{{300, 5}}},
		{name: "scores top", layer: `type: "Proposal" proposal_param { post_nms_topn: 50 }`, bottoms: [][]int{{1, 18, 38, 63}, {1, 36, 38, 63}, {1, 3}}, tops: 2, want: [][]int{{50, 5}, {50, 1}}},
		{name: "two images", layer: `type: "Proposal"`, bottoms: [][]int{{2, 18, 4, 4}, {2, 36, 4, 4}, {2, 3}}, want: [][]int{{600, 5}}},
		{name: "odd scores", layer: `type: "Proposal"`, bottoms: [][]int{{1, 9, 4, 4}, {1, 36, 4, 4}, {1, 3}}, wantErr: "2 per anchor"},
		{name: "deltas mismatch", layer: `type: "Proposal"`, bottoms: [][]int{{1, 18, 4, 4}, {1, 36, 4, 5}, {1, 3}}, wantErr: "do not match the scores"},
		{name: "no im_info", layer: `type: "Proposal"`, bottoms: [][]int{{1, 18, 4, 4}, {1, 36, 4, 4}}, wantErr: "takes 3 bottoms"},
	})
}

func TestInterpTops(t *testing.T) {
	runShapeCases(t, []shapeCase{
		{name: "zoom", layer: `type: "Interp" interp_param { zoom_factor: 8 }`, bottoms: [][]int{{1, 150, 60, 60}}, want: [][]int{{1, 150, 473, 473}}},
		{name: "shrink", layer: `type: "Interp" interp_param { shrink_factor: 8 }`, bottoms: [][]int{{1, 3, 473, 473}}, want: [][]int{{1, 3, 60, 60}}},
		{name: "shrink then zoom", layer: `type: "Interp" interp_param { shrink_factor: 2 zoom_factor: 3 }`, bottoms: [][]int{{1, 3, 9, 10}}, want: [][]int{{1, 3, 13, 13}}},
		{name: "size", layer: `type: "Interp" interp_param { height: 60 width: 61 }`, bottoms: [][]int{{1, 512, 1, 1}}, want: [][]int{{1, 512, 60, 61}}},
		{name: "factor wins", layer: `type: "Interp" interp_param { zoom_factor: 2 height: 99 width: 99 }`, bottoms: [][]int{{1, 2, 5, 5}}, want: [][]int{{1, 2, 9, 9}}},
		{name: "second bottom", layer: `type: "Interp"`, bottoms: [][]int{{1, 21, 65, 65}, {1, 3, 513, 513}}, want: [][]int{{1, 21, 513, 513}}},
		{name: "crop first", layer: `type: "Interp" interp_param { zoom_factor: 2 pad_beg: -1 pad_end: -1 }`, bottoms: [][]int{{1, 2, 7, 9}}, want: [][]int{{1, 2, 9, 13}}},
		{name: "positive pad", layer: `type: "Interp" interp_param { zoom_factor: 2 pad_beg: 1 }`, bottoms: [][]int{{1, 2, 7, 9}}, wantErr: "must be 0 or negative"},
		{name: "cropped away", layer: `type: "Interp" interp_param { zoom_factor: 2 pad_beg: -2 pad_end: -1 }`, bottoms: [][]int{{1, 2, 3, 9}}, wantErr: "crop the 3 × 9 input to nothing"},
		{name: "zero zoom", layer: `type: "Interp" interp_param { zoom_factor: 0 }`, bottoms: [][]int{{1, 2, 3, 3}}, wantErr: "zoom_factor 0 must be at least 1"},
		{name: "no size", layer: `type: "Interp"`, bottoms: [][]int{{1, 2, 3, 3}}, wantErr: "sets no output size"},
		{name: "only height", layer: `type: "Interp" interp_param { height: 5 }`, bottoms: [][]int{{1, 2, 3, 3}}, wantErr: "sets no output size"},
	})
}

func TestUpsampleTops(t *testing.T) {
	runShapeCases(t, []shapeCase{
		{name: "explicit", layer: `type: "Upsample" upsample_param { scale: 2 upsample_w: 30 upsample_h: 23 }`, bottoms: [][]int{{1, 512, 12, 15}, {1, 512, 12, 15}}, want: [][]int{{1, 512, 23, 30}}},
		{name: "scale", layer: `type: "Upsample" upsample_param { scale: 2 }`, bottoms: [][]int{{1, 64, 45, 60}, {1, 64, 45, 60}}, want: [][]int{{1, 64, 90, 120}}},
		{name: "pad out", layer: `type: "Upsample" upsample_param { scale: 2 pad_out_h: true }`, bottoms: [][]int{{1, 64, 23, 30}, {1, 64, 23, 30}}, want: [][]int{{1, 64, 45, 60}}},
		{name: "scale pair", layer: `type: "Upsample" upsample_param { scale_h: 2 scale_w: 3 }`, bottoms: [][]int{{1, 4, 5, 5}, {1, 4, 5, 5}}, want: [][]int{{1, 4, 10, 15}}},
		{name: "default scale", layer: `type: "Upsample"`, bottoms: [][]int{{1, 4, 5, 5}, {1, 4, 5, 5}}, want: [][]int{{1, 4, 10, 10}}},
		{name: "one bottom", layer: `type: "Upsample" upsample_param { scale: 2 }`, bottoms: [][]int{{1, 256, 13, 13}}, want: [][]int{{1, 256, 26, 26}}},
		{name: "mask mismatch", layer: `type: "Upsample" upsample_param { scale: 2 }`, bottoms: [][]int{{1, 64, 45, 60}, {1, 64, 45, 61}}, wantErr: "the mask (bottom 1) has shape [1 64 45 61]"},
		{name: "pad out scale 3", layer: `type: "Upsample" upsample_param { scale: 3 pad_out_w: true }`, bottoms: [][]int{{1, 4, 5, 5}, {1, 4, 5, 5}}, wantErr: "need a scale of 2"},
		{name: "scale 1", layer: `type: "Upsample" upsample_param { scale: 1 }`, bottoms: [][]int{{1, 4, 5, 5}, {1, 4, 5, 5}}, wantErr: "must exceed 1"},
		{name: "mixed scales", layer: `type: "Upsample" upsample_param { scale: 2 scale_h: 2 }`, bottoms: [][]int{{1, 4, 5, 5}, {1, 4, 5, 5}}, wantErr: "or both scale_h and scale_w"},
		{name: "3d", layer: `type: "Upsample"`, bottoms: [][]int{{1, 4, 5}, {1, 4, 5}}, wantErr: "4 axes"},
	})
}

func TestLossTops(t *testing.T) {
	runShapeCases(t, []shapeCase{
		{name: "softmax loss", layer: `type: "SoftmaxWithLoss"`, bottoms: [][]int{{64, 10}, {64}}, want: [][]int{{}}},
		{name: "softmax loss spatial", layer: `type: "SoftmaxWithLoss"`, bottoms: [][]int{{2, 21, 5, 5}, {2, 1, 5, 5}}, tops: 2, want: [][]int{{}, {2, 21, 5, 5}}},
		{name: "softmax loss labels", layer: `type: "SoftmaxWithLoss"`, bottoms: [][]int{{2, 21, 5, 5}, {2, 1, 5, 4}}, wantErr: "has 40 values; scores [2 21 5 5] with classes on axis 1 need 50"},
		{name: "loss without tops", layer: `type: "SoftmaxWithLoss"`, bottoms: [][]int{{64, 10}, {64}}, tops: -1, want: [][]int{}},
		{name: "loss without tops checked", layer: `type: "SoftmaxWithLoss"`, bottoms: [][]int{{64, 10}, {32}}, tops: -1, wantErr: "different batch sizes"},
		{name: "softmax loss batch", layer: `type: "SoftmaxWithLoss"`, bottoms: [][]int{{2, 10}, {3}}, wantErr: "different batch sizes (2 and 3)"},
		{name: "softmax loss axis", layer: `type: "SoftmaxWithLoss" softmax_param { axis: 2 }`, bottoms: [][]int{{2, 10}, {2}}, wantErr: "softmax_param.axis 2 is out of range"},
		{name: "infogain", layer: `type: "InfogainLoss"`, bottoms: [][]int{{4, 3}, {4}, {1, 1, 3, 3}}, want: [][]int{{}}},
		{name: "infogain matrix", layer: `type: "InfogainLoss"`, bottoms: [][]int{{4, 3}, {4}, {3, 2}}, wantErr: "3 classes need 3 × 3"},
		{name: "euclidean", layer: `type: "EuclideanLoss"`, bottoms: [][]int{{8, 2, 3}, {8, 6}}, want: [][]int{{}}},
		{name: "euclidean mismatch", layer: `type: "EuclideanLoss"`, bottoms: [][]int{{8, 2, 3}, {8, 5}}, wantErr: "same number of values per item"},
		{name: "sigmoid ce", layer: `type: "SigmoidCrossEntropyLoss"`, bottoms: [][]int{{4, 5}, {4, 5}}, want: [][]int{{}}},
		{name: "sigmoid ce mismatch", layer: `type: "SigmoidCrossEntropyLoss"`, bottoms: [][]int{{4, 5}, {4, 4}}, wantErr: "one target per prediction"},
		{name: "hinge", layer: `type: "HingeLoss"`, bottoms: [][]int{{4, 10}, {4}}, want: [][]int{{}}},
		{name: "hinge labels", layer: `type: "HingeLoss"`, bottoms: [][]int{{4, 10}, {4, 2}}, wantErr: "needs one per item, 4"},
		{name: "multinomial", layer: `type: "MultinomialLogisticLoss"`, bottoms: [][]int{{4, 10}, {4, 1, 1, 1}}, want: [][]int{{}}},
		{name: "multinomial labels", layer: `type: "MultinomialLogisticLoss"`, bottoms: [][]int{{4, 10}, {4, 2}}, wantErr: "one value per item"},
		{name: "contrastive", layer: `type: "ContrastiveLoss"`, bottoms: [][]int{{64, 2}, {64, 2}, {64}}, want: [][]int{{}}},
		{name: "contrastive channels", layer: `type: "ContrastiveLoss"`, bottoms: [][]int{{64, 2}, {64, 3}, {64}}, wantErr: "same channels"},
		{name: "contrastive bottoms", layer: `type: "ContrastiveLoss"`, bottoms: [][]int{{64, 2}, {64, 2}}, wantErr: "takes 3 bottoms"},
		{name: "smooth l1", layer: `type: "SmoothL1Loss"`, bottoms: [][]int{{128, 84}, {128, 84}, {128, 84}, {128, 84}}, want: [][]int{{}}},
		{name: "smooth l1 weights", layer: `type: "SmoothL1Loss"`, bottoms: [][]int{{128, 84}, {128, 84}, {128, 4}}, wantErr: "bottom 2 [128 4] and bottom 0 [128 84]"},
		{name: "multibox", layer: `type: "MultiBoxLoss" multibox_loss_param { num_classes: 21 }`, bottoms: [][]int{{32, 34928}, {32, 183372}, {1, 2, 34928}, {1, 1, 40, 8}}, want: [][]int{{}}},
		{name: "multibox batch", layer: `type: "MultiBoxLoss" multibox_loss_param { num_classes: 21 }`, bottoms: [][]int{{32, 34928}, {16, 183372}, {1, 2, 34928}, {1, 1, 40, 8}}, wantErr: "different batch sizes (32 and 16)"},
		{name: "multibox conf", layer: `type: "MultiBoxLoss" multibox_loss_param { num_classes: 20 }`, bottoms: [][]int{{1, 34928}, {1, 183372}, {1, 2, 34928}, {1, 1, 40, 8}}, wantErr: "8732 priors × 20 classes need 174640"},
	})
}

func TestAccuracyTops(t *testing.T) {
	runShapeCases(t, []shapeCase{
		{name: "top1", layer: `type: "Accuracy"`, bottoms: [][]int{{50, 1000}, {50}}, want: [][]int{{}}},
		{name: "per class", layer: `type: "Accuracy" accuracy_param { top_k: 5 }`, bottoms: [][]int{{50, 1000}, {50, 1, 1, 1}}, tops: 2, want: [][]int{{}, {1000}}},
		{name: "spatial", layer: `type: "Accuracy"`, bottoms: [][]int{{2, 21, 8, 8}, {2, 1, 8, 8}}, want: [][]int{{}}},
		{name: "top_k too big", layer: `type: "Accuracy" accuracy_param { top_k: 11 }`, bottoms: [][]int{{4, 10}, {4}}, wantErr: "top_k 11 must be between 1 and the 10 classes"},
		{name: "labels", layer: `type: "Accuracy"`, bottoms: [][]int{{4, 10}, {5}}, wantErr: "has 5 values"},
		{name: "seg accuracy", layer: `type: "SegAccuracy"`, bottoms: [][]int{{1, 21, 65, 65}, {1, 1, 65, 65}}, want: [][]int{{1, 1, 1, 3}}},
		{name: "seg accuracy size", layer: `type: "SegAccuracy"`, bottoms: [][]int{{1, 21, 65, 65}, {1, 1, 64, 65}}, wantErr: "num, height and width of the scores"},
	})
}

func TestRuleBlobs(t *testing.T) {
	cases := []struct {
		name    string
		layer   string
		bottoms [][]int
		want    []ParamBlob
	}{
		{name: "embed", layer: `type: "Embed" embed_param { num_output: 1000 input_dim: 8801 }`, bottoms: [][]int{{20, 1}}, want: []ParamBlob{{Shape: []int{8801, 1000}}, {Shape: []int{1000}}}},
		{name: "embed no bias", layer: `type: "Embed" embed_param { num_output: 4 input_dim: 9 bias_term: false }`, bottoms: [][]int{{2}}, want: []ParamBlob{{Shape: []int{9, 4}}}},
		{name: "parameter", layer: `type: "Parameter" parameter_param { shape { dim: 2 dim: 3 } }`, want: []ParamBlob{{Shape: []int{2, 3}}}},
		{name: "normalize shared", layer: `type: "Normalize"`, bottoms: [][]int{{1, 512, 38, 38}}, want: []ParamBlob{{Shape: []int{1}}}},
		{name: "normalize per channel", layer: `type: "Normalize" norm_param { channel_shared: false }`, bottoms: [][]int{{1, 512, 38, 38}}, want: []ParamBlob{{Shape: []int{512}}}},
		{name: "normalize stored scalar", layer: `type: "Normalize" blobs { shape { } data: 20 }`, bottoms: [][]int{{1, 512, 38, 38}}, want: []ParamBlob{{Shape: []int{}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newContext(t, tc.layer, tc.bottoms, 1)
			got, err := rules[c.Layer.GetType()].Blobs(c)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d blobs %v, want %d %v", len(got), got, len(tc.want), tc.want)
			}
			for i := range got {
				if !slices.Equal(got[i].Shape, tc.want[i].Shape) || got[i].Statistic != tc.want[i].Statistic {
					t.Errorf("blob %d is %+v, want %+v", i, got[i], tc.want[i])
				}
			}
			if msg := compareWeights(got, c.Weights); msg != "" {
				t.Errorf("the blobs do not match the layer's own weights: %s", msg)
			}
		})
	}
}

func TestRuleCosts(t *testing.T) {
	cases := []struct {
		name    string
		layer   string
		bottoms [][]int
		want    int64
	}{
		{name: "eltwise sum", layer: `type: "Eltwise"`, bottoms: [][]int{{2, 5}, {2, 5}, {2, 5}}, want: 20},
		{name: "eltwise coeff", layer: `type: "Eltwise" eltwise_param { coeff: 1 coeff: -1 }`, bottoms: [][]int{{2, 5}, {2, 5}}, want: 10 + 20},
		{name: "eltwise unit coeff", layer: `type: "Eltwise" eltwise_param { coeff: 1 coeff: 1 }`, bottoms: [][]int{{2, 5}, {2, 5}}, want: 10},
		{name: "softmax", layer: `type: "Softmax"`, bottoms: [][]int{{1, 1000}}, want: 3000},
		{name: "reduction asum", layer: `type: "Reduction" reduction_param { operation: ASUM axis: 1 }`, bottoms: [][]int{{4, 5}}, want: 20 + 20 + 4},
		{name: "interp", layer: `type: "Interp" interp_param { zoom_factor: 2 }`, bottoms: [][]int{{1, 1, 3, 3}}, want: 4 * 25},
		{name: "normalize", layer: `type: "Normalize"`, bottoms: [][]int{{1, 2, 3, 3}}, want: 4 * 18},
		{name: "spp", layer: `type: "SPP" spp_param { pyramid_height: 2 }`, bottoms: [][]int{{1, 1, 4, 4}}, want: 16 + 4*4},
		{name: "softmax loss", layer: `type: "SoftmaxWithLoss"`, bottoms: [][]int{{2, 10}, {2}}, want: 60 + 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newContext(t, tc.layer, tc.bottoms, 1)
			r := rules[c.Layer.GetType()]
			tops, err := r.Tops(c)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			macs, other := r.Cost(c, tops)
			if macs != 0 {
				t.Errorf("macs = %d, want 0 (only Convolution, Deconvolution and InnerProduct count them)", macs)
			}
			if other != tc.want {
				t.Errorf("other = %d, want %d", other, tc.want)
			}
		})
	}
}

// TestCorpusForkShapes infers real nets of Caffe forks and checks known
// blob shapes: SSD300's 8732 priors (mbox_priorbox 1 × 2 × 34928) and 21
// classes, MobileNet-SSD's 1917 priors, PSPNet-50's 473 × 473 output,
// SegNet's 360 × 480 output, FCN-8s cropped back to 500 × 500, and Faster
// R-CNN VGG16's 38 × 63 conv5_3 at 600 × 1000.
func TestCorpusForkShapes(t *testing.T) {
	segnetInputs := map[string][]int{"data": {1, 3, 360, 480}, "label": {1, 1, 360, 480}}
	cases := []struct {
		name   string
		path   []string
		inputs map[string][]int
		want   map[string][]int
	}{
		{
			name: "ssd300",
			path: []string{"prototxt", "ssd", "VGG_VOC0712_SSD_300x300_deploy.prototxt"},
			want: map[string][]int{
				"conv4_3_norm":      {1, 512, 38, 38},
				"fc7":               {1, 1024, 19, 19},
				"mbox_priorbox":     {1, 2, 34928},
				"mbox_loc":          {1, 34928},
				"mbox_conf":         {1, 183372},
				"mbox_conf_flatten": {1, 183372},
				"detection_out":     {1, 1, 1, 7},
			},
		},
		{
			name: "mobilenet ssd",
			path: []string{"prototxt", "mobilenet_ssd", "MobileNetSSD_deploy_bn.prototxt"},
			want: map[string][]int{"mbox_priorbox": {1, 2, 7668}, "mbox_conf": {1, 1917 * 21}},
		},
		{
			name: "mobilenet ssd merged",
			path: []string{"prototxt", "mobilenet_ssd", "MobileNetSSD_deploy_merged_bn.prototxt"},
			want: map[string][]int{"mbox_priorbox": {1, 2, 7668}},
		},
		{
			name: "pspnet50",
			path: []string{"prototxt", "pspnet", "pspnet50_ADE20K_473.prototxt"},
			want: map[string][]int{"conv5_3": {1, 2048, 60, 60}, "conv6": {1, 150, 60, 60}, "conv6_interp": {1, 150, 473, 473}},
		},
		{
			name:   "segnet",
			path:   []string{"prototxt", "segnet", "segnet_inference.prototxt"},
			inputs: segnetInputs,
			want:   map[string][]int{"pool5": {1, 512, 12, 15}, "prob": {1, 11, 360, 480}},
		},
		{
			name:   "segnet basic",
			path:   []string{"prototxt", "segnet", "segnet_basic_inference.prototxt"},
			inputs: segnetInputs,
			want:   map[string][]int{"upsample4": {1, 64, 45, 60}, "prob": {1, 11, 360, 480}},
		},
		{
			name: "fcn8s",
			path: []string{"prototxt", "fcn", "voc-fcn8s_deploy.prototxt"},
			want: map[string][]int{"upscore8": {1, 21, 568, 568}, "score": {1, 21, 500, 500}},
		},
		{
			name: "faster rcnn vgg16",
			path: []string{"prototxt", "faster_rcnn", "pascal_voc_VGG16_faster_rcnn_end2end_test.prototxt"},
			// The proposal layer is a Python layer, so its rois top
			// (R × 5, R = 300 proposals) is given.
			inputs: map[string][]int{"data": {1, 3, 600, 1000}, "im_info": {1, 3}, "rois": {300, 5}},
			want: map[string][]int{
				"conv5_3":              {1, 512, 38, 63},
				"rpn_cls_score":        {1, 18, 38, 63},
				"rpn_cls_prob_reshape": {1, 18, 38, 63},
				"pool5":                {300, 512, 7, 7},
				"cls_score":            {300, 21},
				"bbox_pred":            {300, 84},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := corpus.Path(t, tc.path...)
			net, err := caffe.ReadFile(path)
			if err != nil {
				t.Fatalf("read %s: %v", path, err)
			}
			g := Build(net, Options{Inputs: tc.inputs})
			g.Infer()
			if err := g.Validate(); err != nil {
				t.Errorf("validate: %v", err)
			}
			for blob, want := range tc.want {
				v := g.Final[blob]
				if v == nil {
					t.Errorf("blob %q not found", blob)
					continue
				}
				if !slices.Equal(v.Shape, want) {
					t.Errorf("blob %q is %v, want %v%s", blob, v.Shape, want, describeProducer(v))
				}
			}
		})
	}
}

// describeProducer returns why a value's shape may be missing: the first
// layer on its path with an unknown shape or a problem.
func describeProducer(v *Value) string {
	seen := map[*Layer]bool{}
	var walk func(l *Layer) string
	walk = func(l *Layer) string {
		if l == nil || seen[l] {
			return ""
		}
		seen[l] = true
		for _, b := range l.Bottoms {
			if s := walk(b.Producer); s != "" {
				return s
			}
		}
		if l.Problem != "" {
			return fmt.Sprintf(" (layer %q: %s)", l.Name(), l.Problem)
		}
		if l.Unknown != "" {
			return fmt.Sprintf(" (layer %q: %s)", l.Name(), l.Unknown)
		}
		return ""
	}
	return walk(v.Producer)
}
