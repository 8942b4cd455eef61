package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
)

// runSurgeryCommand runs one command line and returns the exit status, stdout
// and stderr.
func runSurgeryCommand(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// readWrittenNet reads a file a command wrote, failing the test when it is
// missing or invalid.
func readWrittenNet(t *testing.T, path string) *caffe.Net {
	t.Helper()
	net, err := caffe.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the written %s: %v", path, err)
	}
	return net
}

func layerIndex(t *testing.T, net *caffe.Net, name string) int {
	t.Helper()
	for i, l := range net.Param.GetLayer() {
		if l.GetName() == name {
			return i
		}
	}
	t.Fatalf("%s has no layer %q", net.Source, name)
	return -1
}

func TestFreezeCommand(t *testing.T) {
	input := corpus.Path(t, "prototxt", "bvlc", "finetune_flickr_style_train_val.prototxt")
	out := filepath.Join(t.TempDir(), "frozen.prototxt")
	code, stdout, stderr := runSurgeryCommand(t, "freeze", input, "--through", "fc7", "-o", out)
	if code != exitOK {
		t.Fatalf("exit status %d, stderr:\n%s", code, stderr)
	}
	for _, want := range []string{"freeze: 7 changed", "  conv1: lr_mult 0, decay_mult 0 on blobs 0, 1", "  fc7: lr_mult 0, decay_mult 0 on blobs 0, 1", "wrote " + out} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}

	net := readWrittenNet(t, out)
	if len(net.Param.GetLayer()[layerIndex(t, net, "fc8_flickr")].GetParam()) != 2 {
		t.Errorf("fc8_flickr lost its param entries")
	}
	for _, name := range []string{"conv1", "fc6", "fc7"} {
		for i, p := range net.Param.GetLayer()[layerIndex(t, net, name)].GetParam() {
			if p.LrMult == nil || p.GetLrMult() != 0 || p.DecayMult == nil || p.GetDecayMult() != 0 {
				t.Errorf("%s param %d has lr_mult %v and decay_mult %v, want 0 and 0", name, i, p.LrMult, p.DecayMult)
			}
		}
	}
	if got := net.Param.GetLayer()[layerIndex(t, net, "fc8_flickr")].GetParam()[0].GetLrMult(); got != 10 {
		t.Errorf("fc8_flickr, after fc7, has lr_mult %g, want its 10 kept", got)
	}

	written, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runSurgeryCommand(t, "freeze", out, "--through", "fc7", "-o", out)
	if code != exitError || !strings.Contains(stderr, "refusing to overwrite the input") {
		t.Errorf("freezing onto the input gives exit status %d and %q, want %d and a refusal", code, stderr, exitError)
	}
	if again, _ := os.ReadFile(out); !bytes.Equal(again, written) {
		t.Errorf("the refused run changed %s", out)
	}
}

func TestHeadCommand(t *testing.T) {
	netPath := corpus.Path(t, "caffemodel", "lenet", "lenet.prototxt")
	weights := corpus.Path(t, "caffemodel", "lenet", "lenet_iter_10000.caffemodel")
	dir := t.TempDir()
	out := filepath.Join(dir, "lenet5")
	solver := filepath.Join(dir, "solver.prototxt")
	code, stdout, stderr := runSurgeryCommand(t, "head", netPath, weights, "--classes", "5", "-o", out, "--solver", solver, "--base-lr", "0.02", "--stepsize", "500")
	if code != exitOK {
		t.Fatalf("exit status %d, stderr:\n%s", code, stderr)
	}
	for _, want := range []string{
		`ip2: replaced by InnerProduct "ip2_new" with 5 outputs (was 10)`,
		`prob: reads "ip2_new" instead of "ip2"`,
		"warning: the net has no loss layer",
		"wrote " + out + ".prototxt, " + out + ".caffemodel, " + solver,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}

	net := readWrittenNet(t, out+".prototxt")
	if got := net.Param.GetLayer()[layerIndex(t, net, "ip2_new")].GetInnerProductParam().GetNumOutput(); got != 5 {
		t.Errorf("ip2_new has num_output %d, want 5", got)
	}
	model := readWrittenNet(t, out+".caffemodel")
	for _, l := range model.Param.GetLayer() {
		if strings.HasPrefix(l.GetName(), "ip2") && len(l.GetBlobs()) > 0 {
			t.Errorf("the caffemodel has weights for %s; the new head must start from its fillers", l.GetName())
		}
	}
	if len(model.Param.GetLayer()[layerIndex(t, model, "ip1")].GetBlobs()) != 2 {
		t.Errorf("the caffemodel lost the weights of ip1")
	}
	text, err := os.ReadFile(solver)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`net: "` + out + `.prototxt"`, "base_lr: 0.002", "stepsize: 500", "max_iter: 100000", `snapshot_prefix: "` + out + `"`} {
		if !strings.Contains(string(text), want) {
			t.Errorf("solver lacks %q:\n%s", want, text)
		}
	}

	code, _, stderr = runSurgeryCommand(t, "head", out+".prototxt", out+".caffemodel", "--classes", "7", "-o", out)
	if code != exitError || !strings.Contains(stderr, "refusing to overwrite the input") {
		t.Errorf("replacing the head onto the input gives exit status %d and %q, want %d and a refusal", code, stderr, exitError)
	}
	code, _, stderr = runSurgeryCommand(t, "head", netPath, weights, "--classes", "5", "-o", filepath.Join(dir, "x"), "--stepsize", "10")
	if code != exitError || !strings.Contains(stderr, "--stepsize sets a field of the solver file") {
		t.Errorf("--stepsize without --solver gives exit status %d and %q, want %d and an error", code, stderr, exitError)
	}
}

func TestFoldBNCommand(t *testing.T) {
	netPath := corpus.Path(t, "caffemodel", "htshinichi_test", "test.prototxt")
	weights := corpus.Path(t, "caffemodel", "htshinichi_test", "test.caffemodel")
	out := filepath.Join(t.TempDir(), "folded")
	code, stdout, stderr := runSurgeryCommand(t, "fold-bn", netPath, weights, "-o", out)
	if code != exitOK {
		t.Fatalf("exit status %d, stderr:\n%s", code, stderr)
	}
	for _, want := range []string{
		`conv1: folded BatchNorm "bn_conv1" and Scale "scale_conv1" into the weights`,
		"pool1 1×64×56×56",
		"wrote " + out + ".prototxt, " + out + ".caffemodel",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	model := readWrittenNet(t, out+".caffemodel")
	var types []string
	for _, l := range model.Param.GetLayer() {
		types = append(types, l.GetType())
	}
	if strings.Contains(strings.Join(types, " "), "BatchNorm") || strings.Contains(strings.Join(types, " "), "Scale") {
		t.Errorf("the folded caffemodel still has the layers %q", types)
	}

	code, _, stderr = runSurgeryCommand(t, "fold-bn", out+".prototxt", out+".caffemodel", "-o", out)
	if code != exitError || !strings.Contains(stderr, "refusing to overwrite the input") {
		t.Errorf("folding onto the input gives exit status %d and %q, want %d and a refusal", code, stderr, exitError)
	}
	code, stdout, stderr = runSurgeryCommand(t, "fold-bn", out+".prototxt", out+".caffemodel", "-o", out+"_again")
	if code != exitError || !strings.Contains(stderr, "the net has no BatchNorm layer") {
		t.Errorf("folding the folded net gives exit status %d and %q, want %d and nothing to fold", code, stderr, exitError)
	}
	if _, err := os.Stat(out + "_again.prototxt"); err == nil {
		t.Errorf("folding the folded net wrote %s_again.prototxt", out)
	}
}
