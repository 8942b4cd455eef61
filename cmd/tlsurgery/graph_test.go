package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsurgery/tlsurgery/internal/corpus"
)

// graphTestNet is a small net with an in-place layer and a layer name
// that needs escaping in DOT.
const graphTestNet = `
name: "small"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 16 dim: 16 } } }
layer { name: "conv 1 \"a\"" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 3 stride: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: AVE global_pooling: true } }
`

func writeGraphTestNet(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "small.prototxt")
	if err := os.WriteFile(path, []byte(graphTestNet), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// requireGraphvizDot skips the test when Graphviz's dot is not on PATH,
// or fails it under CI=true.
func requireGraphvizDot(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("dot"); err == nil {
		return
	}
	if corpus.InCI() {
		t.Fatal("graphviz dot not installed, and CI=true needs it: run bash scripts/install-oracles.sh")
	}
	t.Skip("SKIP: graphviz dot not installed; run bash scripts/install-oracles.sh to run this test")
}

func TestGraphDOTToStdout(t *testing.T) {
	net := writeGraphTestNet(t)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"graph", net, "--shapes"}, strings.NewReader(""), &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit status %d, stderr:\n%s", code, stderr.String())
	}

	got := stdout.String()
	for _, want := range []string{
		`digraph "small" {`,
		"rankdir=LR;",
		`"layer:conv 1 \"a\"" [shape=box`,
		`label="conv 1 \"a\"\n(Convolution)\nnum_output 8\nkernel 3, stride 2, pad 0"`,
		`label="conv1\n1×8×7×7"`,
		`"layer:relu1" -> "blob:conv1" [style=dashed];`,
		`label="pool1\n(AVE Pooling)\nglobal"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %s", want)
		}
	}
}

func TestGraphRankDirFlag(t *testing.T) {
	net := writeGraphTestNet(t)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"graph", net, "--rankdir", "tb"}, strings.NewReader(""), &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit status %d, stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "rankdir=TB;") {
		t.Errorf("output lacks rankdir=TB:\n%s", stdout.String())
	}
}

func TestGraphInvalidFlags(t *testing.T) {
	net := writeGraphTestNet(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--format", "jpg"}, `invalid --format "jpg"`},
		{[]string{"--rankdir", "up"}, `invalid rankdir "UP"`},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		args := append([]string{"graph", net}, c.args...)
		code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
		if code != exitError {
			t.Errorf("%v: exit status %d, want %d", c.args, code, exitError)
		}
		if !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: stderr = %q, want it to contain %q", c.args, stderr.String(), c.want)
		}
	}
}

func TestGraphDOTToFile(t *testing.T) {
	net := writeGraphTestNet(t)
	out := filepath.Join(t.TempDir(), "small.dot")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"graph", net, "-o", out}, strings.NewReader(""), &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit status %d, stderr:\n%s", code, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("wrote %d bytes to standard output with -o", stdout.Len())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), `digraph "small" {`) {
		t.Errorf("%s does not start with the digraph:\n%s", out, data)
	}
}

func TestGraphSVGToFile(t *testing.T) {
	requireGraphvizDot(t)
	net := writeGraphTestNet(t)
	out := filepath.Join(t.TempDir(), "small.svg")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"graph", net, "--format", "svg", "-o", out}, strings.NewReader(""), &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit status %d, stderr:\n%s", code, stderr.String())
	}

	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	svg := string(data)
	if !strings.Contains(svg, "<svg") {
		t.Errorf("%s is not SVG:\n%.300s", out, svg)
	}
	if !strings.Contains(svg, ">conv 1 &quot;a&quot;</text>") {
		t.Errorf("%s lacks the label of layer conv 1 \"a\"", out)
	}
}

func TestGraphPNGToStdout(t *testing.T) {
	requireGraphvizDot(t)
	net := writeGraphTestNet(t)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"graph", net, "--format", "png"}, strings.NewReader(""), &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit status %d, stderr:\n%s", code, stderr.String())
	}
	if !bytes.HasPrefix(stdout.Bytes(), []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("standard output does not start with the PNG signature: %q", stdout.Bytes()[:min(8, stdout.Len())])
	}
}

func TestGraphMissingDot(t *testing.T) {
	net := writeGraphTestNet(t)
	t.Setenv("PATH", t.TempDir())
	dir := t.TempDir()
	out := filepath.Join(dir, "small.svg")

	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"graph", net, "--format", "svg", "-o", out}, strings.NewReader(""), &stdout, &stderr)
	if code != exitError {
		t.Errorf("exit status %d, want %d", code, exitError)
	}
	want := "graphviz's dot is not installed; install the graphviz package (Debian: apt-get install graphviz) or use --format dot"
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr = %q, want it to contain %q", stderr.String(), want)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("the failed run left %d files in the output folder, first %s", len(entries), entries[0].Name())
	}
}
