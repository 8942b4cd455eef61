package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsurgery/tlsurgery/internal/corpus"
)

// runCommand runs one command line and returns its exit status, stdout
// and stderr.
func runCommand(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestInitCaffeNetThenInspect(t *testing.T) {
	net := corpus.Path(t, "prototxt", "bvlc", "bvlc_reference_caffenet_deploy.prototxt")
	out := filepath.Join(t.TempDir(), "caffenet.caffemodel")

	code, stdout, stderr := runCommand("init", net, "-o", out)
	if code != exitOK {
		t.Fatalf("init: exit status %d, stderr:\n%s", code, stderr)
	}
	for _, want := range []string{
		"conv1  ", "96×3×11×11, 96", "constant value=0 (default)",
		"initialized 8 layers with seed 1",
		"learnable parameters: 60,965,224",
		"wrote " + out,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("init output lacks %q:\n%s", want, stdout)
		}
	}

	code, stdout, stderr = runCommand("inspect", out)
	if code != exitOK {
		t.Fatalf("inspect: exit status %d, stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "learnable parameters: 60,965,224\n") {
		t.Errorf("inspect of the written caffemodel lacks 60,965,224 learnable parameters:\n%s", stdout)
	}
}

// initTestNet has one convolution with a random weight filler, so the
// seed decides its values.
const initTestNet = `
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 16 dim: 16 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 3 weight_filler { type: "gaussian" std: 0.1 } } }
`

func writeInitTestNet(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "small.prototxt")
	if err := os.WriteFile(path, []byte(initTestNet), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestInitSeedGivesSameBytes(t *testing.T) {
	net := writeInitTestNet(t, t.TempDir())
	dir := t.TempDir()
	write := func(name string, args ...string) []byte {
		t.Helper()
		path := filepath.Join(dir, name)
		code, _, stderr := runCommand(append([]string{"init", net, "-o", path}, args...)...)
		if code != exitOK {
			t.Fatalf("init %v: exit status %d, stderr:\n%s", args, code, stderr)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	a, b := write("a.caffemodel", "--seed", "9"), write("b.caffemodel", "--seed", "9")
	if !bytes.Equal(a, b) {
		t.Error("two runs with --seed 9 wrote different bytes")
	}
	if bytes.Equal(a, write("c.caffemodel", "--seed", "10")) {
		t.Error("--seed 9 and --seed 10 wrote the same bytes")
	}
}

func TestInitRejectsOutputs(t *testing.T) {
	dir := t.TempDir()
	net := writeInitTestNet(t, dir)
	caffemodel := filepath.Join(dir, "small.caffemodel")
	if code, _, stderr := runCommand("init", net, "-o", caffemodel); code != exitOK {
		t.Fatalf("init: exit status %d, stderr:\n%s", code, stderr)
	}

	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"missing output", []string{"init", net}, `required flag(s) "output" not set`},
		{"text output", []string{"init", net, "-o", filepath.Join(dir, "out.prototxt")}, "a text file cannot hold weights"},
		{"input as output", []string{"init", caffemodel, "-o", caffemodel}, "is the input NET; write to another path"},
		{"unknown input size", []string{"init", writeDataNet(t, dir), "-o", filepath.Join(dir, "data.caffemodel")},
			"conv1 (Convolution): bottom \"data\" has an unknown shape\ngive the input size with --input N,C,H,W"},
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
	if data, err := os.ReadFile(net); err != nil || string(data) != initTestNet {
		t.Errorf("the input net changed: %v", err)
	}
}

func TestInitInputFlag(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "data.caffemodel")
	code, stdout, stderr := runCommand("init", writeDataNet(t, dir), "-o", out, "--input", "2,3,16,16")
	if code != exitOK {
		t.Fatalf("exit status %d, stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "learnable parameters: 224\n") {
		t.Errorf("output lacks 224 learnable parameters (8×3×3×3 + 8):\n%s", stdout)
	}
}

// writeDataNet writes a net whose input layer reads a database and so
// states no input size.
func writeDataNet(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "data.prototxt")
	text := `layer { name: "data" type: "Data" top: "data" data_param { source: "db" batch_size: 2 } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 8 kernel_size: 3 } }
`
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
