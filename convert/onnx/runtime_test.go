package onnx

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/convert/npy"
	"github.com/tlsurgery/tlsurgery/graph"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
	"github.com/tlsurgery/tlsurgery/internal/oracle"
	"github.com/tlsurgery/tlsurgery/surgery"
)

// These tests export corpus nets to ONNX, validate the files with ONNX's
// own checker (onnx.checker.check_model with full_check, which also runs
// ONNX's shape inference against the declared shapes), run them in ONNX
// Runtime for Node, and compare the outputs with OpenCV 4.6's Caffe
// importer run on the original Caffe files with the same seeded input.
// OpenCV and ONNX Runtime share no code with tlsurgery or each other.

// runtimeCase is one net to export and compare.
type runtimeCase struct {
	prototxt   string // relative to the corpus folder
	caffemodel string // relative to the corpus folder; "" draws weights with surgery.InitWeights (seed 1)
	input      []int  // N, C, H, W of the random input

	// outputs lists the OpenCV layer names to compare in place of the
	// net's outputs, for nets whose last layer is not exported.
	outputs []string
	// dropLayers lists layer types removed from the net before both
	// runs, such as DetectionOutput, which has no ONNX form.
	dropLayers []string
	// dropFields lists text fields deleted from the prototxt before
	// both runs, because OpenCV 4.6's schema lacks them.
	dropFields []string

	opsets    []int
	tolerance float64 // max|a − b| ÷ max|b|
}

var allOpsets = []int{9, 13, 17}

// corpusPairs are the caffemodels of the corpus with the deploy prototxt
// published with each (the runnable pairs of caffe/opencv_test.go). Left
// out: lenet_ip1_5 and arm_cmsisnn_cifar10, which come only with train
// nets that OpenCV rejects; deep_landmark, whose MemoryData input OpenCV
// 4.6 does not expose; and the HDF5 snapshot, which is not protobuf.
var corpusPairs = []runtimeCase{
	{prototxt: "caffemodel/lenet/lenet.prototxt", caffemodel: "caffemodel/lenet/lenet_iter_10000.caffemodel", input: []int{64, 1, 28, 28}},
	{prototxt: "caffemodel/lenet_v1/lenet.prototxt", caffemodel: "caffemodel/lenet_v1/lenet_iter_10000", input: []int{64, 1, 28, 28}},
	{prototxt: "prototxt/bvlc/cifar10_quick.prototxt", caffemodel: "caffemodel/cifar10_quick/cifar10_quick_iter_5000.caffemodel", input: []int{1, 3, 32, 32}},
	{prototxt: "caffemodel/cifar10_full/cifar10_full.prototxt", caffemodel: "caffemodel/cifar10_full/cifar10_full_iter_70000.caffemodel", input: []int{1, 3, 32, 32}},
	{prototxt: "caffemodel/mtcnn/det1.prototxt", caffemodel: "caffemodel/mtcnn/det1.caffemodel", input: []int{1, 3, 12, 12}},
	{prototxt: "caffemodel/mtcnn/det2.prototxt", caffemodel: "caffemodel/mtcnn/det2.caffemodel", input: []int{1, 3, 24, 24}},
	{prototxt: "caffemodel/mtcnn/det3.prototxt", caffemodel: "caffemodel/mtcnn/det3.caffemodel", input: []int{1, 3, 48, 48}},
	{prototxt: "caffemodel/mtcnn/det4.prototxt", caffemodel: "caffemodel/mtcnn/det4.caffemodel", input: []int{1, 15, 24, 24}},
	{prototxt: "caffemodel/hyperlpr/CharacterRecognization.prototxt", caffemodel: "caffemodel/hyperlpr/CharacterRecognization.caffemodel", input: []int{1, 1, 30, 14}},
	{prototxt: "caffemodel/hyperlpr/HorizonalFinemapping.prototxt", caffemodel: "caffemodel/hyperlpr/HorizonalFinemapping_v2020-07.caffemodel", input: []int{1, 3, 16, 66}},
	{prototxt: "caffemodel/hyperlpr/Segmentation.prototxt", caffemodel: "caffemodel/hyperlpr/Segmentation.caffemodel", input: []int{1, 1, 22, 22}},
	{
		prototxt: "caffemodel/yufacedetectnet/yufacedetectnet-open-v1.prototxt", caffemodel: "caffemodel/yufacedetectnet/yufacedetectnet-open-v1.caffemodel", input: []int{1, 3, 240, 320},
		outputs: []string{"mbox_loc", "mbox_conf_flatten", "mbox_priorbox"}, dropLayers: []string{"DetectionOutput"}, dropFields: []string{"visualize", "visualize_threshold"},
	},
	{prototxt: "caffemodel/htshinichi_test/test.prototxt", caffemodel: "caffemodel/htshinichi_test/test.caffemodel", input: []int{1, 3, 224, 224}},
	{prototxt: "reference/opencv_contrib_dnn_layers_2015/layer_convolution.prototxt", caffemodel: "reference/opencv_contrib_dnn_layers_2015/layer_convolution.caffemodel", input: []int{2, 6, 75, 113}},
	{prototxt: "reference/opencv_contrib_dnn_layers_2015/layer_deconvolution.prototxt", caffemodel: "reference/opencv_contrib_dnn_layers_2015/layer_deconvolution.caffemodel", input: []int{2, 12, 36, 37}},
	{prototxt: "reference/opencv_contrib_dnn_layers_2015/layer_inner_product.prototxt", caffemodel: "reference/opencv_contrib_dnn_layers_2015/layer_inner_product.caffemodel", input: []int{2, 6, 75, 113}},
	{prototxt: "prototxt/bvlc_history/v0_lenet.prototxt", caffemodel: "caffemodel/lenet/lenet_iter_10000.caffemodel", input: []int{64, 1, 28, 28}},
	{prototxt: "prototxt/bvlc_history/v0_cifar10_quick.prototxt", caffemodel: "caffemodel/cifar10_quick/cifar10_quick_iter_5000.caffemodel", input: []int{1, 3, 32, 32}},
	{prototxt: "prototxt/bvlc_history/v0_cifar10_full.prototxt", caffemodel: "caffemodel/cifar10_full/cifar10_full_iter_70000.caffemodel", input: []int{1, 3, 32, 32}},
}

