package caffe

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
)

// readCorpusNet reads a corpus net; DeepLab's test nets are shell
// templates whose ${NUM_LABELS} is substituted with 21 (PASCAL VOC) first.
func readCorpusNet(t *testing.T, path string, opts ReadOptions) *Net {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(src, []byte("${NUM_LABELS}")) {
		src = bytes.ReplaceAll(src, []byte("${NUM_LABELS}"), []byte("21"))
	}
	opts.Name = path
	net, err := opts.Read(bytes.NewReader(src))
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return net
}

func roundTrip(t *testing.T, net *Net, enc Encoding) *Net {
	t.Helper()
	var buf bytes.Buffer
	if err := (WriteOptions{Encoding: enc}).Write(&buf, net); err != nil {
		t.Fatalf("writing %s as %v: %v", net.Source, enc, err)
	}
	back, err := ReadOptions{Name: net.Source + " (rewritten)"}.Read(&buf)
	if err != nil {
		t.Fatalf("reading back %s written as %v: %v", net.Source, enc, err)
	}
	return back
}

// stripBlobs returns p without layer blobs, for comparing a net read from
// a caffemodel with its text form.
func stripBlobs(p *caffepb.NetParameter) *caffepb.NetParameter {
	return withoutBlobs(p)
}

func TestCorpusPrototxtRoundTrip(t *testing.T) {
	for _, path := range corpus.Walk(t, ".prototxt") {
		rel := strings.TrimPrefix(path, corpus.Path(t)+"/")
		t.Run(rel, func(t *testing.T) {
			net := readCorpusNet(t, path, ReadOptions{})
			if len(net.Param.GetLayer()) == 0 {
				t.Fatalf("no layers read")
			}
			for _, enc := range []Encoding{Text, Binary} {
				back := roundTrip(t, net, enc)
				if !proto.Equal(back.Param, net.Param) {
					t.Errorf("%v round trip changed the net", enc)
				}
			}
		})
	}
}

func TestCorpusCaffemodelRoundTrip(t *testing.T) {
	paths := append(corpus.Walk(t, ".caffemodel"), corpus.Path(t, "caffemodel", "lenet_v1", "lenet_iter_10000"))
	for _, path := range paths {
		rel := strings.TrimPrefix(path, corpus.Path(t)+"/")
		t.Run(rel, func(t *testing.T) {
			net, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if net.Encoding != Binary {
				t.Errorf("encoding %v, want binary", net.Encoding)
			}
			back := roundTrip(t, net, Binary)
			if !proto.Equal(back.Param, net.Param) {
				t.Errorf("binary round trip changed the net")
			}
			// Text keeps everything but binary fields the schema lacks,
			// which the reader notes.
			text := roundTrip(t, net, Text)
			want := CloneNet(&Net{Param: stripBlobs(net.Param)}).Param
			dropUnknown(want.ProtoReflect())
			if !proto.Equal(text.Param, want) {
				t.Errorf("text round trip changed the structure")
			}
			if hasUnknown(net.Param.ProtoReflect()) && !hasNote(net.Notes, NoteUnknown) {
				t.Errorf("unknown binary fields were not noted")
			}
		})
	}
}

func TestCorpusHDF5Rejected(t *testing.T) {
	path := corpus.Path(t, "caffemodel", "hdf5_snapshot", "cifar10_quick_iter_5000.caffemodel.h5")
	_, err := ReadFile(path)
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("error %v, want ErrUnsupported", err)
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "HDF5") {
		t.Errorf("error %q does not name the file and HDF5", err)
	}
}

func dropUnknown(m protoreflect.Message) {
	walkUnknown(m, func(msg protoreflect.Message, _ []byte) { msg.SetUnknown(nil) })
}

func hasUnknown(m protoreflect.Message) bool {
	found := false
	walkUnknown(m, func(protoreflect.Message, []byte) { found = true })
	return found
}

func hasNote(notes []Note, kind NoteKind) bool {
	for _, n := range notes {
		if n.Kind == kind {
			return true
		}
	}
	return false
}

