package onnx

import (
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/convert/onnx/onnxpb"
	"github.com/tlsurgery/tlsurgery/graph"
)

// Layers of the detection and segmentation forks: SSD (PriorBox,
// DetectionOutput), DeepLab and PSPNet (Interp), SegNet (Upsample).
func init() {
	register(mapPriorBox, "PriorBox")
	register(mapDetectionOutput, "DetectionOutput")
	register(mapInterp, "Interp")
	register(mapUpsample, "Upsample")
}

// mapPriorBox computes SSD's priors at export time: they depend only on
// the shapes of the bottoms, which are fixed in the exported model. The
// top becomes a Constant node.
func mapPriorBox(c *converter, l *graph.Layer) error {
	values, err := priorBoxes(l)
	if err != nil {
		return err
	}
	shape := l.Tops[0].Shape
	raw := make([]byte, 0, 4*len(values))
	for _, v := range values {
		bits := math.Float32bits(v)
		raw = append(raw, byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24))
	}
	t := &onnxpb.TensorProto{
		Dims:     int64s(shape),
		DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
		RawData:  raw,
	}
	c.node("Constant", nil, []string{c.top(0)}, attrTensor("value", t))
	return nil
}

// priorBoxes follows SSD's prior_box_layer.cpp (weiliu89/caffe). The
// aspect ratios are 1, then each aspect_ratio not within 1e-6 of one
// already listed, followed by its reciprocal with flip (default true).
// At each position (h, w) of bottom 0, centred at ((w + offset)·step_w,
// (h + offset)·step_h), and for each min_size, the priors are: a square of
// min_size, a square of sqrt(min_size·max_size) when max_size is given,
// and min_size·sqrt(ar) × min_size/sqrt(ar) for each other ratio ar. Each
// is stored as xmin, ymin, xmax, ymax divided by the image size, clipped
// to [0, 1] with clip. The image size is img_size (or img_h/img_w), else
// bottom 1's; the step is step (or step_h/step_w), else image size /
// layer size; offset defaults to 0.5. The second channel repeats the
// variance (one value for all four coordinates, or four; default 0.1).
func priorBoxes(l *graph.Layer) ([]float32, error) {
	p := l.Param.GetPriorBoxParam()
	if len(p.GetWidth()) > 0 || len(p.GetHeight()) > 0 || len(p.GetOffsetH()) > 0 || len(p.GetOffsetW()) > 0 {
		return nil, unsupported(l, "OpenCV's explicit width/height and offset_h/offset_w lists are not exported; only SSD's min_size/max_size/aspect_ratio form is")
	}
	if len(p.GetMinSize()) == 0 {
		return nil, unsupported(l, "prior_box_param needs min_size")
	}
	if len(p.GetMaxSize()) > 0 && len(p.GetMaxSize()) != len(p.GetMinSize()) {
		return nil, unsupported(l, "prior_box_param has %d max_size values for %d min_size values", len(p.GetMaxSize()), len(p.GetMinSize()))
	}
	ratios := []float32{1}
	for _, ar := range p.GetAspectRatio() {
		repeated := false
		for _, r := range ratios {
			if math.Abs(float64(ar-r)) < 1e-6 {
				repeated = true
				break
			}
		}
		if repeated {
			continue
		}
		ratios = append(ratios, ar)
		if p.GetFlip() {
			ratios = append(ratios, 1/ar)
		}
	}
	variance := p.GetVariance()
	switch len(variance) {
	case 0:
		variance = []float32{0.1}
	case 1, 4:
	default:
		return nil, unsupported(l, "prior_box_param needs 1 or 4 variance values, got %d", len(variance))
	}

	layer := l.Bottoms[0].Shape
	if len(layer) != 4 {
		return nil, unsupported(l, "bottom 0 needs 4 axes, got %v", layer)
	}
	layerH, layerW := layer[2], layer[3]
	imgH, imgW := int(p.GetImgH()), int(p.GetImgW())
	if p.ImgSize != nil {
		imgH, imgW = int(p.GetImgSize()), int(p.GetImgSize())
	}
	if imgH == 0 || imgW == 0 {
		if len(l.Bottoms) < 2 || len(l.Bottoms[1].Shape) != 4 {
			return nil, unsupported(l, "the image size needs img_size, img_h and img_w, or a 4-axis bottom 1")
		}
		imgH, imgW = l.Bottoms[1].Shape[2], l.Bottoms[1].Shape[3]
	}
	stepH, stepW := p.GetStepH(), p.GetStepW()
	if p.Step != nil {
		stepH, stepW = p.GetStep(), p.GetStep()
	}
	if stepH == 0 || stepW == 0 {
		stepH, stepW = float32(imgH)/float32(layerH), float32(imgW)/float32(layerW)
	}
	offset := p.GetOffset()

	perPosition := len(p.GetMinSize()) * (len(ratios) + min(1, len(p.GetMaxSize())))
	dim := layerH * layerW * perPosition * 4
	out := make([]float32, 2*dim)
	boxes := out[:0]
	add := func(cx, cy, bw, bh float32) {
		boxes = append(boxes,
			float32((float64(cx)-float64(bw)/2)/float64(imgW)),
			float32((float64(cy)-float64(bh)/2)/float64(imgH)),
			float32((float64(cx)+float64(bw)/2)/float64(imgW)),
			float32((float64(cy)+float64(bh)/2)/float64(imgH)))
	}
	for h := range layerH {
		for w := range layerW {
			cx := (float32(w) + offset) * stepW
			cy := (float32(h) + offset) * stepH
			for s, minSize := range p.GetMinSize() {
				add(cx, cy, minSize, minSize)
				if len(p.GetMaxSize()) > 0 {
					side := float32(math.Sqrt(float64(minSize * p.GetMaxSize()[s])))
					add(cx, cy, side, side)
				}
				for _, ar := range ratios {
					if math.Abs(float64(ar)-1) < 1e-6 {
						continue
					}
					root := float32(math.Sqrt(float64(ar)))
					add(cx, cy, minSize*root, minSize/root)
				}
			}
		}
	}
	if len(boxes) != dim {
		return nil, unsupported(l, "computed %d prior coordinates, the inferred shape holds %d", len(boxes), dim)
	}
	if p.GetClip() {
		for i, v := range boxes {
			boxes[i] = min(max(v, 0), 1)
		}
	}
	for i := range dim {
		out[dim+i] = variance[i%len(variance)]
	}
	return out, nil
}

