package safetensors

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/convert/npy"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
	"github.com/tlsurgery/tlsurgery/internal/oracle"
)

func blob(shape []int64, values ...float32) *caffepb.BlobProto {
	return &caffepb.BlobProto{Shape: &caffepb.BlobShape{Dim: shape}, Data: values}
}

func layer(name, typ string, bottoms int, blobs ...*caffepb.BlobProto) *caffepb.LayerParameter {
	l := &caffepb.LayerParameter{Name: proto.String(name), Type: proto.String(typ), Blobs: blobs}
	for i := range bottoms {
		l.Bottom = append(l.Bottom, "in"+string(rune('0'+i)))
	}
	return l
}

func testNet(layers ...*caffepb.LayerParameter) *caffe.Net {
	return &caffe.Net{Param: &caffepb.NetParameter{Layer: layers}, Source: "test.caffemodel"}
}

// entry is one tensor of a parsed header.
type entry struct {
	Dtype       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets []uint64 `json:"data_offsets"`
}

// parsedFile is a safetensors file split into its parts.
type parsedFile struct {
	headerLen uint64
	names     []string // tensor names in header order
	entries   map[string]entry
	metadata  map[string]string
	data      []byte // the data section
}

// parseFile splits a safetensors file and checks the layout rules that do
// not depend on the net: the length prefix, valid JSON, an 8-byte aligned
// data section, and contiguous offsets that cover the data section.
func parseFile(t *testing.T, file []byte) parsedFile {
	t.Helper()
	if len(file) < 8 {
		t.Fatalf("file is %d bytes, shorter than the length prefix", len(file))
	}
	p := parsedFile{headerLen: binary.LittleEndian.Uint64(file[:8]), entries: map[string]entry{}}
	if p.headerLen > uint64(len(file)-8) {
		t.Fatalf("header length %d exceeds the %d bytes after the prefix", p.headerLen, len(file)-8)
	}
	header := file[8 : 8+p.headerLen]
	p.data = file[8+p.headerLen:]
	if (8+p.headerLen)%8 != 0 {
		t.Errorf("data section starts at byte %d, not a multiple of 8", 8+p.headerLen)
	}
	if !json.Valid(header) {
		t.Fatalf("header is not valid JSON: %q", header)
	}

	// Read the keys with a token decoder, because a map loses their order.
	dec := json.NewDecoder(bytes.NewReader(header))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("header does not start with an object: %v %v", tok, err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		key := tok.(string)
		if key == "__metadata__" {
			if err := dec.Decode(&p.metadata); err != nil {
				t.Fatalf("__metadata__ is not a map of strings: %v", err)
			}
			continue
		}
		var e entry
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("tensor %q: %v", key, err)
		}
		if _, dup := p.entries[key]; dup {
			t.Errorf("tensor %q appears twice", key)
		}
		p.names = append(p.names, key)
		p.entries[key] = e
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		t.Fatalf("header object does not end: %v %v", tok, err)
	}
	if rest := strings.TrimRight(string(header[dec.InputOffset():]), " "); rest != "" {
		t.Errorf("header has %q after the JSON object; only spaces may pad it", rest)
	}

	var end uint64
	for _, name := range p.names {
		e := p.entries[name]
		if e.Dtype != "F32" {
			t.Errorf("tensor %q has dtype %q, want F32", name, e.Dtype)
		}
		if len(e.DataOffsets) != 2 || e.DataOffsets[0] != end {
			t.Fatalf("tensor %q has offsets %v, want to start at %d", name, e.DataOffsets, end)
		}
		count := uint64(1)
		for _, d := range e.Shape {
			count *= uint64(d)
		}
		if got := e.DataOffsets[1] - e.DataOffsets[0]; got != 4*count {
			t.Errorf("tensor %q of shape %v spans %d bytes, want %d", name, e.Shape, got, 4*count)
		}
		end = e.DataOffsets[1]
	}
	if end != uint64(len(p.data)) {
		t.Errorf("tensors end at byte %d of the data section, which is %d bytes long", end, len(p.data))
	}
	return p
}

