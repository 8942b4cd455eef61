package forward

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"testing"
	"time"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/convert/npy"
	"github.com/tlsurgery/tlsurgery/graph"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
	"github.com/tlsurgery/tlsurgery/internal/oracle"
	"github.com/tlsurgery/tlsurgery/surgery"
)

// These tests compare Run with OpenCV 4.6's forward pass
// (cv2.dnn.readNetFromCaffe, Debian's python3-opencv) on the same seeded
// input. OpenCV 4.6 has no layer for the BN and Upsample types of the
// SegNet, ENet and PSPNet forks, and its schema has no interp_param. So
// openCVScript supplies NumPy versions of BN, Upsample and Interp, written
// from the forks' sources, and for those layers the reference is Caffe's
// semantics in NumPy rather than OpenCV. Every other layer is OpenCV's.

// openCVScript runs nets in OpenCV. It is separate from
// oracle.OpenCVForwardScript because it must register the NumPy layers in
// the same process and save the input it generates.
const openCVScript = `"""Run Caffe nets forward in OpenCV, with NumPy BN, Upsample and Interp.

Reads a JSON list of jobs from stdin:
  {"id", "prototxt", "caffemodel", "input_shape", "seed", "outputs": [layer
   names], "custom": [{"type", "kind", "params"}]}
The input is numpy.random.default_rng(seed).standard_normal(input_shape,
dtype=float32), as in internal/oracle/opencv_forward.py; it is saved as
<index>_input.npy in the directory given as the first argument, and each
output as <index>_<k>.npy. Each custom entry registers a layer type whose
kind is BN, Upsample or Interp, computed in NumPy with the params given.
Writes a JSON list of {"id", "ok", "error", "input", "seconds", "outputs":
[{"name", "shape", "path"}]} to stdout in job order.
"""

import json
import os
import sys
import time

import cv2
import numpy as np


def bn(params, blobs, inputs):
    x = inputs[0]
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    b = [np.asarray(v, np.float32).reshape(shape) for v in blobs]
    if len(b) == 4:
        # PSPNet: stored mean and variance, float steps in the fork's order.
        inv = np.power(b[3] + np.float32(params["eps"]), np.float32(-0.5), dtype=np.float32)
        return ((x - b[2]) * inv * b[0] + b[1]).astype(np.float32)
    if params["mode"] == "INFERENCE":
        return (x * b[0] + b[1]).astype(np.float32)
    axes = (0,) + tuple(range(2, x.ndim))
    mean = x.astype(np.float64).mean(axis=axes, keepdims=True)
    var = (x.astype(np.float64) ** 2).mean(axis=axes, keepdims=True) - mean ** 2
    std = np.sqrt(var.astype(np.float32) + np.float32(1e-9))
    return ((x - mean.astype(np.float32)) / std * b[0] + b[1]).astype(np.float32)


def upsample_shape(params, inputs):
    n, c, h, w = inputs[0]
    if "upsample_h" in params:
        return [n, c, params["upsample_h"], params["upsample_w"]]
    return [n, c, h * params["scale_h"] - params["pad_out_h"], w * params["scale_w"] - params["pad_out_w"]]


def upsample(params, inputs, out_shape):
    x = inputs[0]
    n, c, oh, ow = out_shape
    if len(inputs) == 1:
        y = np.repeat(np.repeat(x, params["scale_h"], axis=2), params["scale_w"], axis=3)
        return np.ascontiguousarray(y[:, :, :oh, :ow])
    out = np.zeros((n * c, oh * ow), np.float32)
    idx = inputs[1].reshape(n * c, -1).astype(np.int64)
    np.put_along_axis(out, idx, x.reshape(n * c, -1), axis=1)
    return out.reshape(n, c, oh, ow)


def interp_shape(params, inputs):
    n, c, h, w = inputs[0]
    h += params["pad_beg"] + params["pad_end"]
    w += params["pad_beg"] + params["pad_end"]
    if "zoom_factor" in params:
        z = params["zoom_factor"]
        return [n, c, h + (h - 1) * (z - 1), w + (w - 1) * (z - 1)]
    if "shrink_factor" in params:
        s = params["shrink_factor"]
        return [n, c, (h - 1) // s + 1, (w - 1) // s + 1]
    if "height" in params:
        return [n, c, params["height"], params["width"]]
    return [n, c, inputs[1][2], inputs[1][3]]


def interp(params, inputs, out_shape):
    x = inputs[0]
    b = -params["pad_beg"]
    h1 = x.shape[2] + params["pad_beg"] + params["pad_end"]
    w1 = x.shape[3] + params["pad_beg"] + params["pad_end"]
    h2, w2 = out_shape[2], out_shape[3]
    if (h1, w1) == (h2, w2):
        return np.ascontiguousarray(x[:, :, b:b + h1, b:b + w1])
    f32 = np.float32
    rh = f32(h1 - 1) / f32(h2 - 1) if h2 > 1 else f32(0)
    rw = f32(w1 - 1) / f32(w2 - 1) if w2 > 1 else f32(0)
    fy = f32(rh) * np.arange(h2, dtype=f32)
    fx = f32(rw) * np.arange(w2, dtype=f32)
    iy, ix = fy.astype(np.int64), fx.astype(np.int64)
    ly1, lx1 = fy - iy.astype(f32), fx - ix.astype(f32)
    ly0, lx0 = f32(1) - ly1, f32(1) - lx1
    y0, y1 = b + iy, b + iy + (iy < h1 - 1)
    x0, x1 = b + ix, b + ix + (ix < w1 - 1)
    ly0, ly1 = ly0[:, None], ly1[:, None]
    top = lx0 * x[:, :, y0][:, :, :, x0] + lx1 * x[:, :, y0][:, :, :, x1]
    bottom = lx0 * x[:, :, y1][:, :, :, x0] + lx1 * x[:, :, y1][:, :, :, x1]
    return (ly0 * top + ly1 * bottom).astype(f32)


def register(spec):
    kind, params = spec["kind"], spec["params"]

    class Custom:
        def __init__(self, layer_params, blobs):
            self.blobs = list(blobs)
            self.out_shape = None

        def getMemoryShapes(self, inputs):
            if kind == "BN":
                self.out_shape = list(inputs[0])
            elif kind == "Upsample":
                self.out_shape = upsample_shape(params, inputs)
            else:
                self.out_shape = interp_shape(params, inputs)
            return [self.out_shape]

        def forward(self, inputs):
            if kind == "BN":
                return [bn(params, self.blobs, inputs)]
            if kind == "Upsample":
                return [upsample(params, inputs, self.out_shape)]
            return [interp(params, inputs, self.out_shape)]

    cv2.dnn_registerLayer(spec["type"], Custom)


def run(index, job, out_dir):
    result = {"id": job["id"], "ok": False, "error": "", "input": "", "seconds": 0, "outputs": []}
    rng = np.random.default_rng(job["seed"])
    blob = rng.standard_normal(job["input_shape"], dtype=np.float32)
    result["input"] = os.path.join(out_dir, "%d_input.npy" % index)
    np.save(result["input"], blob)
    for spec in job.get("custom") or []:
        register(spec)
    try:
        net = cv2.dnn.readNetFromCaffe(job["prototxt"], job["caffemodel"])
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        net.setInput(blob)
        start = time.perf_counter()
        outs = net.forward(job["outputs"])
        result["seconds"] = time.perf_counter() - start
    except cv2.error as e:
        result["error"] = str(e).strip()
        return result
    finally:
        for spec in job.get("custom") or []:
            cv2.dnn_unregisterLayer(spec["type"])
    for k, (name, out) in enumerate(zip(job["outputs"], outs)):
        path = os.path.join(out_dir, "%d_%d.npy" % (index, k))
        np.save(path, np.ascontiguousarray(out, dtype=np.float32))
        result["outputs"].append({"name": name, "shape": list(out.shape), "path": path})
    result["ok"] = True
    return result


def main():
    jobs = json.load(sys.stdin)
    json.dump([run(i, job, sys.argv[1]) for i, job in enumerate(jobs)], sys.stdout)


if __name__ == "__main__":
    main()
`

