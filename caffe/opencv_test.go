package caffe

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tlsurgery/tlsurgery/internal/corpus"
	"github.com/tlsurgery/tlsurgery/internal/oracle"
)

// These tests use OpenCV's Caffe importer (cv2.dnn.readNetFromCaffe,
// OpenCV 4.6 from Debian) as an independent reader of the files tlsurgery
// writes. OpenCV parses text with its own copy of caffe.proto and runs
// Caffe's upgrade code for V0 and V1 nets itself.

type openCVLoadJob struct {
	ID         string `json:"id"`
	Prototxt   string `json:"prototxt"`
	Caffemodel string `json:"caffemodel,omitempty"`
}

type openCVLoadResult struct {
	ID     string   `json:"id"`
	OK     bool     `json:"ok"`
	Error  string   `json:"error"`
	Layers []string `json:"layers"`
}

type openCVForwardJob struct {
	ID         string   `json:"id"`
	Prototxt   string   `json:"prototxt"`
	Caffemodel string   `json:"caffemodel"`
	InputShape []int    `json:"input_shape"`
	InputName  string   `json:"input_name,omitempty"`
	Seed       int      `json:"seed"`
	Outputs    []string `json:"outputs,omitempty"`
}

type openCVOutput struct {
	Name  string `json:"name"`
	Shape []int  `json:"shape"`
	Path  string `json:"path"`
}

type openCVForwardResult struct {
	ID      string         `json:"id"`
	OK      bool           `json:"ok"`
	Error   string         `json:"error"`
	Outputs []openCVOutput `json:"outputs"`
}

// loadInOpenCV loads every job's files in one Python process and returns
// the results by job id.
func loadInOpenCV(t *testing.T, jobs []openCVLoadJob) map[string]openCVLoadResult {
	t.Helper()
	input, err := json.Marshal(jobs)
	if err != nil {
		t.Fatal(err)
	}
	var results []openCVLoadResult
	out := oracle.RunPython(t, oracle.OpenCVLoadScript, input)
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("decoding the output of the OpenCV load script: %v\n%s", err, out)
	}
	byID := map[string]openCVLoadResult{}
	for _, r := range results {
		byID[r.ID] = r
	}
	return byID
}

// forwardInOpenCV runs every job in one Python process, with the output
// .npy files in outDir, and returns the results by job id.
func forwardInOpenCV(t *testing.T, jobs []openCVForwardJob, outDir string) map[string]openCVForwardResult {
	t.Helper()
	input, err := json.Marshal(jobs)
	if err != nil {
		t.Fatal(err)
	}
	var results []openCVForwardResult
	out := oracle.RunPython(t, oracle.OpenCVForwardScript, input, outDir)
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("decoding the output of the OpenCV forward script: %v\n%s", err, out)
	}
	byID := map[string]openCVForwardResult{}
	for _, r := range results {
		byID[r.ID] = r
	}
	return byID
}

// openCVReason shortens an error of the OpenCV scripts to one line: the
// libprotobuf parse message when there is one, else OpenCV's message
// without its source location.
func openCVReason(msg string) string {
	for _, line := range strings.Split(msg, "\n") {
		if _, after, ok := strings.Cut(line, "Error parsing text-format "); ok {
			return after
		}
	}
	line, _, _ := strings.Cut(strings.TrimSpace(msg), "\n")
	if _, after, ok := strings.Cut(line, " error: "); ok {
		return after
	}
	return line
}

// fileID turns a corpus-relative path into a file name for t.TempDir().
func fileID(rel string) string {
	return strings.ReplaceAll(rel, "/", "__")
}

// relCorpus returns path relative to the corpus folder.
func relCorpus(t *testing.T, path string) string {
	rel, err := filepath.Rel(corpus.Path(t), path)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.ToSlash(rel)
}