// values returns the float32 values of tensor name.
func (p parsedFile) values(t *testing.T, name string) []float32 {
	t.Helper()
	e, ok := p.entries[name]
	if !ok {
		t.Fatalf("no tensor %q; the file has %v", name, p.names)
	}
	raw := p.data[e.DataOffsets[0]:e.DataOffsets[1]]
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

func writeBytes(t *testing.T, net *caffe.Net, opts Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, net, opts); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestHeaderLayout(t *testing.T) {
	net := testNet(
		layer("conv1", "Convolution", 1, blob([]int64{2, 1, 3, 3}, make([]float32, 18)...), blob([]int64{2}, 0.5, -0.5)),
		layer("relu1", "ReLU", 1),
		layer("fc<1>&\"x\"", "InnerProduct", 1, blob([]int64{3, 2}, 1, 2, 3, 4, 5, 6)),
		layer("scalar", "Python", 1, blob(nil, 7)),
		layer("empty", "Python", 1, blob([]int64{0, 4})),
	)
	file := writeBytes(t, net, Options{Metadata: map[string]string{"note": "ünïcode \"quoted\""}})
	p := parseFile(t, file)

	if got := binary.LittleEndian.Uint64(file[:8]); got != p.headerLen || got%8 != 0 {
		t.Errorf("header length %d, want a multiple of 8", got)
	}
	wantNames := []string{"conv1.weight", "conv1.bias", "fc<1>&\"x\".weight", "scalar.0", "empty.0"}
	if !slices.Equal(p.names, wantNames) {
		t.Errorf("tensor order %v, want %v", p.names, wantNames)
	}
	if got := p.entries["scalar.0"].Shape; got == nil || len(got) != 0 {
		t.Errorf("scalar shape %v, want []", got)
	}
	if got := p.entries["empty.0"]; !slices.Equal(got.Shape, []int{0, 4}) || got.DataOffsets[0] != got.DataOffsets[1] {
		t.Errorf("empty tensor %+v, want shape [0 4] and no bytes", got)
	}
	if got := p.values(t, "fc<1>&\"x\".weight"); !slices.Equal(got, []float32{1, 2, 3, 4, 5, 6}) {
		t.Errorf("fc weight %v", got)
	}
	wantMeta := map[string]string{"source": "test.caffemodel", "format": "caffe", "note": "ünïcode \"quoted\""}
	if !maps.Equal(p.metadata, wantMeta) {
		t.Errorf("metadata %v, want %v", p.metadata, wantMeta)
	}
	if !bytes.Contains(file, []byte(`"fc<1>&\"x\".weight"`)) {
		t.Errorf("header escapes <, > or &: %q", file[8:8+p.headerLen])
	}
}

func TestHeaderPaddingAllLengths(t *testing.T) {
	// Names of 1 to 16 bytes move the unpadded header length through
	// every remainder modulo 8.
	for n := 1; n <= 16; n++ {
		net := testNet(layer(strings.Repeat("a", n), "Python", 0, blob([]int64{1}, float32(n))))
		p := parseFile(t, writeBytes(t, net, Options{}))
		if got := p.values(t, strings.Repeat("a", n)+".0"); !slices.Equal(got, []float32{float32(n)}) {
			t.Errorf("name length %d: value %v", n, got)
		}
	}
}

func TestMetadataOverridesDefaults(t *testing.T) {
	net := testNet(layer("ip", "InnerProduct", 1, blob([]int64{1, 1}, 1)))
	p := parseFile(t, writeBytes(t, net, Options{Metadata: map[string]string{"format": "pt"}}))
	if p.metadata["format"] != "pt" {
		t.Errorf("format %q, want the caller's pt", p.metadata["format"])
	}
	if p.metadata["source"] != "test.caffemodel" {
		t.Errorf("source %q, want test.caffemodel", p.metadata["source"])
	}
}

func TestTensorNames(t *testing.T) {
	oneValue := func() *caffepb.BlobProto { return blob([]int64{1}, 1) }
	tests := []struct {
		layer *caffepb.LayerParameter
		want  []string
	}{
		{layer("c", "Convolution", 1, oneValue(), oneValue()), []string{"c.weight", "c.bias"}},
		{layer("c", "Convolution", 1, oneValue(), oneValue(), oneValue()), []string{"c.weight", "c.bias", "c.2"}},
		{layer("d", "Deconvolution", 1, oneValue()), []string{"d.weight"}},
		{layer("dw", "DepthwiseConvolution", 1, oneValue(), oneValue()), []string{"dw.weight", "dw.bias"}},
		{layer("cd", "ConvolutionDepthwise", 1, oneValue(), oneValue()), []string{"cd.weight", "cd.bias"}},
		{layer("ip", "InnerProduct", 1, oneValue(), oneValue()), []string{"ip.weight", "ip.bias"}},
		{layer("e", "Embed", 1, oneValue(), oneValue()), []string{"e.weight", "e.bias"}},
		{layer("s", "Scale", 1, oneValue(), oneValue()), []string{"s.weight", "s.bias"}},
		{layer("s", "Scale", 2, oneValue()), []string{"s.bias"}},
		{layer("p", "PReLU", 1, oneValue()), []string{"p.weight"}},
		{layer("bn", "BatchNorm", 1, oneValue(), oneValue(), oneValue()), []string{"bn.running_mean", "bn.running_var"}},
		{layer("bn", "BatchNorm", 1, oneValue(), oneValue(), oneValue(), oneValue(), oneValue()),
			[]string{"bn.running_mean", "bn.running_var", "bn.weight", "bn.bias"}},
		{layer("bn", "BN", 1, oneValue(), oneValue()), []string{"bn.weight", "bn.bias"}},
		{layer("bn", "BN", 1, oneValue(), oneValue(), oneValue(), oneValue()),
			[]string{"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"}},
		{layer("n", "Normalize", 1, oneValue()), []string{"n.0"}},
		{layer("b", "Bias", 1, oneValue()), []string{"b.0"}},
		{layer("x", "Python", 1, oneValue(), oneValue(), oneValue()), []string{"x.0", "x.1", "x.2"}},
	}
	for _, tt := range tests {
		p := parseFile(t, writeBytes(t, testNet(tt.layer), Options{}))
		if !slices.Equal(p.names, tt.want) {
			t.Errorf("%s with %d bottoms and %d blobs: tensors %v, want %v",
				tt.layer.GetType(), len(tt.layer.Bottom), len(tt.layer.Blobs), p.names, tt.want)
		}
	}
}

func TestBatchNormStatisticsDivided(t *testing.T) {
	mean := []float32{3, -1.5, 0, 1e-30}
	variance := []float32{7, 0.1, 2, float32(math.Inf(1))}
	for _, factor := range []float32{1, 999.982, 0.3, 0} {
		net := testNet(layer("bn", "BatchNorm", 1,
			blob([]int64{4}, mean...), blob([]int64{4}, variance...), blob([]int64{1}, factor)))
		p := parseFile(t, writeBytes(t, net, Options{}))
		for name, stored := range map[string][]float32{"bn.running_mean": mean, "bn.running_var": variance} {
			got := p.values(t, name)
			for i, v := range stored {
				want := float32(0)
				if factor != 0 {
					want = v / factor
				}
				if math.Float32bits(got[i]) != math.Float32bits(want) {
					t.Errorf("factor %v: %s[%d] = %v, want %v / %v = %v", factor, name, i, got[i], v, factor, want)
				}
			}
		}
	}
	if !slices.Equal(mean, []float32{3, -1.5, 0, 1e-30}) {
		t.Errorf("Write changed the net's mean blob to %v", mean)
	}
}

func TestWriteRejects(t *testing.T) {
	oneValue := func() *caffepb.BlobProto { return blob([]int64{1}, 1) }
	tests := []struct {
		name string
		net  *caffe.Net
		want string
	}{
		{"duplicate layer", testNet(layer("a", "Convolution", 1, oneValue()), layer("a", "InnerProduct", 1, oneValue())), `both map to tensor "a.weight"`},
		{"name collision", testNet(layer("a", "Python", 1, oneValue()), layer("a", "Data", 1, oneValue())), `both map to tensor "a.0"`},
		{"structure only", testNet(layer("a", "Convolution", 1, blob([]int64{2, 3}))), "has no values"},
		{"count mismatch", testNet(layer("a", "Convolution", 1, blob([]int64{2, 3}, 1, 2))), "has 2 values but its shape [2 3] needs 6"},
		{"negative dim", testNet(layer("a", "Convolution", 1, blob([]int64{-1}))), "negative"},
		{"batchnorm without factor", testNet(layer("bn", "BatchNorm", 1, oneValue(), oneValue())), "has 2 blobs"},
		{"batchnorm factor of two values", testNet(layer("bn", "BatchNorm", 1, oneValue(), oneValue(), blob([]int64{2}, 1, 1))), "has 2 values, want 1"},
		{"invalid utf-8 name", testNet(layer("a\xff", "PReLU", 1, oneValue())), "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(&buf, tt.net, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %d bytes before failing", buf.Len())
			}
		})
	}
	var buf bytes.Buffer
	err := Write(&buf, testNet(), Options{Metadata: map[string]string{"k": "\xfe"}})
	if err == nil || !strings.Contains(err.Error(), "not valid UTF-8") {
		t.Errorf("invalid UTF-8 metadata: error %v", err)
	}
}

