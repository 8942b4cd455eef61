package main

import (
	"encoding/json"
	"image"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/convert/npy"
	"github.com/tlsurgery/tlsurgery/forward"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
	"github.com/tlsurgery/tlsurgery/internal/oracle"
)

// alterOneValue writes a copy of the caffemodel in to out with one float
// changed: the first bias of the last layer that has blobs (or its first
// weight when it has no bias), which moves an output directly.
func alterOneValue(t *testing.T, in, out string) string {
	t.Helper()
	net, err := caffe.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	layers := net.Param.GetLayer()
	for i := len(layers) - 1; i >= 0; i-- {
		blobs := layers[i].GetBlobs()
		if len(blobs) == 0 {
			continue
		}
		b := blobs[0]
		if len(blobs) > 1 {
			b = blobs[1]
		}
		if len(b.Data) == 0 {
			t.Fatalf("layer %q of %s stores no float values", layers[i].GetName(), in)
		}
		b.Data[0] += 1
		if err := (caffe.WriteOptions{Encoding: caffe.Binary}).WriteFile(net, out); err != nil {
			t.Fatal(err)
		}
		return layers[i].GetName()
	}
	t.Fatalf("%s has no layer with blobs", in)
	return ""
}

func TestVerifyFCToConvRealModels(t *testing.T) {
	tests := []struct{ name, net, weights string }{
		{"LeNet", "lenet/lenet.prototxt", "lenet/lenet_iter_10000.caffemodel"},
		{"CIFAR-10 full", "cifar10_full/cifar10_full.prototxt", "cifar10_full/cifar10_full_iter_70000.caffemodel"},
		{"MTCNN det2", "mtcnn/det2.prototxt", "mtcnn/det2.caffemodel"},
		{"MTCNN det3", "mtcnn/det3.prototxt", "mtcnn/det3.caffemodel"},
		{"HyperLPR Segmentation", "hyperlpr/Segmentation.prototxt", "hyperlpr/Segmentation.caffemodel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			net := corpus.Path(t, "caffemodel", tt.net)
			weights := corpus.Path(t, "caffemodel", tt.weights)
			dir := t.TempDir()
			converted := filepath.Join(dir, "conv")
			if code, stdout, stderr := runCommand("fc2conv", net, weights, "-o", converted); code != exitOK {
				t.Fatalf("fc2conv: exit status %d\n%s%s", code, stdout, stderr)
			}

			code, stdout, stderr := runCommand("verify", net, weights, converted+".prototxt", converted+".caffemodel", "--tolerance", "1e-5")
			t.Logf("verify:\n%s", stdout)
			if code != exitOK {
				t.Fatalf("verify of the fc2conv result: exit status %d, want 0\n%s", code, stderr)
			}
			if !strings.Contains(stdout, "within relative tolerance 1e-05") {
				t.Errorf("verify output lacks the summary line:\n%s", stdout)
			}

			altered := filepath.Join(dir, "altered.caffemodel")
			layer := alterOneValue(t, converted+".caffemodel", altered)
			code, stdout, stderr = runCommand("verify", net, weights, converted+".prototxt", altered)
			if code != exitDiffs {
				t.Fatalf("verify with one value of layer %s changed: exit status %d, want %d\n%s%s", layer, code, exitDiffs, stdout, stderr)
			}
			if !strings.Contains(stdout, "beyond relative tolerance") {
				t.Errorf("verify output lacks the count of blobs beyond the tolerance:\n%s", stdout)
			}
		})
	}
}

// TestVerifyCaffeNetLargerInput converts CaffeNet to a fully
// convolutional net declaring a 451×451 input and verifies it at the
// original 227×227. The weights come from the fillers of CaffeNet's
// train_val net, because the deploy net has none and Caffe's default
// filler (constant 0) would make every output equal.
func TestVerifyCaffeNetLargerInput(t *testing.T) {
	deploy := corpus.Path(t, "prototxt", "bvlc", "bvlc_reference_caffenet_deploy.prototxt")
	trainVal := corpus.Path(t, "prototxt", "bvlc", "bvlc_reference_caffenet_train_val.prototxt")
	dir := t.TempDir()
	weights := filepath.Join(dir, "caffenet.caffemodel")
	if code, stdout, stderr := runCommand("init", trainVal, "--input", "1,3,227,227", "-o", weights); code != exitOK {
		t.Fatalf("init: exit status %d\n%s%s", code, stdout, stderr)
	}
	converted := filepath.Join(dir, "caffenet_conv")
	if code, stdout, stderr := runCommand("fc2conv", deploy, weights, "--new-input", "1,3,451,451", "-o", converted); code != exitOK {
		t.Fatalf("fc2conv: exit status %d\n%s%s", code, stdout, stderr)
	}
	// One image instead of the deploy net's batch of 10 keeps the test
	// short.
	input := filepath.Join(dir, "input.npy")
	x := forward.RandomTensor(1, 0, 1, 3, 227, 227)
	if err := npy.WriteFile(input, &npy.Array{Shape: x.Shape, Data: x.Data}); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runCommand("verify", deploy, weights, converted+".prototxt", converted+".caffemodel",
		"--input", input, "--blobs", "fc6,fc7")
	t.Logf("verify:\n%s", stdout)
	if code != exitOK {
		t.Fatalf("exit status %d, want 0\n%s", code, stderr)
	}
	for _, want := range []string{
		`net B declares input "data" as 1×3×451×451; it ran at net A's input size ("data" 1×3×227×227)`,
		"│ fc7  │ 1×4096  │ 1×4096×1×1 │",
		"3 blobs within relative tolerance 1e-05",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("verify output lacks %q", want)
		}
	}
	if strings.Contains(stdout, "random input") {
		t.Errorf("verify reports a random input although --input gave it:\n%s", stdout)
	}
}

