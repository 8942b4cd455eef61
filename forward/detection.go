package forward

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/graph"
)

// Kernels of the SSD fork (weiliu89/caffe, ssd branch): Normalize,
// PriorBox and DetectionOutput. Where SSD computes in double before
// storing a float, the kernels do the same, so that boxes match to the
// last bit or close to it.

// legacyDim returns axis i of a shape as Caffe's Blob::LegacyShape does:
// 1 for a missing trailing axis.
func legacyDim(shape []int, i int) int {
	if i < len(shape) {
		return shape[i]
	}
	return 1
}

// normalizeKernel follows SSD's normalize_layer.cpp. Per image, the L2
// norm is √(Σx² + eps), summed over channels and space with
// across_spatial, else over the channels at each position. SSD adds eps
// to the sum of squares, before the square root. The quotient is then
// multiplied by one learned scale (channel_shared) or one per channel.
type normalizeKernel struct {
	acrossSpatial, channelShared bool
	eps                          float32
	scale                        []float32
}

func buildNormalize(l *graph.Layer, c *compileContext) (kernel, error) {
	p := cmp.Or(l.Param.GetNormParam(), &caffepb.NormalizeParameter{})
	in := l.Bottoms[0].Shape
	if len(in) < 2 || len(in) > 4 {
		return nil, fmt.Errorf("Normalize needs a bottom with 2 to 4 axes, got %v", in)
	}
	k := &normalizeKernel{acrossSpatial: p.GetAcrossSpatial(), channelShared: p.GetChannelShared(), eps: p.GetEps()}
	var err error
	if k.scale, err = c.weights(l, 0); err != nil {
		return nil, err
	}
	want := in[1]
	if k.channelShared {
		want = 1
	}
	if len(k.scale) != want {
		return nil, fmt.Errorf("the scale blob has %d values, channel_shared %v needs %d", len(k.scale), k.channelShared, want)
	}
	return k, nil
}

func (k *normalizeKernel) forward(bottoms, tops []*Tensor) error {
	in, out := bottoms[0], tops[0]
	num, channels := legacyDim(in.Shape, 0), legacyDim(in.Shape, 1)
	spatial := legacyDim(in.Shape, 2) * legacyDim(in.Shape, 3)
	dim := channels * spatial
	if !k.channelShared && len(k.scale) != channels {
		return fmt.Errorf("%d scales for the %d channels of bottom %v", len(k.scale), channels, in.Shape)
	}
	norms := make([]float32, spatial)
	for n := range num {
		x := in.Data[n*dim : (n+1)*dim]
		y := out.Data[n*dim : (n+1)*dim]
		if k.acrossSpatial {
			var sum float64
			for _, v := range x {
				sum += float64(v) * float64(v)
			}
			norm := float32(math.Sqrt(float64(float32(sum) + k.eps)))
			inv := float32(1 / float64(norm))
			for i, v := range x {
				y[i] = v * inv
			}
		} else {
			for s := range spatial {
				var sum float64
				for ch := range channels {
					v := float64(x[ch*spatial+s])
					sum += v * v
				}
				norms[s] = float32(math.Sqrt(float64(k.eps + float32(sum))))
			}
			for ch := range channels {
				for s := range spatial {
					y[ch*spatial+s] = x[ch*spatial+s] / norms[s]
				}
			}
		}
		for ch := range channels {
			scale := k.scale[0]
			if !k.channelShared {
				scale = k.scale[ch]
			}
			row := y[ch*spatial : (ch+1)*spatial]
			for i := range row {
				row[i] *= scale
			}
		}
	}
	return nil
}

// priorBoxKernel follows SSD's prior_box_layer.cpp. At each cell of
// bottom 0, for each min_size it emits the square min_size prior, then
// with max_size the square √(min_size·max_size) prior, then per aspect
// ratio r other than 1 a min_size·√r × min_size/√r prior. Sizes are
// truncated to integers first, as SSD stores them in an int. Boxes are
// [xmin, ymin, xmax, ymax] divided by the image size (img_size,
// img_h/img_w, or bottom 1's), optionally clipped to [0, 1]. The second
// channel holds the variances.
// NOTE: one revision of weiliu89/caffe sizes the aspect-ratio priors from
// √(min_size·max_size) when max_size is given. This kernel follows the
// other SSD revisions and OpenCV, which size them from min_size.
type priorBoxKernel struct {
	minSizes, maxSizes []int
	ratios             []float32 // 1 first, then each new aspect ratio and, with flip, its reciprocal
	clip               bool
	variance           []float32 // 1 or 4 values
	imgH, imgW         int       // 0: from bottom 1
	stepH, stepW       float32   // 0: image size ÷ layer size
	offset             float32
}

