package graph

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tlsurgery/tlsurgery/caffe"
)

func readText(t *testing.T, src string) *caffe.Net {
	t.Helper()
	net, err := caffe.ReadOptions{Name: "test.prototxt"}.Read(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	return net
}

func TestBuildPhaseRules(t *testing.T) {
	net := readText(t, `
state { stage: "deploy" }
layer { name: "train_data" type: "Input" top: "data" include { phase: TRAIN } input_param { shape { dim: 8 dim: 3 } } }
layer { name: "test_data" type: "Input" top: "data" include { phase: TEST } input_param { shape { dim: 2 dim: 3 } } }
layer { name: "loss" type: "ReLU" bottom: "data" top: "x" exclude { stage: "deploy" } }
layer { name: "deep" type: "ReLU" bottom: "data" top: "y" include { min_level: 2 } }
layer { name: "nostage" type: "ReLU" bottom: "data" top: "z" include { not_stage: "deploy" } }
layer { name: "both" type: "ReLU" bottom: "data" top: "w" include { phase: TEST stage: "deploy" } }
`)
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{"test phase", Options{}, []string{"test_data", "both"}},
		{"train phase", Options{Train: true}, []string{"train_data"}},
		{"level 2", Options{Level: 2}, []string{"test_data", "deep", "both"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := Build(net, tt.opts)
			var got []string
			for _, l := range g.Layers {
				got = append(got, l.Name())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("layers %v, want %v", got, tt.want)
			}
		})
	}
}

func TestInPlaceValues(t *testing.T) {
	net := readText(t, `
layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 1 dim: 8 } } }
layer { name: "fc7" type: "InnerProduct" bottom: "data" top: "fc7" inner_product_param { num_output: 4 } }
layer { name: "relu7" type: "ReLU" bottom: "fc7" top: "fc7" }
layer { name: "drop7" type: "Dropout" bottom: "fc7" top: "fc7" }
layer { name: "fc8" type: "InnerProduct" bottom: "fc7" top: "fc8" inner_product_param { num_output: 2 } }
`)
	g := Build(net, Options{})
	final := g.Final["fc7"]
	if final.Version != 2 || final.Producer.Name() != "drop7" {
		t.Errorf("final fc7 is version %d from %s, want 2 from drop7", final.Version, final.Producer.Name())
	}
	if fc8 := g.LayerByName("fc8"); fc8.Bottoms[0] != final {
		t.Errorf("fc8 reads version %d, want the final value", fc8.Bottoms[0].Version)
	}
	relu := g.LayerByName("relu7")
	if relu.Bottoms[0].Version != 0 || relu.Tops[0].Version != 1 || !relu.InPlace(0) {
		t.Errorf("relu7 reads version %d and writes %d", relu.Bottoms[0].Version, relu.Tops[0].Version)
	}
	if err := g.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	outs := g.Outputs()
	if len(outs) != 1 || outs[0].Blob != "fc8" {
		t.Errorf("outputs %v, want fc8", outs)
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	net := readText(t, `
layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "a" type: "ReLU" bottom: "missing" top: "a" }
layer { name: "b" type: "ReLU" bottom: "data" top: "data2" }
layer { name: "c" type: "ReLU" bottom: "a" top: "data2" }
layer { name: "d" type: "ReLU" bottom: "e_out" top: "d_out" }
layer { name: "e" type: "ReLU" bottom: "d_out" top: "e_out" }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 4 kernel_size: 9 } }
layer { name: "both" type: "ReLU" bottom: "data" top: "both" include { phase: TEST } exclude { phase: TRAIN } }
`)
	g := Build(net, Options{})
	g.Infer()
	err := g.Validate()
	if err == nil {
		t.Fatal("no problems reported")
	}
	for _, want := range []string{
		`layer "a": bottom "missing" is produced by no earlier layer`,
		`layer "c": top "data2" is already produced by layer "b"`,
		`layer "d": bottom "e_out" is produced by no earlier layer (layer "e" produces it later`,
		`cycle through layers "d" ← "e" ← "d"`,
		`layer "conv" (Convolution): kernel extent 9 is larger than the padded input 8`,
		`layer "both" has both include and exclude rules`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems lack %q:\n%v", want, err)
		}
	}
}

