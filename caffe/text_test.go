package caffe

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/internal/corpus"
)

func readString(t *testing.T, src string) *Net {
	t.Helper()
	net, err := ReadOptions{Name: "test.prototxt"}.Read(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	return net
}

func writeString(t *testing.T, net *Net) string {
	t.Helper()
	var buf bytes.Buffer
	if err := (WriteOptions{Encoding: Text}).Write(&buf, net); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestUnknownTextFieldsKept(t *testing.T) {
	src := `name: "n"
layer {
  name: "c"
  type: "Convolution"
  convolution_param { num_output: 4 kernel_size: 3 fancy_option: 7 fancy { a: 1 b: "x" } }
  weird_param { x: "y" }
}
layer {
  name: "p"
  type: "Pooling"
  pooling_param { pool: MAXX kernel_size: 2 }
}
`
	net := readString(t, src)
	wantNotes := []string{
		`test.prototxt:5:52: layer "c": unknown: field "fancy_option" is not in the schema of ConvolutionParameter`,
		`test.prototxt:5:68: layer "c": unknown: field "fancy"`,
		`test.prototxt:6:3: layer "c": unknown: field "weird_param" is not in the schema of LayerParameter`,
		`test.prototxt:11:19: layer "p": unknown: field "pool" has a value that enum PoolMethod lacks`,
	}
	if len(net.Notes) != len(wantNotes) {
		t.Errorf("got %d notes, want %d: %v", len(net.Notes), len(wantNotes), net.Notes)
	}
	for i, want := range wantNotes {
		if i < len(net.Notes) && !strings.HasPrefix(net.Notes[i].String(), want) {
			t.Errorf("note %d = %q, want prefix %q", i, net.Notes[i], want)
		}
	}

	out := writeString(t, net)
	for _, want := range []string{"    fancy_option: 7\n", "    fancy {\n      a: 1\n      b: \"x\"\n    }\n", "  weird_param {\n    x: \"y\"\n  }\n", "    pool: MAXX\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("written text lacks %q:\n%s", want, out)
		}
	}
	back := readString(t, out)
	if !proto.Equal(back.Param, net.Param) {
		t.Errorf("text round trip changed the net:\n%s", out)
	}

	var bin bytes.Buffer
	if err := (WriteOptions{Encoding: Binary}).Write(&bin, net); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(bin.Bytes(), []byte("fancy_option")) {
		t.Errorf("binary output carries fields kept from text")
	}
}

func TestCeilModeSpellingKept(t *testing.T) {
	for _, field := range []string{"ceil_mode: false", "round_mode: FLOOR", "ceil_mode: true"} {
		src := "layer {\n  name: \"p\"\n  type: \"Pooling\"\n  pooling_param {\n    " + field + "\n  }\n}\n"
		net := readString(t, src)
		if len(net.Notes) != 0 {
			t.Errorf("%s: unexpected notes %v", field, net.Notes)
		}
		if out := writeString(t, net); out != src {
			t.Errorf("%s: written back as\n%s", field, out)
		}
	}
}

func TestMixedLayerFieldsKeepOrder(t *testing.T) {
	net := readString(t, `
layer { name: "a" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 } } }
layers { name: "b" type: RELU bottom: "x" top: "x" }
layer { name: "c" type: "Softmax" bottom: "x" top: "y" }
layers { name: "d" type: INNER_PRODUCT bottom: "y" top: "z" blobs_lr: 1 blobs_lr: 2 }
`)
	var names []string
	for _, l := range net.Param.Layer {
		names = append(names, l.GetName()+":"+l.GetType())
	}
	if got, want := strings.Join(names, " "), "a:Input b:ReLU c:Softmax d:InnerProduct"; got != want {
		t.Errorf("layers %s, want %s", got, want)
	}
	if net.Generation != V1 {
		t.Errorf("generation %v, want V1", net.Generation)
	}
	if len(net.Notes) == 0 || !strings.Contains(net.Notes[0].Message, "mixes current `layer` and V1 `layers`") {
		t.Errorf("notes %v lack the mixed-format note", net.Notes)
	}
	if p := net.Param.Layer[3].GetParam(); len(p) != 2 || p[1].GetLrMult() != 2 {
		t.Errorf("blobs_lr not upgraded to param: %v", p)
	}
}

func TestSeveralInputsUpgrade(t *testing.T) {
	net := readString(t, `
input: "a"
input_dim: 1 input_dim: 3 input_dim: 4 input_dim: 5
input: "b"
input_dim: 1 input_dim: 2 input_dim: 1 input_dim: 1
layer { name: "c" type: "Concat" bottom: "a" bottom: "b" top: "c" }
`)
	in := net.Param.Layer[0]
	if in.GetName() != "input" || in.GetType() != "Input" || strings.Join(in.GetTop(), ",") != "a,b" {
		t.Fatalf("first layer %v", in)
	}
	shapes := in.GetInputParam().GetShape()
	if len(shapes) != 2 || shapes[0].GetDim()[3] != 5 || shapes[1].GetDim()[1] != 2 {
		t.Errorf("shapes %v", shapes)
	}
	if len(net.Param.GetInput()) != 0 || len(net.Param.GetInputDim()) != 0 {
		t.Errorf("net-level input fields remain")
	}
}

func TestBatchNormParamUpgrade(t *testing.T) {
	net := readString(t, `layer { name: "bn" type: "BatchNorm" param { lr_mult: 1 } param { lr_mult: 1 } param { lr_mult: 1 decay_mult: 1 } }`)
	for i, p := range net.Param.Layer[0].GetParam() {
		if p.LrMult == nil || p.GetLrMult() != 0 || p.DecayMult == nil || p.GetDecayMult() != 0 {
			t.Errorf("param %d = %v, want lr_mult 0 and decay_mult 0", i, p)
		}
	}
	if len(net.Notes) != 1 || net.Notes[0].Kind != NoteUpgrade {
		t.Errorf("notes %v, want one upgrade note", net.Notes)
	}
}

func TestDataTransformationUpgrade(t *testing.T) {
	net := readString(t, `layers { name: "d" type: DATA top: "data" data_param { source: "db" scale: 0.5 mean_file: "m" crop_size: 7 mirror: true batch_size: 4 } }`)
	l := net.Param.Layer[0]
	tp := l.GetTransformParam()
	if tp.GetScale() != 0.5 || tp.GetMeanFile() != "m" || tp.GetCropSize() != 7 || !tp.GetMirror() {
		t.Errorf("transform_param %v", tp)
	}
	dp := l.GetDataParam()
	if dp.Scale != nil || dp.MeanFile != nil || dp.CropSize != nil || dp.Mirror != nil || dp.GetBatchSize() != 4 || dp.GetSource() != "db" {
		t.Errorf("data_param %v", dp)
	}
}

func TestTextWriterLayout(t *testing.T) {
	src := `name: "tiny"
layer {
  name: "data"
  type: "Input"
  top: "data"
  input_param {
    shape {
      dim: 1
      dim: 3
      dim: 8
      dim: 8
    }
  }
}
layer {
  name: "conv"
  type: "Convolution"
  bottom: "data"
  top: "conv"
  param {
    lr_mult: 1
  }
  convolution_param {
    num_output: 2
    pad: 1
    kernel_size: 3
    weight_filler {
      type: "gaussian"
      std: 0.01
    }
  }
}
`
	// Fields come out in schema order whatever order the input used.
	shuffled := strings.Replace(src, "    num_output: 2\n    pad: 1\n", "    pad: 1\n    num_output: 2\n", 1)
	if out := writeString(t, readString(t, shuffled)); out != src {
		t.Errorf("got\n%s\nwant\n%s", out, src)
	}
}

func TestReadBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	lenet, err := os.ReadFile(corpus.Path(t, "caffemodel", "mtcnn", "det1.caffemodel"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
		is               error
	}{
		{"empty file", write("empty.caffemodel", nil), "the file is empty", ErrFormat},
		{"directory", dir, "is a directory", ErrFormat},
		{"truncated caffemodel", write("cut.caffemodel", lenet[:len(lenet)/2]), "byte offset", ErrFormat},
		{"invalid text", write("bad.prototxt", []byte("layer {\n  name: \"x\"\n  type: 3 4\n}\n")), "bad.prototxt:3:", ErrFormat},
		{"wrong value type", write("type.prototxt", []byte("layer {\n  convolution_param { num_output: \"ten\" }\n}\n")), `type.prototxt:2:35: field "num_output": expected an integer`, ErrFormat},
		{"template", write("tpl.prototxt", []byte("layer { convolution_param { num_output: ${NUM_LABELS} } }")), "substitute its ${...} variables", ErrFormat},
		{"hdf5", write("snap.caffemodel", append([]byte("\x89HDF\r\n\x1a\n"), make([]byte, 100)...)), "HDF5", ErrUnsupported},
		{"missing file", filepath.Join(dir, "nope.caffemodel"), "no such file", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadFile(tt.path)
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.path) {
				t.Errorf("error %q lacks %q or the path", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
		})
	}
}

func TestWriteRefusesSource(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "net.prototxt")
	if err := os.WriteFile(path, []byte(`layer { name: "a" type: "ReLU" }`), 0o644); err != nil {
		t.Fatal(err)
	}
	net, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := (WriteOptions{}).WriteFile(net, path); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("error %v, want a refusal", err)
	}
	if err := (WriteOptions{ReplaceSource: true}).WriteFile(net, path); err != nil {
		t.Errorf("with ReplaceSource: %v", err)
	}
}