// deepNets are deploy nets with weights drawn by surgery.InitWeights,
// exported at opset 13. VGG-16 runs in scripts/onnx-deep-check.sh, as
// its 138 million weights would take most of the time budget here.
var deepNets = []runtimeCase{
	{prototxt: "prototxt/bvlc/bvlc_reference_caffenet_deploy.prototxt", input: []int{1, 3, 227, 227}},
	{prototxt: "prototxt/bvlc/bvlc_googlenet_deploy.prototxt", input: []int{1, 3, 224, 224}},
	{prototxt: "prototxt/resnet/ResNet-50-deploy.prototxt", input: []int{1, 3, 224, 224}},
	{prototxt: "prototxt/squeezenet/SqueezeNet_v1.1_deploy.prototxt", input: []int{1, 3, 227, 227}},
	{prototxt: "prototxt/mobilenet/mobilenet_v1_deploy.prototxt", input: []int{1, 3, 224, 224}},
}

// forkNets are deploy nets of Caffe forks with drawn weights, exported
// at opset 13: SSD's Normalize, Permute and PriorBox (DetectionOutput
// removed), BatchNorm with Scale, grouped and depthwise convolutions.
var forkNets = []runtimeCase{
	{
		prototxt: "prototxt/ssd/VGG_VOC0712_SSD_300x300_deploy.prototxt", input: []int{1, 3, 300, 300},
		outputs: []string{"mbox_loc", "mbox_conf_flatten", "mbox_priorbox"}, dropLayers: []string{"DetectionOutput"},
	},
	{
		prototxt: "prototxt/mobilenet_ssd/MobileNetSSD_deploy_bn.prototxt", input: []int{1, 3, 300, 300},
		outputs: []string{"mbox_loc", "mbox_conf_flatten", "mbox_priorbox"}, dropLayers: []string{"DetectionOutput"},
	},
	{prototxt: "prototxt/mobilenet/mobilenet_v2_deploy.prototxt", input: []int{1, 3, 224, 224}},
	{prototxt: "prototxt/resnet/soeaver_deploy_resnext50-32x4d.prototxt", input: []int{1, 3, 224, 224}},
}