func TestUnknownShapesReported(t *testing.T) {
	net := readText(t, `
layer { name: "data" type: "Data" top: "data" top: "label" }
layer { name: "py" type: "Python" bottom: "data" top: "p" }
layer { name: "conv" type: "Convolution" bottom: "p" top: "conv" convolution_param { num_output: 4 kernel_size: 3 } }
`)
	s, g := Summarize(net, Options{})
	if len(s.Unknown) != 3 {
		t.Errorf("unknown %v, want 3 layers", s.Unknown)
	}
	if err := g.Validate(); err != nil {
		t.Errorf("unknown shapes are not problems: %v", err)
	}

	s, _ = Summarize(net, Options{Inputs: map[string][]int{"data": {1, 3, 10, 10}, "label": {1}, "p": {1, 3, 10, 10}}})
	if len(s.Unknown) != 0 {
		t.Errorf("with shapes given, unknown %v", s.Unknown)
	}
	if got := s.Layers[2].TopShapes[0]; !slices.Equal(got, []int{1, 4, 8, 8}) {
		t.Errorf("conv shape %v, want 1×4×8×8", got)
	}
}

func TestPoolingRoundingAndClip(t *testing.T) {
	tests := []struct {
		name  string
		param string
		in    []int
		want  []int
	}{
		{"round up", "kernel_size: 3 stride: 2", []int{1, 1, 112, 112}, []int{1, 1, 56, 56}},
		{"exact", "kernel_size: 2 stride: 2", []int{1, 1, 8, 8}, []int{1, 1, 4, 4}},
		{"floor by round_mode", "kernel_size: 3 stride: 2 round_mode: FLOOR", []int{1, 1, 112, 112}, []int{1, 1, 55, 55}},
		{"floor by fork ceil_mode", "kernel_size: 3 stride: 2 ceil_mode: false", []int{1, 1, 112, 112}, []int{1, 1, 55, 55}},
		{"clip window in padding", "kernel_size: 2 stride: 2 pad: 1", []int{1, 1, 3, 3}, []int{1, 1, 2, 2}},
		{"padded no clip", "kernel_size: 3 stride: 2 pad: 1", []int{1, 1, 7, 7}, []int{1, 1, 4, 4}},
		{"rectangular", "kernel_h: 3 kernel_w: 1 stride_h: 2 stride_w: 1", []int{2, 3, 9, 5}, []int{2, 3, 4, 5}},
		{"global", "global_pooling: true pool: AVE", []int{2, 7, 13, 11}, []int{2, 7, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := oneLayer(t, `type: "Pooling" pooling_param { `+tt.param+` }`, tt.in)
			if got := g.Layers[1].Tops[0].Shape; !slices.Equal(got, tt.want) {
				t.Errorf("shape %v, want %v (problem %q)", got, tt.want, g.Layers[1].Problem)
			}
		})
	}
}

func TestConvolutionShapes(t *testing.T) {
	tests := []struct {
		name    string
		param   string
		in      []int
		want    []int
		weights []int
		macs    int64
	}{
		{"alexnet conv1", "num_output: 96 kernel_size: 11 stride: 4", []int{1, 3, 227, 227}, []int{1, 96, 55, 55}, []int{96, 3, 11, 11}, 96 * 55 * 55 * 3 * 121},
		{"group", "num_output: 256 kernel_size: 5 pad: 2 group: 2", []int{1, 96, 27, 27}, []int{1, 256, 27, 27}, []int{256, 48, 5, 5}, 256 * 27 * 27 * 48 * 25},
		{"dilation", "num_output: 8 kernel_size: 3 dilation: 6 pad: 6", []int{1, 4, 19, 19}, []int{1, 8, 19, 19}, []int{8, 4, 3, 3}, 8 * 19 * 19 * 4 * 9},
		{"h and w", "num_output: 2 kernel_h: 3 kernel_w: 1 pad_h: 1 pad_w: 0 stride_h: 2 stride_w: 1", []int{1, 1, 9, 4}, []int{1, 2, 5, 4}, []int{2, 1, 3, 1}, 2 * 5 * 4 * 3},
		{"per axis", "num_output: 2 kernel_size: 3 kernel_size: 1", []int{1, 1, 9, 4}, []int{1, 2, 7, 4}, []int{2, 1, 3, 1}, 2 * 7 * 4 * 3},
		{"3-D", "num_output: 4 kernel_size: 3", []int{1, 2, 5, 6, 7}, []int{1, 4, 3, 4, 5}, []int{4, 2, 3, 3, 3}, 4 * 3 * 4 * 5 * 2 * 27},
		{"depthwise", "num_output: 32 kernel_size: 3 pad: 1 group: 32", []int{1, 32, 10, 10}, []int{1, 32, 10, 10}, []int{32, 1, 3, 3}, 32 * 100 * 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := oneLayer(t, `type: "Convolution" convolution_param { `+tt.param+` }`, tt.in)
			l := g.Layers[1]
			if got := l.Tops[0].Shape; !slices.Equal(got, tt.want) {
				t.Fatalf("shape %v, want %v (problem %q)", got, tt.want, l.Problem)
			}
			if len(l.Blobs) != 2 || !slices.Equal(l.Blobs[0].Shape, tt.weights) || l.Blobs[1].Shape[0] != tt.want[1] {
				t.Errorf("blobs %v, want weights %v and a bias", l.Blobs, tt.weights)
			}
			if l.MACs != tt.macs {
				t.Errorf("MACs %d, want %d", l.MACs, tt.macs)
			}
		})
	}
}