// openCVOriginal returns the path OpenCV reads for a corpus prototxt: the
// file itself, or for DeepLab's shell templates a copy in dir with
// ${NUM_LABELS} set to 21, the text readCorpusNet gives tlsurgery.
func openCVOriginal(t *testing.T, path, dir string) string {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(src, []byte("${NUM_LABELS}")) {
		return path
	}
	copyPath := filepath.Join(dir, "original__"+fileID(relCorpus(t, path)))
	if err := os.WriteFile(copyPath, bytes.ReplaceAll(src, []byte("${NUM_LABELS}"), []byte("21")), 0o644); err != nil {
		t.Fatal(err)
	}
	return copyPath
}

// writeUpgradedText reads a corpus prototxt with tlsurgery and writes it
// to dst as current-format text.
func writeUpgradedText(t *testing.T, path, dst string) {
	t.Helper()
	net := readCorpusNet(t, path, ReadOptions{})
	if err := (WriteOptions{Encoding: Text}).WriteFile(net, dst); err != nil {
		t.Fatalf("writing %s as text: %v", path, err)
	}
}

// TestOpenCVLoadsUpgradedNets checks that OpenCV loads tlsurgery's
// current-format text of every corpus prototxt whose original it loads,
// and finds the same layers in both.
func TestOpenCVLoadsUpgradedNets(t *testing.T) {
	oracle.Python(t)
	dir := t.TempDir()

	type netFiles struct{ rel, original, upgraded string }
	var nets []netFiles
	t.Run("write", func(t *testing.T) {
		for _, path := range corpus.Walk(t, ".prototxt") {
			rel := relCorpus(t, path)
			t.Run(rel, func(t *testing.T) {
				upgraded := filepath.Join(dir, fileID(rel))
				writeUpgradedText(t, path, upgraded)
				nets = append(nets, netFiles{rel, openCVOriginal(t, path, dir), upgraded})
			})
		}
	})

	var jobs []openCVLoadJob
	for _, n := range nets {
		jobs = append(jobs, openCVLoadJob{ID: "original:" + n.rel, Prototxt: n.original})
		jobs = append(jobs, openCVLoadJob{ID: "upgraded:" + n.rel, Prototxt: n.upgraded})
	}
	results := loadInOpenCV(t, jobs)

	loaded := 0
	for _, n := range nets {
		t.Run(n.rel, func(t *testing.T) {
			original := results["original:"+n.rel]
			upgraded := results["upgraded:"+n.rel]
			if !original.OK {
				status := "It rejects the upgraded text too."
				if upgraded.OK {
					status = "It loads the upgraded text."
				}
				t.Logf("OpenCV cannot load the original: %s. %s", strings.TrimSuffix(openCVReason(original.Error), "."), status)
				return
			}
			loaded++
			if !upgraded.OK {
				t.Fatalf("OpenCV loads the original but not tlsurgery's upgraded text %s: %s", n.upgraded, upgraded.Error)
			}
			// OpenCV's importer (modules/dnn/src/caffe/caffe_importer.cpp,
			// read at opencv/opencv 01048e5) makes up some names. It
			// appends "_1", "_2", ... to a repeated layer name, and adds
			// "<name>/mvn" before a BatchNorm layer with use_global_stats
			// false and "<name>/scale" for an Axpy layer. These depend only
			// on the names, order and parameters of the layers, which the
			// upgrade keeps, so the lists must be equal, order included.
			if !slices.Equal(upgraded.Layers, original.Layers) {
				t.Errorf("OpenCV finds different layers in the upgraded text:\nupgraded: %q\noriginal: %q", upgraded.Layers, original.Layers)
			}
		})
	}
	t.Logf("OpenCV loads %d of %d corpus prototxt originals", loaded, len(nets))
}

