package graph

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
)

// The -update flag, which rewrites the golden files in testdata, is
// declared once for the package, in facts_test.go.

// quotedNet has names that need escaping in DOT, an in-place chain of
// three layers, a layer working in place on one of two bottoms, and a
// bottom that no layer produces.
const quotedNet = `
name: "quote \"net\""
layer { name: "in" type: "Input" top: "x y" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "a \"quoted\" \\ name" type: "Convolution" bottom: "x y" top: "c/1"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "bn" type: "BatchNorm" bottom: "c/1" top: "c/1" }
layer { name: "sc" type: "Scale" bottom: "c/1" top: "c/1" }
layer { name: "relu" type: "ReLU" bottom: "c/1" top: "c/1" }
layer { name: "sum" type: "Eltwise" bottom: "c/1" bottom: "missing" top: "c/1" }
layer { name: "end\\" type: "Sigmoid" bottom: "c/1" top: "out" }
`

func buildGraph(t *testing.T, net *caffe.Net) *Graph {
	t.Helper()
	g := Build(net, Options{})
	g.Infer()
	return g
}

func readNetFile(t *testing.T, path string) *caffe.Net {
	t.Helper()
	net, err := caffe.ReadOptions{StructureOnly: true}.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return net
}

func readNetText(t *testing.T, text string) *caffe.Net {
	t.Helper()
	net, err := caffe.ReadOptions{Name: "test.prototxt"}.Read(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return net
}

func writeDOT(t *testing.T, g *Graph, opts DOTOptions) string {
	t.Helper()
	var buf bytes.Buffer
	if err := g.WriteDOT(&buf, opts); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// requireDot returns the path of Graphviz's dot program. It skips the
// test when dot is missing, or fails it under CI=true.
func requireDot(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("dot")
	if err == nil {
		return path
	}
	if corpus.InCI() {
		t.Fatal("graphviz dot not installed, and CI=true needs it: run bash scripts/install-oracles.sh")
	}
	t.Skip("SKIP: graphviz dot not installed; run bash scripts/install-oracles.sh to run this test")
	return ""
}

// renderSVG runs dot -Tsvg on text and returns the SVG.
func renderSVG(t *testing.T, dot, text string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	c := exec.Command(dot, "-Tsvg")
	c.Stdin = strings.NewReader(text)
	c.Stdout = &stdout
	c.Stderr = &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("dot -Tsvg failed: %v\n%s", err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("dot -Tsvg printed warnings:\n%s", stderr.String())
	}
	return stdout.String()
}

func TestWriteDOTLeNetGolden(t *testing.T) {
	g := buildGraph(t, readNetFile(t, corpus.Path(t, "caffemodel", "lenet", "lenet.prototxt")))
	got := writeDOT(t, g, DOTOptions{})

	golden := filepath.Join("testdata", "lenet.dot")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./graph -run TestWriteDOTLeNetGolden -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("DOT output differs from %s (rerun with -update if the change is intended)\ngot:\n%s", golden, got)
	}
}

func TestWriteDOTDeterministic(t *testing.T) {
	path := corpus.Path(t, "prototxt", "bvlc", "bvlc_googlenet_deploy.prototxt")
	first := writeDOT(t, buildGraph(t, readNetFile(t, path)), DOTOptions{Shapes: true})
	second := writeDOT(t, buildGraph(t, readNetFile(t, path)), DOTOptions{Shapes: true})
	if first != second {
		t.Error("two runs on the same net wrote different DOT text")
	}
}

func TestWriteDOTLeNetInPlace(t *testing.T) {
	g := buildGraph(t, readNetFile(t, corpus.Path(t, "caffemodel", "lenet", "lenet.prototxt")))
	got := writeDOT(t, g, DOTOptions{})

	for _, want := range []string{
		`"blob:ip1" -> "layer:relu1";`,
		`"layer:relu1" -> "blob:ip1" [style=dashed];`,
		`"blob:ip1" -> "layer:ip2";`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %s", want)
		}
	}
	if strings.Contains(got, `"blob:ip1#`) {
		t.Error("the in-place top of relu1 got a node of its own")
	}
}