func buildPriorBox(l *graph.Layer, c *compileContext) (kernel, error) {
	p := cmp.Or(l.Param.GetPriorBoxParam(), &caffepb.PriorBoxParameter{})
	if len(p.GetWidth()) > 0 || len(p.GetHeight()) > 0 || len(p.GetOffsetH()) > 0 || len(p.GetOffsetW()) > 0 {
		return nil, fmt.Errorf("prior_box_param width, height, offset_h and offset_w are OpenCV's extension, which Caffe's PriorBox lacks; give min_size, max_size and aspect_ratio")
	}
	k := &priorBoxKernel{clip: p.GetClip(), offset: p.GetOffset(), ratios: []float32{1}}
	if len(p.GetMinSize()) == 0 {
		return nil, fmt.Errorf("prior_box_param needs min_size")
	}
	for _, s := range p.GetMinSize() {
		if !(s > 0) {
			return nil, fmt.Errorf("prior_box_param.min_size %v must be positive", s)
		}
		k.minSizes = append(k.minSizes, int(s))
	}
	for _, ar := range p.GetAspectRatio() {
		if slices.ContainsFunc(k.ratios, func(r float32) bool { return math.Abs(float64(ar-r)) < 1e-6 }) {
			continue
		}
		if !(ar > 0) {
			return nil, fmt.Errorf("prior_box_param.aspect_ratio %v must be positive", ar)
		}
		k.ratios = append(k.ratios, ar)
		if p.GetFlip() {
			k.ratios = append(k.ratios, float32(1/float64(ar)))
		}
	}
	if len(p.GetMaxSize()) > 0 {
		if len(p.GetMaxSize()) != len(p.GetMinSize()) {
			return nil, fmt.Errorf("prior_box_param has %d max_size values for %d min_size values; give one per min_size", len(p.GetMaxSize()), len(p.GetMinSize()))
		}
		for i, s := range p.GetMaxSize() {
			if !(s > p.GetMinSize()[i]) {
				return nil, fmt.Errorf("prior_box_param.max_size %v must exceed min_size %v", s, p.GetMinSize()[i])
			}
			k.maxSizes = append(k.maxSizes, int(s))
		}
	}
	switch v := p.GetVariance(); len(v) {
	case 0:
		k.variance = []float32{0.1}
	case 1, 4:
		for _, x := range v {
			if !(x > 0) {
				return nil, fmt.Errorf("prior_box_param.variance %v must be positive", v)
			}
		}
		k.variance = v
	default:
		return nil, fmt.Errorf("prior_box_param has %d variance values; give 1 or 4", len(v))
	}

	switch {
	case p.ImgH != nil || p.ImgW != nil:
		if p.ImgSize != nil {
			return nil, fmt.Errorf("prior_box_param gives img_size and img_h/img_w; give one form")
		}
		k.imgH, k.imgW = int(p.GetImgH()), int(p.GetImgW())
		if k.imgH == 0 || k.imgW == 0 {
			return nil, fmt.Errorf("prior_box_param img_h %d and img_w %d must both be positive", k.imgH, k.imgW)
		}
	case p.ImgSize != nil:
		k.imgH, k.imgW = int(p.GetImgSize()), int(p.GetImgSize())
		if k.imgH == 0 {
			return nil, fmt.Errorf("prior_box_param.img_size must be positive")
		}
	}
	switch {
	case p.StepH != nil || p.StepW != nil:
		if p.Step != nil {
			return nil, fmt.Errorf("prior_box_param gives step and step_h/step_w; give one form")
		}
		k.stepH, k.stepW = p.GetStepH(), p.GetStepW()
		if !(k.stepH > 0 && k.stepW > 0) {
			return nil, fmt.Errorf("prior_box_param step_h %v and step_w %v must both be positive", k.stepH, k.stepW)
		}
	case p.Step != nil:
		k.stepH, k.stepW = p.GetStep(), p.GetStep()
		if !(k.stepH > 0) {
			return nil, fmt.Errorf("prior_box_param.step %v must be positive", k.stepH)
		}
	}
	if k.imgH == 0 && len(l.Bottoms) < 2 {
		return nil, fmt.Errorf("PriorBox without img_size or img_h/img_w takes the image size from bottom 1, and the layer has 1 bottom")
	}
	return k, nil
}