// mapDetectionOutput rejects SSD's DetectionOutput. The layer decodes
// boxes and runs per-class non-maximum suppression with a keep_top_k
// limit, so its output length depends on the scores. ONNX has no standard
// operator with those semantics: NonMaxSuppression returns indices only,
// and its tie and top-k rules differ.
func mapDetectionOutput(c *converter, l *graph.Layer) error {
	return unsupported(l, "ONNX has no standard equivalent of SSD's box decoding and non-maximum suppression; export the net up to its loc, conf and prior outputs (tlsurgery truncate) and decode them outside the model")
}

// mapInterp maps the Interp layer of DeepLab v2 and PSPNet
// (interp_layer.cpp), bilinear interpolation whose source coordinate is
// dst·(in − 1)/(out − 1), to Resize with mode linear and
// coordinate_transformation_mode align_corners (opset 11 and later). The
// output size is the one the graph inferred from the layer's parameters.
func mapInterp(c *converter, l *graph.Layer) error {
	p := l.Param.GetInterpParam()
	if c.opset < 11 {
		return unsupported(l, "Resize has align_corners only from opset 11; export with --opset 11 or later")
	}
	if p.GetPadBeg() != 0 || p.GetPadEnd() != 0 {
		return unsupported(l, "interp_param pad_beg and pad_end are not exported")
	}
	if !c.isStatic(l.Tops[0]) {
		return unsupported(l, "Resize is given the output size, which needs a fixed batch size")
	}
	sizes := c.int64Const("sizes", []int{len(l.Tops[0].Shape)}, int64s(l.Tops[0].Shape))
	roi := c.floatConst("roi", []int{0}, nil)
	scales := c.floatConst("scales", []int{0}, nil)
	c.node("Resize", []string{c.in(0), roi, scales, sizes}, []string{c.top(0)},
		attrString("mode", "linear"), attrString("coordinate_transformation_mode", "align_corners"))
	return nil
}

// mapUpsample maps SegNet's upsample_layer.cpp (max unpooling: each value
// of bottom 0 goes to the position its MAX pooling mask in bottom 1
// records, zeros elsewhere) to MaxUnpool. The mask must come from a
// Pooling layer of this net, exported as MaxPool indices, and the output
// must have the pooling input's size, because ONNX's indices count
// positions of that input.
func mapUpsample(c *converter, l *graph.Layer) error {
	if len(l.Bottoms) != 2 || !c.poolMasks[l.Bottoms[1]] {
		return unsupported(l, "only SegNet's form with the mask of a MAX Pooling layer as bottom 1 is exported")
	}
	pool := l.Bottoms[1].Producer
	pooled := pool.Bottoms[0].Shape
	out := l.Tops[0].Shape
	if len(pooled) != 4 || len(out) != 4 || pooled[2] != out[2] || pooled[3] != out[3] {
		return unsupported(l, "the output size %v differs from the input size %v of pooling layer %s, so the mask positions do not carry over", out, pooled, pool.Name())
	}
	if !c.isStatic(l.Tops[0]) {
		return unsupported(l, "MaxUnpool is given the output shape, which needs a fixed batch size")
	}
	p := l.Param.GetUpsampleParam()
	scaleH, scaleW := int(p.GetScale()), int(p.GetScale())
	if p.ScaleH != nil {
		scaleH = int(p.GetScaleH())
	}
	if p.ScaleW != nil {
		scaleW = int(p.GetScaleW())
	}
	shape := c.int64Const("output_shape", []int{4}, int64s(out))
	c.node("MaxUnpool", []string{c.in(0), c.in(1), shape}, []string{c.top(0)},
		attrInts("kernel_shape", []int{scaleH, scaleW}), attrInts("strides", []int{scaleH, scaleW}))
	return nil
}