func TestVerifyRejectsBadArguments(t *testing.T) {
	net := corpus.Path(t, "caffemodel", "lenet", "lenet.prototxt")
	weights := corpus.Path(t, "caffemodel", "lenet", "lenet_iter_10000.caffemodel")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"three nets", []string{"verify", net, weights, net}, "accepts 4 arg(s), received 3"},
		{"unknown blob", []string{"verify", net, weights, net, weights, "--blobs", "fc7"}, `net A has no blob "fc7"`},
		{"negative tolerance", []string{"verify", net, weights, net, weights, "--tolerance", "-1"}, "must not be negative"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCommand(c.args...)
			if code != exitError {
				t.Errorf("exit status %d, want %d", code, exitError)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr lacks %q:\n%s", c.want, stderr)
			}
		})
	}
}

// lenetPreprocess prepares photographs as the LeNet flags below do:
// grayscale, resized to 28×28, pixel values x becoming x/256.
var lenetPreprocess = forward.Preprocess{Width: 28, Height: 28, Channels: 1, Scale: 0.00390625}

var lenetFeatureFlags = []string{"--layer", "ip1", "--scale", "0.00390625"}

// writeLeNetInputs writes the photographs prepared for LeNet as one
// N×1×28×28 .npy file.
func writeLeNetInputs(t *testing.T, photos []string, path string) {
	t.Helper()
	var data []float32
	for _, p := range photos {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		img, _, err := image.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		x, err := lenetPreprocess.Image(img)
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, x.Data...)
	}
	if err := npy.WriteFile(path, &npy.Array{Shape: []int{len(photos), 1, 28, 28}, Data: data}); err != nil {
		t.Fatal(err)
	}
}

