package tensor

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"gorgonia.org/tensor"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
)

func blob(shape []int64, values ...float32) *caffepb.BlobProto {
	return &caffepb.BlobProto{Shape: &caffepb.BlobShape{Dim: shape}, Data: values}
}

func testNet(layers ...*caffepb.LayerParameter) *caffe.Net {
	return &caffe.Net{Param: &caffepb.NetParameter{Layer: layers}}
}

func layer(name, typ string, blobs ...*caffepb.BlobProto) *caffepb.LayerParameter {
	return &caffepb.LayerParameter{Name: proto.String(name), Type: proto.String(typ), Blobs: blobs}
}

func TestWeightsShareMemory(t *testing.T) {
	weight := blob([]int64{2, 3}, 1, 2, 3, 4, 5, 6)
	bias := blob([]int64{2}, 0.5, -0.5)
	net := testNet(layer("data", "Input"), layer("ip", "InnerProduct", weight, bias))

	weights, err := Weights(net)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := weights["data"]; ok || len(weights) != 1 {
		t.Errorf("layers %v, want only ip", weights)
	}
	ip := weights["ip"]
	if len(ip) != 2 {
		t.Fatalf("ip has %d tensors, want 2", len(ip))
	}
	if got := ip[0].Shape(); !slices.Equal(got, tensor.Shape{2, 3}) {
		t.Errorf("weight shape %v, want (2, 3)", got)
	}
	if ip[0].Dtype() != tensor.Float32 {
		t.Errorf("weight dtype %v, want float32", ip[0].Dtype())
	}

	if err := ip[0].SetAt(float32(42), 1, 2); err != nil {
		t.Fatal(err)
	}
	if weight.Data[5] != 42 {
		t.Errorf("SetAt(42, 1, 2) left blob value %v", weight.Data[5])
	}
	bias.Data[1] = 7
	if got, _ := ip[1].At(1); got != float32(7) {
		t.Errorf("tensor reads %v after the blob changed to 7", got)
	}
	if data := ip[0].Data().([]float32); &data[0] != &weight.Data[0] {
		t.Error("tensor data is a copy of the blob")
	}
}

func TestWeightsTransposeIsLazy(t *testing.T) {
	weight := blob([]int64{2, 3}, 1, 2, 3, 4, 5, 6)
	weights, err := Weights(testNet(layer("ip", "InnerProduct", weight)))
	if err != nil {
		t.Fatal(err)
	}
	w := weights["ip"][0]
	if err := w.T(); err != nil {
		t.Fatal(err)
	}
	if got := w.Shape(); !slices.Equal(got, tensor.Shape{3, 2}) {
		t.Errorf("shape after T() %v, want (3, 2)", got)
	}
	if got := w.Data().([]float32); !slices.Equal(got, []float32{1, 2, 3, 4, 5, 6}) {
		t.Errorf("Data() after T() %v, want the old order", got)
	}
}

func TestWeightsScalarAndLegacyShapes(t *testing.T) {
	legacy := &caffepb.BlobProto{Num: proto.Int32(1), Channels: proto.Int32(1), Height: proto.Int32(2), Width: proto.Int32(2),
		Data: []float32{1, 2, 3, 4}}
	scalar := &caffepb.BlobProto{Data: []float32{3}}
	weights, err := Weights(testNet(layer("ip", "InnerProduct", legacy), layer("s", "Python", scalar)))
	if err != nil {
		t.Fatal(err)
	}
	if got := weights["ip"][0].Shape(); !slices.Equal(got, tensor.Shape{1, 1, 2, 2}) {
		t.Errorf("legacy shape %v, want (1, 1, 2, 2)", got)
	}
	s := weights["s"][0]
	if !s.IsScalar() {
		t.Errorf("blob with an empty shape gave shape %v, want a scalar", s.Shape())
	}
	if got, ok := s.Data().(float32); !ok || got != 3 {
		t.Errorf("scalar Data() %v, want float32 3", s.Data())
	}
	scalar.Data[0] = 5
	if got := s.Data(); got != float32(5) {
		t.Errorf("scalar Data() %v after the blob changed to 5", got)
	}
}

func TestWeightsRejects(t *testing.T) {
	oneValue := func() *caffepb.BlobProto { return blob([]int64{1}, 1) }
	tests := []struct {
		name string
		net  *caffe.Net
		want string
	}{
		{"duplicate layer", testNet(layer("a", "Convolution", oneValue()), layer("a", "InnerProduct", oneValue())), `two layers named "a"`},
		{"structure only", testNet(layer("a", "Convolution", blob([]int64{2, 3}))), "has no values"},
		{"count mismatch", testNet(layer("a", "Convolution", blob([]int64{2, 3}, 1, 2))), "has 2 values but its shape [2 3] needs 6"},
		{"zero dimension", testNet(layer("a", "Python", blob([]int64{0, 3}))), "cannot represent"},
		{"negative dimension", testNet(layer("a", "Python", blob([]int64{-2}))), "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Weights(tt.net)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestWeightsCorpus(t *testing.T) {
	paths := append(corpus.Glob(t, "caffemodel/*/*.caffemodel"), corpus.Path(t, "caffemodel", "lenet_v1", "lenet_iter_10000"))
	for _, path := range paths {
		net, err := caffe.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		weights, err := Weights(net)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		count := 0
		for _, l := range net.Param.GetLayer() {
			for i, b := range l.GetBlobs() {
				d := weights[l.GetName()][i]
				if !slices.Equal([]int(d.Shape()), caffe.BlobShape(b)) {
					t.Errorf("%s: %s blob %d: shape %v, want %v", path, l.GetName(), i, d.Shape(), caffe.BlobShape(b))
				}
				data := d.Data().([]float32)
				if len(data) != len(b.Data) || &data[0] != &b.Data[0] {
					t.Errorf("%s: %s blob %d: tensor does not share the blob's %d values", path, l.GetName(), i, len(b.Data))
				}
				count++
			}
		}
		if count == 0 {
			t.Errorf("%s: no blobs", path)
		}
	}
}