// v0Nets lists every V0 net in prototxt/bvlc_history and
// prototxt/caffe_test_upgrade_proto. train marks nets with data and loss
// layers. OpenCV 4.6 loads those as well, because it creates each layer
// only when the net first runs forward, so it does not reject data or
// loss layer types it lacks at load time.
var v0Nets = []struct {
	file  string
	train bool
}{
	{"prototxt/bvlc_history/v0_cifar10_full.prototxt", false},
	{"prototxt/bvlc_history/v0_cifar10_quick.prototxt", false},
	{"prototxt/bvlc_history/v0_imagenet_caffenet_with_padding_layers.prototxt", false},
	{"prototxt/bvlc_history/v0_imagenet_deploy_caffenet.prototxt", false},
	{"prototxt/bvlc_history/v0_imagenet_train_caffenet.prototxt", true},
	{"prototxt/bvlc_history/v0_lenet.prototxt", false},
	{"prototxt/caffe_test_upgrade_proto/NetUpgradeTest_TestAllParams__input_proto.prototxt", true},
	{"prototxt/caffe_test_upgrade_proto/NetUpgradeTest_TestImageNet__v0_proto.prototxt", true},
	{"prototxt/caffe_test_upgrade_proto/NetUpgradeTest_TestSimple__v0_proto.prototxt", true},
	{"prototxt/caffe_test_upgrade_proto/PaddingLayerUpgradeTest_TestImageNet__expected_output_proto.prototxt", true},
	{"prototxt/caffe_test_upgrade_proto/PaddingLayerUpgradeTest_TestImageNet__input_proto.prototxt", true},
	{"prototxt/caffe_test_upgrade_proto/PaddingLayerUpgradeTest_TestSimple__expected_output_proto.prototxt", true},
	{"prototxt/caffe_test_upgrade_proto/PaddingLayerUpgradeTest_TestSimple__input_proto.prototxt", true},
	{"prototxt/caffe_test_upgrade_proto/PaddingLayerUpgradeTest_TestTwoTops__expected_output_proto.prototxt", true},
	{"prototxt/caffe_test_upgrade_proto/PaddingLayerUpgradeTest_TestTwoTops__input_proto.prototxt", true},
}

// TestOpenCVLoadsUpgradedV0Nets checks that OpenCV loads tlsurgery's
// current-format text of every V0 net, with the layers OpenCV finds when
// it upgrades the original itself.
func TestOpenCVLoadsUpgradedV0Nets(t *testing.T) {
	oracle.Python(t)
	dir := t.TempDir()

	var found []string
	candidates := append(corpus.Glob(t, "prototxt/bvlc_history/*.prototxt"), corpus.Glob(t, "prototxt/caffe_test_upgrade_proto/*.prototxt")...)
	for _, path := range candidates {
		if readCorpusNet(t, path, ReadOptions{}).Generation == V0 {
			found = append(found, relCorpus(t, path))
		}
	}
	var listed []string
	for _, n := range v0Nets {
		listed = append(listed, n.file)
	}
	slices.Sort(found)
	if !slices.Equal(found, listed) {
		t.Errorf("the V0 nets in the corpus differ from v0Nets; update the table:\nfound:  %q\nlisted: %q", found, listed)
	}

	var jobs []openCVLoadJob
	for _, n := range v0Nets {
		path := corpus.Path(t, n.file)
		upgraded := filepath.Join(dir, fileID(n.file))
		writeUpgradedText(t, path, upgraded)
		jobs = append(jobs, openCVLoadJob{ID: "original:" + n.file, Prototxt: path})
		jobs = append(jobs, openCVLoadJob{ID: "upgraded:" + n.file, Prototxt: upgraded})
	}
	results := loadInOpenCV(t, jobs)

	for _, n := range v0Nets {
		t.Run(n.file, func(t *testing.T) {
			original := results["original:"+n.file]
			upgraded := results["upgraded:"+n.file]
			kind := "deploy"
			if n.train {
				kind = "train"
			}
			if !upgraded.OK {
				t.Fatalf("OpenCV cannot load tlsurgery's upgraded text of this %s net: %s", kind, upgraded.Error)
			}
			if len(upgraded.Layers) == 0 {
				t.Errorf("OpenCV finds no layers in the upgraded text")
			}
			if !original.OK {
				t.Fatalf("OpenCV cannot load the original %s net, which it loaded when v0Nets was written: %s", kind, original.Error)
			}
			if !slices.Equal(upgraded.Layers, original.Layers) {
				t.Errorf("OpenCV finds different layers in the upgraded text:\nupgraded: %q\noriginal: %q", upgraded.Layers, original.Layers)
			}
		})
	}
}

