package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/convert/npy"
	"github.com/tlsurgery/tlsurgery/convert/onnx/onnxpb"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
)

func lenetFiles(t *testing.T) (string, string) {
	return corpus.Path(t, "caffemodel", "lenet", "lenet.prototxt"), corpus.Path(t, "caffemodel", "lenet", "lenet_iter_10000.caffemodel")
}

func TestExportONNXWithMetadata(t *testing.T) {
	net, weights := lenetFiles(t)
	out := filepath.Join(t.TempDir(), "lenet.onnx")
	code, stdout, stderr := runCommand("export", net, weights, "--to", "onnx", "-o", out,
		"--opset", "11", "--dynamic-batch", "--mean", "0", "--scale", "0.00390625")
	if code != exitOK {
		t.Fatalf("exit status %d, stderr:\n%s", code, stderr)
	}
	for _, want := range []string{"wrote " + out + " (ONNX opset 11, IR version 6): 9 nodes from 9 layers", "inputs:  data", "outputs: prob"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(data, &m); err != nil {
		t.Fatalf("the written file is not an ONNX model: %v", err)
	}
	props := map[string]string{}
	for _, p := range m.GetMetadataProps() {
		props[p.GetKey()] = p.GetValue()
	}
	if props["preprocess_mean"] != "0" || props["preprocess_scale"] != "0.00390625" || props["caffe_source"] != "lenet.prototxt" {
		t.Errorf("metadata %v", props)
	}
	if _, ok := props["preprocess_channel_order"]; ok {
		t.Errorf("channel order recorded without --bgr")
	}
	dim := m.GetGraph().GetInput()[0].GetType().GetTensorType().GetShape().GetDim()[0]
	if dim.GetDimParam() != "N" {
		t.Errorf("--dynamic-batch: input axis 0 is %v, want N", dim)
	}
}

func TestExportNPZAndSafetensors(t *testing.T) {
	net, weights := lenetFiles(t)
	dir := t.TempDir()
	npz := filepath.Join(dir, "lenet.npz")
	if code, _, stderr := runCommand("export", net, weights, "--to", "npz", "-o", npz); code != exitOK {
		t.Fatalf("npz: exit status %d, stderr:\n%s", code, stderr)
	}
	arrays, err := npy.ReadNPZFile(npz)
	if err != nil {
		t.Fatal(err)
	}
	if a := arrays["conv1/0"]; a == nil || len(a.Data) != 20*1*5*5 {
		t.Errorf("npz lacks conv1/0 with 500 values: %v", a)
	}
	st := filepath.Join(dir, "lenet.safetensors")
	if code, _, stderr := runCommand("export", net, weights, "--to", "safetensors", "-o", st, "--bgr"); code != exitOK {
		t.Fatalf("safetensors: exit status %d, stderr:\n%s", code, stderr)
	}
	if info, err := os.Stat(st); err != nil || info.Size() < 4*431080 {
		t.Errorf("safetensors file too small for LeNet's 431,080 values: %v %v", info, err)
	}
}

func TestExportRejects(t *testing.T) {
	net, weights := lenetFiles(t)
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing --to", []string{net, weights, "-o", filepath.Join(dir, "x")}, "missing --to"},
		{"unknown format", []string{net, weights, "--to", "tflite", "-o", filepath.Join(dir, "x")}, `unknown --to "tflite"`},
		{"opset for npz", []string{net, weights, "--to", "npz", "--opset", "11", "-o", filepath.Join(dir, "x")}, "--opset and --dynamic-batch apply to --to onnx only"},
		{"metadata for npz", []string{net, weights, "--to", "npz", "--bgr", "-o", filepath.Join(dir, "x")}, "an .npz archive has no metadata"},
		{"bad mean", []string{net, weights, "--to", "onnx", "--mean", "1,x", "-o", filepath.Join(dir, "x")}, `"x" is not a number`},
		{"opset out of range", []string{net, weights, "--to", "onnx", "--opset", "18", "-o", filepath.Join(dir, "x")}, "opset 18 is not supported; choose 9 to 17"},
		{"no weights", []string{net, "--to", "onnx", "-o", filepath.Join(dir, "x")}, `layer "conv1" (Convolution) has no weights`},
		{"overwrite input", []string{net, weights, "--to", "onnx", "-o", weights}, "is an input file"},
		{"detection output", []string{
			corpus.Path(t, "caffemodel", "yufacedetectnet", "yufacedetectnet-open-v1.prototxt"),
			corpus.Path(t, "caffemodel", "yufacedetectnet", "yufacedetectnet-open-v1.caffemodel"),
			"--to", "onnx", "-o", filepath.Join(dir, "x"),
		}, `layer "detection_out" (DetectionOutput) cannot be exported`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCommand(append([]string{"export"}, tc.args...)...)
			if code != exitError {
				t.Errorf("exit status %d, want %d", code, exitError)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, lastLines(stderr, 3))
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Errorf("a rejected export wrote its output")
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
