package surgery

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/graph"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
	"github.com/tlsurgery/tlsurgery/internal/oracle"
)

// tinyNet has one layer of each type with stored blobs that the core
// shape rules cover, with and without fillers.
const tinyNet = `
name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3
    weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "prelu1" type: "PReLU" bottom: "conv1" top: "conv1" }
layer { name: "fc" type: "InnerProduct" bottom: "conv1" top: "fc"
  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "bias" type: "Bias" bottom: "fc" top: "fc" }
`

func readText(t *testing.T, text string) *caffe.Net {
	t.Helper()
	net, err := caffe.Read(strings.NewReader(text))
	if err != nil {
		t.Fatalf("reading the test net: %v", err)
	}
	return net
}

func initNet(t *testing.T, net *caffe.Net, opts InitOptions) (*caffe.Net, *InitReport) {
	t.Helper()
	out, report, err := InitWeights(net, opts)
	if err != nil {
		t.Fatalf("InitWeights: %v", err)
	}
	return out, report
}

// layerBlobs returns the blobs of the named layer of net.
func layerBlobs(t *testing.T, net *caffe.Net, name string) []*caffepb.BlobProto {
	t.Helper()
	for _, l := range net.Param.GetLayer() {
		if l.GetName() == name {
			return l.GetBlobs()
		}
	}
	t.Fatalf("no layer %q", name)
	return nil
}

func meanStd(data []float32) (float64, float64) {
	var sum, sq float64
	for _, v := range data {
		sum += float64(v)
	}
	mean := sum / float64(len(data))
	for _, v := range data {
		d := float64(v) - mean
		sq += d * d
	}
	return mean, math.Sqrt(sq / float64(len(data)))
}

func filler(text string) *caffepb.FillerParameter {
	net, err := caffe.Read(strings.NewReader(`layer { name: "f" type: "InnerProduct" inner_product_param { weight_filler { ` + text + ` } } }`))
	if err != nil {
		panic(err)
	}
	return net.Param.GetLayer()[0].GetInnerProductParam().GetWeightFiller()
}

func TestFillDistributions(t *testing.T) {
	shape := []int{200, 500}
	cases := []struct {
		name          string
		filler        string
		mean, std     float64
		lo, hi        float64 // every value lies in [lo, hi]
		meanTolerance float64
	}{
		{"uniform", `type: "uniform" min: -2 max: 3`, 0.5, 5 / math.Sqrt(12), -2, 3, 0.02},
		{"uniform default", `type: "uniform"`, 0.5, 1 / math.Sqrt(12), 0, 1, 0.01},
		{"gaussian", `type: "gaussian" mean: 1 std: 2`, 1, 2, math.Inf(-1), math.Inf(1), 0.02},
		{"gaussian default", `type: "gaussian"`, 0, 1, math.Inf(-1), math.Inf(1), 0.01},
		// fan_in = 500, fan_out = 200.
		{"xavier fan_in", `type: "xavier"`, 0, math.Sqrt(3.0/500) / math.Sqrt(3), -math.Sqrt(3.0 / 500), math.Sqrt(3.0 / 500), 0.001},
		{"xavier fan_out", `type: "xavier" variance_norm: FAN_OUT`, 0, math.Sqrt(3.0/200) / math.Sqrt(3), -math.Sqrt(3.0 / 200), math.Sqrt(3.0 / 200), 0.001},
		{"xavier average", `type: "xavier" variance_norm: AVERAGE`, 0, math.Sqrt(3.0/350) / math.Sqrt(3), -math.Sqrt(3.0 / 350), math.Sqrt(3.0 / 350), 0.001},
		{"msra fan_in", `type: "msra"`, 0, math.Sqrt(2.0 / 500), math.Inf(-1), math.Inf(1), 0.001},
		{"msra fan_out", `type: "msra" variance_norm: FAN_OUT`, 0, math.Sqrt(2.0 / 200), math.Inf(-1), math.Inf(1), 0.001},
		{"msra average", `type: "msra" variance_norm: AVERAGE`, 0, math.Sqrt(2.0 / 350), math.Inf(-1), math.Inf(1), 0.001},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data, err := fill(filler(c.filler), shape, rand.New(rand.NewPCG(1, 2)))
			if err != nil {
				t.Fatal(err)
			}
			if len(data) != 100000 {
				t.Fatalf("got %d values, want 100000", len(data))
			}
			mean, std := meanStd(data)
			if math.Abs(mean-c.mean) > c.meanTolerance {
				t.Errorf("mean %g, want %g ± %g", mean, c.mean, c.meanTolerance)
			}
			if math.Abs(std-c.std) > 0.01*c.std {
				t.Errorf("std %g, want %g ± 1%%", std, c.std)
			}
			lo, hi := float64(slices.Min(data)), float64(slices.Max(data))
			if lo < float64(float32(c.lo)) || hi > float64(float32(c.hi)) {
				t.Errorf("values span [%g, %g], want within [%g, %g]", lo, hi, c.lo, c.hi)
			}
			if !math.IsInf(c.lo, 0) && (lo > c.lo+0.01*(c.hi-c.lo) || hi < c.hi-0.01*(c.hi-c.lo)) {
				t.Errorf("values span [%g, %g], want nearly all of [%g, %g]", lo, hi, c.lo, c.hi)
			}
		})
	}
}

