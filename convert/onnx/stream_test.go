package onnx

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tlsurgery/tlsurgery/convert/onnx/onnxpb"
)

func TestStreamFieldNumbers(t *testing.T) {
	cases := []struct {
		message proto.Message
		field   protoreflect.Name
		want    protowire.Number
	}{
		{&onnxpb.ModelProto{}, "graph", modelGraphField},
		{&onnxpb.GraphProto{}, "initializer", graphInitializerField},
		{&onnxpb.TensorProto{}, "raw_data", tensorRawDataField},
	}
	for _, tc := range cases {
		desc := tc.message.ProtoReflect().Descriptor()
		fd := desc.Fields().ByName(tc.field)
		if fd == nil {
			t.Errorf("%s has no field %s", desc.FullName(), tc.field)
			continue
		}
		if fd.Number() != tc.want {
			t.Errorf("%s.%s is field %d, the encoder writes it as %d", desc.FullName(), tc.field, fd.Number(), tc.want)
		}
	}
}

// streamNet has float initializers of several kinds: convolution weights,
// fused BatchNorm and Scale parameters, a transposed InnerProduct weight
// and int64 shape constants.
const streamNet = inputLayer + `
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 6 kernel_size: 3 pad: 1
    weight_filler { type: "gaussian" std: 1 } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "scale" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc"
  inner_product_param { num_output: 5 axis: 3 weight_filler { type: "gaussian" std: 1 } } }
`