type cvCustomLayer struct {
	Type   string         `json:"type"`
	Kind   string         `json:"kind"`
	Params map[string]any `json:"params"`
}

type cvJob struct {
	ID         string          `json:"id"`
	Prototxt   string          `json:"prototxt"`
	Caffemodel string          `json:"caffemodel"`
	InputShape []int           `json:"input_shape"`
	Seed       int             `json:"seed"`
	Outputs    []string        `json:"outputs"`
	Custom     []cvCustomLayer `json:"custom,omitempty"`
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
	Input   string     `json:"input"`
	Seconds float64    `json:"seconds"`
	Outputs []cvOutput `json:"outputs"`
}

// netCase is one net to run in both OpenCV and Run.
type netCase struct {
	name      string
	net       *caffe.Net // with weights, as Run gets it
	input     []int
	tolerance float64
	job       cvJob
	compiled  *Net
	compare   []*graph.Value // the values compared, in job.Outputs order

	// strict names layers whose top 0 is compared besides the outputs.
	// With unpoolTies, only they are checked, and the differences of the
	// outputs are logged (see seededNet.unpoolTies).
	strict     []string
	unpoolTies bool
}

// compileSafely compiles net, turning a panic into an error with its stack:
// a panic on a net's parameters is a bug that the test reports per net
// instead of aborting the package.
func compileSafely(net *caffe.Net, opts Options) (n *Net, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("Compile panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return Compile(net, opts)
}

// runSafely is Run with panics turned into errors, as in compileSafely.
func runSafely(n *Net, inputs map[string]*Tensor) (r *Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("Run panicked: %v\n%s", p, debug.Stack())
		}
	}()
	return n.Run(inputs)
}