// count returns the number of priors per cell.
func (k *priorBoxKernel) count() int {
	return len(k.ratios)*len(k.minSizes) + len(k.maxSizes)
}

func (k *priorBoxKernel) forward(bottoms, tops []*Tensor) error {
	layerH, layerW := legacyDim(bottoms[0].Shape, 2), legacyDim(bottoms[0].Shape, 3)
	imgH, imgW := k.imgH, k.imgW
	if imgH == 0 {
		imgH, imgW = legacyDim(bottoms[1].Shape, 2), legacyDim(bottoms[1].Shape, 3)
	}
	stepH, stepW := k.stepH, k.stepW
	if stepH == 0 {
		stepW = float32(imgW) / float32(layerW)
		stepH = float32(imgH) / float32(layerH)
	}
	dim := layerH * layerW * k.count() * 4
	out := tops[0].Data
	if len(out) != 2*dim {
		return fmt.Errorf("top %v does not hold %d priors and their variances", tops[0].Shape, dim/4)
	}

	idx := 0
	emit := func(cx, cy, bw, bh float32) {
		out[idx] = float32((float64(cx) - float64(bw)/2) / float64(imgW))
		out[idx+1] = float32((float64(cy) - float64(bh)/2) / float64(imgH))
		out[idx+2] = float32((float64(cx) + float64(bw)/2) / float64(imgW))
		out[idx+3] = float32((float64(cy) + float64(bh)/2) / float64(imgH))
		idx += 4
	}
	for h := range layerH {
		for w := range layerW {
			cx := (float32(w) + k.offset) * stepW
			cy := (float32(h) + k.offset) * stepH
			for s, minSize := range k.minSizes {
				emit(cx, cy, float32(minSize), float32(minSize))
				if len(k.maxSizes) > 0 {
					both := float32(math.Sqrt(float64(minSize * k.maxSizes[s])))
					emit(cx, cy, both, both)
				}
				for _, ar := range k.ratios {
					if math.Abs(float64(ar)-1) < 1e-6 {
						continue
					}
					root := math.Sqrt(float64(ar))
					emit(cx, cy, float32(float64(minSize)*root), float32(float64(minSize)/root))
				}
			}
		}
	}
	if k.clip {
		for i, v := range out[:dim] {
			out[i] = min(max(v, 0), 1)
		}
	}
	variances := out[dim:]
	for i := range variances {
		if len(k.variance) == 1 {
			variances[i] = k.variance[0]
		} else {
			variances[i] = k.variance[i%4]
		}
	}
	return nil
}

// box is SSD's NormalizedBBox with the size that DecodeBBox stores: the
// area, or 0 for a box with xmax < xmin or ymax < ymin.
type box struct {
	xmin, ymin, xmax, ymax, size float32
}

func boxSize(b box) float32 {
	if b.xmax < b.xmin || b.ymax < b.ymin {
		return 0
	}
	return (b.xmax - b.xmin) * (b.ymax - b.ymin)
}

// jaccard is SSD's JaccardOverlap for normalized boxes: the intersection
// over the union, using each box's stored size.
func jaccard(a, b box) float32 {
	if b.xmin > a.xmax || b.xmax < a.xmin || b.ymin > a.ymax || b.ymax < a.ymin {
		return 0
	}
	w := min(a.xmax, b.xmax) - max(a.xmin, b.xmin)
	h := min(a.ymax, b.ymax) - max(a.ymin, b.ymin)
	if !(w > 0 && h > 0) {
		return 0
	}
	inter := w * h
	return inter / (a.size + b.size - inter)
}