func FuzzParseText(f *testing.F) {
	for _, path := range corpus.Walk(f, ".prototxt") {
		if st, err := os.Stat(path); err == nil && st.Size() < 12<<10 {
			data, err := os.ReadFile(path)
			if err == nil {
				f.Add(string(data))
			}
		}
	}
	f.Add(`layer { name: "a" unknown { x: [1, 2] } pooling_param { ceil_mode: false } }`)
	f.Add("layers { layer { name: \"p\" type: \"padding\" pad: 2 } top: \"x\" }")
	f.Fuzz(func(t *testing.T, src string) {
		net, err := ReadOptions{Name: "fuzz"}.Read(strings.NewReader(src))
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error of unexpected kind: %v", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := (WriteOptions{Encoding: Text}).Write(&buf, net); err != nil {
			t.Fatalf("writing: %v", err)
		}
		if buf.Len() == 0 {
			return // an empty net writes an empty file, which Read rejects as truncated
		}
		back, err := ReadOptions{Name: "rewritten"}.Read(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("reading back %q: %v", buf.String(), err)
		}
		want := net.Param
		if net.Encoding == Binary {
			// Binary fields the schema lacks have no text form.
			want = CloneNet(&Net{Param: withoutBlobs(net.Param)}).Param
			dropUnknown(want.ProtoReflect())
		}
		if !proto.Equal(back.Param, want) {
			t.Fatalf("round trip changed the net:\n%s", buf.String())
		}
	})
}