func TestHeaderSizeLimit(t *testing.T) {
	net := testNet(layer("ip", "InnerProduct", 1, blob([]int64{1}, 1)))
	var buf bytes.Buffer
	err := Write(&buf, net, Options{Metadata: map[string]string{"big": strings.Repeat("x", MaxHeaderSize)}})
	if err == nil || !strings.Contains(err.Error(), "more than the 100000000 bytes") {
		t.Fatalf("error %v, want the header size limit", err)
	}
	if buf.Len() != 0 {
		t.Errorf("wrote %d bytes before failing", buf.Len())
	}
}

// failingWriter accepts limit bytes and then fails.
type failingWriter struct{ limit int }

var errDiskFull = errors.New("disk full")

func (w *failingWriter) Write(b []byte) (int, error) {
	if len(b) > w.limit {
		n := w.limit
		w.limit = 0
		return n, errDiskFull
	}
	w.limit -= len(b)
	return len(b), nil
}

func TestWriteErrorReturned(t *testing.T) {
	net := testNet(layer("ip", "InnerProduct", 1, blob([]int64{3 * chunkValues}, make([]float32, 3*chunkValues)...)))
	for _, limit := range []int{0, 200, 4 * chunkValues} {
		if err := Write(&failingWriter{limit: limit}, net, Options{}); !errors.Is(err, errDiskFull) {
			t.Errorf("writer failing after %d bytes: error %v, want %v", limit, err, errDiskFull)
		}
	}
}