func TestDeconvolutionShape(t *testing.T) {
	// The shape of Caffe's own reference output for this layer: 2×12×74×111
	// from 2×12×36×37 (kernel 4×5, stride 2×3, pad 0×1, group 3).
	g := oneLayer(t, `type: "Deconvolution" convolution_param { num_output: 12 kernel_h: 4 kernel_w: 5 stride_h: 2 stride_w: 3 pad_h: 0 pad_w: 1 group: 3 }`, []int{2, 12, 36, 37})
	l := g.Layers[1]
	if got := l.Tops[0].Shape; !slices.Equal(got, []int{2, 12, 74, 111}) {
		t.Errorf("shape %v (problem %q)", got, l.Problem)
	}
	if !slices.Equal(l.Blobs[0].Shape, []int{12, 4, 4, 5}) {
		t.Errorf("weights %v, want 12×4×4×5 (input channels × outputs/group × kernel)", l.Blobs[0].Shape)
	}
}

func TestInnerProductAxis(t *testing.T) {
	tests := []struct {
		name, param string
		in, want    []int
		weights     []int
	}{
		{"flatten", "num_output: 10", []int{2, 50, 4, 4}, []int{2, 10}, []int{10, 800}},
		{"axis 3", "num_output: 2 axis: 3", []int{2, 6, 75, 113}, []int{2, 6, 75, 2}, []int{2, 113}},
		{"negative axis", "num_output: 2 axis: -1", []int{2, 6, 5}, []int{2, 6, 2}, []int{2, 5}},
		{"transpose", "num_output: 3 transpose: true", []int{4, 7}, []int{4, 3}, []int{7, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := oneLayer(t, `type: "InnerProduct" inner_product_param { `+tt.param+` }`, tt.in)
			l := g.Layers[1]
			if got := l.Tops[0].Shape; !slices.Equal(got, tt.want) || !slices.Equal(l.Blobs[0].Shape, tt.weights) {
				t.Errorf("shape %v weights %v, want %v and %v (problem %q)", got, l.Blobs[0].Shape, tt.want, tt.weights, l.Problem)
			}
		})
	}
}

func TestWeightShapeMismatch(t *testing.T) {
	// A real LeNet snapshot whose ip1 has 5 outputs, against a deploy net
	// that declares 500: the matching of weights refuses it.
	net := readText(t, `
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 800 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 5 } }
`)
	net.Param.Layer[1].Blobs = nil
	g := Build(net, Options{Inputs: map[string][]int{"x": {1, 700}}})
	g.Infer()
	l := g.Layers[1]
	if !slices.Equal(l.Blobs[0].Shape, []int{5, 700}) {
		t.Errorf("blobs %v", l.Blobs)
	}
}

func TestReceptiveField(t *testing.T) {
	net := readText(t, `
layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 227 dim: 227 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 96 kernel_size: 11 stride: 4 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2" convolution_param { num_output: 256 pad: 2 kernel_size: 5 group: 2 } }
`)
	g := Build(net, Options{})
	g.Infer()
	// conv1: 11, stride 4; pool1: 11 + 2·4 = 19, stride 8; conv2: 19 + 4·8 = 51.
	for blob, want := range map[string][]int{"conv1": {11, 11}, "pool1": {19, 19}, "conv2": {51, 51}} {
		if got := g.Final[blob].ReceptiveField; !slices.Equal(got, want) {
			t.Errorf("%s receptive field %v, want %v", blob, got, want)
		}
	}
	if got := g.Final["conv2"].Stride; !slices.Equal(got, []float64{8, 8}) {
		t.Errorf("conv2 stride %v, want 8", got)
	}
}

// oneLayer builds an Input of shape in followed by one layer reading it.
func oneLayer(t *testing.T, layer string, in []int) *Graph {
	t.Helper()
	var dims strings.Builder
	for _, d := range in {
		fmt.Fprintf(&dims, " dim: %d", d)
	}
	net := readText(t, `layer { name: "in" type: "Input" top: "x" input_param { shape {`+dims.String()+` } } }
layer { name: "l" bottom: "x" top: "y" `+layer+` }`)
	g := Build(net, Options{})
	g.Infer()
	return g
}