func TestFillConstantExact(t *testing.T) {
	for _, c := range []struct {
		filler string
		want   float32
	}{
		{`type: "constant"`, 0},
		{`type: "constant" value: 0.25`, 0.25},
		{`type: "constant" value: -3.5`, -3.5},
		{``, 0}, // an empty FillerParameter is constant 0
	} {
		data, err := fill(filler(c.filler), []int{3, 4, 5}, rand.New(rand.NewPCG(1, 2)))
		if err != nil {
			t.Fatalf("%q: %v", c.filler, err)
		}
		if len(data) != 60 {
			t.Fatalf("%q: got %d values, want 60", c.filler, len(data))
		}
		for i, v := range data {
			if v != c.want {
				t.Fatalf("%q: value %d is %g, want %g", c.filler, i, v, c.want)
			}
		}
	}
}

func TestFillBilinearKernel(t *testing.T) {
	// k = 4: f = 2, c = 3/4, so each axis weighs 1/4, 3/4, 3/4, 1/4.
	axis4 := []float32{0.25, 0.75, 0.75, 0.25}
	// k = 3: f = 2, c = 1/2, so each axis weighs 1/2, 1, 1/2.
	axis3 := []float32{0.5, 1, 0.5}
	for _, c := range []struct {
		shape []int
		axis  []float32
	}{
		{[]int{2, 1, 4, 4}, axis4},
		{[]int{1, 3, 3, 3}, axis3},
	} {
		data, err := fill(filler(`type: "bilinear"`), c.shape, nil)
		if err != nil {
			t.Fatal(err)
		}
		k := len(c.axis)
		for i, v := range data {
			y, x := (i/k)%k, i%k
			if want := c.axis[y] * c.axis[x]; v != want {
				t.Errorf("shape %v: value %d (y %d, x %d) is %g, want %g", c.shape, i, y, x, v, want)
			}
		}
	}
}

func TestInitDeconvolutionBilinear(t *testing.T) {
	// The upsampling layer of filler.hpp's documentation for factor 2:
	// kernel 2·2 − 0 = 4, stride 2, pad 1, one group per channel.
	out, report := initNet(t, readText(t, `
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 5 dim: 5 } } }
layer { name: "up" type: "Deconvolution" bottom: "data" top: "up"
  convolution_param { num_output: 3 group: 3 kernel_size: 4 stride: 2 pad: 1 bias_term: false
    weight_filler { type: "bilinear" } } }`), InitOptions{})
	blobs := layerBlobs(t, out, "up")
	if len(blobs) != 1 {
		t.Fatalf("up has %d blobs, want 1", len(blobs))
	}
	if got := caffe.BlobShape(blobs[0]); !slices.Equal(got, []int{3, 1, 4, 4}) {
		t.Fatalf("up weight shape %v, want [3 1 4 4]", got)
	}
	axis := []float32{0.25, 0.75, 0.75, 0.25}
	for i, v := range blobs[0].Data {
		if want := axis[(i/4)%4] * axis[i%4]; v != want {
			t.Errorf("up weight %d is %g, want %g", i, v, want)
		}
	}
	if got := report.Layers[0].Blobs[0].Filler; got != "bilinear" {
		t.Errorf("up filler reported as %q, want bilinear", got)
	}
}

