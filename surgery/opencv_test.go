package surgery

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
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

// These tests run the nets that the surgery operations write in OpenCV's
// Caffe importer (cv2.dnn, OpenCV 4.6 from Debian), which implements the
// layers independently of this repository. Each net runs on seeded random
// input, and its outputs are compared with those of the original net. The
// relative difference of two outputs is max|a − b| ÷ max|b|.

// cvJob is one job of oracle.OpenCVForwardScript.
type cvJob struct {
	ID         string   `json:"id"`
	Prototxt   string   `json:"prototxt"`
	Caffemodel string   `json:"caffemodel,omitempty"`
	InputShape []int    `json:"input_shape"`
	Seed       int      `json:"seed"`
	Outputs    []string `json:"outputs,omitempty"`
}

type cvOutput struct {
	Name  string `json:"name"`
	Shape []int  `json:"shape"`
	Path  string `json:"path"`
}

type cvResult struct {
	ID      string     `json:"id"`
	OK      bool       `json:"ok"`
	Error   string     `json:"error"`
	Outputs []cvOutput `json:"outputs"`
}

// output returns the output named name, failing the test when the job
// failed or lacks it.
func (r cvResult) output(t *testing.T, name string) cvOutput {
	t.Helper()
	if !r.OK {
		t.Fatalf("OpenCV failed to run %s: %s", r.ID, r.Error)
	}
	for _, o := range r.Outputs {
		if o.Name == name {
			return o
		}
	}
	t.Fatalf("OpenCV's run of %s has no output %q", r.ID, name)
	return cvOutput{}
}

// forwardOpenCV runs the jobs in one Python process and returns the
// results by job id.
func forwardOpenCV(t *testing.T, jobs []cvJob) map[string]cvResult {
	t.Helper()
	input, err := json.Marshal(jobs)
	if err != nil {
		t.Fatal(err)
	}
	stdout := oracle.RunPython(t, oracle.OpenCVForwardScript, input, t.TempDir())
	var results []cvResult
	if err := json.Unmarshal(stdout, &results); err != nil {
		t.Fatalf("decoding the output of the OpenCV forward script: %v\n%s", err, stdout)
	}
	byID := map[string]cvResult{}
	for _, r := range results {
		byID[r.ID] = r
	}
	return byID
}

// writeNetFiles writes net into dir as name.prototxt and, when it has
// weights, name.caffemodel, and returns the two paths ("" for no weights).
func writeNetFiles(t *testing.T, net *caffe.Net, dir, name string) (string, string) {
	t.Helper()
	prototxt := filepath.Join(dir, name+".prototxt")
	if err := (caffe.WriteOptions{Encoding: caffe.Text}).WriteFile(net, prototxt); err != nil {
		t.Fatalf("writing %s: %v", prototxt, err)
	}
	hasBlobs := slices.ContainsFunc(net.Param.GetLayer(), func(l *caffepb.LayerParameter) bool { return len(l.GetBlobs()) > 0 })
	if !hasBlobs {
		return prototxt, ""
	}
	caffemodel := filepath.Join(dir, name+".caffemodel")
	if err := (caffe.WriteOptions{Encoding: caffe.Binary}).WriteFile(net, caffemodel); err != nil {
		t.Fatalf("writing %s: %v", caffemodel, err)
	}
	return prototxt, caffemodel
}