func TestWriteFile(t *testing.T) {
	net := testNet(layer("ip", "InnerProduct", 1, blob([]int64{2, 2}, 1, 2, 3, 4), blob([]int64{2}, 5, 6)))
	path := filepath.Join(t.TempDir(), "w.safetensors")
	if err := WriteFile(path, net, Options{}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := writeBytes(t, net, Options{}); !bytes.Equal(got, want) {
		t.Errorf("WriteFile wrote %d bytes that differ from Write's %d", len(got), len(want))
	}

	bad := testNet(layer("a", "Convolution", 1, blob([]int64{2})))
	if err := WriteFile(path, bad, Options{}); err == nil {
		t.Fatal("WriteFile accepted a blob without values")
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, got) {
		t.Error("a failed WriteFile changed the existing file")
	}
}

// corpusWeights returns every real caffemodel of the corpus (not the HDF5
// snapshot), including the V1 snapshot saved without an extension.
func corpusWeights(t *testing.T) []string {
	files := corpus.Glob(t, "caffemodel/*/*.caffemodel")
	return append(files, corpus.Path(t, "caffemodel", "lenet_v1", "lenet_iter_10000"))
}

func blobSHA256(values []float32) string {
	b := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// numpyCheckScript reads safetensors files with the standard json and
// struct modules and numpy.frombuffer, and compares them with the blobs of
// the nets they came from. Its naming table is written from the package
// documentation, independently of the Go code.
const numpyCheckScript = `"""Check safetensors files against Caffe blobs in NumPy."""
import hashlib, json, struct, sys
import numpy as np

def suffixes(kind, bottoms, count):
    if kind in ("Convolution", "Deconvolution", "DepthwiseConvolution", "ConvolutionDepthwise", "InnerProduct", "Embed"):
        table = ["weight", "bias"]
    elif kind == "Scale":
        table = ["bias"] if bottoms > 1 else ["weight", "bias"]
    elif kind == "PReLU":
        table = ["weight"]
    elif kind == "BatchNorm":
        table = ["running_mean", "running_var", None, "weight", "bias"]
    elif kind == "BN":
        table = ["weight", "bias", "running_mean", "running_var"]
    else:
        table = []
    return [table[i] if i < len(table) else str(i) for i in range(count)]

report = []
for job in json.load(sys.stdin):
    problems = []
    with open(job["safetensors"], "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    buffer = data[8 + n:]
    if (8 + n) % 8:
        problems.append("data section starts at %d" % (8 + n))
    meta = header.pop("__metadata__", {})
    if meta.get("format") != "caffe" or meta.get("source") != job["source"]:
        problems.append("metadata %r" % meta)

    blobs = np.load(job["blobs"])
    expected = []  # (name, array, divided)
    for layer in job["layers"]:
        raw = []
        for i, digest in enumerate(layer["sha256"]):
            a = blobs["%s/%d" % (layer["name"], i)]
            if hashlib.sha256(np.ascontiguousarray(a, dtype="<f4").tobytes()).hexdigest() != digest:
                problems.append("%s blob %d: the .npz copy differs from the blob read in Go" % (layer["name"], i))
            raw.append(a)
        names = suffixes(layer["type"], layer["bottoms"], len(raw))
        for i, (suffix, a) in enumerate(zip(names, raw)):
            if suffix is None:
                continue
            divided = layer["type"] == "BatchNorm" and i < 2
            if divided:
                factor = raw[2].reshape(-1)[0]
                a = np.zeros_like(a) if factor == 0 else np.divide(a, factor, dtype=np.float32)
            expected.append((layer["name"] + "." + suffix, a, divided))

    if [name for name, _, _ in expected] != list(header):
        problems.append("tensor names %r, want %r" % (list(header), [name for name, _, _ in expected]))
    end = 0
    divided_count = 0
    for name, want, divided in expected:
        info = header.get(name)
        if info is None:
            continue
        begin, stop = info["data_offsets"]
        if begin != end:
            problems.append("%s starts at %d, previous tensor ends at %d" % (name, begin, end))
        end = stop
        got = np.frombuffer(buffer, dtype="<f4", count=(stop - begin) // 4, offset=begin).reshape(info["shape"])
        if info["dtype"] != "F32" or got.shape != want.shape:
            problems.append("%s: %s %r, want F32 %r" % (name, info["dtype"], got.shape, want.shape))
        elif not np.array_equal(got.view(np.uint32), want.astype("<f4").view(np.uint32)):
            problems.append("%s: %d values differ" % (name, int((got.view(np.uint32) != want.astype("<f4").view(np.uint32)).sum())))
        divided_count += divided
    if end != len(buffer):
        problems.append("tensors end at %d, data section is %d bytes" % (end, len(buffer)))
    report.append({"file": job["source"], "tensors": len(header), "divided": divided_count, "problems": problems})
json.dump(report, sys.stdout)
`

// syntheticBatchNormNet returns a net with two BatchNorm layers of 1000
// channels, with factors 999.982 and 0, and a Scale layer with two bottoms.
func syntheticBatchNormNet() *caffe.Net {
	const channels = 1000
	mean, variance := make([]float32, channels), make([]float32, channels)
	for i := range channels {
		mean[i] = float32(math.Sin(float64(i))) * 1000
		variance[i] = float32(i*i) / 7
	}
	net := testNet(
		layer("bn_a", "BatchNorm", 1, blob([]int64{channels}, mean...), blob([]int64{channels}, variance...), blob([]int64{1}, 999.982)),
		layer("bn_b", "BatchNorm", 1, blob([]int64{channels}, mean...), blob([]int64{channels}, variance...), blob([]int64{1}, 0)),
		layer("scale_b", "Scale", 2, blob([]int64{channels}, variance...)),
	)
	net.Source = "synthetic-batchnorm"
	return net
}

// numpyJob is one file for numpyCheckScript.
type numpyJob struct {
	Source      string       `json:"source"`
	SafeTensors string       `json:"safetensors"`
	Blobs       string       `json:"blobs"` // .npz of the raw blobs, LAYER/N
	Layers      []numpyLayer `json:"layers"`
}

type numpyLayer struct {
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Bottoms int      `json:"bottoms"`
	SHA256  []string `json:"sha256"` // of each blob's little-endian values
}

func TestCorpusMatchesNumPy(t *testing.T) {
	oracle.Python(t)
	dir := t.TempDir()
	nets := map[string]*caffe.Net{}
	paths := corpusWeights(t)
	for _, path := range paths {
		net, err := caffe.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		nets[path] = net
	}
	// The corpus's only BatchNorm layer has a factor of 1, so a net built
	// here adds factors where v/factor differs from v*(1/factor), and 0.
	paths = append(paths, "synthetic-batchnorm")
	nets["synthetic-batchnorm"] = syntheticBatchNormNet()

	var jobs []numpyJob
	for i, path := range paths {
		net := nets[path]
		// The index keeps apart the two files named lenet_iter_10000.caffemodel.
		base := filepath.Join(dir, fmt.Sprintf("%02d-%s", i, filepath.Base(path)))
		job := numpyJob{Source: net.Source, SafeTensors: base + ".safetensors", Blobs: base + ".npz"}
		if err := WriteFile(job.SafeTensors, net, Options{}); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if err := npy.WriteNPZFile(job.Blobs, npy.NetArrays(net)); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, l := range net.Param.GetLayer() {
			if len(l.GetBlobs()) == 0 {
				continue
			}
			nl := numpyLayer{Name: l.GetName(), Type: l.GetType(), Bottoms: len(l.GetBottom())}
			for _, b := range l.GetBlobs() {
				nl.SHA256 = append(nl.SHA256, blobSHA256(b.Data))
			}
			job.Layers = append(job.Layers, nl)
		}
		jobs = append(jobs, job)
	}

	stdin, err := json.Marshal(jobs)
	if err != nil {
		t.Fatal(err)
	}
	var report []struct {
		File     string   `json:"file"`
		Tensors  int      `json:"tensors"`
		Divided  int      `json:"divided"`
		Problems []string `json:"problems"`
	}
	if err := json.Unmarshal(oracle.RunPython(t, numpyCheckScript, stdin), &report); err != nil {
		t.Fatal(err)
	}
	if len(report) != len(jobs) {
		t.Fatalf("NumPy checked %d files, want %d", len(report), len(jobs))
	}
	divided := 0
	for _, r := range report {
		if r.Tensors == 0 {
			t.Errorf("%s: no tensors", r.File)
		}
		for _, p := range r.Problems {
			t.Errorf("%s: %s", r.File, p)
		}
		divided += r.Divided
		t.Logf("%s: %d tensors match", r.File, r.Tensors)
	}
	if divided == 0 {
		t.Error("no BatchNorm statistics were checked; the corpus should contain the ResNet stem with a BatchNorm layer")
	}
}
