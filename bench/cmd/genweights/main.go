// Command genweights writes a caffemodel with seeded random weights for a
// net definition, so that benchmarks get a full-size weights file without
// downloading one:
//
//	genweights -net VGG_ILSVRC_16_layers_deploy.prototxt -o vgg16.caffemodel -seed 1
//
// The caffemodel has the net's layers, each with the blobs Caffe would
// create for it, filled from a PCG source: the same net and seed give the
// same bytes. Blob shapes come from walking the layers in order and
// tracking the N×C×H×W shape of every top. Only the layer types of plain
// chains such as VGG are known (Input, Convolution, Pooling, InnerProduct,
// ReLU, Dropout, LRN, Softmax); any other type is rejected.
package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/graph"
)

func main() {
	netPath := flag.String("net", "", "net definition (.prototxt) whose layers the caffemodel gets")
	out := flag.String("o", "", "path of the caffemodel to write")
	seed := flag.Uint64("seed", 1, "seed of the PCG source of the weights")
	flag.Parse()
	if *netPath == "" || *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: genweights -net NET.prototxt -o OUT.caffemodel [-seed N]")
		os.Exit(2)
	}

	count, err := generate(*netPath, *out, *seed)
	if err != nil {
		fmt.Fprintln(os.Stderr, "genweights:", err)
		os.Exit(1)
	}
	fmt.Printf("%s: %d float values\n", *out, count)
}

// generate writes the caffemodel and returns the number of float values
// in its blobs.
func generate(netPath, out string, seed uint64) (int, error) {
	net, err := caffe.ReadFile(netPath)
	if err != nil {
		return 0, err
	}

	// The second PCG word is fixed, so -seed alone selects the stream.
	rng := rand.New(rand.NewPCG(seed, 0x67656e77))
	shapes := map[string]featureShape{}
	total := 0
	for i, l := range net.Param.GetLayer() {
		blobShapes, err := walkLayer(l, shapes)
		if err != nil {
			return 0, fmt.Errorf("%s: layer %d (%q): %w", netPath, i, l.GetName(), err)
		}
		l.Blobs = nil
		for j, dims := range blobShapes {
			b := randomBlob(rng, dims, j == 0)
			total += len(b.Data)
			l.Blobs = append(l.Blobs, b)
		}
	}

	if err := (caffe.WriteOptions{Encoding: caffe.Binary}).WriteFile(net, out); err != nil {
		return 0, err
	}
	return total, nil
}

// featureShape is the N×C×H×W shape of a blob passed between layers.
type featureShape struct{ n, c, h, w int }

func (s featureShape) String() string { return fmt.Sprintf("%d×%d×%d×%d", s.n, s.c, s.h, s.w) }

// walkLayer records the shapes of l's tops in shapes and returns the
// shapes of the weight blobs Caffe creates for l, in Caffe's order.
func walkLayer(l *caffepb.LayerParameter, shapes map[string]featureShape) ([][]int64, error) {
	if l.GetType() == "Input" {
		return nil, inputShapes(l, shapes)
	}

	if len(l.GetBottom()) != 1 || len(l.GetTop()) != 1 {
		return nil, fmt.Errorf("%s layer has %d bottoms and %d tops; genweights handles one of each", l.GetType(), len(l.GetBottom()), len(l.GetTop()))
	}
	in, ok := shapes[l.GetBottom()[0]]
	if !ok {
		return nil, fmt.Errorf("bottom %q is not the top of an earlier layer", l.GetBottom()[0])
	}

	var blobs [][]int64
	out := in
	var err error
	switch l.GetType() {
	case "Convolution":
		blobs, out, err = convolution(l.GetConvolutionParam(), in)
	case "Pooling":
		out, err = pooling(l.GetPoolingParam(), in)
	case "InnerProduct":
		blobs, out, err = innerProduct(l.GetInnerProductParam(), in)
	case "ReLU", "Dropout", "LRN", "Softmax":
		// The output has the input's shape and the layer has no blobs.
	default:
		return nil, fmt.Errorf("layer type %q is not supported; genweights supports Input, Convolution, Pooling, InnerProduct, ReLU, Dropout, LRN and Softmax", l.GetType())
	}
	if err != nil {
		return nil, err
	}
	shapes[l.GetTop()[0]] = out
	return blobs, nil
}