func TestRuntimeForkNets(t *testing.T) {
	if testing.Short() {
		t.Skip("fork nets take about half a minute; run without -short")
	}
	runRuntimeCases(t, withDefaults(forkNets, []int{13}, 1e-4))
}

func TestRuntimeCorpusPairs(t *testing.T) {
	runRuntimeCases(t, withDefaults(corpusPairs, allOpsets, 1e-5))
}

// caffeReferences are single-layer nets with outputs that real Caffe
// (pycaffe, CPU) computed from a stored input: LRN in both regions, MVN
// with eps 0.1 (where OpenCV 4.6 disagrees with Caffe, dividing by
// sqrt(var + eps) instead of sqrt(var) + eps), AVE and MAX pooling with
// Caffe's rounding up, Softmax, grouped Convolution and Deconvolution with
// unequal pads, and InnerProduct on axis 3.
var caffeReferences = []struct {
	name, caffemodel, input string
}{
	{"layer_lrn_channels", "", "blob"},
	{"layer_lrn_spatial", "", "blob"},
	{"layer_mvn", "", "blob"},
	{"layer_pooling_ave", "", "blob"},
	{"layer_pooling_max", "", "blob"},
	{"layer_softmax", "", "blob"},
	{"layer_convolution", "layer_convolution.caffemodel", "blob"},
	{"layer_deconvolution", "layer_deconvolution.caffemodel", "layer_deconvolution.input"},
	{"layer_inner_product", "layer_inner_product.caffemodel", "blob"},
}

// TestRuntimeCaffeReferences runs the exported single-layer nets in ONNX
// Runtime on the stored inputs and compares with Caffe's stored outputs.
func TestRuntimeCaffeReferences(t *testing.T) {
	oracle.Python(t)
	oracle.ONNXChecker(t)
	oracle.Node(t)
	dir := t.TempDir()
	const folder = "reference/opencv_contrib_dnn_layers_2015"
	type job struct {
		ID     string            `json:"id"`
		Model  string            `json:"model"`
		Inputs map[string]string `json:"inputs"`
		OutDir string            `json:"out_dir"`
	}
	var jobs []job
	var models []string
	for _, ref := range caffeReferences {
		net, err := caffe.ReadFile(corpus.Path(t, folder, ref.name+".prototxt"))
		if err != nil {
			t.Fatal(err)
		}
		if ref.caffemodel != "" {
			weights, err := caffe.ReadFile(corpus.Path(t, folder, ref.caffemodel))
			if err != nil {
				t.Fatal(err)
			}
			if net, _, err = caffe.AttachWeights(net, weights); err != nil {
				t.Fatal(err)
			}
		}
		input := corpus.Path(t, folder, ref.input+".npy")
		shape, err := npy.ReadFile(input)
		if err != nil {
			t.Fatal(err)
		}
		for _, opset := range allOpsets {
			model := filepath.Join(dir, fmt.Sprintf("%s_%d.onnx", ref.name, opset))
			opts := Options{Opset: opset, Graph: graph.Options{Inputs: map[string][]int{"": shape.Shape}}}
			if err := WriteFile(model, net, opts); err != nil {
				t.Fatalf("%s: exporting at opset %d: %v", ref.name, opset, err)
			}
			models = append(models, model)
			jobs = append(jobs, job{ID: fmt.Sprintf("%s@%d", ref.name, opset), Model: model, Inputs: map[string]string{"input": input}, OutDir: dir})
		}
	}
	checkModelFiles(t, models)
	input, _ := json.Marshal(jobs)
	var results []forwardResult
	if err := json.Unmarshal(oracle.RunNode(t, oracle.ORTRunScript, input), &results); err != nil {
		t.Fatal(err)
	}
	byID := map[string]forwardResult{}
	for _, r := range results {
		byID[r.ID] = r
	}
	for _, ref := range caffeReferences {
		t.Run(ref.name, func(t *testing.T) {
			want := corpus.Path(t, folder, ref.name+".npy")
			var diffs []string
			for _, opset := range allOpsets {
				r := byID[fmt.Sprintf("%s@%d", ref.name, opset)]
				if !r.OK || len(r.Outputs) != 1 {
					t.Errorf("opset %d: ONNX Runtime cannot run the model: %s", opset, r.Error)
					continue
				}
				rel, err := relativeDifference(r.Outputs[0].Path, want)
				if err != nil {
					t.Errorf("opset %d: %v", opset, err)
					continue
				}
				diffs = append(diffs, fmt.Sprintf("opset %d %.2g", opset, rel))
				if rel > 1e-5 {
					t.Errorf("opset %d: output differs from Caffe's: max|a − b| ÷ max|b| = %.3g, more than 1e-5", opset, rel)
				}
			}
			t.Logf("%s", strings.Join(diffs, ", "))
		})
	}
}