func readNPY(t *testing.T, path string) *npy.Array {
	t.Helper()
	a, err := npy.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestFeaturesLeNetMatchesRunAndOpenCV extracts ip1 codes of colour
// photographs with the real LeNet weights and compares them with `run`
// and with OpenCV's forward pass on the same prepared arrays.
func TestFeaturesLeNetMatchesRunAndOpenCV(t *testing.T) {
	net := corpus.Path(t, "caffemodel", "lenet", "lenet.prototxt")
	weights := corpus.Path(t, "caffemodel", "lenet", "lenet_iter_10000.caffemodel")
	photos, err := filepath.Glob(filepath.Join(corpus.Shared(t), "datasets", "photos", "*.jpg"))
	if err != nil || len(photos) < 2 {
		t.Fatalf("photographs: %v, found %d, want at least 2", err, len(photos))
	}
	dir := t.TempDir()

	codesPath := filepath.Join(dir, "codes.npy")
	args := append([]string{"features", net, weights, "-o", codesPath}, lenetFeatureFlags...)
	code, stdout, stderr := runCommand(append(args, photos...)...)
	if code != exitOK {
		t.Fatalf("features: exit status %d\n%s", code, stderr)
	}
	t.Logf("features: %s", stdout)
	codes := readNPY(t, codesPath)
	if want := []int{len(photos), 500}; !slices.Equal(codes.Shape, want) {
		t.Fatalf("codes shape %v, want %v", codes.Shape, want)
	}
	order, err := os.ReadFile(filepath.Join(dir, "codes.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Split(strings.TrimSuffix(string(order), "\n"), "\n"); !slices.Equal(got, photos) {
		t.Errorf("codes.txt lists %q, want %q", got, photos)
	}
	if !slices.ContainsFunc(codes.Data, func(v float32) bool { return v > 0 }) {
		t.Error("every ip1 code is 0")
	}

	inputs := filepath.Join(dir, "inputs.npy")
	writeLeNetInputs(t, photos, inputs)

	t.Run("run", func(t *testing.T) {
		out := filepath.Join(dir, "run.npz")
		code, _, stderr := runCommand("run", net, weights, "--input", inputs, "--blobs", "ip1", "-o", out)
		if code != exitOK {
			t.Fatalf("run: exit status %d\n%s", code, stderr)
		}
		arrays, err := npy.ReadNPZFile(out)
		if err != nil {
			t.Fatal(err)
		}
		ip1 := arrays["ip1"]
		if ip1 == nil || !slices.Equal(ip1.Shape, codes.Shape) {
			t.Fatalf("run wrote ip1 %v, want shape %v", ip1, codes.Shape)
		}
		if !slices.Equal(ip1.Data, codes.Data) {
			d := forward.Compare(&forward.Tensor{Shape: codes.Shape, Data: codes.Data}, &forward.Tensor{Shape: ip1.Shape, Data: ip1.Data})
			t.Errorf("features and run differ (max abs %.3g); want identical values", d.MaxAbs)
		}
	})

	t.Run("npy input", func(t *testing.T) {
		out := filepath.Join(dir, "from_npy.npy")
		code, _, stderr := runCommand("features", net, weights, "--layer", "ip1", "--npy", inputs, "-o", out)
		if code != exitOK {
			t.Fatalf("features --npy: exit status %d\n%s", code, stderr)
		}
		if got := readNPY(t, out); !slices.Equal(got.Data, codes.Data) {
			t.Error("features on the prepared arrays differs from features on the photographs")
		}
		order, err := os.ReadFile(filepath.Join(dir, "from_npy.txt"))
		if err != nil {
			t.Fatal(err)
		}
		if want := inputs + "[0]\n" + inputs + "[1]\n"; !strings.HasPrefix(string(order), want) {
			t.Errorf("from_npy.txt is %q, want it to start with %q", order, want)
		}
	})

	t.Run("batch of one", func(t *testing.T) {
		out := filepath.Join(dir, "batch1.npy")
		args := append([]string{"features", net, weights, "-o", out, "--batch", "1"}, lenetFeatureFlags...)
		code, _, stderr := runCommand(append(args, photos...)...)
		if code != exitOK {
			t.Fatalf("features --batch 1: exit status %d\n%s", code, stderr)
		}
		got := readNPY(t, out)
		d := forward.Compare(&forward.Tensor{Shape: got.Shape, Data: got.Data}, &forward.Tensor{Shape: codes.Shape, Data: codes.Data})
		t.Logf("batch 1 vs batch 16: max abs %.3g, max rel %.3g", d.MaxAbs, d.MaxRel)
		if d.MaxRel > 1e-6 {
			t.Errorf("codes computed one image at a time differ by %.3g relative, want ≤ 1e-6", d.MaxRel)
		}
	})

	t.Run("OpenCV", func(t *testing.T) {
		script, err := os.ReadFile(filepath.Join("..", "..", "internal", "oracle", "opencv_run_npy.py"))
		if err != nil {
			t.Fatal(err)
		}
		job, err := json.Marshal(map[string]any{
			"prototxt": net, "caffemodel": weights, "input": inputs,
			"outputs": []string{"relu1"}, "out_dir": dir,
		})
		if err != nil {
			t.Fatal(err)
		}
		oracle.RunPython(t, string(script), job)
		want := readNPY(t, filepath.Join(dir, "relu1.npy"))
		if !slices.Equal(want.Shape, codes.Shape) {
			t.Fatalf("OpenCV's relu1 output has shape %v, want %v", want.Shape, codes.Shape)
		}
		d := forward.Compare(&forward.Tensor{Shape: codes.Shape, Data: codes.Data}, &forward.Tensor{Shape: want.Shape, Data: want.Data})
		t.Logf("features vs OpenCV: max abs %.3g, max rel %.3g", d.MaxAbs, d.MaxRel)
		if d.MaxRel > 1e-5 {
			t.Errorf("codes differ from OpenCV's by %.3g relative, want ≤ 1e-5", d.MaxRel)
		}
	})
}

func TestFeaturesRejectsBadFlags(t *testing.T) {
	net := corpus.Path(t, "caffemodel", "lenet", "lenet.prototxt")
	weights := corpus.Path(t, "caffemodel", "lenet", "lenet_iter_10000.caffemodel")
	photo := filepath.Join(corpus.Shared(t), "datasets", "photos", "china.jpg")
	out := filepath.Join(t.TempDir(), "codes.npy")
	base := []string{"features", net, weights, "--layer", "ip1", "-o", out}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no images", base, "missing images"},
		{"two means", append(slices.Clone(base), photo, "--mean-values", "1", "--mean", "m.binaryproto"), "not both"},
		{"unknown blob", []string{"features", net, weights, "--layer", "fc7", "-o", out, photo}, `the net has no blob "fc7"`},
		{"resize without crop", append(slices.Clone(base), photo, "--resize", "32"), "--resize N and --crop go together"},
		{"three mean values", append(slices.Clone(base), photo, "--mean-values", "1,2,3"), "3 mean values for a 1-channel input"},
		{"text output", []string{"features", net, weights, "--layer", "ip1", "-o", filepath.Join(t.TempDir(), "codes.txt"), photo}, "name the output FILE.npy"},
		{"not an image", []string{"features", net, weights, "--layer", "ip1", "-o", out, net}, "decoding the image failed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCommand(c.args...)
			if code != exitError {
				t.Errorf("exit status %d, want %d", code, exitError)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr lacks %q:\n%s", c.want, stderr)
			}
		})
	}
}