// detectionOutputKernel follows SSD's detection_output_layer.cpp and the
// functions of bbox_util.cpp it calls. Per image, the location bottom is
// decoded against the priors (bottom 2) with code_type. For each class
// other than background_label_id, the boxes scoring above
// confidence_threshold go through nmsFast, and keep_top_k then keeps the
// best boxes of the image over all classes. The top is 1×1×N×7, one row
// [image_id, label, score, xmin, ymin, xmax, ymax] per kept box, ordered
// by image, then label, then score. When the whole batch has no box, the
// top is one row of −1s per image, with the image's id first.
type detectionOutputKernel struct {
	numClasses, locClasses int
	shareLocation          bool
	background             int
	codeType               caffepb.PriorBoxParameter_CodeType
	varianceInTarget       bool
	keepTopK, topK         int
	confidenceThreshold    float32
	nmsThreshold, eta      float32
}

func buildDetectionOutput(l *graph.Layer, c *compileContext) (kernel, error) {
	p := l.Param.GetDetectionOutputParam()
	if p == nil || p.NumClasses == nil || p.GetNumClasses() < 1 {
		return nil, fmt.Errorf("detection_output_param.num_classes must be given and positive")
	}
	nms := cmp.Or(p.GetNmsParam(), &caffepb.NonMaximumSuppressionParameter{})
	k := &detectionOutputKernel{
		numClasses:          int(p.GetNumClasses()),
		shareLocation:       p.GetShareLocation(),
		background:          int(p.GetBackgroundLabelId()),
		codeType:            p.GetCodeType(),
		varianceInTarget:    p.GetVarianceEncodedInTarget(),
		keepTopK:            int(p.GetKeepTopK()),
		topK:                -1,
		confidenceThreshold: -math.MaxFloat32,
		nmsThreshold:        nms.GetNmsThreshold(),
		eta:                 nms.GetEta(),
	}
	k.locClasses = 1
	if !k.shareLocation {
		k.locClasses = k.numClasses
	}
	if p.ConfidenceThreshold != nil {
		k.confidenceThreshold = p.GetConfidenceThreshold()
	}
	if nms.TopK != nil {
		k.topK = int(nms.GetTopK())
	}
	if !(k.nmsThreshold >= 0) {
		return nil, fmt.Errorf("nms_param.nms_threshold %v must not be negative", k.nmsThreshold)
	}
	if !(k.eta > 0 && k.eta <= 1) {
		return nil, fmt.Errorf("nms_param.eta %v must be in (0, 1]", k.eta)
	}
	switch k.codeType {
	case caffepb.PriorBoxParameter_CORNER, caffepb.PriorBoxParameter_CENTER_SIZE, caffepb.PriorBoxParameter_CORNER_SIZE:
	default:
		return nil, fmt.Errorf("detection_output_param.code_type %v is not CORNER, CENTER_SIZE or CORNER_SIZE", k.codeType)
	}
	if k.shareLocation && k.background == -1 {
		// SSD's DecodeBBoxesAll skips the shared label −1 as background,
		// and the layer then aborts for want of location predictions.
		return nil, fmt.Errorf("background_label_id -1 with share_location makes SSD skip the shared box predictions; SSD aborts on this net")
	}
	return k, nil
}

func (k *detectionOutputKernel) forward(bottoms, tops []*Tensor) error {
	out, err := k.forwardResize(bottoms)
	if err != nil {
		return err
	}
	if len(tops[0].Data) != len(out[0].Data) {
		return fmt.Errorf("the detections need a top of shape %v, not %v; run the net with Run, which resizes it", out[0].Shape, tops[0].Shape)
	}
	copy(tops[0].Data, out[0].Data)
	return nil
}

// imageDetections is the result of suppression for one image: the kept
// prior indexes per class, in output order.
type imageDetections struct {
	kept    [][]int
	scores  []float32 // conf bottom of the image, prior-major
	decoded [][]box   // per location class
}