func TestRuntimeDeepNets(t *testing.T) {
	if testing.Short() {
		t.Skip("deep nets take about a minute; run without -short")
	}
	cases := withDefaults(deepNets, []int{13}, 1e-4)
	if name := os.Getenv("TLSURGERY_ONNX_DEEP"); name != "" {
		cases = nil
		for _, n := range strings.Split(name, ",") {
			cases = append(cases, runtimeCase{prototxt: n, input: inputForDeepNet(n), opsets: []int{13}, tolerance: 1e-4})
		}
	}
	runRuntimeCases(t, cases)
}

// inputForDeepNet returns the input size of a net named in
// TLSURGERY_ONNX_DEEP: 227 × 227 for CaffeNet and SqueezeNet, else 224.
func inputForDeepNet(prototxt string) []int {
	if strings.Contains(prototxt, "caffenet") || strings.Contains(prototxt, "alexnet") || strings.Contains(prototxt, "SqueezeNet") {
		return []int{1, 3, 227, 227}
	}
	return []int{1, 3, 224, 224}
}

func withDefaults(cases []runtimeCase, opsets []int, tolerance float64) []runtimeCase {
	out := slices.Clone(cases)
	for i := range out {
		if out[i].opsets == nil {
			out[i].opsets = opsets
		}
		if out[i].tolerance == 0 {
			out[i].tolerance = tolerance
		}
	}
	return out
}

// prepared is one case after its files were written.
type prepared struct {
	runtimeCase
	id       string
	seed     int
	original caffeFiles       // what OpenCV runs
	models   map[int]string   // opset -> .onnx path
	input    string           // graph input tensor
	compare  []comparedOutput // values compared
	skip     string           // reason the case cannot run, or ""
}

type caffeFiles struct{ prototxt, caffemodel string }

// comparedOutput is a value compared between OpenCV and ONNX Runtime.
type comparedOutput struct {
	opencv string // OpenCV layer name
	tensor string // ONNX tensor name
}

type npyEntry struct {
	Name  string `json:"name"`
	Shape []int  `json:"shape"`
	Path  string `json:"path"`
}

func runRuntimeCases(t *testing.T, cases []runtimeCase) {
	oracle.Python(t)
	oracle.ONNXChecker(t)
	oracle.Node(t)
	dir := t.TempDir()

	var all []*prepared
	for i, rc := range cases {
		p := &prepared{runtimeCase: rc, id: fmt.Sprint(i), seed: i + 1, models: map[int]string{}}
		caseDir := filepath.Join(dir, p.id)
		if err := os.MkdirAll(caseDir, 0o755); err != nil {
			t.Fatal(err)
		}
		prepareCase(t, p, caseDir)
		all = append(all, p)
	}

	checkModels(t, all)
	inputs := writeSeededInputs(t, all, dir)
	opencv := runOpenCV(t, all, dir)
	ort := runORT(t, all, inputs, dir)

	for _, p := range all {
		t.Run(p.prototxt, func(t *testing.T) {
			if p.skip != "" {
				t.Fatalf("%s", p.skip)
			}
			cv := opencv[p.id]
			if !cv.OK {
				t.Fatalf("OpenCV cannot run the original files: %s", cv.Error)
			}
			cvByName := map[string]string{}
			for _, o := range cv.Outputs {
				cvByName[o.Name] = o.Path
			}
			for _, opset := range p.opsets {
				r := ort[fmt.Sprintf("%s@%d", p.id, opset)]
				if !r.OK {
					t.Errorf("opset %d: ONNX Runtime cannot run the model: %s", opset, r.Error)
					continue
				}
				ortByName := map[string]npyEntry{}
				for _, o := range r.Outputs {
					ortByName[o.Name] = o
				}
				var diffs []string
				for _, co := range p.compare {
					got, ok := ortByName[co.tensor]
					if !ok {
						t.Errorf("opset %d: ONNX Runtime returns no tensor %s", opset, co.tensor)
						continue
					}
					rel, err := relativeDifference(got.Path, cvByName[co.opencv])
					if err != nil {
						t.Errorf("opset %d: %s: %v", opset, co.tensor, err)
						continue
					}
					diffs = append(diffs, fmt.Sprintf("%s %.2g", co.tensor, rel))
					if rel > p.tolerance {
						t.Errorf("opset %d: %s differs from OpenCV's %s: max|a − b| ÷ max|b| = %.3g, more than %g", opset, co.tensor, co.opencv, rel, p.tolerance)
					}
				}
				t.Logf("opset %d: %s", opset, strings.Join(diffs, ", "))
			}
		})
	}
}

