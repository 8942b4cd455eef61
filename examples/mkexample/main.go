// Command mkexample writes a small Caffe net and seeded random weights,
// so the tool can be tried without downloading a model:
//
//	go run ./examples/mkexample -o /tmp/tiny
//
// writes /tmp/tiny.prototxt (a deploy net: 1×3×32×32 input, two
// convolutions, pooling, two fully-connected layers, softmax) and
// /tmp/tiny.caffemodel (its weights, the same for the same -seed).
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"

	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
)

func main() {
	out := flag.String("o", "tiny", "output path without extension; .prototxt and .caffemodel are added")
	seed := flag.Uint64("seed", 1, "seed of the random weights")
	flag.Parse()
	if err := write(*out, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "mkexample:", err)
		os.Exit(2)
	}
}

func write(out string, seed uint64) error {
	net := &caffe.Net{Param: exampleNet()}
	if err := (caffe.WriteOptions{}).WriteFile(net, out+".prototxt"); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, 0x746c73))
	shapes := map[string][][]int{
		"conv1": {{8, 3, 3, 3}, {8}},
		"conv2": {{16, 8, 3, 3}, {16}},
		"fc1":   {{32, 16 * 8 * 8}, {32}}, // pool2 is 16×8×8: Caffe pooling rounds up
		"fc2":   {{10, 32}, {10}},
	}
	for _, l := range net.Param.Layer {
		for _, s := range shapes[l.GetName()] {
			b := &caffepb.BlobProto{Shape: &caffepb.BlobShape{}}
			n := 1
			for _, d := range s {
				b.Shape.Dim = append(b.Shape.Dim, int64(d))
				n *= d
			}
			fanIn := n / s[0]
			scale := float32(1)
			if len(s) > 1 {
				scale = 1 / float32(fanIn)
			}
			b.Data = make([]float32, n)
			for i := range b.Data {
				b.Data[i] = (rng.Float32()*2 - 1) * scale * 1.7
			}
			l.Blobs = append(l.Blobs, b)
		}
	}
	return (caffe.WriteOptions{}).WriteFile(net, out+".caffemodel")
}

func exampleNet() *caffepb.NetParameter {
	conv := func(name, bottom string, n uint32) *caffepb.LayerParameter {
		return &caffepb.LayerParameter{
			Name: proto.String(name), Type: proto.String("Convolution"),
			Bottom: []string{bottom}, Top: []string{name},
			ConvolutionParam: &caffepb.ConvolutionParameter{NumOutput: proto.Uint32(n), KernelSize: []uint32{3}, Pad: []uint32{1}},
		}
	}
	relu := func(blob string) *caffepb.LayerParameter {
		return &caffepb.LayerParameter{Name: proto.String("relu_" + blob), Type: proto.String("ReLU"), Bottom: []string{blob}, Top: []string{blob}}
	}
	fc := func(name, bottom string, n uint32) *caffepb.LayerParameter {
		return &caffepb.LayerParameter{
			Name: proto.String(name), Type: proto.String("InnerProduct"),
			Bottom: []string{bottom}, Top: []string{name},
			InnerProductParam: &caffepb.InnerProductParameter{NumOutput: proto.Uint32(n)},
		}
	}
	pool := func(name, bottom string) *caffepb.LayerParameter {
		return &caffepb.LayerParameter{
			Name: proto.String(name), Type: proto.String("Pooling"),
			Bottom: []string{bottom}, Top: []string{name},
			PoolingParam: &caffepb.PoolingParameter{Pool: caffepb.PoolingParameter_MAX.Enum(), KernelSize: proto.Uint32(3), Stride: proto.Uint32(2)},
		}
	}
	return &caffepb.NetParameter{
		Name: proto.String("tiny"),
		Layer: []*caffepb.LayerParameter{
			{Name: proto.String("data"), Type: proto.String("Input"), Top: []string{"data"},
				InputParam: &caffepb.InputParameter{Shape: []*caffepb.BlobShape{{Dim: []int64{1, 3, 32, 32}}}}},
			conv("conv1", "data", 8), relu("conv1"), pool("pool1", "conv1"),
			conv("conv2", "pool1", 16), relu("conv2"), pool("pool2", "conv2"),
			fc("fc1", "pool2", 32), relu("fc1"), fc("fc2", "fc1", 10),
			{Name: proto.String("prob"), Type: proto.String("Softmax"), Bottom: []string{"fc2"}, Top: []string{"prob"}},
		},
	}
}