// dataLayerTypes are the source layers that deployCopy turns into Input
// layers.
var dataLayerTypes = []string{"Data", "ImageData", "MemoryData", "DummyData", "HDF5Data", "WindowData", "AnnotatedData", "DenseImageData"}

// deployCopy returns the TEST-phase layers of net as a deploy net. Each
// data layer becomes an Input layer of the given shape with its first top
// only. Layers that read a dropped top (the labels, so losses and
// accuracies) are dropped in turn. Weights are shared with net.
func deployCopy(t *testing.T, net *caffe.Net, shape []int) *caffe.Net {
	t.Helper()
	out := caffe.CloneNet(net)
	g := graph.Build(out, graph.Options{})
	dims := make([]int64, len(shape))
	for i, d := range shape {
		dims[i] = int64(d)
	}
	dropped := map[string]bool{}
	var kept []*caffepb.LayerParameter
	for _, l := range g.Layers {
		lp := l.Param
		lp.Include, lp.Exclude = nil, nil
		if slices.Contains(dataLayerTypes, lp.GetType()) {
			for _, top := range lp.GetTop()[1:] {
				dropped[top] = true
			}
			kept = append(kept, &caffepb.LayerParameter{
				Name:       lp.Name,
				Type:       new("Input"),
				Top:        lp.GetTop()[:1],
				InputParam: &caffepb.InputParameter{Shape: []*caffepb.BlobShape{{Dim: dims}}},
			})
			continue
		}
		if slices.ContainsFunc(lp.GetBottom(), func(b string) bool { return dropped[b] }) {
			for _, top := range lp.GetTop() {
				dropped[top] = true
			}
			continue
		}
		kept = append(kept, lp)
	}
	out.Param.Layer = kept
	out.Param.Layers = nil
	return out
}