// openCVPair is a caffemodel with the prototxt it runs with, for
// TestOpenCVForwardRewrittenWeights.
type openCVPair struct {
	caffemodel string // relative to the corpus folder
	prototxt   string // relative to the corpus folder
	input      []int  // N, C, H, W of the random input
	inputFrom  string // where input comes from

	// inputName names the input blob for setInput. Empty means the net's
	// first input.
	inputName string
	// outputs lists the layers whose outputs are compared. Nil means the
	// layers OpenCV finds unconnected.
	outputs []string
	// dropFields lists text fields deleted from the original prototxt
	// before both runs, because OpenCV 4.6's schema lacks them.
	dropFields []string
	// rejected is part of OpenCV's error for a pair OpenCV cannot run,
	// or "" for a pair that must run.
	rejected string
}

// openCVPairs pairs every protobuf caffemodel in the corpus with the
// prototxt published with it. The HDF5 snapshot is left out because it is
// not protobuf. The last three pairs run V0 prototxts with the weights of
// the same nets, to check the V0 upgrade numerically.
var openCVPairs = []openCVPair{
	{caffemodel: "caffemodel/lenet/lenet_iter_10000.caffemodel", prototxt: "caffemodel/lenet/lenet.prototxt", input: []int{64, 1, 28, 28}, inputFrom: "Input layer"},
	{caffemodel: "caffemodel/lenet_v1/lenet_iter_10000", prototxt: "caffemodel/lenet_v1/lenet.prototxt", input: []int{64, 1, 28, 28}, inputFrom: "input_dim"},
	// OpenCV ignores include { phase } and rejects the TRAIN and TEST Data
	// layers as two producers of "data". OpenCV has no Data layer either,
	// so no train net runs in it.
	{caffemodel: "caffemodel/lenet_ip1_5/lenet_iter_10000.caffemodel", prototxt: "caffemodel/lenet_ip1_5/lenet_train_test.prototxt", input: []int{100, 1, 28, 28}, inputFrom: "TEST Data layer: batch_size 100 of 1x28x28 MNIST", rejected: "Duplicate blobs produced by multiple sources"},
	{caffemodel: "caffemodel/cifar10_quick/cifar10_quick_iter_5000.caffemodel", prototxt: "prototxt/bvlc/cifar10_quick.prototxt", input: []int{1, 3, 32, 32}, inputFrom: "Input layer"},
	{caffemodel: "caffemodel/cifar10_full/cifar10_full_iter_70000.caffemodel", prototxt: "caffemodel/cifar10_full/cifar10_full.prototxt", input: []int{1, 3, 32, 32}, inputFrom: "input_dim"},
	// Rejected for the same reason as lenet_ip1_5: TRAIN and TEST Data layers.
	{caffemodel: "caffemodel/arm_cmsisnn_cifar10/quantized_cifar10_m7_iter_300000.caffemodel", prototxt: "caffemodel/arm_cmsisnn_cifar10/cifar10_m7_train_test.prototxt", input: []int{100, 3, 32, 32}, inputFrom: "TEST Data layer: batch_size 100 of 3x32x32 CIFAR-10", rejected: "Duplicate blobs produced by multiple sources"},
	{caffemodel: "caffemodel/mtcnn/det1.caffemodel", prototxt: "caffemodel/mtcnn/det1.prototxt", input: []int{1, 3, 12, 12}, inputFrom: "input_dim"},
	{caffemodel: "caffemodel/mtcnn/det2.caffemodel", prototxt: "caffemodel/mtcnn/det2.prototxt", input: []int{1, 3, 24, 24}, inputFrom: "input_dim"},
	{caffemodel: "caffemodel/mtcnn/det3.caffemodel", prototxt: "caffemodel/mtcnn/det3.prototxt", input: []int{1, 3, 48, 48}, inputFrom: "input_dim"},
	{caffemodel: "caffemodel/mtcnn/det4.caffemodel", prototxt: "caffemodel/mtcnn/det4.prototxt", input: []int{1, 15, 24, 24}, inputFrom: "input_dim"},
	{caffemodel: "caffemodel/hyperlpr/CharacterRecognization.caffemodel", prototxt: "caffemodel/hyperlpr/CharacterRecognization.prototxt", input: []int{1, 1, 30, 14}, inputFrom: "input_dim"},
	{caffemodel: "caffemodel/hyperlpr/HorizonalFinemapping_v2020-07.caffemodel", prototxt: "caffemodel/hyperlpr/HorizonalFinemapping.prototxt", input: []int{1, 3, 16, 66}, inputFrom: "input_dim"},
	{caffemodel: "caffemodel/hyperlpr/Segmentation.caffemodel", prototxt: "caffemodel/hyperlpr/Segmentation.prototxt", input: []int{1, 1, 22, 22}, inputFrom: "input_dim"},
	// The net reads its input from a MemoryData layer, which OpenCV 4.6
	// does not turn into a net input, so setInput finds no blob "data".
	{caffemodel: "caffemodel/deep_landmark/1_F.caffemodel", prototxt: "caffemodel/deep_landmark/1_F.prototxt", input: []int{1, 1, 39, 39}, inputFrom: "MemoryData layer", inputName: "data", rejected: `Requested blob "data" not found`},
	// OpenCV 4.6 rejects the original prototxt because its schema lacks
	// visualize and visualize_threshold. These are display options of the
	// SSD fork's DetectionOutput that do not change its output.
	{caffemodel: "caffemodel/yufacedetectnet/yufacedetectnet-open-v1.caffemodel", prototxt: "caffemodel/yufacedetectnet/yufacedetectnet-open-v1.prototxt", input: []int{1, 3, 240, 320}, inputFrom: "input_shape", outputs: []string{"detection_out", "mbox_loc", "mbox_conf"}, dropFields: []string{"visualize", "visualize_threshold"}},
	{caffemodel: "caffemodel/htshinichi_test/test.caffemodel", prototxt: "caffemodel/htshinichi_test/test.prototxt", input: []int{1, 3, 224, 224}, inputFrom: "input_dim"},
	{caffemodel: "reference/opencv_contrib_dnn_layers_2015/layer_convolution.caffemodel", prototxt: "reference/opencv_contrib_dnn_layers_2015/layer_convolution.prototxt", input: []int{2, 6, 75, 113}, inputFrom: "input_dim"},
	{caffemodel: "reference/opencv_contrib_dnn_layers_2015/layer_deconvolution.caffemodel", prototxt: "reference/opencv_contrib_dnn_layers_2015/layer_deconvolution.prototxt", input: []int{2, 12, 36, 37}, inputFrom: "input_dim"},
	{caffemodel: "reference/opencv_contrib_dnn_layers_2015/layer_inner_product.caffemodel", prototxt: "reference/opencv_contrib_dnn_layers_2015/layer_inner_product.prototxt", input: []int{2, 6, 75, 113}, inputFrom: "input_dim"},
	{caffemodel: "caffemodel/lenet/lenet_iter_10000.caffemodel", prototxt: "prototxt/bvlc_history/v0_lenet.prototxt", input: []int{64, 1, 28, 28}, inputFrom: "input_dim"},
	{caffemodel: "caffemodel/cifar10_quick/cifar10_quick_iter_5000.caffemodel", prototxt: "prototxt/bvlc_history/v0_cifar10_quick.prototxt", input: []int{1, 3, 32, 32}, inputFrom: "input_dim"},
	{caffemodel: "caffemodel/cifar10_full/cifar10_full_iter_70000.caffemodel", prototxt: "prototxt/bvlc_history/v0_cifar10_full.prototxt", input: []int{1, 3, 32, 32}, inputFrom: "input_dim"},
}