// npyValues reads a little-endian float32 .npy file in C order.
func npyValues(t *testing.T, path string) []float32 {
	t.Helper()
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(file) < 12 || !bytes.HasPrefix(file, []byte("\x93NUMPY")) {
		t.Fatalf("%s is not an .npy file", path)
	}
	start, size := 10, int(binary.LittleEndian.Uint16(file[8:10]))
	if file[6] >= 2 {
		start, size = 12, int(binary.LittleEndian.Uint32(file[8:12]))
	}
	header := string(file[start : start+size])
	if !strings.Contains(header, "'descr': '<f4'") || !strings.Contains(header, "'fortran_order': False") {
		t.Fatalf("%s: header %q, want little-endian float32 in C order", path, header)
	}
	body := file[start+size:]
	values := make([]float32, len(body)/4)
	for i := range values {
		values[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
	}
	return values
}

// relativeDifference returns max|got − want| ÷ max|want|, or +Inf when the
// lengths differ or want is all zeros (a comparison that proves nothing).
func relativeDifference(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var diff, scale float64
	for i := range want {
		diff = max(diff, math.Abs(float64(got[i])-float64(want[i])))
		scale = max(scale, math.Abs(float64(want[i])))
	}
	if scale == 0 {
		return math.Inf(1)
	}
	return diff / scale
}

// compareCVOutputs checks that output name of got agrees with the output
// want of the original within tol, and returns the relative difference.
func compareCVOutputs(t *testing.T, got, want cvOutput, tol float64) float64 {
	t.Helper()
	g, w := npyValues(t, got.Path), npyValues(t, want.Path)
	if len(g) != len(w) {
		t.Errorf("output %s has shape %v, the original's %s %v", got.Name, got.Shape, want.Name, want.Shape)
		return math.Inf(1)
	}
	d := relativeDifference(g, w)
	if !(d <= tol) {
		t.Errorf("output %s differs from the original's %s by %.3g relative, more than %g", got.Name, want.Name, d, tol)
	}
	return d
}

// netSnapshot is a deep copy of a net taken before an operation, to check
// afterwards that the operation left the net as it was.
type netSnapshot struct {
	param *caffepb.NetParameter
}

func snapshotNet(net *caffe.Net) netSnapshot {
	return netSnapshot{param: proto.Clone(net.Param).(*caffepb.NetParameter)}
}

// check fails the test unless net equals the snapshot, every weight value
// bit for bit included.
func (s netSnapshot) check(t *testing.T, net *caffe.Net, op string) {
	t.Helper()
	if !proto.Equal(s.param, net.Param) {
		t.Errorf("%s modified its input net", op)
		return
	}
	for i, l := range net.Param.GetLayer() {
		for j, b := range l.GetBlobs() {
			before := s.param.GetLayer()[i].GetBlobs()[j].GetData()
			for k, v := range b.GetData() {
				if math.Float32bits(v) != math.Float32bits(before[k]) {
					t.Errorf("%s changed value %d of blob %d of layer %q from %g to %g", op, k, j, l.GetName(), before[k], v)
					return
				}
			}
		}
	}
}

// readCorpusPair reads a corpus prototxt and, when caffemodel is not
// empty, attaches the weights of that corpus caffemodel to it.
func readCorpusPair(t *testing.T, prototxt, caffemodel string) *caffe.Net {
	t.Helper()
	net, err := caffe.ReadFile(corpus.Path(t, prototxt))
	if err != nil {
		t.Fatal(err)
	}
	if caffemodel == "" {
		return net
	}
	weights, err := caffe.ReadFile(corpus.Path(t, caffemodel))
	if err != nil {
		t.Fatal(err)
	}
	attached, _, err := caffe.AttachWeights(net, weights)
	if err != nil {
		t.Fatalf("attaching %s to %s: %v", caffemodel, prototxt, err)
	}
	return attached
}

// comparedLayers returns the layers whose outputs the fc2conv check
// compares: the producers of the net's outputs and of the input of every
// Softmax that produces an output, because a saturated Softmax hides
// errors in its input.
func comparedLayers(t *testing.T, net *caffe.Net, opts graph.Options) []string {
	t.Helper()
	g := graph.Build(net, opts)
	g.Infer()
	var names []string
	for _, v := range g.Outputs() {
		names = append(names, v.Producer.Name())
		if v.Producer.Type() == "Softmax" {
			if in := v.Producer.Bottoms[0]; in.Producer != nil {
				names = append(names, in.Producer.Name())
			}
		}
	}
	return names
}

// outputShapes returns the inferred shape of each output of net by the
// name of the layer that produces it.
func outputShapes(net *caffe.Net) map[string][]int {
	g := graph.Build(net, graph.Options{})
	g.Infer()
	out := map[string][]int{}
	for _, v := range g.Outputs() {
		out[v.Producer.Name()] = v.Shape
	}
	return out
}

// fcModel is a real caffemodel of the corpus with an InnerProduct layer.
type fcModel struct {
	name                 string
	prototxt, caffemodel string
	input                []int // batch 1 at the declared size
	// refused pins the layers fc2conv leaves as they are, with a part of
	// the reason; nil means every InnerProduct converts.
	refused map[string]string
}

var fcModels = []fcModel{
	{name: "lenet", prototxt: "caffemodel/lenet/lenet.prototxt", caffemodel: "caffemodel/lenet/lenet_iter_10000.caffemodel", input: []int{1, 1, 28, 28}},
	{name: "cifar10_quick", prototxt: "prototxt/bvlc/cifar10_quick.prototxt", caffemodel: "caffemodel/cifar10_quick/cifar10_quick_iter_5000.caffemodel", input: []int{1, 3, 32, 32}},
	{name: "cifar10_full", prototxt: "caffemodel/cifar10_full/cifar10_full.prototxt", caffemodel: "caffemodel/cifar10_full/cifar10_full_iter_70000.caffemodel", input: []int{1, 3, 32, 32}},
	{name: "mtcnn_det2", prototxt: "caffemodel/mtcnn/det2.prototxt", caffemodel: "caffemodel/mtcnn/det2.caffemodel", input: []int{1, 3, 24, 24}},
	{name: "mtcnn_det3", prototxt: "caffemodel/mtcnn/det3.prototxt", caffemodel: "caffemodel/mtcnn/det3.caffemodel", input: []int{1, 3, 48, 48}},
	// fc4 reads a Concat on axis 1 of five 64×3×3 convolution outputs:
	// one 320×3×3 volume in C×H×W memory order, so it converts exactly
	// into a 3×3 convolution, and fc4_1 to fc5_5 into 1×1 ones.
	{name: "mtcnn_det4", prototxt: "caffemodel/mtcnn/det4.prototxt", caffemodel: "caffemodel/mtcnn/det4.caffemodel", input: []int{1, 15, 24, 24}},
	{name: "hyperlpr_character", prototxt: "caffemodel/hyperlpr/CharacterRecognization.prototxt", caffemodel: "caffemodel/hyperlpr/CharacterRecognization.caffemodel", input: []int{1, 1, 30, 14}},
	{name: "hyperlpr_finemapping", prototxt: "caffemodel/hyperlpr/HorizonalFinemapping.prototxt", caffemodel: "caffemodel/hyperlpr/HorizonalFinemapping_v2020-07.caffemodel", input: []int{1, 3, 16, 66}},
	{name: "hyperlpr_segmentation", prototxt: "caffemodel/hyperlpr/Segmentation.prototxt", caffemodel: "caffemodel/hyperlpr/Segmentation.caffemodel", input: []int{1, 1, 22, 22}},
	// fc1 reads a Concat of two Flatten outputs, which is no C×H×W
	// volume, and fc2 reads fc1's vector, so nothing converts.
	{name: "deep_landmark", prototxt: "caffemodel/deep_landmark/1_F.prototxt", caffemodel: "caffemodel/deep_landmark/1_F.caffemodel", input: []int{1, 1, 39, 39},
		refused: map[string]string{
			"fc1": `its input "faker" is a Concat of 2 blobs`,
			"fc2": `its input "fc1" is a vector from layer "relu_fc1", which stays as it is`,
		}},
}

// TestFCToConvOpenCVRealModels converts every real corpus caffemodel with
// an InnerProduct layer. At the original size, OpenCV must compute the
// original's outputs (and the input of a final Softmax) from the
// converted net. At twice the size, the converted net's output maps must
// have the shapes that shape inference predicts.
func TestFCToConvOpenCVRealModels(t *testing.T) {
	oracle.Python(t)
	dir := t.TempDir()
	type prepared struct {
		model    fcModel
		compared []string
		shapes2x map[string][]int
	}
	var jobs []cvJob
	var ready []prepared
	for i, m := range fcModels {
		t.Run("convert/"+m.name, func(t *testing.T) {
			net := readCorpusPair(t, m.prototxt, m.caffemodel)
			before := snapshotNet(net)
			opts := graph.Options{Inputs: map[string][]int{"": m.input}}
			converted, report, err := FCToConv(net, FCToConvOptions{Graph: opts})
			before.check(t, net, "FCToConv")
			if m.refused != nil {
				checkRefusedLayers(t, report, err, m.refused)
				return
			}
			if err != nil {
				t.Fatalf("FCToConv: %v\n%v", err, report)
			}
			if len(report.Refused) > 0 {
				t.Errorf("FCToConv left InnerProduct layers as they were:\n%v", report)
			}
			if _, _, err := FCToConv(converted, FCToConvOptions{Graph: opts}); !errors.Is(err, ErrNothingToDo) {
				t.Errorf("FCToConv applied to its own result returns %v, want an error wrapping ErrNothingToDo", err)
			}

			big := slices.Clone(m.input)
			big[2], big[3] = 2*big[2], 2*big[3]
			scaled, _, err := FCToConv(net, FCToConvOptions{Graph: opts, NewInputs: map[string][]int{"": big}})
			if err != nil {
				t.Fatalf("FCToConv with the input %v: %v", big, err)
			}
			before.check(t, net, "FCToConv")

			pairDir := filepath.Join(dir, m.name)
			if err := os.Mkdir(pairDir, 0o755); err != nil {
				t.Fatal(err)
			}
			convProto, convModel := writeNetFiles(t, converted, pairDir, "converted")
			bigProto, bigModel := writeNetFiles(t, scaled, pairDir, "converted_2x")
			compared := comparedLayers(t, net, opts)
			jobs = append(jobs,
				cvJob{ID: m.name + "/original", Prototxt: corpus.Path(t, m.prototxt), Caffemodel: corpus.Path(t, m.caffemodel), InputShape: m.input, Seed: i + 1, Outputs: compared},
				cvJob{ID: m.name + "/converted", Prototxt: convProto, Caffemodel: convModel, InputShape: m.input, Seed: i + 1, Outputs: compared},
				cvJob{ID: m.name + "/2x", Prototxt: bigProto, Caffemodel: bigModel, InputShape: big, Seed: i + 1},
			)
			ready = append(ready, prepared{m, compared, outputShapes(scaled)})
		})
	}
	if len(jobs) == 0 {
		return
	}
	results := forwardOpenCV(t, jobs)

	for _, p := range ready {
		t.Run("compare/"+p.model.name, func(t *testing.T) {
			original, converted := results[p.model.name+"/original"], results[p.model.name+"/converted"]
			for _, name := range p.compared {
				want, got := original.output(t, name), converted.output(t, name)
				d := compareCVOutputs(t, got, want, 1e-5)
				t.Logf("%s: relative difference %.3g, shapes %v and %v", name, d, got.Shape, want.Shape)
			}

			scaled := results[p.model.name+"/2x"]
			if !scaled.OK {
				t.Fatalf("OpenCV cannot run the converted net at twice the input size: %s", scaled.Error)
			}
			for _, o := range scaled.Outputs {
				t.Logf("at twice the input size: %s %v", o.Name, o.Shape)
				want, ok := p.shapes2x[o.Name]
				if !ok {
					t.Errorf("OpenCV outputs %s, which shape inference does not list as an output", o.Name)
					continue
				}
				if !slices.Equal(o.Shape, want) {
					t.Errorf("at twice the input size, OpenCV's %s has shape %v, shape inference predicts %v", o.Name, o.Shape, want)
				}
			}
			if len(scaled.Outputs) != len(p.shapes2x) {
				t.Errorf("OpenCV gives %d outputs at twice the input size, shape inference %d", len(scaled.Outputs), len(p.shapes2x))
			}
		})
	}
}

// checkRefusedLayers checks that FCToConv converted nothing and left
// exactly the pinned layers, each for a reason containing the pinned text.
func checkRefusedLayers(t *testing.T, report *Report, err error, want map[string]string) {
	t.Helper()
	if !errors.Is(err, ErrNothingToDo) {
		t.Fatalf("FCToConv returns %v, want an error wrapping ErrNothingToDo", err)
	}
	if report == nil {
		t.Fatal("FCToConv returns no report with its error")
	}
	got := map[string]string{}
	for _, c := range report.Refused {
		got[c.Layer] = c.Detail
	}
	if len(got) != len(want) {
		t.Errorf("FCToConv leaves %d layers as they were, want %d:\n%v", len(got), len(want), report)
	}
	for layer, reason := range want {
		if !strings.Contains(got[layer], reason) {
			t.Errorf("layer %s: reason %q, want one containing %q", layer, got[layer], reason)
		}
	}
}

// setMSRAFillers gives every Convolution and InnerProduct of net msra
// weights: deploy nets set no fillers, so InitWeights would make every
// weight 0 and every output constant.
func setMSRAFillers(net *caffe.Net) {
	for _, l := range net.Param.GetLayer() {
		msra := &caffepb.FillerParameter{Type: proto.String("msra")}
		if p := l.GetConvolutionParam(); p != nil {
			p.WeightFiller = msra
		}
		if p := l.GetInnerProductParam(); p != nil {
			p.WeightFiller = msra
		}
	}
}

// TestOpenCVCaffeNetSurgery runs CaffeNet's deploy net with weights from
// InitWeights in OpenCV: fc2conv at 227×227 computes the original fc8,
// fc2conv at 451×451 gives an 8×8 map of probabilities, and Truncate at
// fc7 computes the original's post-ReLU fc7 (the output of relu7).
func TestOpenCVCaffeNetSurgery(t *testing.T) {
	oracle.Python(t)
	dir := t.TempDir()
	prototxt := corpus.Path(t, "prototxt", "bvlc", "bvlc_reference_caffenet_deploy.prototxt")
	net, err := caffe.ReadFile(prototxt)
	if err != nil {
		t.Fatal(err)
	}
	setMSRAFillers(net)
	net, _, err = InitWeights(net, InitOptions{Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	_, weights := writeNetFiles(t, net, dir, "original")
	before := snapshotNet(net)
	input := []int{1, 3, 227, 227}
	opts := graph.Options{Inputs: map[string][]int{"": input}}

	converted, _, err := FCToConv(net, FCToConvOptions{Graph: opts})
	if err != nil {
		t.Fatalf("FCToConv: %v", err)
	}
	scoreMap, report, err := FCToConv(net, FCToConvOptions{Graph: opts, NewInputs: map[string][]int{"": {1, 3, 451, 451}}})
	if err != nil {
		t.Fatalf("FCToConv with the input 1×3×451×451: %v", err)
	}
	if !slices.Contains(report.Outputs, "prob 1×1000×8×8") {
		t.Errorf("FCToConv reports the outputs %q, want prob 1×1000×8×8", report.Outputs)
	}
	truncated, _, err := Truncate(net, "fc7", opts)
	if err != nil {
		t.Fatalf("Truncate at fc7: %v", err)
	}
	before.check(t, net, "FCToConv and Truncate")
	if _, _, err := FCToConv(converted, FCToConvOptions{Graph: opts}); !errors.Is(err, ErrNothingToDo) {
		t.Errorf("FCToConv applied to its own result returns %v, want an error wrapping ErrNothingToDo", err)
	}
	again, _, err := Truncate(truncated, "fc7", opts)
	switch {
	case err != nil:
		t.Errorf("Truncate at fc7 of its own result: %v", err)
	case !proto.Equal(again.Param, truncated.Param):
		t.Errorf("Truncate at fc7 of its own result changes the net")
	}

	convProto, convWeights := writeNetFiles(t, converted, dir, "converted")
	// The score-map net differs from the converted one only in its input
	// size, so it runs with the same weights.
	mapProto := filepath.Join(dir, "score_map.prototxt")
	if err := (caffe.WriteOptions{Encoding: caffe.Text}).WriteFile(scoreMap, mapProto); err != nil {
		t.Fatal(err)
	}
	truncProto, truncWeights := writeNetFiles(t, truncated, dir, "truncated")
	results := forwardOpenCV(t, []cvJob{
		{ID: "original", Prototxt: prototxt, Caffemodel: weights, InputShape: input, Seed: 3, Outputs: []string{"fc8", "relu7"}},
		{ID: "converted", Prototxt: convProto, Caffemodel: convWeights, InputShape: input, Seed: 3, Outputs: []string{"fc8"}},
		{ID: "score_map", Prototxt: mapProto, Caffemodel: convWeights, InputShape: []int{1, 3, 451, 451}, Seed: 3},
		{ID: "truncated", Prototxt: truncProto, Caffemodel: truncWeights, InputShape: input, Seed: 3},
	})

	t.Run("fc2conv_227", func(t *testing.T) {
		d := compareCVOutputs(t, results["converted"].output(t, "fc8"), results["original"].output(t, "fc8"), 1e-5)
		t.Logf("fc8: relative difference %.3g", d)
	})
	t.Run("fc2conv_451", func(t *testing.T) {
		prob := results["score_map"].output(t, "prob")
		if !slices.Equal(prob.Shape, []int{1, 1000, 8, 8}) {
			t.Errorf("OpenCV's prob has shape %v, want [1 1000 8 8]", prob.Shape)
		}
	})
	t.Run("truncate_fc7", func(t *testing.T) {
		checkTruncatedOutput(t, truncated, "fc7", results["truncated"], results["original"].output(t, "relu7"))
	})
}

// TestTruncateOpenCVLeNet cuts the real LeNet at ip1 and checks in OpenCV
// that the result computes the original's post-ReLU ip1 (the output of
// relu1).
func TestTruncateOpenCVLeNet(t *testing.T) {
	oracle.Python(t)
	net := readCorpusPair(t, "caffemodel/lenet/lenet.prototxt", "caffemodel/lenet/lenet_iter_10000.caffemodel")
	before := snapshotNet(net)
	input := []int{1, 1, 28, 28}
	opts := graph.Options{Inputs: map[string][]int{"": input}}
	truncated, _, err := Truncate(net, "ip1", opts)
	if err != nil {
		t.Fatalf("Truncate at ip1: %v", err)
	}
	before.check(t, net, "Truncate")
	again, _, err := Truncate(truncated, "ip1", opts)
	switch {
	case err != nil:
		t.Errorf("Truncate at ip1 of its own result: %v", err)
	case !proto.Equal(again.Param, truncated.Param):
		t.Errorf("Truncate at ip1 of its own result changes the net")
	}

	prototxt, weights := writeNetFiles(t, truncated, t.TempDir(), "truncated")
	results := forwardOpenCV(t, []cvJob{
		{ID: "original", Prototxt: corpus.Path(t, "caffemodel/lenet/lenet.prototxt"), Caffemodel: corpus.Path(t, "caffemodel/lenet/lenet_iter_10000.caffemodel"), InputShape: input, Seed: 5, Outputs: []string{"relu1"}},
		{ID: "truncated", Prototxt: prototxt, Caffemodel: weights, InputShape: input, Seed: 5},
	})
	checkTruncatedOutput(t, truncated, "ip1", results["truncated"], results["original"].output(t, "relu1"))
}

// checkTruncatedOutput checks that OpenCV's only output of the net
// truncated at blob (the outputs it finds unconnected) is the layer that
// writes the blob's final value, and that it agrees with want within
// 1e-6. OpenCV names outputs by layer, not by blob: asking it for the
// output of layer fc7 returns the value before relu7 writes fc7 in place.
func checkTruncatedOutput(t *testing.T, truncated *caffe.Net, blob string, got cvResult, want cvOutput) {
	t.Helper()
	if !got.OK {
		t.Fatalf("OpenCV cannot run the truncated net: %s", got.Error)
	}
	g := graph.Build(truncated, graph.Options{})
	final := g.Final[blob]
	if final == nil || final.Producer == nil {
		t.Fatalf("the truncated net does not produce %s", blob)
	}
	if len(got.Outputs) != 1 || got.Outputs[0].Name != final.Producer.Name() {
		t.Fatalf("OpenCV finds the outputs %+v in the truncated net, want only %s, which writes the final %s", got.Outputs, final.Producer.Name(), blob)
	}
	d := compareCVOutputs(t, got.Outputs[0], want, 1e-6)
	t.Logf("%s (output of %s) against the original's %s: relative difference %.3g", blob, final.Producer.Name(), want.Name, d)
}

// perturbNormalization gives every BatchNorm of net a moving-average
// factor between 0.5 and 2, with the stored sums scaled to match so that
// the statistics stay those InitWeights drew. Every Scale gets a random γ
// in [0.5, 1.5) and β in [−0.2, 0.2), so that folding has non-trivial
// values to fold. The Data slices are replaced, not written.
func perturbNormalization(net *caffe.Net, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0))
	for _, l := range net.Param.GetLayer() {
		blobs := l.GetBlobs()
		switch l.GetType() {
		case "BatchNorm":
			factor := 0.5 + 1.5*rng.Float64()
			for i := range 2 {
				data := make([]float32, len(blobs[i].GetData()))
				for j, v := range blobs[i].GetData() {
					data[j] = float32(float64(v) * factor)
				}
				blobs[i].Data = data
			}
			blobs[2].Data = []float32{float32(factor)}
		case "Scale":
			gamma := make([]float32, len(blobs[0].GetData()))
			for j := range gamma {
				gamma[j] = float32(0.5 + rng.Float64())
			}
			blobs[0].Data = gamma
			if len(blobs) > 1 {
				beta := make([]float32, len(blobs[1].GetData()))
				for j := range beta {
					beta[j] = float32(0.4*rng.Float64() - 0.2)
				}
				blobs[1].Data = beta
			}
		}
	}
}

// foldModel is a corpus net with BatchNorm layers for the fold-bn check.
type foldModel struct {
	name     string
	prototxt string
	// caffemodel holds the net's trained weights; when it is empty the
	// weights come from InitWeights with perturbNormalization.
	caffemodel string
	input      []int
	outputs    []string // layers whose outputs are compared
	folded     int      // BatchNorm layers folded
}

var foldModels = []foldModel{
	// The one real caffemodel with a BatchNorm: ResNet-50's first block.
	{name: "htshinichi_test", prototxt: "caffemodel/htshinichi_test/test.prototxt", caffemodel: "caffemodel/htshinichi_test/test.caffemodel", input: []int{1, 3, 224, 224}, outputs: []string{"conv1_relu", "pool1"}, folded: 1},
	{name: "resnet50", prototxt: "prototxt/resnet/ResNet-50-deploy.prototxt", input: []int{1, 3, 224, 224}, outputs: []string{"fc1000", "prob"}, folded: 53},
	{name: "mobilenet_v1", prototxt: "prototxt/mobilenet/mobilenet_v1_deploy.prototxt", input: []int{1, 3, 224, 224}, outputs: []string{"fc7", "prob"}, folded: 27},
	// SSD's DetectionOutput sorts and thresholds, so the heads before it
	// are compared.
	{name: "mobilenet_ssd", prototxt: "prototxt/mobilenet_ssd/MobileNetSSD_deploy_bn.prototxt", input: []int{1, 3, 300, 300}, outputs: []string{"mbox_loc", "mbox_conf"}, folded: 35},
}

// TestFoldBatchNormOpenCV folds the BatchNorm and Scale layers of nets
// with weights from InitWeights and non-trivial statistics, and checks in
// OpenCV that the folded nets compute the original outputs within 1e-4.
func TestFoldBatchNormOpenCV(t *testing.T) {
	oracle.Python(t)
	dir := t.TempDir()
	var jobs []cvJob
	var ready []foldModel
	for i, m := range foldModels {
		t.Run("fold/"+m.name, func(t *testing.T) {
			net := readCorpusPair(t, m.prototxt, m.caffemodel)
			if m.caffemodel == "" {
				setMSRAFillers(net)
				var err error
				net, _, err = InitWeights(net, InitOptions{Seed: uint64(20 + i)})
				if err != nil {
					t.Fatal(err)
				}
				perturbNormalization(net, uint64(30+i))
			}
			before := snapshotNet(net)
			folded, report, err := FoldBatchNorm(net, graph.Options{})
			if err != nil {
				t.Fatalf("FoldBatchNorm: %v\n%v", err, report)
			}
			before.check(t, net, "FoldBatchNorm")
			if len(report.Refused) > 0 {
				t.Errorf("FoldBatchNorm leaves layers as they were:\n%v", report)
			}
			if got := countType(folded, "BatchNorm") + countType(folded, "Scale"); got != 0 {
				t.Errorf("the folded net still has %d BatchNorm and Scale layers", got)
			}
			if len(report.Changes) != m.folded {
				t.Errorf("FoldBatchNorm folds %d BatchNorm layers, want %d", len(report.Changes), m.folded)
			}
			if _, _, err := FoldBatchNorm(folded, graph.Options{}); !errors.Is(err, ErrNothingToDo) {
				t.Errorf("FoldBatchNorm applied to its own result returns %v, want an error wrapping ErrNothingToDo", err)
			}

			pairDir := filepath.Join(dir, m.name)
			if err := os.Mkdir(pairDir, 0o755); err != nil {
				t.Fatal(err)
			}
			origProto, origWeights := writeNetFiles(t, net, pairDir, "original")
			foldProto, foldWeights := writeNetFiles(t, folded, pairDir, "folded")
			jobs = append(jobs,
				cvJob{ID: m.name + "/original", Prototxt: origProto, Caffemodel: origWeights, InputShape: m.input, Seed: 40 + i, Outputs: m.outputs},
				cvJob{ID: m.name + "/folded", Prototxt: foldProto, Caffemodel: foldWeights, InputShape: m.input, Seed: 40 + i, Outputs: m.outputs},
			)
			ready = append(ready, m)
		})
	}
	if len(jobs) == 0 {
		return
	}
	results := forwardOpenCV(t, jobs)
	for _, m := range ready {
		t.Run("compare/"+m.name, func(t *testing.T) {
			for _, name := range m.outputs {
				want, got := results[m.name+"/original"].output(t, name), results[m.name+"/folded"].output(t, name)
				d := compareCVOutputs(t, got, want, 1e-4)
				t.Logf("%s: relative difference %.3g", name, d)
			}
		})
	}
}

// TestFoldBatchNormOpenCVMergedSSD pins the result on MobileNet-SSD's
// deploy net whose BatchNorm layers were already merged: nothing to fold.
func TestFoldBatchNormOpenCVMergedSSD(t *testing.T) {
	net, err := caffe.ReadFile(corpus.Path(t, "prototxt/mobilenet_ssd/MobileNetSSD_deploy_merged_bn.prototxt"))
	if err != nil {
		t.Fatal(err)
	}
	before := snapshotNet(net)
	out, report, err := FoldBatchNorm(net, graph.Options{})
	before.check(t, net, "FoldBatchNorm")
	if !errors.Is(err, ErrNothingToDo) || out != nil {
		t.Fatalf("FoldBatchNorm returns (%v, %v), want no net and an error wrapping ErrNothingToDo", out, err)
	}
	if !strings.Contains(err.Error(), "no BatchNorm layer") {
		t.Errorf("error %q does not say that the net has no BatchNorm layer", err)
	}
	if report == nil || len(report.Changes) != 0 || len(report.Refused) != 0 {
		t.Errorf("report %v, want one with no changes and no refused layers", report)
	}
}

func countType(net *caffe.Net, layerType string) int {
	n := 0
	for _, l := range net.Param.GetLayer() {
		if l.GetType() == layerType {
			n++
		}
	}
	return n
}
