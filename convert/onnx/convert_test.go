package onnx

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/convert/onnx/onnxpb"
	"github.com/tlsurgery/tlsurgery/graph"
	"github.com/tlsurgery/tlsurgery/surgery"
)

// netFromText parses a prototxt and gives it weights drawn with seed 1.
func netFromText(t *testing.T, text string) *caffe.Net {
	t.Helper()
	net, err := caffe.Read(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	withWeights, _, err := surgery.InitWeights(net, surgery.InitOptions{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	return withWeights
}

func convertText(t *testing.T, text string, opts Options) (*onnxpb.ModelProto, *Report) {
	t.Helper()
	model, report, err := Convert(netFromText(t, text), opts)
	if err != nil {
		t.Fatal(err)
	}
	return model, report
}

// nodesOf returns the nodes of type op.
func nodesOf(m *onnxpb.ModelProto, op string) []*onnxpb.NodeProto {
	var out []*onnxpb.NodeProto
	for _, n := range m.GetGraph().GetNode() {
		if n.GetOpType() == op {
			out = append(out, n)
		}
	}
	return out
}

func onlyNode(t *testing.T, m *onnxpb.ModelProto, op string) *onnxpb.NodeProto {
	t.Helper()
	nodes := nodesOf(m, op)
	if len(nodes) != 1 {
		t.Fatalf("%d %s nodes, want 1; ops: %v", len(nodes), op, opTypes(m))
	}
	return nodes[0]
}

func opTypes(m *onnxpb.ModelProto) []string {
	var out []string
	for _, n := range m.GetGraph().GetNode() {
		out = append(out, n.GetOpType())
	}
	return out
}

// attr returns a node's attribute, or nil.
func attr(n *onnxpb.NodeProto, name string) *onnxpb.AttributeProto {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a
		}
	}
	return nil
}

func intsAttr(n *onnxpb.NodeProto, name string) []int64 { return attr(n, name).GetInts() }

func initializer(m *onnxpb.ModelProto, name string) *onnxpb.TensorProto {
	for _, t := range m.GetGraph().GetInitializer() {
		if t.GetName() == name {
			return t
		}
	}
	return nil
}

func floatValues(t *onnxpb.TensorProto) []float32 {
	out := make([]float32, len(t.GetRawData())/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.GetRawData()[4*i:]))
	}
	return out
}

func int64Values(t *onnxpb.TensorProto) []int64 {
	out := make([]int64, len(t.GetRawData())/8)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(t.GetRawData()[8*i:]))
	}
	return out
}

const inputLayer = `layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 4 dim: 9 dim: 9 } } }
`

func TestIRVersionPerOpset(t *testing.T) {
	want := map[int]int64{9: 4, 10: 5, 11: 6, 12: 7, 13: 7, 14: 7, 15: 8, 16: 8, 17: 8}
	text := inputLayer + `layer { name: "relu" type: "ReLU" bottom: "data" top: "out" }`
	for opset, ir := range want {
		m, _ := convertText(t, text, Options{Opset: opset})
		if m.GetIrVersion() != ir {
			t.Errorf("opset %d: IR version %d, want %d", opset, m.GetIrVersion(), ir)
		}
		if got := m.GetOpsetImport()[0].GetVersion(); got != int64(opset) {
			t.Errorf("opset %d: opset_import version %d", opset, got)
		}
	}
	if _, _, err := Convert(netFromText(t, text), Options{Opset: 8}); err == nil {
		t.Errorf("opset 8 was accepted")
	}
}

func TestConvolutionPadsAndGroups(t *testing.T) {
	m, _ := convertText(t, inputLayer+`layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
	  convolution_param { num_output: 6 kernel_h: 3 kernel_w: 5 pad_h: 1 pad_w: 2 stride_h: 2 stride_w: 1 group: 2 dilation: 1
	    weight_filler { type: "gaussian" std: 1 } } }`, Options{})
	n := onlyNode(t, m, "Conv")
	// Caffe's pad_h and pad_w apply to both ends: [top, left, bottom, right].
	if got := intsAttr(n, "pads"); !slices.Equal(got, []int64{1, 2, 1, 2}) {
		t.Errorf("pads %v, want [1 2 1 2]", got)
	}
	if got := intsAttr(n, "kernel_shape"); !slices.Equal(got, []int64{3, 5}) {
		t.Errorf("kernel_shape %v", got)
	}
	if got := intsAttr(n, "strides"); !slices.Equal(got, []int64{2, 1}) {
		t.Errorf("strides %v", got)
	}
	if got := attr(n, "group").GetI(); got != 2 {
		t.Errorf("group %d, want 2", got)
	}
	if w := initializer(m, n.GetInput()[1]); !slices.Equal(w.GetDims(), []int64{6, 2, 3, 5}) {
		t.Errorf("weight dims %v, want [6 2 3 5]", w.GetDims())
	}
	if len(n.GetInput()) != 3 {
		t.Errorf("Conv has %d inputs, want data, weight and bias", len(n.GetInput()))
	}
}

