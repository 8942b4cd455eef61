// Command v1weights writes a caffemodel in Caffe's V1 format (the
// "layers" field with enum layer types, and blobs with the legacy
// num/channels/height/width shape), the format of the VGG-16 weights
// published in the Caffe Model Zoo:
//
//	v1weights -net NET_V1.prototxt -weights WEIGHTS.caffemodel -o OUT.caffemodel
//
// NET_V1.prototxt must be a V1 net definition, which is copied as it is.
// Each of its layers gets the blobs of the layer with the same name in
// WEIGHTS.caffemodel, which may be in any format that the caffe package
// reads. The blob shapes are padded at the front to 4 axes, as V1 Caffe
// stored them: a bias of N values becomes 1×1×1×N, an InnerProduct weight
// N×K becomes 1×1×N×K.
// The benchmarks use the output to time `tlsurgery upgrade` on a
// caffemodel that needs upgrading.
package main

import (
	"flag"
	"fmt"
	"os"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
)

func main() {
	netPath := flag.String("net", "", "V1 net definition (.prototxt) whose layers the caffemodel gets")
	weightsPath := flag.String("weights", "", "caffemodel whose blobs are copied, matched by layer name")
	out := flag.String("o", "", "path of the V1 caffemodel to write")
	flag.Parse()
	if *netPath == "" || *weightsPath == "" || *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: v1weights -net NET_V1.prototxt -weights WEIGHTS.caffemodel -o OUT.caffemodel")
		os.Exit(2)
	}
	count, err := writeV1(*netPath, *weightsPath, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "v1weights:", err)
		os.Exit(1)
	}
	fmt.Printf("%s: %d float values\n", *out, count)
}

// writeV1 writes the V1 caffemodel and returns the number of float values
// in its blobs.
func writeV1(netPath, weightsPath, out string) (int, error) {
	text, err := os.ReadFile(netPath)
	if err != nil {
		return 0, err
	}
	var param caffepb.NetParameter
	if err := prototext.Unmarshal(text, &param); err != nil {
		return 0, fmt.Errorf("%s: %w", netPath, err)
	}
	if len(param.GetLayers()) == 0 {
		return 0, fmt.Errorf("%s has no V1 layers (the \"layers\" field); give a V1 net definition", netPath)
	}

	weights, err := caffe.ReadFile(weightsPath)
	if err != nil {
		return 0, err
	}
	blobsByLayer := map[string][]*caffepb.BlobProto{}
	for _, l := range weights.Param.GetLayer() {
		blobsByLayer[l.GetName()] = l.GetBlobs()
	}

	total := 0
	for _, l := range param.GetLayers() {
		l.Blobs = nil
		for _, b := range blobsByLayer[l.GetName()] {
			legacy, err := legacyBlob(b)
			if err != nil {
				return 0, fmt.Errorf("layer %q: %w", l.GetName(), err)
			}
			total += len(legacy.Data)
			l.Blobs = append(l.Blobs, legacy)
		}
	}

	data, err := proto.Marshal(&param)
	if err != nil {
		return 0, err
	}
	return total, os.WriteFile(out, data, 0o644)
}

// legacyBlob returns a blob that shares b's values and gives its shape in
// the legacy num/channels/height/width fields.
func legacyBlob(b *caffepb.BlobProto) (*caffepb.BlobProto, error) {
	dims := b.GetShape().GetDim()
	if len(dims) > 4 {
		return nil, fmt.Errorf("blob shape %v has %d axes; the legacy shape holds 4", dims, len(dims))
	}
	legacy := [4]int32{1, 1, 1, 1}
	for i, d := range dims {
		legacy[4-len(dims)+i] = int32(d)
	}
	return &caffepb.BlobProto{
		Num: proto.Int32(legacy[0]), Channels: proto.Int32(legacy[1]),
		Height: proto.Int32(legacy[2]), Width: proto.Int32(legacy[3]),
		Data: b.GetData(),
	}, nil
}