// unknownField returns the encoding of a varint field that onnx.proto
// does not declare.
func unknownField(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

// edgeCaseModel has fields on both sides of every field the encoder
// writes itself, unknown fields at each level, and initializers whose
// raw_data is empty or absent.
func edgeCaseModel() *onnxpb.ModelProto {
	weights := &onnxpb.TensorProto{
		Dims:      []int64{2, 2},
		DataType:  proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
		Name:      proto.String("weights"),
		RawData:   float32Bytes([]float32{1, -2, 3.5, 4}),
		DocString: proto.String("doc_string is field 12, after raw_data"),
	}
	weights.ProtoReflect().SetUnknown(unknownField(100, 1))
	empty := &onnxpb.TensorProto{
		Dims:     []int64{0},
		DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
		Name:     proto.String("empty"),
		RawData:  []byte{},
	}
	floatData := &onnxpb.TensorProto{
		Dims:      []int64{2},
		DataType:  proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
		FloatData: []float32{5, 6},
		Name:      proto.String("float_data"),
	}
	graph := &onnxpb.GraphProto{
		Node:        []*onnxpb.NodeProto{{Name: proto.String("add"), OpType: proto.String("Add"), Input: []string{"weights", "weights"}, Output: []string{"sum"}}},
		Name:        proto.String("edge_cases"),
		Initializer: []*onnxpb.TensorProto{weights, empty, floatData},
		DocString:   proto.String("a graph"),
		Output:      []*onnxpb.ValueInfoProto{{Name: proto.String("sum")}},
	}
	graph.ProtoReflect().SetUnknown(unknownField(101, 2))
	model := &onnxpb.ModelProto{
		IrVersion:     proto.Int64(7),
		OpsetImport:   []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		ProducerName:  proto.String("tlsurgery"),
		DocString:     proto.String("a model"),
		Graph:         graph,
		MetadataProps: []*onnxpb.StringStringEntryProto{{Key: proto.String("k"), Value: proto.String("v")}},
	}
	model.ProtoReflect().SetUnknown(unknownField(102, 3))
	return model
}

func TestWriteModelMatchesMarshal(t *testing.T) {
	opset9, _ := convertText(t, streamNet, Options{Opset: 9})
	dynamic, _ := convertText(t, streamNet, Options{DynamicBatch: true, Metadata: map[string]string{"preprocess_scale": "0.017"}})
	cases := []struct {
		name  string
		model *onnxpb.ModelProto
	}{
		{"converted opset 9", opset9},
		{"converted dynamic batch", dynamic},
		{"edge cases", edgeCaseModel()},
		{"empty graph", &onnxpb.ModelProto{IrVersion: proto.Int64(7), Graph: &onnxpb.GraphProto{}}},
		{"no graph", &onnxpb.ModelProto{IrVersion: proto.Int64(7), ProducerName: proto.String("tlsurgery")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(tc.model)
			if err != nil {
				t.Fatal(err)
			}

			enc, err := encodeModel(tc.model)
			if err != nil {
				t.Fatal(err)
			}
			if enc.size != len(want) {
				t.Errorf("planned size %d, proto.Marshal wrote %d bytes", enc.size, len(want))
			}
			var streamed bytes.Buffer
			if err := enc.writeTo(&streamed); err != nil {
				t.Fatal(err)
			}
			checkSameBytes(t, "encodeModel", streamed.Bytes(), want)

			path := filepath.Join(t.TempDir(), "model.onnx")
			if err := WriteModel(path, tc.model); err != nil {
				t.Fatal(err)
			}
			file, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			checkSameBytes(t, "WriteModel", file, want)
		})
	}
}

// checkSameBytes reports where got first differs from want.
func checkSameBytes(t *testing.T, producer string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Errorf("%s wrote %d bytes that differ from proto.Marshal's %d bytes from offset %d", producer, len(got), len(want), i)
}

func TestConvertSharesWeightMemory(t *testing.T) {
	if !hostLittleEndian {
		t.Skip("on a big-endian host raw_data is a converted copy")
	}
	net := netFromText(t, inputLayer+`layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
	  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 1 } } }`)
	m, _, err := Convert(net, Options{})
	if err != nil {
		t.Fatal(err)
	}
	blob := net.Param.GetLayer()[1].GetBlobs()[0].GetData()
	raw := initializer(m, onlyNode(t, m, "Gemm").GetInput()[1]).GetRawData()
	if len(raw) != 4*len(blob) {
		t.Fatalf("raw_data has %d bytes, want %d for %d weights", len(raw), 4*len(blob), len(blob))
	}
	if unsafe.Pointer(unsafe.SliceData(raw)) != unsafe.Pointer(unsafe.SliceData(blob)) {
		t.Errorf("the weight initializer's raw_data is a copy of the blob, not the blob's memory")
	}
}

// allocatedBytes returns how many bytes of heap f allocates. It counts
// every goroutine, so it must not run next to parallel tests.
func allocatedBytes(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestWriteModelAllocatesLittle(t *testing.T) {
	// One 4096 × 4096 InnerProduct: 64 MiB of float32 weights.
	net := netFromText(t, `layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4096 } } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
  inner_product_param { num_output: 4096 bias_term: false weight_filler { type: "constant" value: 0.5 } } }`)
	weightBytes := uint64(4 * len(net.Param.GetLayer()[1].GetBlobs()[0].GetData()))
	if weightBytes != 64<<20 {
		t.Fatalf("the net has %d bytes of weights, want 64 MiB", weightBytes)
	}
	// Bookkeeping and the 1 MiB write buffer of atomicfile stay far below
	// this, and one copy of the weights exceeds it eight times over.
	limit := weightBytes / 8

	var (
		model *onnxpb.ModelProto
		err   error
	)
	convertBytes := allocatedBytes(func() { model, _, err = Convert(net, Options{}) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Convert allocated %d bytes", convertBytes)
	if hostLittleEndian && convertBytes > limit {
		t.Errorf("Convert allocated %d bytes for %d bytes of weights, want at most %d", convertBytes, weightBytes, limit)
	}

	path := filepath.Join(t.TempDir(), "fc.onnx")
	writeBytes := allocatedBytes(func() { err = WriteModel(path, model) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("WriteModel allocated %d bytes", writeBytes)
	if writeBytes > limit {
		t.Errorf("WriteModel allocated %d bytes for %d bytes of weights, want at most %d", writeBytes, weightBytes, limit)
	}

	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(proto.Size(model)); info.Size() != want {
		t.Errorf("the file has %d bytes, proto.Size gives %d", info.Size(), want)
	}
}