// TestFeaturesMeanFromNPY checks that a mean image given as .npy (Caffe's
// 3×256×256 ImageNet mean) is reduced to its BGR channel means.
func TestFeaturesMeanFromNPY(t *testing.T) {
	mean, err := readMeanValues(corpus.Path(t, "caffemodel", "mean", "bvlc_ilsvrc_2012_mean.npy"))
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{104.00699, 116.66877, 122.67892}
	for c := range want {
		if d := mean[c] - want[c]; d > 1e-3 || d < -1e-3 {
			t.Errorf("channel %d mean %v, want %v", c, mean[c], want[c])
		}
	}
}

func TestRunWritesNPZForNumPy(t *testing.T) {
	oracle.Python(t)
	net := corpus.Path(t, "caffemodel", "lenet", "lenet.prototxt")
	weights := corpus.Path(t, "caffemodel", "lenet", "lenet_iter_10000.caffemodel")
	dir := t.TempDir()
	input := filepath.Join(dir, "x.npy")
	x := forward.RandomTensor(7, 0, 3, 1, 28, 28)
	if err := npy.WriteFile(input, &npy.Array{Shape: x.Shape, Data: x.Data}); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name  string
		flags []string
		want  map[string][]int
	}{
		{"outputs", nil, map[string][]int{"prob": {3, 10}}},
		{"named blobs", []string{"--blobs", "conv1,ip1,prob"}, map[string][]int{"conv1": {3, 20, 24, 24}, "ip1": {3, 500}, "prob": {3, 10}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, c.name+".npz")
			args := append([]string{"run", net, weights, "--input", "data=" + input, "-o", out}, c.flags...)
			code, stdout, stderr := runCommand(args...)
			if code != exitOK {
				t.Fatalf("run: exit status %d\n%s", code, stderr)
			}
			if !strings.Contains(stdout, "wrote "+out) {
				t.Errorf("run output lacks the written path:\n%s", stdout)
			}

			got := map[string][]int{}
			loaded := oracle.RunPython(t, "import json, sys, numpy as np\n"+
				"z = np.load(sys.argv[1])\n"+
				"print(json.dumps({k: list(z[k].shape) for k in z.files}))\n", nil, out)
			if err := json.Unmarshal(loaded, &got); err != nil {
				t.Fatalf("numpy.load output %q: %v", loaded, err)
			}
			if len(got) != len(c.want) {
				t.Errorf("numpy.load finds keys %v, want %v", got, c.want)
			}
			for k, shape := range c.want {
				if !slices.Equal(got[k], shape) {
					t.Errorf("numpy.load: %s has shape %v, want %v", k, got[k], shape)
				}
			}
		})
	}
}

func TestRunRejectsInputs(t *testing.T) {
	net := corpus.Path(t, "caffemodel", "lenet", "lenet.prototxt")
	weights := corpus.Path(t, "caffemodel", "lenet", "lenet_iter_10000.caffemodel")
	dir := t.TempDir()
	input := filepath.Join(dir, "x.npy")
	if err := npy.WriteFile(input, &npy.Array{Shape: []int{1, 1, 28, 28}, Data: make([]float32, 28*28)}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.npz")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no input", []string{"run", net, weights, "-o", out}, "missing --input"},
		{"unknown input", []string{"run", net, weights, "--input", "image=" + input, "-o", out}, `the net has no input "image"`},
		{"unknown blob", []string{"run", net, weights, "--input", input, "--blobs", "fc7", "-o", out}, `the net has no blob "fc7"`},
		{"missing file", []string{"run", net, weights, "--input", filepath.Join(dir, "none.npy"), "-o", out}, "none.npy"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCommand(c.args...)
			if code != exitError {
				t.Errorf("exit status %d, want %d", code, exitError)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr lacks %q:\n%s", c.want, stderr)
			}
		})
	}
}