// openCVCopy writes the files OpenCV reads for net into dir and fills the
// job's file and custom fields. The structure goes to text, with each BN,
// Upsample and Interp layer given a type that the script registers, and
// without SSD's display-only visualize fields, which OpenCV's schema
// lacks. When weights is true, the weights go to a binary caffemodel.
func openCVCopy(t *testing.T, net *caffe.Net, dir string, weights bool, job *cvJob) {
	t.Helper()
	out := caffe.CloneNet(net)
	types := map[string]string{} // kind and params as JSON → registered type
	for _, lp := range out.Param.GetLayer() {
		custom := cvCustomLayer{Kind: lp.GetType(), Params: map[string]any{}}
		switch lp.GetType() {
		case "BN":
			p := lp.GetBnParam()
			if p == nil {
				p = lp.GetBnParamPspnet()
			}
			custom.Params["eps"] = p.GetEps()
			custom.Params["mode"] = p.GetBnMode().String()
			lp.BnParam, lp.BnParamPspnet = nil, nil
		case "Upsample":
			p := cmp.Or(lp.GetUpsampleParam(), &caffepb.UpsampleParameter{})
			if p.UpsampleH != nil && p.UpsampleW != nil {
				custom.Params["upsample_h"], custom.Params["upsample_w"] = p.GetUpsampleH(), p.GetUpsampleW()
			}
			custom.Params["scale_h"], custom.Params["scale_w"] = p.GetScale(), p.GetScale()
			if p.ScaleH != nil && p.ScaleW != nil {
				custom.Params["scale_h"], custom.Params["scale_w"] = p.GetScaleH(), p.GetScaleW()
			}
			custom.Params["pad_out_h"], custom.Params["pad_out_w"] = boolInt(p.GetPadOutH()), boolInt(p.GetPadOutW())
			lp.UpsampleParam = nil
		case "Interp":
			p := cmp.Or(lp.GetInterpParam(), &caffepb.InterpParameter{})
			custom.Params["pad_beg"], custom.Params["pad_end"] = p.GetPadBeg(), p.GetPadEnd()
			switch {
			case p.ZoomFactor != nil && p.ShrinkFactor == nil:
				custom.Params["zoom_factor"] = p.GetZoomFactor()
			case p.ShrinkFactor != nil && p.ZoomFactor == nil:
				custom.Params["shrink_factor"] = p.GetShrinkFactor()
			case p.Height != nil && p.Width != nil:
				custom.Params["height"], custom.Params["width"] = p.GetHeight(), p.GetWidth()
			case p.ZoomFactor != nil || p.ShrinkFactor != nil:
				t.Fatalf("layer %q: the NumPy Interp does not take zoom_factor and shrink_factor together", lp.GetName())
			}
			lp.InterpParam = nil
		case "DetectionOutput":
			if p := lp.GetDetectionOutputParam(); p != nil {
				p.Visualize, p.VisualizeThreshold = nil, nil
			}
			continue
		default:
			continue
		}
		// One type per distinct configuration: OpenCV 4.6's Python binding
		// crashes (SIGSEGV) once some tens of layer types are registered.
		key, err := json.Marshal(custom)
		if err != nil {
			t.Fatal(err)
		}
		typ, ok := types[string(key)]
		if !ok {
			typ = fmt.Sprintf("TlsurgeryCustom%d", len(types))
			types[string(key)] = typ
			custom.Type = typ
			job.Custom = append(job.Custom, custom)
		}
		lp.Type = new(typ)
	}
	job.Prototxt = filepath.Join(dir, "net.prototxt")
	if err := (caffe.WriteOptions{Encoding: caffe.Text, NoWeights: true}).WriteFile(out, job.Prototxt); err != nil {
		t.Fatal(err)
	}
	if weights {
		job.Caffemodel = filepath.Join(dir, "net.caffemodel")
		if err := (caffe.WriteOptions{Encoding: caffe.Binary}).WriteFile(out, job.Caffemodel); err != nil {
			t.Fatal(err)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// prepare compiles the case's net for its input and lists the values to
// compare: the net's outputs and the bottom of every Softmax that
// produces one. OpenCV is asked for the producing layers by name.
func (c *netCase) prepare(t *testing.T) {
	t.Helper()
	var err error
	c.compiled, err = compileSafely(c.net, Options{Graph: graph.Options{Inputs: map[string][]int{"": c.input}}})
	if err != nil {
		t.Fatal(err)
	}
	g := c.compiled.Graph()
	add := func(v *graph.Value) {
		if v.Producer == nil || slices.Contains(c.compare, v) {
			return
		}
		c.compare = append(c.compare, v)
		c.job.Outputs = append(c.job.Outputs, v.Producer.Name())
	}
	for _, v := range g.Outputs() {
		add(v)
		if v.Producer.Type() == "Softmax" {
			add(v.Producer.Bottoms[0])
		}
	}
	for _, name := range c.strict {
		l := g.LayerByName(name)
		if l == nil {
			t.Fatalf("no layer %q to compare", name)
		}
		add(l.Tops[0])
	}
	if len(c.compare) == 0 {
		t.Fatal("the net has no outputs to compare")
	}
	c.job.InputShape = c.input
}

// runOpenCV runs every job in one Python process and returns the results
// by job id.
func runOpenCV(t *testing.T, jobs []cvJob, outDir string) map[string]cvResult {
	t.Helper()
	in, err := json.Marshal(jobs)
	if err != nil {
		t.Fatal(err)
	}
	var results []cvResult
	out := oracle.RunPython(t, openCVScript, in, outDir)
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("decoding the output of the OpenCV script: %v\n%s", err, out)
	}
	byID := map[string]cvResult{}
	for _, r := range results {
		byID[r.ID] = r
	}
	return byID
}

// check runs the net on OpenCV's input and compares every listed value.
func (c *netCase) check(t *testing.T, r cvResult) {
	t.Helper()
	if !r.OK {
		t.Fatalf("OpenCV cannot run the net: %s", r.Error)
	}
	in, err := npy.ReadFile(r.Input)
	if err != nil {
		t.Fatal(err)
	}
	inputs := c.compiled.Inputs()
	if len(inputs) != 1 {
		t.Fatalf("the net has %d inputs; the test feeds one", len(inputs))
	}
	start := time.Now()
	res, err := runSafely(c.compiled, map[string]*Tensor{inputs[0].Blob: {Shape: in.Shape, Data: in.Data}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Run %.2f s, OpenCV %.2f s", time.Since(start).Seconds(), r.Seconds)
	if len(r.Outputs) != len(c.compare) {
		t.Fatalf("OpenCV returned %d outputs for the %d requested", len(r.Outputs), len(c.compare))
	}
	for i, v := range c.compare {
		want, err := npy.ReadFile(r.Outputs[i].Path)
		if err != nil {
			t.Fatal(err)
		}
		got := res.Value(v)
		name := fmt.Sprintf("%s (layer %s)", v.Blob, v.Producer.Name())
		if v.Producer.Type() == "DetectionOutput" {
			compareDetections(t, name, got, want.Data, c.tolerance)
			continue
		}
		if len(got.Data) != len(want.Data) {
			t.Errorf("%s: shape %v, OpenCV's %v", name, got.Shape, want.Shape)
			continue
		}
		if !slices.ContainsFunc(want.Data, func(v float32) bool { return v != want.Data[0] }) {
			t.Errorf("%s: OpenCV's values are all %v, so comparing them proves little", name, want.Data[0])
		}
		d := relDiff(got.Data, want.Data)
		t.Logf("%s %v: relative difference %.3g", name, got.Shape, d)
		if c.unpoolTies && !slices.Contains(c.strict, v.Producer.Name()) {
			off := fractionOff(got.Data, want.Data, c.tolerance)
			t.Logf("%s: not checked after max unpooling; %.3g of the values differ by more than %g relative", name, off, c.tolerance)
			continue
		}
		if d > c.tolerance {
			t.Errorf("%s: relative difference %.3g from OpenCV, want ≤ %g", name, d, c.tolerance)
		}
	}
}

// fractionOff returns the fraction of values where |a − b| exceeds
// tolerance × max |b|.
func fractionOff(a, b []float32, tolerance float64) float64 {
	var m float64
	for _, v := range b {
		m = math.Max(m, math.Abs(float64(v)))
	}
	off := 0
	for i := range b {
		if math.Abs(float64(a[i])-float64(b[i])) > tolerance*m {
			off++
		}
	}
	return float64(off) / float64(max(len(b), 1))
}

// detection is one row of a DetectionOutput top.
type detection [7]float32

func detectionRows(data []float32) []detection {
	rows := make([]detection, len(data)/7)
	for i := range rows {
		copy(rows[i][:], data[i*7:])
	}
	slices.SortFunc(rows, func(a, b detection) int {
		for k := range a {
			if c := cmp.Compare(a[k], b[k]); c != 0 {
				return c
			}
		}
		return 0
	})
	return rows
}

// compareDetections compares two DetectionOutput tops as sets of rows.
// Each row of got is matched to the nearest row of want with the same
// image id and label, and their score and box must agree within
// tolerance × the largest magnitude in want (at least 1).
func compareDetections(t *testing.T, name string, got *Tensor, want []float32, tolerance float64) {
	t.Helper()
	g, w := detectionRows(got.Data), detectionRows(want)
	// OpenCV 4.6 pads its top to keep_top_k rows with rows of zeros, which
	// Caffe does not write. A real all-zero row (label 0, score 0, an empty
	// box at the origin) would be dropped too, but none of these nets
	// produces one.
	w = slices.DeleteFunc(w, func(r detection) bool { return r == detection{} })
	if len(g) != len(w) {
		t.Errorf("%s: %d detections, OpenCV's %d\nours:   %v\nOpenCV: %v", name, len(g), len(w), g, w)
		return
	}
	scale := 1.0
	for _, r := range w {
		for _, v := range r[2:] {
			scale = max(scale, math.Abs(float64(v)))
		}
	}
	used := make([]bool, len(w))
	worst := 0.0
	for _, r := range g {
		best, at := math.Inf(1), -1
		for j, q := range w {
			if used[j] || r[0] != q[0] || r[1] != q[1] {
				continue
			}
			d := 0.0
			for k := 2; k < 7; k++ {
				d = max(d, math.Abs(float64(r[k])-float64(q[k])))
			}
			if d < best {
				best, at = d, j
			}
		}
		if at < 0 {
			t.Errorf("%s: our detection %v has no counterpart of its image and label in OpenCV's", name, r)
			continue
		}
		used[at] = true
		worst = max(worst, best/scale)
	}
	t.Logf("%s: %d detections, relative difference %.3g", name, len(g), worst)
	if worst > tolerance {
		t.Errorf("%s: detections differ from OpenCV's by %.3g relative, want ≤ %g", name, worst, tolerance)
	}
}

// runCases writes every case's OpenCV job, runs them all in one Python
// process, and checks each case in a subtest.
func runCases(t *testing.T, cases []*netCase) {
	outDir := filepath.Join(t.TempDir(), "outputs")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	var jobs []cvJob
	for _, c := range cases {
		jobs = append(jobs, c.job)
	}
	if len(jobs) == 0 {
		corpus.Shared(t) // skips, or fails under CI=true, when the corpus is missing
		t.Fatal("no nets to compare")
	}
	results := runOpenCV(t, jobs, outDir)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.check(t, results[c.job.ID]) })
	}
}

// realPair is a caffemodel of the corpus with the prototxt it runs with
// and its input size (the facts of the pairs in caffe/opencv_test.go).
type realPair struct {
	caffemodel, prototxt string // relative to the corpus folder
	input                []int
	// deploy marks nets whose input comes from a data layer: both sides
	// run deployCopy's Input-layer version, which OpenCV accepts.
	deploy bool
	// rewrite marks nets OpenCV reads from tlsurgery's text, because its
	// schema lacks fields of the original.
	rewrite bool
}

var realPairs = []realPair{
	{caffemodel: "caffemodel/lenet/lenet_iter_10000.caffemodel", prototxt: "caffemodel/lenet/lenet.prototxt", input: []int{64, 1, 28, 28}},
	{caffemodel: "caffemodel/lenet_v1/lenet_iter_10000", prototxt: "caffemodel/lenet_v1/lenet.prototxt", input: []int{64, 1, 28, 28}},
	{caffemodel: "caffemodel/lenet_ip1_5/lenet_iter_10000.caffemodel", prototxt: "caffemodel/lenet_ip1_5/lenet_train_test.prototxt", input: []int{100, 1, 28, 28}, deploy: true},
	{caffemodel: "caffemodel/cifar10_quick/cifar10_quick_iter_5000.caffemodel", prototxt: "prototxt/bvlc/cifar10_quick.prototxt", input: []int{1, 3, 32, 32}},
	{caffemodel: "caffemodel/cifar10_full/cifar10_full_iter_70000.caffemodel", prototxt: "caffemodel/cifar10_full/cifar10_full.prototxt", input: []int{1, 3, 32, 32}},
	{caffemodel: "caffemodel/arm_cmsisnn_cifar10/quantized_cifar10_m7_iter_300000.caffemodel", prototxt: "caffemodel/arm_cmsisnn_cifar10/cifar10_m7_train_test.prototxt", input: []int{100, 3, 32, 32}, deploy: true},
	{caffemodel: "caffemodel/mtcnn/det1.caffemodel", prototxt: "caffemodel/mtcnn/det1.prototxt", input: []int{1, 3, 12, 12}},
	{caffemodel: "caffemodel/mtcnn/det2.caffemodel", prototxt: "caffemodel/mtcnn/det2.prototxt", input: []int{1, 3, 24, 24}},
	{caffemodel: "caffemodel/mtcnn/det3.caffemodel", prototxt: "caffemodel/mtcnn/det3.prototxt", input: []int{1, 3, 48, 48}},
	{caffemodel: "caffemodel/mtcnn/det4.caffemodel", prototxt: "caffemodel/mtcnn/det4.prototxt", input: []int{1, 15, 24, 24}},
	{caffemodel: "caffemodel/hyperlpr/CharacterRecognization.caffemodel", prototxt: "caffemodel/hyperlpr/CharacterRecognization.prototxt", input: []int{1, 1, 30, 14}},
	{caffemodel: "caffemodel/hyperlpr/HorizonalFinemapping_v2020-07.caffemodel", prototxt: "caffemodel/hyperlpr/HorizonalFinemapping.prototxt", input: []int{1, 3, 16, 66}},
	{caffemodel: "caffemodel/hyperlpr/Segmentation.caffemodel", prototxt: "caffemodel/hyperlpr/Segmentation.prototxt", input: []int{1, 1, 22, 22}},
	{caffemodel: "caffemodel/deep_landmark/1_F.caffemodel", prototxt: "caffemodel/deep_landmark/1_F.prototxt", input: []int{1, 1, 39, 39}, deploy: true},
	{caffemodel: "caffemodel/yufacedetectnet/yufacedetectnet-open-v1.caffemodel", prototxt: "caffemodel/yufacedetectnet/yufacedetectnet-open-v1.prototxt", input: []int{1, 3, 240, 320}, rewrite: true},
	{caffemodel: "caffemodel/htshinichi_test/test.caffemodel", prototxt: "caffemodel/htshinichi_test/test.prototxt", input: []int{1, 3, 224, 224}},
	{caffemodel: "reference/opencv_contrib_dnn_layers_2015/layer_convolution.caffemodel", prototxt: "reference/opencv_contrib_dnn_layers_2015/layer_convolution.prototxt", input: []int{2, 6, 75, 113}},
	{caffemodel: "reference/opencv_contrib_dnn_layers_2015/layer_deconvolution.caffemodel", prototxt: "reference/opencv_contrib_dnn_layers_2015/layer_deconvolution.prototxt", input: []int{2, 12, 36, 37}},
	{caffemodel: "reference/opencv_contrib_dnn_layers_2015/layer_inner_product.caffemodel", prototxt: "reference/opencv_contrib_dnn_layers_2015/layer_inner_product.prototxt", input: []int{2, 6, 75, 113}},
	{caffemodel: "caffemodel/lenet/lenet_iter_10000.caffemodel", prototxt: "prototxt/bvlc_history/v0_lenet.prototxt", input: []int{64, 1, 28, 28}},
	{caffemodel: "caffemodel/cifar10_quick/cifar10_quick_iter_5000.caffemodel", prototxt: "prototxt/bvlc_history/v0_cifar10_quick.prototxt", input: []int{1, 3, 32, 32}},
	{caffemodel: "caffemodel/cifar10_full/cifar10_full_iter_70000.caffemodel", prototxt: "prototxt/bvlc_history/v0_cifar10_full.prototxt", input: []int{1, 3, 32, 32}},
}

// TestOpenCVRealCaffemodels runs every trained caffemodel of the corpus on
// the same seeded input in OpenCV and Run, and requires every output and
// the input of every final Softmax within 1e-5 relative (max |a − b| ÷
// max |b|).
func TestOpenCVRealCaffemodels(t *testing.T) {
	oracle.Python(t)
	dir := t.TempDir()
	var cases []*netCase
	t.Run("prepare", func(t *testing.T) {
		for i, p := range realPairs {
			name := p.caffemodel + "+" + filepath.Base(p.prototxt)
			t.Run(name, func(t *testing.T) {
				pairDir := filepath.Join(dir, fmt.Sprint(i))
				if err := os.Mkdir(pairDir, 0o755); err != nil {
					t.Fatal(err)
				}
				net, err := caffe.ReadFile(corpus.Path(t, p.prototxt))
				if err != nil {
					t.Fatal(err)
				}
				weights, err := caffe.ReadFile(corpus.Path(t, p.caffemodel))
				if err != nil {
					t.Fatal(err)
				}
				if p.deploy {
					net = deployCopy(t, net, p.input)
				}
				if net, _, err = caffe.AttachWeights(net, weights); err != nil {
					t.Fatal(err)
				}
				c := &netCase{name: name, net: net, input: p.input, tolerance: 1e-5,
					job: cvJob{ID: name, Prototxt: corpus.Path(t, p.prototxt), Caffemodel: corpus.Path(t, p.caffemodel), Seed: i + 1}}
				if p.deploy || p.rewrite {
					openCVCopy(t, net, pairDir, false, &c.job)
				}
				c.prepare(t)
				cases = append(cases, c)
			})
		}
	})
	runCases(t, cases)
}

// seededNet is a deploy net of the corpus that runs with weights from
// surgery.InitWeights.
type seededNet struct {
	name     string
	prototxt string // relative to the corpus folder
	input    []int  // batch 1 at the net's declared size
	deploy   bool   // the net reads a data layer (see deployCopy)

	// unpoolTies lists layers before the first max unpooling (Upsample
	// with a mask), which are checked in place of the outputs, whose
	// differences are only logged. When the two largest inputs of a
	// max-pooling window agree to float32 rounding, OpenCV and Run may
	// pick different argmaxes, so the unpooled value lands elsewhere in
	// the window and changes the values downstream of it. Seeded SegNet
	// has such windows: in runs with two seeds, 0.15% and 3% of its output
	// values moved by more than 1e-4 relative. ENet, checked in full in
	// CI, covers unpooling.
	unpoolTies []string
}

// seededNets run in CI. On a 2-core machine TestOpenCVSeededNets took
// 12 s in one run, OpenCV included, and -v logs the times per net.
var seededNets = []seededNet{
	{name: "AlexNet", prototxt: "prototxt/bvlc/bvlc_alexnet_deploy.prototxt", input: []int{1, 3, 227, 227}},
	{name: "CaffeNet", prototxt: "prototxt/bvlc/bvlc_reference_caffenet_deploy.prototxt", input: []int{1, 3, 227, 227}},
	{name: "GoogLeNet", prototxt: "prototxt/bvlc/bvlc_googlenet_deploy.prototxt", input: []int{1, 3, 224, 224}},
	{name: "ResNet-50", prototxt: "prototxt/resnet/ResNet-50-deploy.prototxt", input: []int{1, 3, 224, 224}},
	{name: "SqueezeNet 1.0", prototxt: "prototxt/squeezenet/SqueezeNet_v1.0_deploy.prototxt", input: []int{1, 3, 227, 227}},
	{name: "SqueezeNet 1.1", prototxt: "prototxt/squeezenet/SqueezeNet_v1.1_deploy.prototxt", input: []int{1, 3, 227, 227}},
	{name: "MobileNet v1", prototxt: "prototxt/mobilenet/mobilenet_v1_deploy.prototxt", input: []int{1, 3, 224, 224}},
	{name: "MobileNet-SSD", prototxt: "prototxt/mobilenet_ssd/MobileNetSSD_deploy_merged_bn.prototxt", input: []int{1, 3, 300, 300}},
	{name: "ENet", prototxt: "prototxt/enet/enet_deploy_final.prototxt", input: []int{1, 3, 512, 1024}},
}

// deepSeededNets are too slow for CI, so scripts/forward-deep-check.sh
// runs them. On a 2-core machine Run took 6 s on SSD300, 3 s on VGG-16, 51 s on
// FCN-8s at 500×500, 16-22 s on SegNet and 27 s on PSPNet-50 (one run
// each).
var deepSeededNets = []seededNet{
	{name: "SSD300", prototxt: "prototxt/ssd/VGG_VOC0712_SSD_300x300_deploy.prototxt", input: []int{1, 3, 300, 300}},
	{name: "VGG-16", prototxt: "prototxt/vgg/VGG_ILSVRC_16_layers_deploy_upgraded_V2.prototxt", input: []int{1, 3, 224, 224}},
	{name: "FCN-8s", prototxt: "prototxt/fcn/voc-fcn8s_deploy.prototxt", input: []int{1, 3, 500, 500}},
	{name: "SegNet", prototxt: "prototxt/segnet/segnet_inference.prototxt", input: []int{1, 3, 360, 480}, deploy: true, unpoolTies: []string{"pool5"}},
	{name: "PSPNet-50", prototxt: "prototxt/pspnet/pspnet50_ADE20K_473.prototxt", input: []int{1, 3, 473, 473}},
}

// TestOpenCVSeededNets runs the CI set of deploy nets with seeded weights
// in OpenCV and Run on the same seeded input. Every output and the input
// of every final Softmax must agree within 1e-4 relative, and
// DetectionOutput's detections are compared as sets of rows.
func TestOpenCVSeededNets(t *testing.T) {
	checkSeededNets(t, seededNets)
}

// TestOpenCVDeepSeededNets is TestOpenCVSeededNets for the slow nets. It
// runs only with TLSURGERY_DEEP=1 (scripts/forward-deep-check.sh sets it).
func TestOpenCVDeepSeededNets(t *testing.T) {
	if os.Getenv("TLSURGERY_DEEP") != "1" {
		t.Skip("SKIP: set TLSURGERY_DEEP=1 (scripts/forward-deep-check.sh) to run the slow nets")
	}
	checkSeededNets(t, deepSeededNets)
}

// setRandomFillers gives every learned blob of net a random filler.
// Deploy prototxts rarely name fillers, and Caffe's default, constant 0,
// would make most outputs 0 and the comparison empty. Weights get msra
// (which keeps activations in range through ReLU nets), biases and shifts
// uniform [−0.1, 0.1], scales uniform [0.5, 1.5].
func setRandomFillers(net *caffe.Net) {
	uniform := func(lo, hi float32) *caffepb.FillerParameter {
		return &caffepb.FillerParameter{Type: new("uniform"), Min: new(lo), Max: new(hi)}
	}
	msra := &caffepb.FillerParameter{Type: new("msra")}
	for _, lp := range net.Param.GetLayer() {
		switch lp.GetType() {
		case "Convolution", "Deconvolution", "DepthwiseConvolution", "ConvolutionDepthwise":
			if lp.ConvolutionParam == nil {
				lp.ConvolutionParam = &caffepb.ConvolutionParameter{}
			}
			lp.ConvolutionParam.WeightFiller, lp.ConvolutionParam.BiasFiller = msra, uniform(-0.1, 0.1)
		case "InnerProduct":
			if lp.InnerProductParam == nil {
				lp.InnerProductParam = &caffepb.InnerProductParameter{}
			}
			lp.InnerProductParam.WeightFiller, lp.InnerProductParam.BiasFiller = msra, uniform(-0.1, 0.1)
		case "Scale":
			if lp.ScaleParam == nil {
				lp.ScaleParam = &caffepb.ScaleParameter{}
			}
			lp.ScaleParam.Filler, lp.ScaleParam.BiasFiller = uniform(0.5, 1.5), uniform(-0.1, 0.1)
		case "BN":
			p := lp.GetBnParam()
			if p == nil {
				p = lp.GetBnParamPspnet()
			}
			if p == nil {
				p = &caffepb.BNParameter{}
				lp.BnParam = p
			}
			p.ScaleFiller, p.ShiftFiller = uniform(0.5, 1.5), uniform(-0.1, 0.1)
		}
	}
}

func checkSeededNets(t *testing.T, nets []seededNet) {
	oracle.Python(t)
	dir := t.TempDir()
	var cases []*netCase
	t.Run("prepare", func(t *testing.T) {
		for i, s := range nets {
			t.Run(s.name, func(t *testing.T) {
				netDir := filepath.Join(dir, fmt.Sprint(i))
				if err := os.Mkdir(netDir, 0o755); err != nil {
					t.Fatal(err)
				}
				net, err := caffe.ReadFile(corpus.Path(t, s.prototxt))
				if err != nil {
					t.Fatal(err)
				}
				if s.deploy {
					net = deployCopy(t, net, s.input)
				}
				setRandomFillers(net)
				start := time.Now()
				net, _, err = surgery.InitWeights(net, surgery.InitOptions{Seed: 1, Inputs: map[string][]int{"": s.input}})
				if err != nil {
					t.Fatal(err)
				}
				c := &netCase{name: s.name, net: net, input: s.input, tolerance: 1e-4, job: cvJob{ID: s.name, Seed: i + 1},
					strict: s.unpoolTies, unpoolTies: len(s.unpoolTies) > 0}
				openCVCopy(t, net, netDir, true, &c.job)
				c.prepare(t)
				t.Logf("initialized and written in %.2f s", time.Since(start).Seconds())
				cases = append(cases, c)
			})
		}
	})
	runCases(t, cases)
}
