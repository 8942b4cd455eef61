package npy

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
	"github.com/tlsurgery/tlsurgery/internal/oracle"
)

func testBlob(shape []int64, values ...float32) *caffepb.BlobProto {
	return &caffepb.BlobProto{Shape: &caffepb.BlobShape{Dim: shape}, Data: values}
}

func TestNetArraysShareBlobs(t *testing.T) {
	mean := testBlob([]int64{2}, 4, 8)
	variance := testBlob([]int64{2}, 1, 3)
	factor := testBlob([]int64{1}, 2)
	legacy := &caffepb.BlobProto{Num: proto.Int32(1), Channels: proto.Int32(1), Height: proto.Int32(2), Width: proto.Int32(3),
		Data: []float32{1, 2, 3, 4, 5, 6}}
	net := &caffe.Net{Param: &caffepb.NetParameter{Layer: []*caffepb.LayerParameter{
		{Name: proto.String("data"), Type: proto.String("Input")},
		{Name: proto.String("ip/1"), Type: proto.String("InnerProduct"), Blobs: []*caffepb.BlobProto{legacy}},
		{Name: proto.String("bn"), Type: proto.String("BatchNorm"), Blobs: []*caffepb.BlobProto{mean, variance, factor}},
	}}}

	arrays := NetArrays(net)
	names := slices.Sorted(maps.Keys(arrays))
	if want := []string{"bn/0", "bn/1", "bn/2", "ip/1/0"}; !slices.Equal(names, want) {
		t.Fatalf("arrays %v, want %v", names, want)
	}
	if got := arrays["ip/1/0"].Shape; !slices.Equal(got, []int{1, 1, 2, 3}) {
		t.Errorf("legacy blob shape %v, want [1 1 2 3]", got)
	}
	for name, b := range map[string]*caffepb.BlobProto{"bn/0": mean, "bn/1": variance, "bn/2": factor, "ip/1/0": legacy} {
		if &arrays[name].Data[0] != &b.Data[0] || len(arrays[name].Data) != len(b.Data) {
			t.Errorf("%s does not share the blob's Data", name)
		}
	}
	if !slices.Equal(arrays["bn/0"].Data, []float32{4, 8}) {
		t.Errorf("BatchNorm mean %v, want the stored [4 8]", arrays["bn/0"].Data)
	}
	arrays["bn/1"].Data[0] = 9
	if variance.Data[0] != 9 {
		t.Error("changing an array's value did not change the blob")
	}
}

func TestNetArraysWithoutValuesRejected(t *testing.T) {
	net := &caffe.Net{Param: &caffepb.NetParameter{Layer: []*caffepb.LayerParameter{
		{Name: proto.String("c"), Type: proto.String("Convolution"), Blobs: []*caffepb.BlobProto{testBlob([]int64{2, 1, 3, 3})}},
	}}}
	if err := WriteNPZFile(filepath.Join(t.TempDir(), "w.npz"), NetArrays(net)); err == nil {
		t.Error("WriteNPZFile accepted a blob without values")
	}
}

// npzCheckScript loads .npz files with numpy.load and compares each member
// with the shape and SHA-256 of the blob it came from.
const npzCheckScript = `"""Check .npz files of Caffe blobs in NumPy."""
import hashlib, json, sys
import numpy as np

report = []
for job in json.load(sys.stdin):
    problems = []
    z = np.load(job["npz"])
    want = job["arrays"]
    if sorted(z.files) != sorted(want):
        problems.append("members %r, want %r" % (sorted(z.files), sorted(want)))
    for name in sorted(set(z.files) & set(want)):
        a = z[name]
        if a.dtype != np.float32 or list(a.shape) != want[name]["shape"]:
            problems.append("%s: %s %r, want float32 %r" % (name, a.dtype, a.shape, want[name]["shape"]))
            continue
        if hashlib.sha256(np.ascontiguousarray(a, dtype="<f4").tobytes()).hexdigest() != want[name]["sha256"]:
            problems.append("%s: values differ from the blob" % name)
    report.append({"file": job["source"], "arrays": len(z.files), "problems": problems})
json.dump(report, sys.stdout)
`

type npzJob struct {
	Source string               `json:"source"`
	NPZ    string               `json:"npz"`
	Arrays map[string]npzMember `json:"arrays"`
}

type npzMember struct {
	Shape  []int  `json:"shape"`
	SHA256 string `json:"sha256"` // of the blob's little-endian float32 values
}

func TestCorpusNPZMatchesNumPy(t *testing.T) {
	oracle.Python(t)
	paths := append(corpus.Glob(t, "caffemodel/*/*.caffemodel"), corpus.Path(t, "caffemodel", "lenet_v1", "lenet_iter_10000"))
	dir := t.TempDir()
	var jobs []npzJob
	for i, path := range paths {
		net, err := caffe.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		// The index keeps apart the two files named lenet_iter_10000.caffemodel.
		job := npzJob{Source: path, NPZ: filepath.Join(dir, fmt.Sprintf("%02d-%s.npz", i, filepath.Base(path))), Arrays: map[string]npzMember{}}
		if err := WriteNPZFile(job.NPZ, NetArrays(net)); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, l := range net.Param.GetLayer() {
			for j, b := range l.GetBlobs() {
				shape := caffe.BlobShape(b)
				if shape == nil {
					shape = []int{}
				}
				job.Arrays[fmt.Sprintf("%s/%d", l.GetName(), j)] = npzMember{Shape: shape, SHA256: valuesSHA256(b.Data)}
			}
		}
		jobs = append(jobs, job)
	}

	stdin, err := json.Marshal(jobs)
	if err != nil {
		t.Fatal(err)
	}
	var report []struct {
		File     string   `json:"file"`
		Arrays   int      `json:"arrays"`
		Problems []string `json:"problems"`
	}
	if err := json.Unmarshal(oracle.RunPython(t, npzCheckScript, stdin), &report); err != nil {
		t.Fatal(err)
	}
	if len(report) != len(jobs) {
		t.Fatalf("NumPy checked %d files, want %d", len(report), len(jobs))
	}
	for _, r := range report {
		if r.Arrays == 0 {
			t.Errorf("%s: no arrays", r.File)
		}
		for _, p := range r.Problems {
			t.Errorf("%s: %s", r.File, p)
		}
		t.Logf("%s: %d arrays match", r.File, r.Arrays)
	}
}

func valuesSHA256(values []float32) string {
	b := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