// upgradePairs lists Caffe's own upgrade tests: an old net and the net
// Caffe's upgrade code must produce from it.
var upgradePairs = []struct{ input, expected string }{
	{"NetUpgradeTest_TestSimple__v0_proto", "NetUpgradeTest_TestSimple__expected_v1_proto"},
	{"NetUpgradeTest_TestSimple__v0_proto", "NetUpgradeTest_TestSimple__expected_v2_proto"},
	{"NetUpgradeTest_TestSimple__expected_v1_proto", "NetUpgradeTest_TestSimple__expected_v2_proto"},
	{"NetUpgradeTest_TestAllParams__input_proto", "NetUpgradeTest_TestAllParams__expected_output_proto"},
	{"NetUpgradeTest_TestImageNet__v0_proto", "NetUpgradeTest_TestImageNet__expected_v1_proto"},
	{"NetUpgradeTest_TestImageNet__v0_proto", "NetUpgradeTest_TestImageNet__expected_v2_proto"},
	{"NetUpgradeTest_TestImageNet__expected_v1_proto", "NetUpgradeTest_TestImageNet__expected_v2_proto"},
	{"PaddingLayerUpgradeTest_TestSimple__input_proto", "PaddingLayerUpgradeTest_TestSimple__expected_output_proto"},
	{"PaddingLayerUpgradeTest_TestTwoTops__input_proto", "PaddingLayerUpgradeTest_TestTwoTops__expected_output_proto"},
	{"PaddingLayerUpgradeTest_TestImageNet__input_proto", "PaddingLayerUpgradeTest_TestImageNet__expected_output_proto"},
}

func TestCaffeUpgradeTests(t *testing.T) {
	for _, pair := range upgradePairs {
		t.Run(pair.input+"→"+pair.expected, func(t *testing.T) {
			dir := corpus.Path(t, "prototxt", "caffe_test_upgrade_proto")
			got := readCorpusNet(t, filepath.Join(dir, pair.input+".prototxt"), ReadOptions{})
			want := readCorpusNet(t, filepath.Join(dir, pair.expected+".prototxt"), ReadOptions{})
			if !proto.Equal(got.Param, want.Param) {
				diffNets(t, got.Param, want.Param)
			}
		})
	}
}

// diffNets reports the first layers that differ, in text form.
func diffNets(t *testing.T, got, want *caffepb.NetParameter) {
	t.Helper()
	if len(got.GetLayer()) != len(want.GetLayer()) {
		t.Errorf("got %d layers, want %d", len(got.GetLayer()), len(want.GetLayer()))
	}
	shown := 0
	for i := 0; i < min(len(got.GetLayer()), len(want.GetLayer())) && shown < 3; i++ {
		if !proto.Equal(got.Layer[i], want.Layer[i]) {
			var g, w bytes.Buffer
			encodeText(&g, got.Layer[i].ProtoReflect())
			encodeText(&w, want.Layer[i].ProtoReflect())
			t.Errorf("layer %d differs:\n--- got\n%s--- want\n%s", i, g.String(), w.String())
			shown++
		}
	}
	g, w := shallowNet(got), shallowNet(want)
	g.Layer, w.Layer = nil, nil
	if !proto.Equal(g, w) {
		t.Errorf("net-level fields differ:\n--- got\n%v\n--- want\n%v", g, w)
	}
}

// historyPairs maps each old-format net in prototxt/bvlc_history to the
// current-format file of the same net in prototxt/bvlc.
func historyPairs(t *testing.T) map[string]string {
	pairs := map[string]string{}
	for _, path := range corpus.Glob(t, "prototxt/bvlc_history/*.prototxt") {
		base := filepath.Base(path)
		var name string
		switch {
		case strings.HasPrefix(base, "v1_"):
			name = strings.TrimPrefix(base, "v1_")
		case strings.HasPrefix(base, "v2_input_dim_"):
			name = strings.TrimPrefix(base, "v2_input_dim_")
		case strings.HasPrefix(base, "v2_input_shape_"):
			name = strings.TrimPrefix(base, "v2_input_shape_")
		default:
			continue
		}
		if name == "bvlc_caffenet_full_conv.prototxt" {
			name = "net_surgery_" + name // the net surgery example's file
		}
		current := corpus.Path(t, "prototxt", "bvlc", name)
		if _, err := os.Stat(current); err == nil {
			pairs[path] = current
		}
	}
	return pairs
}

func TestHistoryUpgradesToCurrent(t *testing.T) {
	pairs := historyPairs(t)
	if len(pairs) != 10 {
		t.Errorf("found %d pairs of old and current nets, want 10", len(pairs))
	}
	for old, current := range pairs {
		t.Run(filepath.Base(old), func(t *testing.T) {
			got := readCorpusNet(t, old, ReadOptions{})
			want := readCorpusNet(t, current, ReadOptions{})
			// Caffe's upgrade names the Input layer "input"; the current
			// files, written by hand, name it after its top blob.
			if l := got.Param.GetLayer(); len(l) > 0 && l[0].GetType() == "Input" && l[0].GetName() == "input" {
				l[0].Name = proto.String(l[0].GetTop()[0])
			}
			if !proto.Equal(got.Param, want.Param) {
				diffNets(t, got.Param, want.Param)
			}
		})
	}
}