func TestDepthwiseForkTypeIsGrouped(t *testing.T) {
	m, _ := convertText(t, inputLayer+`layer { name: "dw" type: "DepthwiseConvolution" bottom: "data" top: "dw"
	  convolution_param { num_output: 4 kernel_size: 3 group: 4 bias_term: false weight_filler { type: "gaussian" std: 1 } } }`, Options{})
	n := onlyNode(t, m, "Conv")
	if got := attr(n, "group").GetI(); got != 4 {
		t.Errorf("group %d, want 4", got)
	}
	if len(n.GetInput()) != 2 {
		t.Errorf("Conv has %d inputs, want no bias", len(n.GetInput()))
	}

}

func TestDeconvolutionWeightLayout(t *testing.T) {
	m, _ := convertText(t, inputLayer+`layer { name: "up" type: "Deconvolution" bottom: "data" top: "up"
	  convolution_param { num_output: 6 kernel_size: 4 stride: 2 pad: 1 group: 2 weight_filler { type: "gaussian" std: 1 } } }`, Options{})
	n := onlyNode(t, m, "ConvTranspose")
	// Caffe and ONNX both store input channels × (outputs / group) × kernel.
	if w := initializer(m, n.GetInput()[1]); !slices.Equal(w.GetDims(), []int64{4, 3, 4, 4}) {
		t.Errorf("weight dims %v, want [4 3 4 4]", w.GetDims())
	}
	if got := intsAttr(n, "pads"); !slices.Equal(got, []int64{1, 1, 1, 1}) {
		t.Errorf("pads %v", got)
	}
}

func TestPlanPoolCaffeClip(t *testing.T) {
	// in 5, kernel 2, stride 2, pad 1: rounding up gives 4 windows, but
	// the 4th starts at 6 = in + pad, in the padding, so Caffe keeps 3,
	// which is the floor value: no ceil_mode and symmetric pads.
	w := &poolWindow{kernel: [2]int{2, 2}, stride: [2]int{2, 2}, pad: [2]int{1, 1}, ceil: true}
	plan, err := planPool([2]int{5, 5}, w, true)
	if err != nil {
		t.Fatal(err)
	}
	if plan.out != [2]int{3, 3} || plan.ceil || plan.endPad != [2]int{1, 1} {
		t.Errorf("plan %+v, want out 3, no ceil_mode, end pad 1", plan)
	}
}

func TestPlanPoolCeilAndExtraPadding(t *testing.T) {
	// in 6, kernel 3, stride 2, no pad: Caffe rounds (6 − 3)/2 + 1 up to 3.
	w := &poolWindow{kernel: [2]int{3, 3}, stride: [2]int{2, 2}, ceil: true}
	plan, err := planPool([2]int{6, 6}, w, true)
	if err != nil {
		t.Fatal(err)
	}
	if plan.out != [2]int{3, 3} || !plan.ceil || plan.endPad != [2]int{0, 0} || !plan.overhang {
		t.Errorf("opset 10+: plan %+v, want ceil_mode, no end pad, overhang", plan)
	}
	// Without ceil_mode (opset 9), one extra end pad gives the same size.
	plan, err = planPool([2]int{6, 6}, w, false)
	if err != nil {
		t.Fatal(err)
	}
	if plan.ceil || plan.endPad != [2]int{1, 1} {
		t.Errorf("opset 9: plan %+v, want end pad 1 and no ceil_mode", plan)
	}
}