// inputShapes records the shapes of an Input layer's tops: one shape for
// all tops, or one per top, each N×C×H×W or N×C.
func inputShapes(l *caffepb.LayerParameter, shapes map[string]featureShape) error {
	declared := l.GetInputParam().GetShape()
	if len(declared) != 1 && len(declared) != len(l.GetTop()) {
		return fmt.Errorf("Input layer has %d shapes for %d tops; give one shape, or one per top", len(declared), len(l.GetTop()))
	}
	for i, top := range l.GetTop() {
		dims := declared[min(i, len(declared)-1)].GetDim()
		switch len(dims) {
		case 4:
			shapes[top] = featureShape{int(dims[0]), int(dims[1]), int(dims[2]), int(dims[3])}
		case 2:
			shapes[top] = featureShape{int(dims[0]), int(dims[1]), 1, 1}
		default:
			return fmt.Errorf("Input shape %v of top %q has %d axes; genweights handles N×C×H×W and N×C", dims, top, len(dims))
		}
	}
	return nil
}

// convolution returns the weight and bias shapes of a 2-D convolution and
// its output shape, as Caffe's BaseConvolutionLayer computes them.
func convolution(p *caffepb.ConvolutionParameter, in featureShape) ([][]int64, featureShape, error) {
	if p.GetAxis() != 1 {
		return nil, in, fmt.Errorf("convolution axis %d is not supported; genweights handles axis 1", p.GetAxis())
	}
	kh, kw, err := spatialPair("kernel_size", p.GetKernelSize(), p.KernelH, p.KernelW, 0)
	if err != nil {
		return nil, in, err
	}
	if kh == 0 || kw == 0 {
		return nil, in, fmt.Errorf("convolution has no kernel size; set kernel_size or kernel_h and kernel_w")
	}
	padH, padW, err := spatialPair("pad", p.GetPad(), p.PadH, p.PadW, 0)
	if err != nil {
		return nil, in, err
	}
	strideH, strideW, err := spatialPair("stride", p.GetStride(), p.StrideH, p.StrideW, 1)
	if err != nil {
		return nil, in, err
	}
	dilationH, dilationW, err := spatialPair("dilation", p.GetDilation(), nil, nil, 1)
	if err != nil {
		return nil, in, err
	}

	numOutput, group := int(p.GetNumOutput()), int(p.GetGroup())
	if numOutput == 0 || group == 0 || in.c%group != 0 || numOutput%group != 0 {
		return nil, in, fmt.Errorf("convolution with num_output %d and group %d does not fit %d input channels; both must be multiples of group", numOutput, group, in.c)
	}
	out := featureShape{
		n: in.n,
		c: numOutput,
		h: (in.h+2*padH-(dilationH*(kh-1)+1))/strideH + 1,
		w: (in.w+2*padW-(dilationW*(kw-1)+1))/strideW + 1,
	}
	if out.h <= 0 || out.w <= 0 {
		return nil, in, fmt.Errorf("convolution of input %v has output %v; the kernel is larger than the padded input", in, out)
	}

	blobs := [][]int64{{int64(numOutput), int64(in.c / group), int64(kh), int64(kw)}}
	if p.GetBiasTerm() {
		blobs = append(blobs, []int64{int64(numOutput)})
	}
	return blobs, out, nil
}