// pairFiles are the files of one pair in one form.
type pairFiles struct{ prototxt, caffemodel string }

// writeRewrittenPair writes tlsurgery's copies of a pair into dir: the
// prototxt as current-format text, the caffemodel as binary, and the
// caffemodel's weights attached to the prototxt's net (AttachWeights) as
// a second binary caffemodel. It returns the original files, as OpenCV
// reads them, and the two rewritten forms.
func writeRewrittenPair(t *testing.T, p openCVPair, dir string) (original, rewritten, attached pairFiles) {
	t.Helper()
	prototxt := corpus.Path(t, p.prototxt)
	if len(p.dropFields) > 0 {
		prototxt = writeWithoutFields(t, prototxt, p.dropFields, filepath.Join(dir, "original.prototxt"))
	}
	original = pairFiles{prototxt, corpus.Path(t, p.caffemodel)}
	rewritten = pairFiles{filepath.Join(dir, "rewritten.prototxt"), filepath.Join(dir, "rewritten.caffemodel")}
	attached = pairFiles{rewritten.prototxt, filepath.Join(dir, "attached.caffemodel")}

	net := readCorpusNet(t, original.prototxt, ReadOptions{})
	if err := (WriteOptions{Encoding: Text}).WriteFile(net, rewritten.prototxt); err != nil {
		t.Fatalf("writing %s as text: %v", p.prototxt, err)
	}
	weights, err := ReadFile(original.caffemodel)
	if err != nil {
		t.Fatal(err)
	}
	if err := (WriteOptions{Encoding: Binary}).WriteFile(weights, rewritten.caffemodel); err != nil {
		t.Fatalf("writing %s as binary: %v", p.caffemodel, err)
	}
	withWeights, _, err := AttachWeights(net, weights)
	if err != nil {
		t.Fatalf("attaching the weights of %s to %s: %v", p.caffemodel, p.prototxt, err)
	}
	if err := (WriteOptions{Encoding: Binary}).WriteFile(withWeights, attached.caffemodel); err != nil {
		t.Fatalf("writing %s with attached weights as binary: %v", p.prototxt, err)
	}
	return original, rewritten, attached
}