func (k *detectionOutputKernel) forwardResize(bottoms []*Tensor) ([]*Tensor, error) {
	if len(bottoms) < 3 {
		return nil, fmt.Errorf("DetectionOutput takes location, confidence and prior bottoms, got %d", len(bottoms))
	}
	loc, conf, prior := bottoms[0], bottoms[1], bottoms[2]
	num := legacyDim(loc.Shape, 0)
	numPriors := legacyDim(prior.Shape, 2) / 4
	if len(loc.Data) != num*numPriors*k.locClasses*4 {
		return nil, fmt.Errorf("the location bottom %v does not hold %d images × %d priors × %d location classes × 4", loc.Shape, num, numPriors, k.locClasses)
	}
	if len(conf.Data) != num*numPriors*k.numClasses {
		return nil, fmt.Errorf("the confidence bottom %v does not hold %d images × %d priors × %d classes", conf.Shape, num, numPriors, k.numClasses)
	}
	if len(prior.Data) < 2*numPriors*4 {
		return nil, fmt.Errorf("the prior bottom %v does not hold %d priors and their variances", prior.Shape, numPriors)
	}
	priors := make([]box, numPriors)
	for i := range priors {
		d := prior.Data[i*4 : i*4+4]
		priors[i] = box{xmin: d[0], ymin: d[1], xmax: d[2], ymax: d[3]}
		priors[i].size = boxSize(priors[i])
	}
	variances := prior.Data[numPriors*4 : numPriors*8]

	images := make([]imageDetections, num)
	kept := 0
	scores := make([]float32, numPriors)
	for i := range num {
		img := &images[i]
		img.scores = conf.Data[i*numPriors*k.numClasses : (i+1)*numPriors*k.numClasses]
		img.decoded = make([][]box, k.locClasses)
		locData := loc.Data[i*numPriors*k.locClasses*4 : (i+1)*numPriors*k.locClasses*4]
		for c := range k.locClasses {
			if !k.shareLocation && c == k.background {
				continue
			}
			boxes := make([]box, numPriors)
			for p := range boxes {
				d := locData[(p*k.locClasses+c)*4:]
				var err error
				boxes[p], err = k.decode(priors[p], variances[p*4:p*4+4], box{xmin: d[0], ymin: d[1], xmax: d[2], ymax: d[3]})
				if err != nil {
					return nil, fmt.Errorf("prior %d: %w", p, err)
				}
			}
			img.decoded[c] = boxes
		}

		img.kept = make([][]int, k.numClasses)
		detections := 0
		for c := range k.numClasses {
			if c == k.background {
				continue
			}
			for p := range scores {
				scores[p] = img.scores[p*k.numClasses+c]
			}
			boxes := img.decoded[0]
			if !k.shareLocation {
				boxes = img.decoded[c]
			}
			img.kept[c] = nmsFast(boxes, scores, k.confidenceThreshold, k.nmsThreshold, k.eta, k.topK)
			detections += len(img.kept[c])
		}
		if k.keepTopK > -1 && detections > k.keepTopK {
			img.kept = k.keepBest(img)
			detections = k.keepTopK
		}
		kept += detections
	}

	if kept == 0 {
		top := NewTensor(1, 1, num, 7)
		for i := range top.Data {
			top.Data[i] = -1
		}
		for i := range num {
			top.Data[i*7] = float32(i)
		}
		return []*Tensor{top}, nil
	}
	top := NewTensor(1, 1, kept, 7)
	row := 0
	for i, img := range images {
		for label, indexes := range img.kept {
			boxes := img.decoded[0]
			if !k.shareLocation {
				boxes = img.decoded[label]
			}
			for _, p := range indexes {
				b := boxes[p]
				copy(top.Data[row*7:], []float32{float32(i), float32(label), img.scores[p*k.numClasses+label], b.xmin, b.ymin, b.xmax, b.ymax})
				row++
			}
		}
	}
	return []*Tensor{top}, nil
}

// keepBest applies keep_top_k to one image: the best keep_top_k boxes over
// all classes, regrouped by class in descending score order.
func (k *detectionOutputKernel) keepBest(img *imageDetections) [][]int {
	type candidate struct {
		score        float32
		label, prior int
	}
	var all []candidate
	for label, indexes := range img.kept {
		for _, p := range indexes {
			all = append(all, candidate{img.scores[p*k.numClasses+label], label, p})
		}
	}
	// NOTE: SSD sorts with std::sort, whose order among equal scores is
	// unspecified. The stable sort here keeps the class order for ties.
	slices.SortStableFunc(all, func(a, b candidate) int { return cmp.Compare(b.score, a.score) })
	all = all[:k.keepTopK]
	kept := make([][]int, k.numClasses)
	for _, c := range all {
		kept[c.label] = append(kept[c.label], c.prior)
	}
	return kept
}