// prepareCase reads the net, gives it weights, exports it at each opset
// and writes the files OpenCV reads.
func prepareCase(t *testing.T, p *prepared, dir string) {
	t.Helper()
	prototxt := corpus.Path(t, p.prototxt)
	if len(p.dropFields) > 0 {
		prototxt = writeWithoutFields(t, prototxt, p.dropFields, filepath.Join(dir, "original.prototxt"))
	}
	net, err := caffe.ReadFile(prototxt)
	if err != nil {
		t.Fatal(err)
	}
	gopts := graph.Options{Inputs: map[string][]int{"": p.runtimeCase.input}}
	p.original.prototxt = prototxt
	if p.caffemodel != "" {
		p.original.caffemodel = corpus.Path(t, p.caffemodel)
		weights, err := caffe.ReadFile(p.original.caffemodel)
		if err != nil {
			t.Fatal(err)
		}
		if net, _, err = caffe.AttachWeights(net, weights); err != nil {
			t.Fatal(err)
		}
	} else {
		if net, _, err = surgery.InitWeights(net, surgery.InitOptions{Seed: 1, Inputs: gopts.Inputs}); err != nil {
			t.Fatalf("drawing weights for %s: %v", p.prototxt, err)
		}
		redrawZeroBlobs(net, uint64(p.seed))
		p.original.caffemodel = filepath.Join(dir, "init.caffemodel")
		if err := (caffe.WriteOptions{Encoding: caffe.Binary}).WriteFile(net, p.original.caffemodel); err != nil {
			t.Fatal(err)
		}
	}
	if len(p.dropLayers) > 0 {
		net = caffe.CloneNet(net)
		net.Param.Layer = slices.DeleteFunc(net.Param.Layer, func(l *caffepb.LayerParameter) bool {
			return slices.Contains(p.dropLayers, l.GetType())
		})
	}

	g := graph.Build(net, gopts)
	g.Infer()
	names := newConverter(g, Options{Opset: DefaultOpset, Graph: gopts}).names
	if len(g.Inputs) > 0 {
		p.input = names[g.Inputs[0]]
	} else {
		for _, l := range g.Layers {
			if isDataLayer(l.Type()) {
				p.input = names[l.Tops[0]]
				break
			}
		}
	}
	var extra []string
	if p.outputs != nil {
		for _, layer := range p.outputs {
			l := g.LayerByName(layer)
			if l == nil {
				t.Fatalf("%s has no layer %s", p.prototxt, layer)
			}
			p.compare = append(p.compare, comparedOutput{opencv: layer, tensor: names[l.Tops[0]]})
			extra = append(extra, names[l.Tops[0]])
		}
	} else {
		for _, v := range g.Outputs() {
			if len(v.Producer.Tops) != 1 {
				continue
			}
			p.compare = append(p.compare, comparedOutput{opencv: v.Producer.Name(), tensor: names[v]})
			// The input of a final Softmax is compared too: the softmax
			// of random weights is nearly uniform and hides errors.
			if v.Producer.Type() == "Softmax" {
				in := v.Producer.Bottoms[0]
				if in.Producer != nil && len(in.Producer.Tops) == 1 {
					p.compare = append(p.compare, comparedOutput{opencv: in.Producer.Name(), tensor: names[in]})
					extra = append(extra, names[in])
				}
			}
		}
	}
	if len(p.compare) == 0 {
		p.skip = "no output of the net has a single-top producer that OpenCV can name"
		return
	}

	for _, opset := range p.opsets {
		opts := Options{Opset: opset, Graph: gopts, ExtraOutputs: extra, ProducerVersion: "test"}
		model := filepath.Join(dir, fmt.Sprintf("opset%d.onnx", opset))
		if err := WriteFile(model, net, opts); err != nil {
			t.Errorf("%s: exporting at opset %d: %v", p.prototxt, opset, err)
			p.skip = fmt.Sprintf("export failed: %v", err)
			return
		}
		p.models[opset] = model
	}
}