// writeWithoutFields writes the text file at path to dst without the
// lines that set any of the scalar fields in names.
func writeWithoutFields(t *testing.T, path string, names []string, dst string) string {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var keptLines []string
	for _, line := range strings.SplitAfter(string(src), "\n") {
		name, _, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && slices.Contains(names, strings.TrimSpace(name)) {
			continue
		}
		keptLines = append(keptLines, line)
	}
	if err := os.WriteFile(dst, []byte(strings.Join(keptLines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestOpenCVForwardRewrittenWeights runs every caffemodel of the corpus
// in OpenCV three times on the same seeded random input: with the
// original files, with tlsurgery's rewritten prototxt and caffemodel, and
// with the rewritten prototxt and the weights attached to it. All outputs
// must be bit-identical.
func TestOpenCVForwardRewrittenWeights(t *testing.T) {
	oracle.Python(t)
	dir := t.TempDir()
	outDir := filepath.Join(dir, "outputs")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		t.Fatal(err)
	}

	forms := []string{"original", "rewritten", "attached"}
	pairName := func(p openCVPair) string { return p.caffemodel + "+" + filepath.Base(p.prototxt) }
	var jobs []openCVForwardJob
	written := map[string]bool{}
	t.Run("write", func(t *testing.T) {
		for i, p := range openCVPairs {
			t.Run(pairName(p), func(t *testing.T) {
				pairDir := filepath.Join(dir, fmt.Sprint(i))
				if err := os.Mkdir(pairDir, 0o755); err != nil {
					t.Fatal(err)
				}
				original, rewritten, attached := writeRewrittenPair(t, p, pairDir)
				for k, files := range []pairFiles{original, rewritten, attached} {
					jobs = append(jobs, openCVForwardJob{
						ID:         forms[k] + ":" + pairName(p),
						Prototxt:   files.prototxt,
						Caffemodel: files.caffemodel,
						InputShape: p.input,
						InputName:  p.inputName,
						Seed:       i + 1,
						Outputs:    p.outputs,
					})
				}
				written[pairName(p)] = true
			})
		}
	})
	results := forwardInOpenCV(t, jobs, outDir)

	for _, p := range openCVPairs {
		if !written[pairName(p)] {
			continue
		}
		t.Run(pairName(p), func(t *testing.T) {
			original := results["original:"+pairName(p)]
			if p.rejected != "" {
				for _, form := range forms {
					r := results[form+":"+pairName(p)]
					if r.OK {
						t.Errorf("OpenCV runs the %s pair, which it rejected before; move it to the pairs that must run", form)
					} else if !strings.Contains(r.Error, p.rejected) {
						t.Errorf("OpenCV rejects the %s pair with %q, want an error containing %q", form, openCVReason(r.Error), p.rejected)
					}
				}
				t.Logf("OpenCV cannot run this pair: %s", openCVReason(original.Error))
				return
			}
			if !original.OK {
				t.Fatalf("OpenCV cannot run the original pair on input %v (from the %s): %s", p.input, p.inputFrom, original.Error)
			}
			if len(original.Outputs) == 0 {
				t.Fatalf("OpenCV returns no outputs for the original pair")
			}
			for _, out := range original.Outputs {
				if len(out.Shape) == 0 || slices.Contains(out.Shape, 0) {
					t.Errorf("output %s has the empty shape %v", out.Name, out.Shape)
				}
				if !hasNonzeroValue(t, out.Path) {
					t.Errorf("output %s of the original pair has no non-zero value, so comparing it proves little", out.Name)
				}
			}
			for _, form := range forms[1:] {
				r := results[form+":"+pairName(p)]
				if !r.OK {
					t.Errorf("OpenCV runs the original pair but not the %s one: %s", form, r.Error)
					continue
				}
				compareOpenCVOutputs(t, form, r.Outputs, original.Outputs)
			}
		})
	}
}

// compareOpenCVOutputs requires got to have the outputs of want, in the
// same order, with bit-identical .npy files.
func compareOpenCVOutputs(t *testing.T, form string, got, want []openCVOutput) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s pair: %d outputs, original pair: %d", form, len(got), len(want))
		return
	}
	for i := range want {
		if got[i].Name != want[i].Name {
			t.Errorf("%s pair: output %d is %s, original pair: %s", form, i, got[i].Name, want[i].Name)
			continue
		}
		if !slices.Equal(got[i].Shape, want[i].Shape) {
			t.Errorf("%s pair: output %s has shape %v, original pair: %v", form, want[i].Name, got[i].Shape, want[i].Shape)
			continue
		}
		g, w := readFile(t, got[i].Path), readFile(t, want[i].Path)
		if !bytes.Equal(g, w) {
			t.Errorf("%s pair: output %s differs from the original pair's: %s", form, want[i].Name, describeNPYDifference(t, g, w))
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// npyFloat32 returns the values of a little-endian float32 .npy file.
func npyFloat32(t *testing.T, file []byte) []float32 {
	t.Helper()
	if len(file) < 10 || string(file[:6]) != "\x93NUMPY" {
		t.Fatalf("not an .npy file")
	}
	var header, start int
	switch file[6] {
	case 1:
		header, start = int(binary.LittleEndian.Uint16(file[8:10])), 10
	case 2, 3:
		header, start = int(binary.LittleEndian.Uint32(file[8:12])), 12
	default:
		t.Fatalf(".npy version %d.%d is not supported", file[6], file[7])
	}
	if !strings.Contains(string(file[start:start+header]), "'descr': '<f4'") {
		t.Fatalf(".npy header %q does not describe little-endian float32", file[start:start+header])
	}
	data := file[start+header:]
	values := make([]float32, len(data)/4)
	for i := range values {
		values[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return values
}

func hasNonzeroValue(t *testing.T, path string) bool {
	t.Helper()
	return slices.ContainsFunc(npyFloat32(t, readFile(t, path)), func(v float32) bool { return v != 0 })
}

// describeNPYDifference counts the float32 values that differ between two
// .npy files and gives the largest absolute difference.
func describeNPYDifference(t *testing.T, got, want []byte) string {
	t.Helper()
	g, w := npyFloat32(t, got), npyFloat32(t, want)
	if len(g) != len(w) {
		return fmt.Sprintf("%d values, original pair: %d", len(g), len(w))
	}
	differ, maxDiff := 0, 0.0
	for i := range w {
		if math.Float32bits(g[i]) != math.Float32bits(w[i]) {
			differ++
			maxDiff = max(maxDiff, math.Abs(float64(g[i])-float64(w[i])))
		}
	}
	return fmt.Sprintf("%d of %d float32 values differ, by at most %g", differ, len(w), maxDiff)
}