func TestPlanPoolMixedAxes(t *testing.T) {
	// Height 5 with kernel 2, stride 2 and pad 1: Caffe's clip leaves the
	// floor value 3. Width 6 with kernel 3: the ceil value 4 remains. ONNX's
	// ceil_mode would apply to both, so the width gets extra end padding.
	w := &poolWindow{kernel: [2]int{2, 3}, stride: [2]int{2, 2}, pad: [2]int{1, 1}, ceil: true}
	plan, err := planPool([2]int{5, 6}, w, true)
	if err != nil {
		t.Fatal(err)
	}
	if plan.ceil || plan.endPad != [2]int{1, 2} || plan.out != [2]int{3, 4} {
		t.Errorf("plan %+v, want out [3 4] and end pads [1 2] without ceil_mode", plan)
	}
}

func TestPlanPoolFloorRounding(t *testing.T) {
	w := &poolWindow{kernel: [2]int{3, 3}, stride: [2]int{2, 2}, ceil: false}
	plan, err := planPool([2]int{6, 6}, w, true)
	if err != nil {
		t.Fatal(err)
	}
	if plan.out != [2]int{2, 2} || plan.ceil || plan.endPad != [2]int{0, 0} {
		t.Errorf("plan %+v, want out 2 without ceil_mode or padding", plan)
	}
}

func TestAveragePoolDivisor(t *testing.T) {
	tests := []struct {
		name, pooling   string
		wantOps         []string
		countIncludePad int64
	}{
		// Every window lies inside the padded input: divide by 9 everywhere.
		{"padded no overhang", `kernel_size: 3 stride: 1 pad: 1`, []string{"AveragePool"}, 1},
		// No padding, windows past the input: divide by the elements read.
		{"overhang no padding", `kernel_size: 3 stride: 2`, []string{"AveragePool"}, 0},
		// Padding and windows past the padded input: explicit zero Pad,
		// then count only the padded tensor's elements.
		{"overhang with padding", `kernel_size: 3 stride: 2 pad: 1`, []string{"Pad", "AveragePool"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := `layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 8 dim: 8 } } }
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" pooling_param { pool: AVE ` + tc.pooling + ` } }`
			m, _ := convertText(t, text, Options{Opset: 13})
			if got := opTypes(m); !slices.Equal(got, tc.wantOps) {
				t.Fatalf("ops %v, want %v", got, tc.wantOps)
			}
			n := onlyNode(t, m, "AveragePool")
			if got := attr(n, "count_include_pad").GetI(); got != tc.countIncludePad {
				t.Errorf("count_include_pad %d, want %d", got, tc.countIncludePad)
			}
		})
	}
}

func TestPoolingOpset9UsesEndPadding(t *testing.T) {
	text := `layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 6 dim: 6 } } }
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }`
	m, _ := convertText(t, text, Options{Opset: 9})
	n := onlyNode(t, m, "MaxPool")
	if attr(n, "ceil_mode") != nil {
		t.Errorf("opset 9 MaxPool has ceil_mode")
	}
	if got := intsAttr(n, "pads"); !slices.Equal(got, []int64{0, 0, 1, 1}) {
		t.Errorf("pads %v, want [0 0 1 1]", got)
	}
	m, _ = convertText(t, text, Options{Opset: 10})
	if got := attr(onlyNode(t, m, "MaxPool"), "ceil_mode").GetI(); got != 1 {
		t.Errorf("opset 10 ceil_mode %d, want 1", got)
	}
}

func TestGlobalPooling(t *testing.T) {
	m, _ := convertText(t, inputLayer+`layer { name: "gap" type: "Pooling" bottom: "data" top: "gap" pooling_param { pool: AVE global_pooling: true } }`, Options{})
	onlyNode(t, m, "GlobalAveragePool")
}

