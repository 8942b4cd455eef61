package npy

import (
	"bytes"
	"errors"
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tlsurgery/tlsurgery/internal/corpus"
	"github.com/tlsurgery/tlsurgery/internal/oracle"
)

func TestRoundTrip(t *testing.T) {
	for _, shape := range [][]int{{3}, {2, 3}, {1, 2, 3, 4}, {}, {0, 5}} {
		n := 1
		for _, d := range shape {
			n *= d
		}
		a := &Array{Shape: shape, Data: make([]float32, n)}
		for i := range a.Data {
			a.Data[i] = float32(i) * 0.5
		}
		var buf bytes.Buffer
		if err := Write(&buf, a); err != nil {
			t.Fatal(err)
		}
		if (buf.Len()-4*n)%64 != 0 {
			t.Errorf("shape %v: data starts at %d, not a multiple of 64", shape, buf.Len()-4*n)
		}
		for _, size := range []int64{int64(buf.Len()), -1} {
			b, err := Read(bytes.NewReader(buf.Bytes()), size)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(b.Shape, a.Shape) && !(len(b.Shape) == 0 && len(a.Shape) == 0) || !slices.Equal(b.Data, a.Data) {
				t.Errorf("shape %v: read back %v %v", shape, b.Shape, b.Data)
			}
		}
	}
}

func TestReadCorpusArrays(t *testing.T) {
	a, err := ReadFile(corpus.Path(t, "reference", "opencv_contrib_dnn_layers_2015", "layer_convolution.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Shape, []int{2, 12, 36, 37}) {
		t.Errorf("shape %v", a.Shape)
	}
	mean, err := ReadFile(corpus.Path(t, "caffemodel", "mean", "bvlc_ilsvrc_2012_mean.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(mean.Shape, []int{3, 256, 256}) {
		t.Fatalf("mean shape %v", mean.Shape)
	}
	var sum float64
	for _, v := range mean.Data[:256*256] {
		sum += float64(v)
	}
	if got := sum / (256 * 256); math.Abs(got-104.00698793) > 1e-3 {
		t.Errorf("blue mean %v, want 104.007", got)
	}
}

func TestReadBadInput(t *testing.T) {
	good := func(header string) []byte {
		var b bytes.Buffer
		b.WriteString(magic)
		b.Write([]byte{1, 0, byte(len(header)), 0})
		b.WriteString(header)
		return b.Bytes()
	}
	tests := []struct {
		name, want string
		data       []byte
	}{
		{"empty", "shorter than", nil},
		{"not npy", "magic", []byte("PK\x03\x04 not an npy file")},
		{"huge shape", "needs", good("{'descr': '<f4', 'fortran_order': False, 'shape': (10000, 10000), }\n")},
		{"fortran", "Fortran", good("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }\n")},
		{"object dtype", "unsupported dtype", good("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }\n")},
		{"overflow", "too many", good("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int64{int64(len(tt.data)), -1} {
				_, err := Read(bytes.NewReader(tt.data), size)
				want := tt.want
				if size < 0 && want == "needs" {
					want = "truncated" // with no size, the data is read until it runs out
				}
				if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), want) {
					t.Errorf("size %d: error %v, want ErrFormat with %q", size, err, want)
				}
			}
		})
	}
}

func TestNumPyReadsOurFiles(t *testing.T) {
	py := oracle.Python(t)
	dir := t.TempDir()
	a := &Array{Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6.5}}
	if err := WriteFile(filepath.Join(dir, "a.npy"), a); err != nil {
		t.Fatal(err)
	}
	if err := WriteNPZFile(filepath.Join(dir, "b.npz"), map[string]*Array{"conv1/0": a, "x": {Shape: []int{1}, Data: []float32{7}}}); err != nil {
		t.Fatal(err)
	}
	script := `import numpy as np, sys
a = np.load(sys.argv[1]); z = np.load(sys.argv[2])
assert a.dtype == np.float32 and a.shape == (2, 3) and a[1, 2] == 6.5, a
assert sorted(z.files) == ['conv1/0', 'x'], z.files
assert (z['conv1/0'] == a).all() and z['x'][0] == 7
np.savez(sys.argv[3], d=np.arange(6, dtype=np.float64).reshape(3, 2), i=np.array([1, -2], dtype=np.int16))
print("ok")`
	out, err := exec.Command(py, "-c", script, filepath.Join(dir, "a.npy"), filepath.Join(dir, "b.npz"), filepath.Join(dir, "c.npz")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("numpy: %v\n%s", err, out)
	}
	z, err := ReadNPZFile(filepath.Join(dir, "c.npz"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(z["d"].Shape, []int{3, 2}) || z["d"].Data[5] != 5 || z["i"].Data[1] != -2 {
		t.Errorf("read back %v %v", z["d"], z["i"])
	}
}