// decode is SSD's DecodeBBox without clipping, for one prediction against
// its prior and the prior's 4 variances.
func (k *detectionOutputKernel) decode(prior box, variance []float32, pred box) (box, error) {
	var b box
	switch k.codeType {
	case caffepb.PriorBoxParameter_CORNER:
		if k.varianceInTarget {
			b = box{xmin: prior.xmin + pred.xmin, ymin: prior.ymin + pred.ymin, xmax: prior.xmax + pred.xmax, ymax: prior.ymax + pred.ymax}
		} else {
			b = box{
				xmin: prior.xmin + variance[0]*pred.xmin,
				ymin: prior.ymin + variance[1]*pred.ymin,
				xmax: prior.xmax + variance[2]*pred.xmax,
				ymax: prior.ymax + variance[3]*pred.ymax,
			}
		}
	case caffepb.PriorBoxParameter_CENTER_SIZE:
		pw, ph := prior.xmax-prior.xmin, prior.ymax-prior.ymin
		if !(pw > 0 && ph > 0) {
			return box{}, fmt.Errorf("CENTER_SIZE decoding needs a prior of positive width and height, got %v", prior)
		}
		pcx, pcy := (prior.xmin+prior.xmax)/2, (prior.ymin+prior.ymax)/2
		var cx, cy, w, h float32
		if k.varianceInTarget {
			cx = pred.xmin*pw + pcx
			cy = pred.ymin*ph + pcy
			w = float32(math.Exp(float64(pred.xmax)) * float64(pw))
			h = float32(math.Exp(float64(pred.ymax)) * float64(ph))
		} else {
			cx = variance[0]*pred.xmin*pw + pcx
			cy = variance[1]*pred.ymin*ph + pcy
			w = float32(math.Exp(float64(variance[2]*pred.xmax)) * float64(pw))
			h = float32(math.Exp(float64(variance[3]*pred.ymax)) * float64(ph))
		}
		b = box{
			xmin: float32(float64(cx) - float64(w)/2),
			ymin: float32(float64(cy) - float64(h)/2),
			xmax: float32(float64(cx) + float64(w)/2),
			ymax: float32(float64(cy) + float64(h)/2),
		}
	case caffepb.PriorBoxParameter_CORNER_SIZE:
		pw, ph := prior.xmax-prior.xmin, prior.ymax-prior.ymin
		if !(pw > 0 && ph > 0) {
			return box{}, fmt.Errorf("CORNER_SIZE decoding needs a prior of positive width and height, got %v", prior)
		}
		if k.varianceInTarget {
			b = box{xmin: prior.xmin + pred.xmin*pw, ymin: prior.ymin + pred.ymin*ph, xmax: prior.xmax + pred.xmax*pw, ymax: prior.ymax + pred.ymax*ph}
		} else {
			b = box{
				xmin: prior.xmin + variance[0]*pred.xmin*pw,
				ymin: prior.ymin + variance[1]*pred.ymin*ph,
				xmax: prior.xmax + variance[2]*pred.xmax*pw,
				ymax: prior.ymax + variance[3]*pred.ymax*ph,
			}
		}
	}
	b.size = boxSize(b)
	return b, nil
}

// nmsFast is SSD's ApplyNMSFast. It takes the boxes scoring above
// threshold in descending score order (a stable sort, so ties keep prior
// order), cut to topK when topK > −1. Each is kept when its overlap with
// every box kept so far is at most the adaptive threshold, which starts at
// nmsThreshold and is multiplied by eta after each kept box while it
// exceeds 0.5.
func nmsFast(boxes []box, scores []float32, threshold, nmsThreshold, eta float32, topK int) []int {
	type candidate struct {
		score float32
		index int
	}
	var order []candidate
	for i, s := range scores {
		if s > threshold {
			order = append(order, candidate{s, i})
		}
	}
	slices.SortStableFunc(order, func(a, b candidate) int { return cmp.Compare(b.score, a.score) })
	if topK > -1 && topK < len(order) {
		order = order[:topK]
	}
	adaptive := nmsThreshold
	var kept []int
	for _, c := range order {
		keep := true
		for _, k := range kept {
			if jaccard(boxes[c.index], boxes[k]) > adaptive {
				keep = false
				break
			}
		}
		if keep {
			kept = append(kept, c.index)
			if eta < 1 && adaptive > 0.5 {
				adaptive *= eta
			}
		}
	}
	return kept
}

func init() {
	registerKernel(buildNormalize, "Normalize")
	registerKernel(buildPriorBox, "PriorBox")
	registerKernel(buildDetectionOutput, "DetectionOutput")
}