func TestInnerProductGemmAndMatMul(t *testing.T) {
	m, _ := convertText(t, inputLayer+`layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
	  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 1 } } }`, Options{})
	if got := opTypes(m); !slices.Equal(got, []string{"Flatten", "Gemm"}) {
		t.Fatalf("ops %v, want Flatten, Gemm", got)
	}
	gemm := onlyNode(t, m, "Gemm")
	if attr(gemm, "transB").GetI() != 1 {
		t.Errorf("Gemm transB is not 1")
	}
	if w := initializer(m, gemm.GetInput()[1]); !slices.Equal(w.GetDims(), []int64{5, 4 * 9 * 9}) {
		t.Errorf("weight dims %v, want Caffe's N × K [5 324]", w.GetDims())
	}

	net := netFromText(t, inputLayer+`layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
	  inner_product_param { num_output: 3 axis: 3 weight_filler { type: "gaussian" std: 1 } } }`)
	m, _, err := Convert(net, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := opTypes(m); !slices.Equal(got, []string{"Reshape", "MatMul", "Add"}) {
		t.Fatalf("axis 3: ops %v, want Reshape, MatMul, Add", got)
	}
	// MatMul takes K × N: Caffe's N × K blob, transposed.
	caffeW := net.Param.GetLayer()[1].GetBlobs()[0].GetData()
	w := floatValues(initializer(m, onlyNode(t, m, "MatMul").GetInput()[1]))
	if w[1] != caffeW[9] || w[3] != caffeW[1] {
		t.Errorf("MatMul weights are not the transpose of Caffe's 3 × 9 blob")
	}
}

func TestReLUNegativeSlope(t *testing.T) {
	m, _ := convertText(t, inputLayer+`layer { name: "relu" type: "ReLU" bottom: "data" top: "data" relu_param { negative_slope: 0.1 } }`, Options{})
	if got := attr(onlyNode(t, m, "LeakyRelu"), "alpha").GetF(); got != 0.1 {
		t.Errorf("alpha %v, want 0.1", got)
	}
}

func TestPReLUSlopeShape(t *testing.T) {
	m, _ := convertText(t, inputLayer+`layer { name: "prelu" type: "PReLU" bottom: "data" top: "data" }`, Options{})
	slope := initializer(m, onlyNode(t, m, "PRelu").GetInput()[1])
	if !slices.Equal(slope.GetDims(), []int64{4, 1, 1}) {
		t.Errorf("slope dims %v, want [4 1 1] to broadcast per channel", slope.GetDims())
	}
}

const batchNormScale = inputLayer + `layer { name: "bn" type: "BatchNorm" bottom: "data" top: "data" }
layer { name: "scale" type: "Scale" bottom: "data" top: "data" scale_param { bias_term: true } }
`

func TestBatchNormFusesScale(t *testing.T) {
	net := netFromText(t, batchNormScale)
	bn := net.Param.GetLayer()[1]
	bn.Blobs[2].Data[0] = 4 // the moving-average factor
	scale := net.Param.GetLayer()[2]
	scale.Blobs[0].Data[1] = 3
	m, report, err := Convert(net, Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := onlyNode(t, m, "BatchNormalization")
	if len(m.GetGraph().GetNode()) != 1 {
		t.Errorf("ops %v, want only BatchNormalization", opTypes(m))
	}
	if n.GetOutput()[0] != "data" {
		t.Errorf("output %s, want the Scale layer's top data", n.GetOutput()[0])
	}
	mean := floatValues(initializer(m, n.GetInput()[3]))
	if mean[0] != bn.Blobs[0].Data[0]/4 {
		t.Errorf("mean %v, want the stored mean divided by the factor 4 (%v)", mean[0], bn.Blobs[0].Data[0]/4)
	}
	if got := floatValues(initializer(m, n.GetInput()[1]))[1]; got != 3 {
		t.Errorf("scale %v, want the Scale layer's 3", got)
	}
	if report.Layers[2].Note == "" || len(report.Layers[2].Ops) != 0 {
		t.Errorf("report of the fused Scale layer: %+v", report.Layers[2])
	}

	bn.Blobs[2].Data[0] = 0
	m, _, err = Convert(net, Options{})
	if err != nil {
		t.Fatal(err)
	}
	n = onlyNode(t, m, "BatchNormalization")
	if got := floatValues(initializer(m, n.GetInput()[4])); slices.ContainsFunc(got, func(v float32) bool { return v != 0 }) {
		t.Errorf("factor 0: variance %v, want zeros as Caffe scales by 0", got)
	}
}

func TestBatchNormWithTwoReadersIsNotFused(t *testing.T) {
	text := inputLayer + `layer { name: "bn" type: "BatchNorm" bottom: "data" top: "bn" }
layer { name: "scale" type: "Scale" bottom: "bn" top: "scaled" }
layer { name: "relu" type: "ReLU" bottom: "bn" top: "other" }`
	m, _ := convertText(t, text, Options{})
	n := onlyNode(t, m, "BatchNormalization")
	if got := floatValues(initializer(m, n.GetInput()[1])); got[0] != 1 {
		t.Errorf("BatchNormalization scale %v, want 1", got)
	}
	onlyNode(t, m, "Mul")
}

func TestInPlaceValueNames(t *testing.T) {
	text := inputLayer + `layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
	  convolution_param { num_output: 2 kernel_size: 1 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }`
	m, _ := convertText(t, text, Options{ExtraOutputs: []string{"conv1@conv1"}})
	if got := onlyNode(t, m, "Conv").GetOutput()[0]; got != "conv1@conv1" {
		t.Errorf("Conv output %q, want conv1@conv1", got)
	}
	relu := onlyNode(t, m, "Relu")
	if relu.GetInput()[0] != "conv1@conv1" || relu.GetOutput()[0] != "conv1" {
		t.Errorf("Relu %v -> %v, want conv1@conv1 -> conv1", relu.GetInput(), relu.GetOutput())
	}
	if relu.GetName() != "relu1" {
		t.Errorf("node name %q, want the layer name relu1", relu.GetName())
	}
	var outputs []string
	for _, o := range m.GetGraph().GetOutput() {
		outputs = append(outputs, o.GetName())
	}
	if !slices.Equal(outputs, []string{"conv1", "conv1@conv1"}) {
		t.Errorf("graph outputs %v, want conv1 and the extra conv1@conv1", outputs)
	}
}

func TestSoftmaxBeforeOpset13(t *testing.T) {
	text := inputLayer + `layer { name: "prob" type: "Softmax" bottom: "data" top: "prob" }`
	m, _ := convertText(t, text, Options{Opset: 11})
	if got := opTypes(m); !slices.Equal(got, []string{"Transpose", "Softmax", "Transpose"}) {
		t.Errorf("opset 11: ops %v, want the channel axis moved last", got)
	}
	m, _ = convertText(t, text, Options{Opset: 13})
	if got := attr(onlyNode(t, m, "Softmax"), "axis").GetI(); got != 1 {
		t.Errorf("opset 13: axis %d, want 1", got)
	}
}

func TestSliceSplitSizes(t *testing.T) {
	text := inputLayer + `layer { name: "slice" type: "Slice" bottom: "data" top: "a" top: "b" slice_param { slice_point: 1 } }`
	m, _ := convertText(t, text, Options{Opset: 11})
	if got := intsAttr(onlyNode(t, m, "Split"), "split"); !slices.Equal(got, []int64{1, 3}) {
		t.Errorf("opset 11: split %v, want [1 3]", got)
	}
	m, _ = convertText(t, text, Options{Opset: 13})
	n := onlyNode(t, m, "Split")
	if attr(n, "split") != nil || len(n.GetInput()) != 2 {
		t.Fatalf("opset 13: split must be an input")
	}
	if got := int64Values(initializer(m, n.GetInput()[1])); !slices.Equal(got, []int64{1, 3}) {
		t.Errorf("opset 13: split input %v", got)
	}
}

func TestEltwiseCoefficients(t *testing.T) {
	text := inputLayer + `layer { name: "sum" type: "Eltwise" bottom: "data" bottom: "data" top: "sum"
	  eltwise_param { operation: SUM coeff: 1 coeff: -1 } }`
	m, _ := convertText(t, text, Options{})
	if got := opTypes(m); !slices.Equal(got, []string{"Mul", "Add"}) {
		t.Errorf("ops %v, want Mul for coeff -1, then Add", got)
	}
}

func TestFlattenKeepsCaffeAxes(t *testing.T) {
	text := inputLayer + `layer { name: "flat" type: "Flatten" bottom: "data" top: "flat" flatten_param { axis: 2 } }`
	m, _ := convertText(t, text, Options{})
	shape := int64Values(initializer(m, onlyNode(t, m, "Reshape").GetInput()[1]))
	if !slices.Equal(shape, []int64{2, 4, 81}) {
		t.Errorf("reshape %v, want [2 4 81]", shape)
	}
	m, _ = convertText(t, text, Options{DynamicBatch: true})
	shape = int64Values(initializer(m, onlyNode(t, m, "Reshape").GetInput()[1]))
	if !slices.Equal(shape, []int64{0, 4, 81}) {
		t.Errorf("dynamic batch: reshape %v, want [0 4 81]", shape)
	}
	dim := m.GetGraph().GetInput()[0].GetType().GetTensorType().GetShape().GetDim()[0]
	if dim.GetDimParam() != "N" {
		t.Errorf("dynamic batch: input axis 0 is %v, want N", dim)
	}
}

func TestPriorBoxValues(t *testing.T) {
	text := `layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 100 dim: 100 } } }
layer { name: "feat" type: "Input" top: "feat" input_param { shape { dim: 1 dim: 8 dim: 2 dim: 2 } } }
layer { name: "prior" type: "PriorBox" bottom: "feat" bottom: "data" top: "prior"
  prior_box_param { min_size: 20 max_size: 45 aspect_ratio: 2 flip: true variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 } }`
	m, _ := convertText(t, text, Options{})
	c := onlyNode(t, m, "Constant")
	value := attr(c, "value").GetT()
	// 2 × 2 positions, 4 priors each (min, sqrt(min·max), 2, 1/2).
	if !slices.Equal(value.GetDims(), []int64{1, 2, 64}) {
		t.Fatalf("dims %v, want [1 2 64]", value.GetDims())
	}
	v := floatValues(value)
	// Position (0, 0): centre (25, 25) with step 100/2 and offset 0.5.
	want := []float32{0.15, 0.15, 0.35, 0.35}
	side := float32(math.Sqrt(20*45)) / 2
	want = append(want, (25-side)/100, (25-side)/100, (25+side)/100, (25+side)/100)
	w2, h2 := 20*float32(math.Sqrt(2))/2, 20/float32(math.Sqrt(2))/2
	want = append(want, (25-w2)/100, (25-h2)/100, (25+w2)/100, (25+h2)/100)
	for i, x := range want {
		if math.Abs(float64(v[i]-x)) > 1e-6 {
			t.Errorf("value %d is %v, want %v", i, v[i], x)
		}
	}
	if v[64] != 0.1 || v[66] != 0.2 {
		t.Errorf("variances %v, want 0.1 0.1 0.2 0.2 repeated", v[64:68])
	}
}

func TestUnsupportedLayerIsNamed(t *testing.T) {
	text := inputLayer + `layer { name: "py" type: "Python" bottom: "data" top: "out" python_param { module: "m" layer: "L" } }`
	net, err := caffe.Read(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = Convert(net, Options{Graph: graph.Options{Inputs: map[string][]int{"out": {2, 4, 9, 9}}}})
	var u *UnsupportedError
	if !errors.As(err, &u) {
		t.Fatalf("error %v is not an *UnsupportedError", err)
	}
	if u.Layer != "py" || u.Type != "Python" {
		t.Errorf("error names layer %q of type %q, want py (Python)", u.Layer, u.Type)
	}
}

func TestArgMaxTopK(t *testing.T) {
	text := inputLayer + `layer { name: "am" type: "ArgMax" bottom: "data" top: "am" argmax_param { top_k: 2 } }`
	net, err := caffe.Read(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Convert(net, Options{}); !IsUnsupported(err) {
		t.Errorf("top_k 2: error %v, want an UnsupportedError", err)
	}
	m, _ := convertText(t, inputLayer+`layer { name: "am" type: "ArgMax" bottom: "data" top: "am" argmax_param { axis: 1 } }`, Options{Opset: 13})
	if attr(onlyNode(t, m, "ArgMax"), "select_last_index").GetI() != 1 {
		t.Errorf("ArgMax does not pick the last of equal maxima as Caffe does")
	}
}

func TestMissingWeights(t *testing.T) {
	net, err := caffe.Read(strings.NewReader(inputLayer + `layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 2 kernel_size: 1 } }`))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = Convert(net, Options{})
	if err == nil || !strings.Contains(err.Error(), `layer "conv" (Convolution) has no weights`) {
		t.Errorf("error %v, want one naming the layer without weights", err)
	}
}

func TestMetadata(t *testing.T) {
	m, _ := convertText(t, inputLayer+`layer { name: "relu" type: "ReLU" bottom: "data" top: "out" }`,
		Options{Metadata: map[string]string{"preprocess_mean": "104,117,123"}, ProducerVersion: "v1"})
	props := map[string]string{}
	for _, p := range m.GetMetadataProps() {
		props[p.GetKey()] = p.GetValue()
	}
	if props["preprocess_mean"] != "104,117,123" || props["caffe_format"] == "" {
		t.Errorf("metadata %v", props)
	}
	if m.GetProducerName() != "tlsurgery" || m.GetProducerVersion() != "v1" {
		t.Errorf("producer %q %q", m.GetProducerName(), m.GetProducerVersion())
	}
}