func TestWriteDOTLeNetLabels(t *testing.T) {
	g := buildGraph(t, readNetFile(t, corpus.Path(t, "caffemodel", "lenet", "lenet.prototxt")))
	got := writeDOT(t, g, DOTOptions{Shapes: true})

	for _, want := range []string{
		`rankdir=LR;`,
		`label="conv1\n(Convolution)\nnum_output 20\nkernel 5, stride 1, pad 0"`,
		`label="pool1\n(MAX Pooling)\nkernel 2, stride 2, pad 0"`,
		`label="ip1\n(InnerProduct)\nnum_output 500"`,
		`label="data\n64×1×28×28"`,
		`label="conv1\n64×20×24×24"`,
		`fillcolor="` + colorData + `"`,
		`fillcolor="` + colorActivation + `"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %s", want)
		}
	}
}

func TestWriteDOTVerticalLabels(t *testing.T) {
	g := buildGraph(t, readNetFile(t, corpus.Path(t, "caffemodel", "lenet", "lenet.prototxt")))
	got := writeDOT(t, g, DOTOptions{RankDir: "TB"})

	if !strings.Contains(got, "rankdir=TB;") {
		t.Error("output lacks rankdir=TB")
	}
	want := `label="conv1 (Convolution)\nnum_output 20, kernel 5, stride 1, pad 0"`
	if !strings.Contains(got, want) {
		t.Errorf("output lacks %s", want)
	}
}

func TestWriteDOTInvalidRankDir(t *testing.T) {
	g := buildGraph(t, readNetText(t, quotedNet))
	var buf bytes.Buffer
	err := g.WriteDOT(&buf, DOTOptions{RankDir: "XY"})
	if err == nil || !strings.Contains(err.Error(), `invalid rankdir "XY"`) {
		t.Errorf("error = %v, want invalid rankdir", err)
	}
	if buf.Len() != 0 {
		t.Errorf("wrote %d bytes before rejecting the rankdir", buf.Len())
	}
}

func TestWriteDOTQuotedNames(t *testing.T) {
	g := buildGraph(t, readNetText(t, quotedNet))
	got := writeDOT(t, g, DOTOptions{Shapes: true})

	for _, want := range []string{
		`digraph "quote \"net\"" {`,
		`"layer:a \"quoted\" \\ name" [shape=box`,
		`"blob:x y" -> "layer:a \"quoted\" \\ name";`,
		`"layer:end\\" -> "blob:out";`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %s", want)
		}
	}
}

func TestWriteDOTInPlaceChain(t *testing.T) {
	g := buildGraph(t, readNetText(t, quotedNet))
	got := writeDOT(t, g, DOTOptions{})

	for _, want := range []string{
		`"layer:bn" -> "blob:c/1" [style=dashed, label="1"];`,
		`"layer:sc" -> "blob:c/1" [style=dashed, label="2"];`,
		`"layer:relu" -> "blob:c/1" [style=dashed, label="3"];`,
		`"layer:sum" -> "blob:c/1" [style=dashed, label="4"];`,
		`"blob:c/1" -> "layer:end\\";`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %s", want)
		}
	}
	if n := strings.Count(got, `"blob:c/1" [shape=octagon`); n != 1 {
		t.Errorf("blob c/1 has %d nodes, want 1", n)
	}
}

func TestWriteDOTMissingBottom(t *testing.T) {
	g := buildGraph(t, readNetText(t, quotedNet))
	got := writeDOT(t, g, DOTOptions{Shapes: true})

	want := `"blob:missing" [shape=octagon, style="filled,dashed", fillcolor="` + colorBlob + `", label="missing\n(not produced)"];`
	if !strings.Contains(got, want) {
		t.Errorf("output lacks %s", want)
	}
}

func TestWriteDOTRepeatedNames(t *testing.T) {
	// Two layers named "twin" write the blob "x" without working in place,
	// which Validate reports. Each must still get its own node.
	const text = `
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 } } }
layer { name: "twin" type: "ReLU" bottom: "x" top: "x2" }
layer { name: "twin" type: "ReLU" bottom: "x2" top: "x" }
`
	got := writeDOT(t, buildGraph(t, readNetText(t, text)), DOTOptions{})
	for _, want := range []string{
		`"layer:twin" [shape=box`,
		`"layer:twin~2" [shape=box`,
		`"blob:x#1" [shape=octagon`,
		`"layer:twin~2" -> "blob:x#1";`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %s", want)
		}
	}
}

func TestDotQuote(t *testing.T) {
	cases := []struct{ in, want string }{
		{"conv1/7x7_s2", `"conv1/7x7_s2"`},
		{"with space", `"with space"`},
		{`a "quoted" \ name`, `"a \"quoted\" \\ name"`},
		{`trailing\`, `"trailing\\"`},
		{`\N`, `"\\N"`},
		{"two\nlines", `"two\nlines"`},
		{"", `""`},
	}
	for _, c := range cases {
		if got := dotQuote(c.in); got != c.want {
			t.Errorf("dotQuote(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestWriteDOTGraphvizAcceptsGoogLeNet(t *testing.T) {
	dot := requireDot(t)
	path := corpus.Path(t, "prototxt", "bvlc", "bvlc_googlenet_deploy.prototxt")
	text := writeDOT(t, buildGraph(t, readNetFile(t, path)), DOTOptions{Shapes: true})

	svg := renderSVG(t, dot, text)
	if !strings.Contains(svg, "inception_5b/pool_proj") {
		t.Error("SVG lacks the layer inception_5b/pool_proj")
	}
}

func TestWriteDOTGraphvizAcceptsQuotedNames(t *testing.T) {
	dot := requireDot(t)
	text := writeDOT(t, buildGraph(t, readNetText(t, quotedNet)), DOTOptions{Shapes: true})

	// Graphviz turns the label escapes back into the names and then
	// escapes them for XML.
	svg := renderSVG(t, dot, text)
	for _, want := range []string{`>a &quot;quoted&quot; \ name</text>`, `>end\</text>`} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %s", want)
		}
	}
}