func TestFillPositiveUnitball(t *testing.T) {
	shape := []int{10, 2, 5, 5}
	data, err := fill(filler(`type: "positive_unitball"`), shape, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	for row := range 10 {
		var sum float64
		for _, v := range data[row*50 : (row+1)*50] {
			if v < 0 || v > 1 {
				t.Fatalf("output %d has value %g outside [0, 1]", row, v)
			}
			sum += float64(v)
		}
		if math.Abs(sum-1) > 1e-5 {
			t.Errorf("output %d sums to %g, want 1", row, sum)
		}
	}
}

func TestFillGaussianSparse(t *testing.T) {
	// 100 outputs, sparse 10: each value is kept with probability 0.1.
	data, err := fill(filler(`type: "gaussian" std: 1 sparse: 10`), []int{100, 1000}, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	nonZero := 0
	for _, v := range data {
		if v != 0 {
			nonZero++
		}
	}
	if frac := float64(nonZero) / float64(len(data)); math.Abs(frac-0.1) > 0.005 {
		t.Errorf("%.4f of the values are non-zero, want 0.1", frac)
	}

	data, err = fill(filler(`type: "gaussian" sparse: 0`), []int{4, 6}, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(data, func(v float32) bool { return v != 0 }) {
		t.Errorf("sparse 0 left non-zero values: %v", data)
	}
}

func TestFillErrors(t *testing.T) {
	for _, c := range []struct {
		filler string
		shape  []int
		want   string
	}{
		{`type: "orthogonal"`, []int{2, 2}, `unknown filler type "orthogonal"`},
		{`type: "uniform" min: 1 max: 0`, []int{2, 2}, "min 1 is greater than max 0"},
		{`type: "gaussian" std: 0`, []int{2, 2}, "std 0 must be positive"},
		{`type: "gaussian" sparse: 5`, []int{4, 2}, "sparse 5 exceeds the 4 outputs"},
		{`type: "gaussian" sparse: -2`, []int{4, 2}, "sparse -2 is invalid"},
		{`type: "xavier" sparse: 1`, []int{4, 2}, "the xavier filler does not support sparse"},
		{`type: "bilinear"`, []int{4, 4, 4}, "needs a 4-axis blob"},
		{`type: "bilinear"`, []int{1, 1, 3, 4}, "needs a square kernel"},
		{`type: "constant"`, []int{0, 4}, "has no values"},
	} {
		_, err := fill(filler(c.filler), c.shape, rand.New(rand.NewPCG(1, 2)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s on %v: error %v, want one containing %q", c.filler, c.shape, err, c.want)
		}
	}
}

func TestInitUnknownFillerNamesLayer(t *testing.T) {
	net := readText(t, strings.Replace(tinyNet, `type: "xavier"`, `type: "orthogonal"`, 1))
	_, _, err := InitWeights(net, InitOptions{})
	if err == nil {
		t.Fatal("InitWeights accepted an unknown filler type")
	}
	for _, want := range []string{`layer "conv1"`, `"orthogonal"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %s", err, want)
		}
	}
}

func TestInitTinyNet(t *testing.T) {
	out, report := initNet(t, readText(t, tinyNet), InitOptions{Seed: 7})

	wantShapes := map[string][][]int{
		"conv1":  {{4, 3, 3, 3}, {4}},
		"bn1":    {{4}, {4}, {1}},
		"scale1": {{4}, {4}},
		"prelu1": {{4}},
		"fc":     {{5, 144}, {5}},
		"bias":   {{5}},
	}
	var names []string
	for _, l := range report.Layers {
		names = append(names, l.Name)
		var shapes [][]int
		for _, b := range l.Blobs {
			shapes = append(shapes, b.Shape)
		}
		if !slices.EqualFunc(shapes, wantShapes[l.Name], slices.Equal) {
			t.Errorf("report: %s has blob shapes %v, want %v", l.Name, shapes, wantShapes[l.Name])
		}
		blobs := layerBlobs(t, out, l.Name)
		for i, b := range blobs {
			if err := caffe.CheckBlob(b, caffe.NoLocation(l.Name)); err != nil {
				t.Errorf("%s blob %d: %v", l.Name, i, err)
			}
			if got := caffe.BlobShape(b); !slices.Equal(got, wantShapes[l.Name][i]) {
				t.Errorf("%s blob %d has shape %v, want %v", l.Name, i, got, wantShapes[l.Name][i])
			}
		}
	}
	if want := []string{"conv1", "bn1", "scale1", "prelu1", "fc", "bias"}; !slices.Equal(names, want) {
		t.Errorf("initialized layers %v, want %v", names, want)
	}

	const learnable = 4*27 + 4 + 4 + 4 + 4 + 5*144 + 5 + 5
	if report.Learnable != learnable {
		t.Errorf("learnable %d, want %d", report.Learnable, learnable)
	}
	if report.Statistics != 9 {
		t.Errorf("statistics %d, want 9", report.Statistics)
	}

	// Fillers the net sets.
	conv := layerBlobs(t, out, "conv1")
	scale := math.Sqrt(3.0 / 27)
	for _, v := range conv[0].Data {
		if math.Abs(float64(v)) > scale {
			t.Errorf("conv1 weight %g outside the xavier range ±%g", v, scale)
		}
	}
	if !slices.Equal(conv[1].Data, []float32{0.1, 0.1, 0.1, 0.1}) {
		t.Errorf("conv1 bias %v, want the constant 0.1", conv[1].Data)
	}
	if b := report.Layers[0].Blobs[0]; b.Filler != "xavier variance_norm=FAN_IN" || b.Default {
		t.Errorf("conv1 weight filler reported as %q (default %v)", b.Filler, b.Default)
	}
}

func TestInitLayerDefaults(t *testing.T) {
	out, report := initNet(t, readText(t, tinyNet), InitOptions{Seed: 7})
	constant := func(layer string, blob int, want float32) {
		t.Helper()
		data := layerBlobs(t, out, layer)[blob].Data
		for _, v := range data {
			if v != want {
				t.Errorf("%s blob %d is %v, want all %g", layer, blob, data, want)
				return
			}
		}
	}
	constant("prelu1", 0, 0.25) // prelu_layer.cpp: constant 0.25
	constant("scale1", 0, 1)    // scale_layer.cpp: constant 1
	constant("scale1", 1, 0)    // bias_filler: FillerParameter's default
	constant("fc", 1, 0)        // no bias_filler
	constant("bias", 0, 0)      // bias_layer.cpp: FillerParameter's default

	for _, l := range report.Layers {
		if l.Name == "prelu1" && (!l.Blobs[0].Default || l.Blobs[0].Filler != "constant value=0.25") {
			t.Errorf("prelu1 reported as %+v, want the default constant 0.25", l.Blobs[0])
		}
	}

	bn := layerBlobs(t, out, "bn1")
	for _, v := range bn[0].Data {
		if math.Abs(float64(v)) > 1 {
			t.Errorf("bn1 running mean %g is not small", v)
		}
	}
	for _, v := range bn[1].Data {
		if v < 0.5 || v > 1.5 {
			t.Errorf("bn1 running variance %g outside [0.5, 1.5]", v)
		}
	}
	if !slices.Equal(bn[2].Data, []float32{1}) {
		t.Errorf("bn1 moving-average factor %v, want [1]", bn[2].Data)
	}
}

// TestBlobSourcesDefaults checks the fillers of layer types from their
// parameters alone, without shape inference.
func TestBlobSourcesDefaults(t *testing.T) {
	net := readText(t, `
layer { name: "norm" type: "Normalize" bottom: "x" top: "y" }
layer { name: "normset" type: "Normalize" bottom: "x" top: "y" norm_param { scale_filler { type: "constant" value: 20 } } }
layer { name: "bn" type: "BN" bottom: "x" top: "y" bn_param { slope_filler { type: "constant" value: 1 } } }
layer { name: "embed" type: "Embed" bottom: "x" top: "y" embed_param { num_output: 3 input_dim: 4 } }
layer { name: "scale2" type: "Scale" bottom: "x" bottom: "s" top: "y" scale_param { bias_term: true bias_filler { type: "constant" value: 2 } } }
layer { name: "bnnv" type: "BatchNorm" bottom: "x" top: "y" batch_norm_param { scale_bias: true } }
layer { name: "relu" type: "ReLU" bottom: "x" top: "y" }
`)
	want := map[string][]string{
		"norm":    {"constant value=1 (default)"},
		"normset": {"constant value=20"},
		"bn":      {"constant value=1", "constant value=0 (default)", "running mean: gaussian mean=0 std=0.1", "running variance: 0.5 + uniform min=0 max=1"},
		"embed":   {"constant value=0 (default)", "constant value=0 (default)"},
		"scale2":  {"constant value=2"},
		"bnnv": {"running mean: gaussian mean=0 std=0.1", "running variance: 0.5 + uniform min=0 max=1",
			"moving-average factor: constant value=1", "constant value=1 (default)", "constant value=0 (default)"},
	}
	for _, l := range net.Param.GetLayer() {
		sources, known := blobSources(l)
		if l.GetName() == "relu" {
			if known {
				t.Errorf("ReLU has filler rules %v", sources)
			}
			continue
		}
		var got []string
		for _, s := range sources {
			d := s.describe()
			if s.isDefault {
				d += " (default)"
			}
			got = append(got, d)
		}
		if !slices.Equal(got, want[l.GetName()]) {
			t.Errorf("%s: sources %q, want %q", l.GetName(), got, want[l.GetName()])
		}
	}
}

func writeBytes(t *testing.T, net *caffe.Net, name string) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := (caffe.WriteOptions{}).WriteFile(net, path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestInitDeterministic(t *testing.T) {
	a, _ := initNet(t, readText(t, tinyNet), InitOptions{Seed: 42})
	b, _ := initNet(t, readText(t, tinyNet), InitOptions{Seed: 42})
	c, _ := initNet(t, readText(t, tinyNet), InitOptions{Seed: 43})
	bytesA := writeBytes(t, a, "a.caffemodel")
	if !bytes.Equal(bytesA, writeBytes(t, b, "b.caffemodel")) {
		t.Error("two runs with seed 42 wrote different bytes")
	}
	if bytes.Equal(bytesA, writeBytes(t, c, "c.caffemodel")) {
		t.Error("seeds 42 and 43 wrote the same bytes")
	}

	// Appending a layer leaves the values of the others unchanged.
	more := tinyNet + `layer { name: "fc2" type: "InnerProduct" bottom: "fc" top: "fc2"
  inner_product_param { num_output: 3 weight_filler { type: "msra" } } }`
	d, _ := initNet(t, readText(t, more), InitOptions{Seed: 42})
	for _, name := range []string{"conv1", "bn1", "fc"} {
		for i, blob := range layerBlobs(t, a, name) {
			if !slices.Equal(blob.Data, layerBlobs(t, d, name)[i].Data) {
				t.Errorf("%s blob %d changed when a layer was appended", name, i)
			}
		}
	}
}

func TestInitLeavesInputUnchanged(t *testing.T) {
	first, _ := initNet(t, readText(t, tinyNet), InitOptions{Seed: 1})
	marshal := proto.MarshalOptions{Deterministic: true}
	before, err := marshal.Marshal(first.Param)
	if err != nil {
		t.Fatal(err)
	}
	second, _ := initNet(t, first, InitOptions{Seed: 2})
	after, err := marshal.Marshal(first.Param)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("InitWeights modified its input net")
	}
	if slices.Equal(layerBlobs(t, first, "conv1")[0].Data, layerBlobs(t, second, "conv1")[0].Data) {
		t.Error("the second init kept the input's conv1 weights")
	}

	fresh := readText(t, tinyNet)
	initNet(t, fresh, InitOptions{Seed: 1})
	for _, l := range fresh.Param.GetLayer() {
		if len(l.GetBlobs()) > 0 {
			t.Errorf("layer %s of the input gained %d blobs", l.GetName(), len(l.GetBlobs()))
		}
	}
}

func TestInitUnknownShapes(t *testing.T) {
	const text = `
layer { name: "data" type: "Data" top: "data" top: "label" data_param { source: "db" batch_size: 4 } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 2 kernel_size: 3 } }
layer { name: "fc" type: "InnerProduct" bottom: "conv1" top: "fc" inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
`
	_, _, err := InitWeights(readText(t, text), InitOptions{})
	var unknown *UnknownShapesError
	if !errors.As(err, &unknown) {
		t.Fatalf("error %v, want an *UnknownShapesError", err)
	}
	if len(unknown.Layers) != 2 || !strings.HasPrefix(unknown.Layers[0], "conv1 (Convolution): ") || !strings.HasPrefix(unknown.Layers[1], "fc (InnerProduct): ") {
		t.Errorf("unknown layers %q, want conv1 and fc", unknown.Layers)
	}
	if !strings.Contains(err.Error(), "InitOptions.Inputs") {
		t.Errorf("error %q does not say how to give the shapes", err)
	}

	_, report := initNet(t, readText(t, text), InitOptions{Inputs: map[string][]int{"data": {4, 1, 5, 5}}})
	if want := int64(2*9 + 2 + 3*2*3*3 + 3); report.Learnable != want {
		t.Errorf("learnable %d with the input shape given, want %d", report.Learnable, want)
	}
}

func TestInitSharedBlobs(t *testing.T) {
	const text = `
layer { name: "data" type: "Input" top: "a" top: "b" input_param { shape { dim: 2 dim: 6 } } }
layer { name: "fa" type: "InnerProduct" bottom: "a" top: "fa" param { name: "w" } param { name: "bias" }
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" } } }
layer { name: "fb" type: "InnerProduct" bottom: "b" top: "fb" param { name: "w" } param { name: "bias" }
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" } } }
`
	out, report := initNet(t, readText(t, text), InitOptions{Seed: 3})
	if !slices.Equal(layerBlobs(t, out, "fa")[0].Data, layerBlobs(t, out, "fb")[0].Data) {
		t.Error("fa and fb share the weight w but got different values")
	}
	if report.Learnable != 3*6+3 {
		t.Errorf("learnable %d, want %d (shared blobs counted once)", report.Learnable, 3*6+3)
	}
	if got := report.Layers[1].Blobs[0].SharedFrom; got != "fa" {
		t.Errorf("fb weight reported as shared from %q, want fa", got)
	}

	mismatch := strings.Replace(text, `bottom: "b" top: "fb" param { name: "w" } param { name: "bias" }
  inner_product_param { num_output: 3`, `bottom: "b" top: "fb" param { name: "w" } param { name: "bias" }
  inner_product_param { num_output: 4`, 1)
	_, _, err := InitWeights(readText(t, mismatch), InitOptions{})
	if err == nil || !strings.Contains(err.Error(), `layer "fb" shares blob 0 as "w" with layer "fa"`) {
		t.Errorf("error %v, want one about fb's shape differing from fa's", err)
	}
}

// TestInitCorpusTotals checks the stored-value totals of deploy nets of
// the model zoo against their published parameter counts.
func TestInitCorpusTotals(t *testing.T) {
	cases := []struct {
		path                  []string
		learnable, statistics int64 // -1: not published
		stored                int64
	}{
		{[]string{"prototxt", "bvlc", "bvlc_reference_caffenet_deploy.prototxt"}, 60_965_224, 0, 60_965_224},
		{[]string{"prototxt", "vgg", "VGG_ILSVRC_16_layers_deploy_upgraded_V2.prototxt"}, 138_357_544, 0, 138_357_544},
		// ResNet-50: learnable 25,557,096, stored incl. BatchNorm statistics 25,610,269.
		{[]string{"prototxt", "resnet", "ResNet-50-deploy.prototxt"}, 25_557_096, -1, 25_610_269},
		{[]string{"prototxt", "mobilenet", "mobilenet_v1_deploy.prototxt"}, 4_231_976, -1, -1},
	}
	for _, c := range cases {
		name := c.path[len(c.path)-1]
		t.Run(name, func(t *testing.T) {
			net, err := caffe.ReadFile(corpus.Path(t, c.path...))
			if err != nil {
				t.Fatal(err)
			}
			out, report, err := InitWeights(net, InitOptions{Seed: 1})
			if err != nil {
				t.Fatalf("InitWeights: %v", err)
			}
			if report.Learnable != c.learnable {
				t.Errorf("learnable %d, want %d", report.Learnable, c.learnable)
			}
			if c.statistics >= 0 && report.Statistics != c.statistics {
				t.Errorf("statistics %d, want %d", report.Statistics, c.statistics)
			}
			if c.stored >= 0 && report.Stored() != c.stored {
				t.Errorf("stored %d, want %d", report.Stored(), c.stored)
			}

			var values int64
			for _, l := range out.Param.GetLayer() {
				for i, b := range l.GetBlobs() {
					if err := caffe.CheckBlob(b, caffe.NoLocation(l.GetName())); err != nil {
						t.Fatalf("%s blob %d: %v", l.GetName(), i, err)
					}
					values += int64(len(b.Data))
				}
			}
			if values != report.Stored() {
				t.Errorf("the blobs hold %d values, the report says %d", values, report.Stored())
			}
			summary, _ := graph.Summarize(out, graph.Options{})
			if summary.Stored != report.Stored() || !summary.HasWeights {
				t.Errorf("inspecting the result gives %d stored values (weights %v), the report %d", summary.Stored, summary.HasWeights, report.Stored())
			}
		})
	}
}

// TestInitOpenCVRunsCaffeNet checks that OpenCV loads CaffeNet with
// initialized weights and runs it forward to a 1×1000 probability.
func TestInitOpenCVRunsCaffeNet(t *testing.T) {
	oracle.Python(t)
	prototxt := corpus.Path(t, "prototxt", "bvlc", "bvlc_reference_caffenet_deploy.prototxt")
	net, err := caffe.ReadFile(prototxt)
	if err != nil {
		t.Fatal(err)
	}
	// The deploy net sets no fillers, so every weight would be 0 and the
	// output the constant 1/1000. msra weights give a real forward pass.
	for _, l := range net.Param.GetLayer() {
		if p := l.GetConvolutionParam(); p != nil {
			p.WeightFiller = filler(`type: "msra"`)
		}
		if p := l.GetInnerProductParam(); p != nil {
			p.WeightFiller = filler(`type: "msra"`)
		}
	}
	out, _, err := InitWeights(net, InitOptions{Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	weights := filepath.Join(dir, "caffenet.caffemodel")
	if err := (caffe.WriteOptions{}).WriteFile(out, weights); err != nil {
		t.Fatal(err)
	}

	job := []map[string]any{{"id": "caffenet", "prototxt": prototxt, "caffemodel": weights, "input_shape": []int{1, 3, 227, 227}, "seed": 1}}
	input, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	var results []struct {
		OK      bool   `json:"ok"`
		Error   string `json:"error"`
		Outputs []struct {
			Name  string `json:"name"`
			Shape []int  `json:"shape"`
			Path  string `json:"path"`
		} `json:"outputs"`
	}
	stdout := oracle.RunPython(t, oracle.OpenCVForwardScript, input, dir)
	if err := json.Unmarshal(stdout, &results); err != nil {
		t.Fatalf("decoding the output of the OpenCV forward script: %v\n%s", err, stdout)
	}
	if len(results) != 1 || !results[0].OK {
		t.Fatalf("OpenCV failed to run CaffeNet with the initialized weights: %+v", results)
	}
	outputs := results[0].Outputs
	if len(outputs) != 1 || outputs[0].Name != "prob" || !slices.Equal(outputs[0].Shape, []int{1, 1000}) {
		t.Fatalf("OpenCV outputs %+v, want prob of shape [1 1000]", outputs)
	}
	prob := readNPYFloat32(t, outputs[0].Path)
	var sum float64
	for _, p := range prob {
		if p < 0 || math.IsNaN(float64(p)) {
			t.Fatalf("prob contains %g", p)
		}
		sum += float64(p)
	}
	if math.Abs(sum-1) > 1e-3 {
		t.Errorf("prob sums to %g, want 1", sum)
	}
	if slices.Max(prob) == slices.Min(prob) {
		t.Errorf("prob is the constant %g; the weights had no effect", prob[0])
	}
}

// readNPYFloat32 reads a little-endian float32 .npy file in C order.
func readNPYFloat32(t *testing.T, path string) []float32 {
	t.Helper()
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(file) < 10 || !bytes.HasPrefix(file, []byte("\x93NUMPY")) {
		t.Fatalf("%s is not an .npy file", path)
	}
	var headerEnd int
	switch file[6] {
	case 1:
		headerEnd = 10 + int(binary.LittleEndian.Uint16(file[8:10]))
	default:
		headerEnd = 12 + int(binary.LittleEndian.Uint32(file[8:12]))
	}
	header := string(file[:headerEnd])
	if !strings.Contains(header, "'descr': '<f4'") || !strings.Contains(header, "'fortran_order': False") {
		t.Fatalf("%s: header %q, want little-endian float32 in C order", path, header)
	}
	body := file[headerEnd:]
	out := make([]float32, len(body)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
	}
	return out
}

func ExampleInitWeights() {
	net, err := caffe.Read(strings.NewReader(`
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "msra" } } }`))
	if err != nil {
		panic(err)
	}
	_, report, err := InitWeights(net, InitOptions{Seed: 1})
	if err != nil {
		panic(err)
	}
	for _, l := range report.Layers {
		for _, b := range l.Blobs {
			fmt.Println(l.Name, b.Shape, b.Filler)
		}
	}
	fmt.Println("learnable:", report.Learnable)
	// Output:
	// conv [2 3 3 3] msra variance_norm=FAN_IN
	// conv [2] constant value=0
	// learnable: 56
}