// redrawZeroBlobs replaces every all-zero blob with Gaussian values of
// standard deviation sqrt(2 / fan-in), fan-in being the blob's values per
// output (its count ÷ its first axis). Deploy prototxts rarely name
// fillers, so InitWeights gives most weights Caffe's default constant 0,
// and a net of zeros would output constants that hide mapping errors.
func redrawZeroBlobs(net *caffe.Net, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0))
	for _, l := range net.Param.GetLayer() {
		for _, b := range l.GetBlobs() {
			if slices.ContainsFunc(b.Data, func(v float32) bool { return v != 0 }) {
				continue
			}
			shape := caffe.BlobShape(b)
			fanIn := len(b.Data)
			if len(shape) > 1 && shape[0] > 0 {
				fanIn /= shape[0]
			}
			std := math.Sqrt(2 / float64(max(fanIn, 1)))
			for i := range b.Data {
				b.Data[i] = float32(rng.NormFloat64() * std)
			}
		}
	}
}

// writeWithoutFields writes the text file at path to dst without the
// lines that set any of the scalar fields in names.
func writeWithoutFields(t *testing.T, path string, names []string, dst string) string {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, line := range strings.SplitAfter(string(src), "\n") {
		name, _, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && slices.Contains(names, strings.TrimSpace(name)) {
			continue
		}
		kept = append(kept, line)
	}
	if err := os.WriteFile(dst, []byte(strings.Join(kept, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// checkerScript validates each model path read from stdin (a JSON list)
// with onnx.checker.check_model(full_check=True) and writes
// [{"path", "ok", "error"}] to stdout.
const checkerScript = `"""ONNX checker of the exported models."""
import json, sys
import onnx, onnx.checker
results = []
for path in json.load(sys.stdin):
    try:
        onnx.checker.check_model(onnx.load(path), full_check=True)
        results.append({"path": path, "ok": True, "error": ""})
    except Exception as e:
        results.append({"path": path, "ok": False, "error": "%s: %s" % (type(e).__name__, e)})
json.dump(results, sys.stdout)
`

func checkModels(t *testing.T, all []*prepared) {
	t.Helper()
	var paths []string
	for _, p := range all {
		for _, opset := range p.opsets {
			if m := p.models[opset]; m != "" {
				paths = append(paths, m)
			}
		}
	}
	checkModelFiles(t, paths)
}

// checkModelFiles runs onnx.checker on every file in one Python process.
func checkModelFiles(t *testing.T, paths []string) {
	t.Helper()
	input, _ := json.Marshal(paths)
	var results []struct {
		Path  string `json:"path"`
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	out := oracle.RunPython(t, checkerScript, input)
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("decoding the checker output: %v\n%s", err, out)
	}
	for _, r := range results {
		if !r.OK {
			t.Errorf("onnx.checker rejects %s: %s", r.Path, r.Error)
		}
	}
}

// inputScript writes default_rng(seed).standard_normal(shape) as float32,
// the input that internal/oracle/opencv_forward.py gives OpenCV for the
// same seed and shape, for each {"seed", "shape", "path"} on stdin.
const inputScript = `"""Seeded inputs for ONNX Runtime."""
import json, sys
import numpy as np
for job in json.load(sys.stdin):
    np.save(job["path"], np.random.default_rng(job["seed"]).standard_normal(job["shape"], dtype=np.float32))
`

func writeSeededInputs(t *testing.T, all []*prepared, dir string) map[string]string {
	t.Helper()
	type job struct {
		Seed  int    `json:"seed"`
		Shape []int  `json:"shape"`
		Path  string `json:"path"`
	}
	var jobs []job
	paths := map[string]string{}
	for _, p := range all {
		if p.skip != "" {
			continue
		}
		path := filepath.Join(dir, p.id, "input.npy")
		jobs = append(jobs, job{Seed: p.seed, Shape: p.runtimeCase.input, Path: path})
		paths[p.id] = path
	}
	input, _ := json.Marshal(jobs)
	oracle.RunPython(t, inputScript, input)
	return paths
}

type forwardResult struct {
	ID      string     `json:"id"`
	OK      bool       `json:"ok"`
	Error   string     `json:"error"`
	Outputs []npyEntry `json:"outputs"`
}

func runOpenCV(t *testing.T, all []*prepared, dir string) map[string]forwardResult {
	t.Helper()
	type job struct {
		ID         string   `json:"id"`
		Prototxt   string   `json:"prototxt"`
		Caffemodel string   `json:"caffemodel"`
		InputShape []int    `json:"input_shape"`
		Seed       int      `json:"seed"`
		Outputs    []string `json:"outputs"`
	}
	var jobs []job
	for _, p := range all {
		if p.skip != "" {
			continue
		}
		var names []string
		for _, co := range p.compare {
			names = append(names, co.opencv)
		}
		jobs = append(jobs, job{ID: p.id, Prototxt: p.original.prototxt, Caffemodel: p.original.caffemodel, InputShape: p.runtimeCase.input, Seed: p.seed, Outputs: names})
	}
	outDir := filepath.Join(dir, "opencv")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	input, _ := json.Marshal(jobs)
	out := oracle.RunPython(t, oracle.OpenCVForwardScript, input, outDir)
	var results []forwardResult
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("decoding the OpenCV output: %v\n%s", err, out)
	}
	byID := map[string]forwardResult{}
	for _, r := range results {
		byID[r.ID] = r
	}
	return byID
}

func runORT(t *testing.T, all []*prepared, inputs map[string]string, dir string) map[string]forwardResult {
	t.Helper()
	type job struct {
		ID     string            `json:"id"`
		Model  string            `json:"model"`
		Inputs map[string]string `json:"inputs"`
		OutDir string            `json:"out_dir"`
	}
	var jobs []job
	for _, p := range all {
		if p.skip != "" {
			continue
		}
		for _, opset := range p.opsets {
			outDir := filepath.Join(dir, p.id, fmt.Sprintf("ort%d", opset))
			if err := os.MkdirAll(outDir, 0o755); err != nil {
				t.Fatal(err)
			}
			jobs = append(jobs, job{ID: fmt.Sprintf("%s@%d", p.id, opset), Model: p.models[opset], Inputs: map[string]string{p.input: inputs[p.id]}, OutDir: outDir})
		}
	}
	input, _ := json.Marshal(jobs)
	out := oracle.RunNode(t, oracle.ORTRunScript, input)
	var results []forwardResult
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("decoding the ONNX Runtime output: %v\n%s", err, out)
	}
	byID := map[string]forwardResult{}
	for _, r := range results {
		byID[r.ID] = r
	}
	return byID
}

// relativeDifference returns max|a − b| ÷ max|b| of two .npy files of
// the same number of values (OpenCV may give a different but equivalent
// shape, such as N × C for N × C × 1 × 1).
func relativeDifference(gotPath, wantPath string) (float64, error) {
	if wantPath == "" {
		return 0, fmt.Errorf("OpenCV returned no output for it")
	}
	got, err := npy.ReadFile(gotPath)
	if err != nil {
		return 0, err
	}
	want, err := npy.ReadFile(wantPath)
	if err != nil {
		return 0, err
	}
	if len(got.Data) != len(want.Data) {
		return 0, fmt.Errorf("shape %v, OpenCV's %v", got.Shape, want.Shape)
	}
	var maxDiff, maxWant float64
	for i := range want.Data {
		maxDiff = math.Max(maxDiff, math.Abs(float64(got.Data[i])-float64(want.Data[i])))
		maxWant = math.Max(maxWant, math.Abs(float64(want.Data[i])))
	}
	if maxWant == 0 {
		return 0, fmt.Errorf("OpenCV's output is all zeros, which proves little")
	}
	if math.IsNaN(maxDiff) {
		return math.Inf(1), nil
	}
	return maxDiff / maxWant, nil
}