// spatialPair returns the height and width values of a convolution
// parameter, set as one value for both axes, one per axis, or as the _h
// and _w fields. It returns fallback for both when none is set.
func spatialPair(name string, values []uint32, h, w *uint32, fallback int) (int, int, error) {
	if h != nil || w != nil {
		if h == nil || w == nil {
			return 0, 0, fmt.Errorf("convolution sets only one of %s_h and %s_w; set both", name, name)
		}
		return int(*h), int(*w), nil
	}
	switch len(values) {
	case 0:
		return fallback, fallback, nil
	case 1:
		return int(values[0]), int(values[0]), nil
	case 2:
		return int(values[0]), int(values[1]), nil
	}
	return 0, 0, fmt.Errorf("convolution has %d %s values; genweights handles 2-D convolution (1 or 2 values)", len(values), name)
}

// pooling returns the output shape of a Pooling layer as Caffe's
// PoolingLayer::Reshape computes it.
func pooling(p *caffepb.PoolingParameter, in featureShape) (featureShape, error) {
	if p.GetGlobalPooling() {
		return featureShape{in.n, in.c, 1, 1}, nil
	}
	kh, kw := int(p.GetKernelSize()), int(p.GetKernelSize())
	if p.KernelH != nil || p.KernelW != nil {
		kh, kw = int(p.GetKernelH()), int(p.GetKernelW())
	}
	padH, padW := int(p.GetPad()), int(p.GetPad())
	if p.PadH != nil || p.PadW != nil {
		padH, padW = int(p.GetPadH()), int(p.GetPadW())
	}
	strideH, strideW := int(p.GetStride()), int(p.GetStride())
	if p.StrideH != nil || p.StrideW != nil {
		strideH, strideW = int(p.GetStrideH()), int(p.GetStrideW())
	}
	if kh == 0 || kw == 0 || strideH == 0 || strideW == 0 {
		return in, fmt.Errorf("pooling needs a kernel size and a stride above 0, got kernel %d×%d and stride %d×%d", kh, kw, strideH, strideW)
	}

	floor := p.GetRoundMode() == caffepb.PoolingParameter_FLOOR
	padded := padH > 0 || padW > 0
	out := featureShape{
		n: in.n,
		c: in.c,
		h: graph.PooledSize(in.h, kh, strideH, padH, !floor, padded),
		w: graph.PooledSize(in.w, kw, strideW, padW, !floor, padded),
	}
	if out.h <= 0 || out.w <= 0 {
		return in, fmt.Errorf("pooling of input %v has output %v; the kernel is larger than the padded input", in, out)
	}
	return out, nil
}

// innerProduct returns the weight and bias shapes of an InnerProduct
// layer and its output shape: the product folds C×H×W into K inputs.
func innerProduct(p *caffepb.InnerProductParameter, in featureShape) ([][]int64, featureShape, error) {
	if p.GetAxis() != 1 {
		return nil, in, fmt.Errorf("inner product axis %d is not supported; genweights handles axis 1", p.GetAxis())
	}
	numOutput := int64(p.GetNumOutput())
	if numOutput == 0 {
		return nil, in, fmt.Errorf("inner product has no num_output")
	}
	inputs := int64(in.c) * int64(in.h) * int64(in.w)

	weights := []int64{numOutput, inputs}
	if p.GetTranspose() {
		weights = []int64{inputs, numOutput}
	}
	blobs := [][]int64{weights}
	if p.GetBiasTerm() {
		blobs = append(blobs, []int64{numOutput})
	}
	return blobs, featureShape{in.n, int(numOutput), 1, 1}, nil
}

// randomBlob returns a blob of the given shape with values drawn
// uniformly from ±1/√fan-in for weights (the first blob, whose fan-in is
// its count over its first axis) and from ±0.1 for biases.
func randomBlob(rng *rand.Rand, dims []int64, weights bool) *caffepb.BlobProto {
	count := int64(1)
	for _, d := range dims {
		count *= d
	}
	scale := float32(0.1)
	if weights {
		fanIn := count / dims[0]
		scale = 1 / float32(math.Sqrt(float64(fanIn)))
	}

	data := make([]float32, count)
	for i := range data {
		data[i] = (rng.Float32()*2 - 1) * scale
	}
	return &caffepb.BlobProto{Shape: &caffepb.BlobShape{Dim: dims}, Data: data}
}
