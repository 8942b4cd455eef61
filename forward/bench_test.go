package forward_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/forward"
)

// benchLayer compiles a net of an Input layer of the given shape and one
// more layer, given as prototxt text that reads "data" and writes "out".
// The blobs of the given shapes and the input get seeded uniform values
// in [-1, 1).
func benchLayer(b *testing.B, layer string, input []int, blobs ...[]int64) (*forward.Net, map[string]*forward.Tensor) {
	b.Helper()
	dims := make([]string, len(input))
	for i, d := range input {
		dims[i] = fmt.Sprintf("dim: %d", d)
	}
	text := fmt.Sprintf("layer { name: \"data\" type: \"Input\" top: \"data\" input_param { shape { %s } } }\n%s\n",
		strings.Join(dims, " "), layer)
	net, err := caffe.Read(strings.NewReader(text))
	if err != nil {
		b.Fatal(err)
	}

	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []float32 {
		values := make([]float32, n)
		for i := range values {
			values[i] = rng.Float32()*2 - 1
		}
		return values
	}
	l := net.Param.GetLayer()[1]
	for _, shape := range blobs {
		count := int64(1)
		for _, d := range shape {
			count *= d
		}
		l.Blobs = append(l.Blobs, &caffepb.BlobProto{Shape: &caffepb.BlobShape{Dim: shape}, Data: random(int(count))})
	}

	compiled, err := forward.Compile(net, forward.Options{})
	if err != nil {
		b.Fatal(err)
	}
	in := forward.NewTensor(input...)
	copy(in.Data, random(len(in.Data)))
	return compiled, map[string]*forward.Tensor{"data": in}
}

// runBench runs the compiled net b.N times and reports multiply-adds as
// GFLOP/s (2 floating-point operations per multiply-add) when macs > 0.
func runBench(b *testing.B, net *forward.Net, inputs map[string]*forward.Tensor, macs float64) {
	b.Helper()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := net.Run(inputs); err != nil {
			b.Fatal(err)
		}
	}
	if macs > 0 {
		b.ReportMetric(2*macs*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	}
}

// BenchmarkConvolution runs single convolutions of VGG-16, ResNet-50 and
// CaffeNet shapes at batch 1: im2col, then one Sgemm per group. The
// GFLOP/s figure counts the convolution's multiply-adds only.
func BenchmarkConvolution(b *testing.B) {
	cases := []struct {
		name                     string
		in                       []int // C, H, W
		out, kernel, stride, pad int
		group                    int
	}{
		{"VGG16_conv1_2_3x3", []int{64, 224, 224}, 64, 3, 1, 1, 1},
		{"VGG16_conv3_2_3x3", []int{256, 56, 56}, 256, 3, 1, 1, 1},
		{"VGG16_conv5_2_3x3", []int{512, 14, 14}, 512, 3, 1, 1, 1},
		{"ResNet50_res3a_branch2a_1x1", []int{256, 56, 56}, 128, 1, 2, 0, 1},
		{"ResNet50_res4b_branch2c_1x1", []int{256, 14, 14}, 1024, 1, 1, 0, 1},
		{"CaffeNet_conv1_11x11_s4", []int{3, 227, 227}, 96, 11, 4, 0, 1},
		{"CaffeNet_conv2_5x5_group2", []int{96, 27, 27}, 256, 5, 1, 2, 2},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			layer := fmt.Sprintf(`layer { name: "conv" type: "Convolution" bottom: "data" top: "out"
				convolution_param { num_output: %d kernel_size: %d stride: %d pad: %d group: %d } }`,
				c.out, c.kernel, c.stride, c.pad, c.group)
			net, inputs := benchLayer(b, layer, []int{1, c.in[0], c.in[1], c.in[2]},
				[]int64{int64(c.out), int64(c.in[0] / c.group), int64(c.kernel), int64(c.kernel)}, []int64{int64(c.out)})
			oh := (c.in[1]+2*c.pad-c.kernel)/c.stride + 1
			ow := (c.in[2]+2*c.pad-c.kernel)/c.stride + 1
			macs := float64(c.out) * float64(oh*ow) * float64(c.in[0]/c.group*c.kernel*c.kernel)
			runBench(b, net, inputs, macs)
		})
	}
}

// BenchmarkPooling runs VGG-16's first max pooling and CaffeNet's first
// overlapping max pooling, and a 3×3 average pooling, at batch 1. The
// MB/s figure is input bytes per second.
func BenchmarkPooling(b *testing.B) {
	cases := []struct {
		name                string
		in                  []int // C, H, W
		pool                string
		kernel, stride, pad int
	}{
		{"VGG16_pool1_max_2x2_s2", []int{64, 224, 224}, "MAX", 2, 2, 0},
		{"CaffeNet_pool1_max_3x3_s2", []int{96, 55, 55}, "MAX", 3, 2, 0},
		{"ave_3x3_s1_pad1", []int{256, 28, 28}, "AVE", 3, 1, 1},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			layer := fmt.Sprintf(`layer { name: "pool" type: "Pooling" bottom: "data" top: "out"
				pooling_param { pool: %s kernel_size: %d stride: %d pad: %d } }`, c.pool, c.kernel, c.stride, c.pad)
			net, inputs := benchLayer(b, layer, []int{1, c.in[0], c.in[1], c.in[2]})
			b.SetBytes(int64(4 * c.in[0] * c.in[1] * c.in[2]))
			runBench(b, net, inputs, 0)
		})
	}
}

// BenchmarkInnerProduct runs VGG-16's fc6 (25088 inputs, 4096 outputs) at
// batch 1 and 8; at batch 1 it is a matrix-vector product that reads all
// 411 MB of weights once.
func BenchmarkInnerProduct(b *testing.B) {
	for _, batch := range []int{1, 8} {
		b.Run(fmt.Sprintf("VGG16_fc6_batch%d", batch), func(b *testing.B) {
			layer := `layer { name: "fc6" type: "InnerProduct" bottom: "data" top: "out" inner_product_param { num_output: 4096 } }`
			net, inputs := benchLayer(b, layer, []int{batch, 512, 7, 7}, []int64{4096, 25088}, []int64{4096})
			runBench(b, net, inputs, float64(batch)*4096*25088)
		})
	}
}
