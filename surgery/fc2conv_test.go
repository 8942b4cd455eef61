package surgery

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/graph"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
)

func readPair(t *testing.T, prototxt, caffemodel string) *caffe.Net {
	t.Helper()
	net, err := caffe.ReadFile(corpus.Path(t, prototxt))
	if err != nil {
		t.Fatal(err)
	}
	if caffemodel == "" {
		return net
	}
	w, err := caffe.ReadFile(corpus.Path(t, caffemodel))
	if err != nil {
		t.Fatal(err)
	}
	if net, _, err = caffe.AttachWeights(net, w); err != nil {
		t.Fatal(err)
	}
	return net
}

func textNet(t *testing.T, src string) *caffe.Net {
	t.Helper()
	net, err := caffe.ReadOptions{Name: "test.prototxt"}.Read(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	return net
}

// snapshot copies the structure and the weight values of net.
func snapshot(net *caffe.Net) (*caffepb.NetParameter, [][]float32) {
	var data [][]float32
	for _, l := range net.Param.GetLayer() {
		for _, b := range l.GetBlobs() {
			data = append(data, slices.Clone(b.GetData()))
		}
	}
	return proto.Clone(net.Param).(*caffepb.NetParameter), data
}

func assertUnchanged(t *testing.T, net *caffe.Net, param *caffepb.NetParameter, data [][]float32) {
	t.Helper()
	if !proto.Equal(net.Param, param) {
		t.Errorf("the input net changed")
	}
	i := 0
	for _, l := range net.Param.GetLayer() {
		for _, b := range l.GetBlobs() {
			if !slices.Equal(b.GetData(), data[i]) {
				t.Errorf("weights of layer %q changed", l.GetName())
			}
			i++
		}
	}
}

func TestFCToConvLeNet(t *testing.T) {
	net := readPair(t, "caffemodel/lenet/lenet.prototxt", "caffemodel/lenet/lenet_iter_10000.caffemodel")
	param, data := snapshot(net)
	out, rep, err := FCToConv(net, FCToConvOptions{})
	if err != nil {
		t.Fatal(err)
	}
	assertUnchanged(t, net, param, data)
	if len(rep.Changes) != 2 || !strings.Contains(rep.Changes[0].Detail, "Convolution 4×4 over 50×4×4") {
		t.Errorf("report %v", rep.Changes)
	}
	ip1 := out.Param.GetLayer()[5]
	if ip1.GetName() != "ip1" || ip1.GetType() != "Convolution" {
		t.Fatalf("layer 5 is %s %s", ip1.GetName(), ip1.GetType())
	}
	if got := caffe.BlobShape(ip1.GetBlobs()[0]); !slices.Equal(got, []int{500, 50, 4, 4}) {
		t.Errorf("ip1 weights %v, want 500×50×4×4", got)
	}
	// The weights keep their memory order: the same values, shared.
	if &ip1.GetBlobs()[0].GetData()[0] != &net.Param.GetLayer()[5].GetBlobs()[0].GetData()[0] {
		t.Errorf("ip1's weights were copied; the reshape keeps the values in place")
	}

	_, _, err = FCToConv(out, FCToConvOptions{})
	if !errors.Is(err, ErrNothingToDo) {
		t.Errorf("second conversion: %v, want ErrNothingToDo", err)
	}
}

func TestFCToConvSuffixAndTranspose(t *testing.T) {
	net := textNet(t, `
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 dim: 1 dim: 3 } } }
layer { name: "fc" type: "InnerProduct" bottom: "x" top: "fc" inner_product_param { num_output: 2 transpose: true } }
layer { name: "relu" type: "ReLU" bottom: "fc" top: "fc" }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
`)
	// Weights K×N = 6×2 with transpose.
	w := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	net.Param.Layer[1].Blobs = []*caffepb.BlobProto{
		{Shape: &caffepb.BlobShape{Dim: []int64{6, 2}}, Data: w},
		{Shape: &caffepb.BlobShape{Dim: []int64{2}}, Data: []float32{0.5, -0.5}},
	}
	out, _, err := FCToConv(net, FCToConvOptions{Suffix: "-conv"})
	if err != nil {
		t.Fatal(err)
	}
	l := out.Param.GetLayer()
	if l[1].GetName() != "fc-conv" || l[1].GetTop()[0] != "fc-conv" {
		t.Errorf("converted layer %s top %v", l[1].GetName(), l[1].GetTop())
	}
	if !slices.Equal(l[2].GetBottom(), []string{"fc-conv"}) || !slices.Equal(l[2].GetTop(), []string{"fc-conv"}) || l[3].GetBottom()[0] != "fc-conv" {
		t.Errorf("later layers read %v %v %v", l[2].GetBottom(), l[2].GetTop(), l[3].GetBottom())
	}
	// Transposed to N×K = 2×6, then shaped 2×2×1×3.
	want := []float32{1, 3, 5, 7, 9, 11, 2, 4, 6, 8, 10, 12}
	if got := l[1].GetBlobs()[0].GetData(); !slices.Equal(got, want) {
		t.Errorf("weights %v, want %v", got, want)
	}
	if got := caffe.BlobShape(l[1].GetBlobs()[0]); !slices.Equal(got, []int{2, 2, 1, 3}) {
		t.Errorf("weights shape %v", got)
	}
}

func TestFCToConvBypassesFlatten(t *testing.T) {
	net := readPair(t, "caffemodel/hyperlpr/Segmentation.prototxt", "caffemodel/hyperlpr/Segmentation.caffemodel")
	out, rep, err := FCToConv(net, FCToConvOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range out.Param.GetLayer() {
		if l.GetType() == "Flatten" || l.GetType() == "InnerProduct" {
			t.Errorf("layer %s (%s) is still there", l.GetName(), l.GetType())
		}
	}
	if !strings.Contains(rep.String(), "Flatten removed") {
		t.Errorf("report does not mention the Flatten:\n%s", rep)
	}
}

func TestFCToConvRefusals(t *testing.T) {
	tests := []struct {
		name, src, reason string
	}{
		{"axis 3", `layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 6 dim: 5 dim: 4 } } }
layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 2 axis: 3 } }`, "leaves no spatial window"},
		{"vector input", `layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 6 } } }
layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 2 } }`, `is a vector from layer "in", which stays as it is`},
		{"concat of flattened", `layer { name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 1 dim: 2 dim: 3 dim: 3 } shape { dim: 1 dim: 4 dim: 2 dim: 2 } } }
layer { name: "fa" type: "Flatten" bottom: "a" top: "fa" }
layer { name: "fb" type: "Flatten" bottom: "b" top: "fb" }
layer { name: "cat" type: "Concat" bottom: "fa" bottom: "fb" top: "cat" }
layer { name: "fc" type: "InnerProduct" bottom: "cat" top: "y" inner_product_param { num_output: 2 } }`, "Concat of 2 blobs that were flattened"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, rep, err := FCToConv(textNet(t, tt.src), FCToConvOptions{})
			if !errors.Is(err, ErrNothingToDo) {
				t.Fatalf("error %v, want ErrNothingToDo", err)
			}
			if len(rep.Refused) != 1 || !strings.Contains(rep.Refused[0].Detail, tt.reason) {
				t.Errorf("refused %v, want a reason with %q", rep.Refused, tt.reason)
			}
		})
	}
}

func TestTruncateBlobAndLayer(t *testing.T) {
	net := textNet(t, `
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TEST } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "x" inner_product_param { num_output: 3 } }
layer { name: "relu" type: "ReLU" bottom: "x" top: "x" }
layer { name: "fc2" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "y" bottom: "label" top: "loss" }
`)
	param, data := snapshot(net)
	opts := graph.Options{Inputs: map[string][]int{"data": {4, 5}, "label": {4}}}
	names := func(n *caffe.Net) []string {
		var out []string
		for _, l := range n.Param.GetLayer() {
			out = append(out, l.GetName()+":"+l.GetType())
		}
		return out
	}

	// A blob name keeps the layers that write it in place.
	out, _, err := Truncate(net, "x", opts)
	if err != nil {
		t.Fatal(err)
	}
	assertUnchanged(t, net, param, data)
	if got, want := names(out), []string{"data:Input", "fc:InnerProduct", "relu:ReLU"}; !slices.Equal(got, want) {
		t.Errorf("at blob x: %v, want %v", got, want)
	}
	if in := out.Param.GetLayer()[0]; len(in.GetTop()) != 1 || in.GetInclude() != nil {
		t.Errorf("the data layer became %v", in)
	}

	// A layer name means the layer's own output, before relu.
	out2, _, err := Truncate(net, "fc", opts)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(out2), []string{"data:Input", "fc:InnerProduct"}; !slices.Equal(got, want) {
		t.Errorf("at layer fc: %v, want %v", got, want)
	}

	// Truncating the result again at the same point changes nothing.
	again, _, err := Truncate(out, "x", graph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(again.Param, out.Param) {
		t.Errorf("a second truncation changed the net")
	}

	if _, _, err := Truncate(net, "nowhere", opts); err == nil || !strings.Contains(err.Error(), `no blob or layer named "nowhere"`) {
		t.Errorf("unknown name: %v", err)
	}
}
