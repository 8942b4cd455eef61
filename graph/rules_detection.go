package graph

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
)

// Rules for the detection and segmentation layers of Caffe forks: SSD
// (weiliu89/caffe), Fast/Faster R-CNN (rbgirshick/caffe-fast-rcnn), R-FCN
// (daijifeng001/caffe-rfcn), OpenCV's Proposal, DeepLab v2 and PSPNet
// (Interp), and SegNet (Upsample). Python layers get no rule: their
// shapes are unknown by design.
func init() {
	register(&Rule{
		// SSD's normalize_layer.cpp: L2 normalization across channels (and
		// space with across_spatial), then a learned scale: one value with
		// channel_shared (default true), else one per channel. The top has
		// the bottom's shape; the bottom has 2 to 4 axes.
		Types: []string{"Normalize"},
		Tops: func(c *Context) ([][]int, error) {
			if err := requireBottoms(c, 1, 1); err != nil {
				return nil, err
			}
			if err := checkNormalizeBottom(c.Bottoms[0]); err != nil {
				return nil, err
			}
			return [][]int{slices.Clone(c.Bottoms[0])}, nil
		},
		Blobs: func(c *Context) ([]ParamBlob, error) {
			if err := checkNormalizeBottom(c.Bottoms[0]); err != nil {
				return nil, err
			}
			if !c.Layer.GetNormParam().GetChannelShared() {
				return []ParamBlob{{Shape: []int{c.Bottoms[0][1]}}}, nil
			}
			// SSD creates the shared scale as a 0-axis blob, so a
			// caffemodel stores it with an empty shape. Both spellings of
			// the single value are accepted by reporting what the weights
			// contain.
			if len(c.Weights) == 1 && c.Weights[0].GetShape() != nil && len(caffe.BlobShape(c.Weights[0])) == 0 {
				return []ParamBlob{{Shape: []int{}}}, nil
			}
			return []ParamBlob{{Shape: []int{1}}}, nil
		},
		// 4 operations per element: square, sum, divide by the norm and
		// multiply by the scale (one square root per norm is not counted).
		Cost: func(c *Context, tops [][]int) (int64, int64) {
			return 0, 4 * shapeProduct(c.Bottoms[0])
		},
	})

	register(&Rule{
		// SSD's prior_box_layer.cpp: one set of priors for the batch, top
		// 1 × 2 (coordinates, variances) × H·W·num_priors·4, with H and W
		// from bottom 0 (bottom 1, the image, sets only the box scale).
		Types:   []string{"PriorBox"},
		NoField: true,
		Tops: func(c *Context) ([][]int, error) {
			if err := requireBottoms(c, 1, 2); err != nil {
				return nil, err
			}
			n, err := priorCount(c)
			if err != nil {
				return nil, err
			}
			d, err := legacyDims(c.Bottoms[0], "bottom 0")
			if err != nil {
				return nil, err
			}
			size := d[2] * d[3] * n * 4
			if size < 1 {
				return nil, fmt.Errorf("bottom 0 %v has no positions to place priors on", c.Bottoms[0])
			}
			return [][]int{{1, 2, size}}, nil
		},
		// One operation per top value: the coordinates and variances are
		// computed once per forward pass (an estimate).
		Cost: func(c *Context, tops [][]int) (int64, int64) {
			if len(tops) == 0 {
				return 0, 0
			}
			return 0, shapeProduct(tops[0])
		},
	})

	register(&Rule{
		// SSD's detection_output_layer.cpp: bottoms loc (N × priors·4, or
		// ·4·num_classes without share_location), conf (N ×
		// priors·num_classes) and priors (1 × 2 × priors·4). The number of
		// detections is known only after non-maximum suppression, so Caffe
		// reshapes the top to 1 × 1 × 1 × 7 at setup.
		// NOTE: 1 × 1 × 1 × 7 is a placeholder: at run time the top is
		// 1 × 1 × (detections kept) × 7, at most keep_top_k per image.
		// Its cost (decoding and suppression) depends on the scores and is
		// not counted.
		Types:      []string{"DetectionOutput"},
		NoField:    true,
		MinBottoms: 3,
		Tops: func(c *Context) ([][]int, error) {
			if err := requireBottoms(c, 3, -1); err != nil {
				return nil, err
			}
			p := cmp.Or(c.Layer.GetDetectionOutputParam(), &caffepb.DetectionOutputParameter{})
			if p.NumClasses == nil || p.GetNumClasses() < 1 {
				return nil, fmt.Errorf("detection_output_param.num_classes must be given and positive")
			}
			locClasses := 1
			if !p.GetShareLocation() {
				locClasses = int(p.GetNumClasses())
			}
			if err := checkPriorBottoms(c, locClasses, int(p.GetNumClasses())); err != nil {
				return nil, err
			}
			return [][]int{{1, 1, 1, 7}}, nil
		},
	})

	register(&Rule{
		// Fast R-CNN's roi_pooling_layer.cpp: bottom 1 contains R regions of
		// 5 values (batch index, x1, y1, x2, y2), and the top is R ×
		// channels × pooled_h × pooled_w. The cost is not counted because
		// it depends on the region sizes, known only at run time.
		Types:      []string{"ROIPooling"},
		NoField:    true,
		MinBottoms: 2,
		Tops: func(c *Context) ([][]int, error) {
			if err := requireBottoms(c, 2, 2); err != nil {
				return nil, err
			}
			p := c.Layer.GetRoiPoolingParam()
			h, w := int(p.GetPooledH()), int(p.GetPooledW())
			if h < 1 || w < 1 {
				return nil, fmt.Errorf("roi_pooling_param.pooled_h %d and pooled_w %d must be positive", h, w)
			}
			data, rois, err := roiBottoms(c)
			if err != nil {
				return nil, err
			}
			return [][]int{{rois[0], data[1], h, w}}, nil
		},
	})

	register(&Rule{
		// R-FCN's psroi_pooling_layer.cpp: bottom 0 has output_dim ·
		// group_size² position-sensitive channels, and the top is R ×
		// output_dim × group_size × group_size for R regions in bottom 1.
		// The cost depends on the region sizes and is not counted.
		Types:      []string{"PSROIPooling"},
		NoField:    true,
		MinBottoms: 2,
		Tops: func(c *Context) ([][]int, error) {
			if err := requireBottoms(c, 2, 2); err != nil {
				return nil, err
			}
			p := c.Layer.GetPsroiPoolingParam()
			dim, group := int(p.GetOutputDim()), int(p.GetGroupSize())
			if dim < 1 || group < 1 {
				return nil, fmt.Errorf("psroi_pooling_param.output_dim %d and group_size %d must be positive", dim, group)
			}
			data, rois, err := roiBottoms(c)
			if err != nil {
				return nil, err
			}
			if data[1] != dim*group*group {
				return nil, fmt.Errorf("bottom 0 has %d channels; output_dim %d × group_size² %d needs %d", data[1], dim, group*group, dim*group*group)
			}
			return [][]int{{rois[0], dim, group, group}}, nil
		},
	})

	register(&Rule{
		// OpenCV's proposal_layer.cpp, the C++ form of Faster R-CNN's
		// Python proposal layer. The bottoms are the objectness scores (N ×
		// 2A × H × W for A anchors), the box deltas (N × 4A × H × W) and
		// im_info. Top 0 is post_nms_topn (default 300) rows of (batch
		// index, x1, y1, x2, y2), and an optional top 1 has their scores.
		// NOTE: OpenCV accepts one image only and pads the rows to
		// post_nms_topn, while this rule gives N × post_nms_topn rows for N
		// images. A Caffe fork's C++ Proposal (VitoChien/caffe-fast-rcnn,
		// say) keeps only the boxes that survive suppression, under its own
		// limit, so there the row count is known only at run time.
		Types:      []string{"Proposal"},
		NoField:    true,
		MinBottoms: 3,
		Tops: func(c *Context) ([][]int, error) {
			if err := requireBottoms(c, 3, 3); err != nil {
				return nil, err
			}
			scores, deltas := c.Bottoms[0], c.Bottoms[1]
			if len(scores) != 4 || len(deltas) != 4 {
				return nil, fmt.Errorf("the scores %v and box deltas %v need 4 axes (num, channels, height, width)", scores, deltas)
			}
			if scores[1]%2 != 0 {
				return nil, fmt.Errorf("the scores have %d channels; Proposal needs 2 per anchor (background, object)", scores[1])
			}
			if deltas[0] != scores[0] || deltas[1] != 2*scores[1] || !slices.Equal(deltas[2:], scores[2:]) {
				return nil, fmt.Errorf("the box deltas %v do not match the scores %v; they need the same num, height and width and 4 channels per anchor", deltas, scores)
			}
			rows := scores[0] * int(c.Layer.GetProposalParam().GetPostNmsTopn())
			if rows < 1 {
				return nil, fmt.Errorf("proposal_param.post_nms_topn must be positive")
			}
			out := [][]int{{rows, 5}}
			if len(c.Layer.GetTop()) > 1 {
				out = append(out, []int{rows, 1})
			}
			return out, nil
		},
	})

	register(&Rule{
		// The Interp layer of DeepLab v2 and PSPNet (interp_layer.cpp).
		// pad_beg and pad_end (0 or negative, so a crop) first change the
		// input size. Then the first of these that is given sets the output:
		//   - shrink_factor alone: (in − 1) / shrink + 1
		//   - zoom_factor alone: in + (in − 1)·(zoom − 1)
		//   - height and width
		//   - both factors: shrink, then zoom
		//   - the height and width of bottom 1
		Types:   []string{"Interp"},
		NoField: true,
		Tops: func(c *Context) ([][]int, error) {
			if err := requireBottoms(c, 1, 2); err != nil {
				return nil, err
			}
			d, err := legacyDims(c.Bottoms[0], "bottom 0")
			if err != nil {
				return nil, err
			}
			h, w, err := interpSize(c, d[2], d[3])
			if err != nil {
				return nil, err
			}
			return [][]int{{d[0], d[1], h, w}}, nil
		},
		// Bilinear interpolation: 4 weighted taps per output element, each
		// counted as one operation (a fused multiply-add, as MACs count).
		Cost: func(c *Context, tops [][]int) (int64, int64) {
			if len(tops) == 0 {
				return 0, 0
			}
			return 0, 4 * shapeProduct(tops[0])
		},
	})

	register(&Rule{
		// SegNet's upsample_layer.cpp (alexgkendall/caffe-segnet): max
		// unpooling of bottom 0 with the indexes in bottom 1, which must
		// have bottom 0's shape. The output size is upsample_h ×
		// upsample_w when both are given, else in·scale − (pad_out ? 1 : 0)
		// per axis, with scale_h/scale_w or scale (default 2). Unpooling
		// writes values without arithmetic, so it has no cost.
		Types:   []string{"Upsample"},
		NoField: true,
		Tops:    upsampleTops,
	})
}

func checkNormalizeBottom(in []int) error {
	if len(in) < 2 || len(in) > 4 {
		return fmt.Errorf("Normalize needs a bottom with 2 to 4 axes (num, channels, height, width), got %v", in)
	}
	return nil
}

// priorCount returns the priors per position as SSD's PriorBox counts
// them: aspect ratio 1 first, then each new aspect_ratio (within 1e−6 of
// one already listed counts as a repeat) and its reciprocal with flip
// (default true), all times the number of min_size values, plus one per
// max_size. OpenCV's explicit width/height lists give one prior per box,
// and its offset_h/offset_w lists one per offset.
func priorCount(c *Context) (int, error) {
	p := c.Layer.GetPriorBoxParam()
	offsets := 1
	if len(p.GetOffsetW()) > 0 || len(p.GetOffsetH()) > 0 {
		if len(p.GetOffsetW()) != len(p.GetOffsetH()) {
			return 0, fmt.Errorf("prior_box_param has %d offset_w and %d offset_h values; give them in pairs", len(p.GetOffsetW()), len(p.GetOffsetH()))
		}
		offsets = len(p.GetOffsetW())
	}

	if len(p.GetWidth()) > 0 || len(p.GetHeight()) > 0 {
		if len(p.GetWidth()) != len(p.GetHeight()) {
			return 0, fmt.Errorf("prior_box_param has %d width and %d height values; give them in pairs", len(p.GetWidth()), len(p.GetHeight()))
		}
		if len(p.GetMinSize()) > 0 || len(p.GetMaxSize()) > 0 || len(p.GetAspectRatio()) > 0 {
			return 0, fmt.Errorf("prior_box_param gives explicit width and height together with min_size, max_size or aspect_ratio; give one form")
		}
		return len(p.GetWidth()) * offsets, nil
	}

	minSizes, maxSizes := p.GetMinSize(), p.GetMaxSize()
	if len(minSizes) == 0 {
		return 0, fmt.Errorf("prior_box_param needs min_size")
	}
	for _, s := range minSizes {
		if !(s > 0) {
			return 0, fmt.Errorf("prior_box_param.min_size %v must be positive", minSizes)
		}
	}
	if len(maxSizes) > 0 {
		if len(maxSizes) != len(minSizes) {
			return 0, fmt.Errorf("prior_box_param has %d max_size values for %d min_size values; give one per min_size", len(maxSizes), len(minSizes))
		}
		for i := range maxSizes {
			if !(maxSizes[i] > minSizes[i]) {
				return 0, fmt.Errorf("prior_box_param.max_size %v must exceed min_size %v", maxSizes[i], minSizes[i])
			}
		}
	}

	ratios := []float64{1}
	for _, r := range p.GetAspectRatio() {
		ar := float64(r)
		if !(ar > 0) {
			return 0, fmt.Errorf("prior_box_param.aspect_ratio %v must be positive", r)
		}
		repeat := slices.ContainsFunc(ratios, func(x float64) bool { return math.Abs(ar-x) < 1e-6 })
		if repeat {
			continue
		}
		ratios = append(ratios, ar)
		if p.GetFlip() {
			ratios = append(ratios, 1/ar)
		}
	}
	return (len(ratios)*len(minSizes) + len(maxSizes)) * offsets, nil
}

// checkPriorBottoms checks the loc, conf and prior bottoms of SSD's
// DetectionOutput and MultiBoxLoss: priors = height of bottom 2 / 4, and
// the channels (axis 1) of loc and conf must hold 4·locClasses and
// numClasses values per prior.
func checkPriorBottoms(c *Context, locClasses, numClasses int) error {
	loc, err := legacyDims(c.Bottoms[0], "bottom 0 (location)")
	if err != nil {
		return err
	}
	conf, err := legacyDims(c.Bottoms[1], "bottom 1 (confidence)")
	if err != nil {
		return err
	}
	prior, err := legacyDims(c.Bottoms[2], "bottom 2 (priors)")
	if err != nil {
		return err
	}
	if loc[0] != conf[0] {
		return fmt.Errorf("the location %v and confidence %v bottoms have different batch sizes", c.Bottoms[0], c.Bottoms[1])
	}
	if prior[2]%4 != 0 {
		return fmt.Errorf("the priors %v hold %d values per channel, not a multiple of 4", c.Bottoms[2], prior[2])
	}
	priors := prior[2] / 4
	if loc[1] != priors*locClasses*4 {
		return fmt.Errorf("the location bottom %v has %d values per image; %d priors × %d location classes × 4 need %d", c.Bottoms[0], loc[1], priors, locClasses, priors*locClasses*4)
	}
	if conf[1] != priors*numClasses {
		return fmt.Errorf("the confidence bottom %v has %d values per image; %d priors × %d classes need %d", c.Bottoms[1], conf[1], priors, numClasses, priors*numClasses)
	}
	return nil
}

// roiBottoms returns the legacy shapes of the feature map and the regions
// of a region pooling layer, checking that each region has 5 values.
func roiBottoms(c *Context) (data, rois [4]int, err error) {
	if data, err = legacyDims(c.Bottoms[0], "bottom 0 (feature map)"); err != nil {
		return data, rois, err
	}
	if rois, err = legacyDims(c.Bottoms[1], "bottom 1 (regions)"); err != nil {
		return data, rois, err
	}
	if n := rois[1] * rois[2] * rois[3]; n != 5 {
		return data, rois, fmt.Errorf("bottom 1 (regions) has shape %v, %d values per region; it needs 5 (batch index, x1, y1, x2, y2)", c.Bottoms[1], n)
	}
	return data, rois, nil
}

// interpSize applies Interp's padding and size rules to an input of
// height × width.
func interpSize(c *Context, height, width int) (int, int, error) {
	p := cmp.Or(c.Layer.GetInterpParam(), &caffepb.InterpParameter{})
	padBeg, padEnd := int(p.GetPadBeg()), int(p.GetPadEnd())
	if padBeg > 0 || padEnd > 0 {
		return 0, 0, fmt.Errorf("interp_param pad_beg %d and pad_end %d must be 0 or negative (the fork crops only)", padBeg, padEnd)
	}
	h, w := height+padBeg+padEnd, width+padBeg+padEnd
	if h < 1 || w < 1 {
		return 0, 0, fmt.Errorf("interp_param pad_beg %d and pad_end %d crop the %d × %d input to nothing", padBeg, padEnd, height, width)
	}
	shrink, zoom := int(p.GetShrinkFactor()), int(p.GetZoomFactor())
	if p.ShrinkFactor != nil && shrink < 1 {
		return 0, 0, fmt.Errorf("interp_param.shrink_factor %d must be at least 1", shrink)
	}
	if p.ZoomFactor != nil && zoom < 1 {
		return 0, 0, fmt.Errorf("interp_param.zoom_factor %d must be at least 1", zoom)
	}
	shrunk := func(n int) int { return (n-1)/shrink + 1 }
	zoomed := func(n int) int { return n + (n-1)*(zoom-1) }

	var outH, outW int
	switch {
	case p.ShrinkFactor != nil && p.ZoomFactor == nil:
		outH, outW = shrunk(h), shrunk(w)
	case p.ZoomFactor != nil && p.ShrinkFactor == nil:
		outH, outW = zoomed(h), zoomed(w)
	case p.Height != nil && p.Width != nil:
		outH, outW = int(p.GetHeight()), int(p.GetWidth())
	case p.ShrinkFactor != nil && p.ZoomFactor != nil:
		outH, outW = zoomed(shrunk(h)), zoomed(shrunk(w))
	case len(c.Bottoms) == 2:
		ref, err := legacyDims(c.Bottoms[1], "bottom 1")
		if err != nil {
			return 0, 0, err
		}
		outH, outW = ref[2], ref[3]
	default:
		return 0, 0, fmt.Errorf("interp_param sets no output size; give zoom_factor, shrink_factor, height and width, or a second bottom")
	}
	if outH < 1 || outW < 1 {
		return 0, 0, fmt.Errorf("the output size %d × %d must be positive", outH, outW)
	}
	return outH, outW, nil
}

func upsampleTops(c *Context) ([][]int, error) {
	// Some forks give Upsample one bottom and scale only, and multiply
	// height and width by scale; the rule accepts that form too.
	if err := requireBottoms(c, 1, 2); err != nil {
		return nil, err
	}
	in := c.Bottoms[0]
	if len(in) != 4 {
		return nil, fmt.Errorf("Upsample needs a bottom with 4 axes (num, channels, height, width), got %v", in)
	}
	if len(c.Bottoms) == 2 && !slices.Equal(c.Bottoms[1], in) {
		return nil, fmt.Errorf("the mask (bottom 1) has shape %v and the data %v; the mask comes from the matching pooling layer and needs the same shape", c.Bottoms[1], in)
	}

	p := cmp.Or(c.Layer.GetUpsampleParam(), &caffepb.UpsampleParameter{})
	if p.UpsampleH != nil && p.UpsampleW != nil {
		h, w := int(p.GetUpsampleH()), int(p.GetUpsampleW())
		if h <= 1 || w <= 1 {
			return nil, fmt.Errorf("upsample_param upsample_h %d and upsample_w %d must exceed 1", h, w)
		}
		return [][]int{{in[0], in[1], h, w}}, nil
	}
	// The fork's setup check: without both explicit sizes, give scale or
	// both scale_h and scale_w, not a mix.
	hasPair := p.ScaleH != nil && p.ScaleW != nil
	if !(p.Scale == nil && hasPair) && !(p.ScaleH == nil && p.ScaleW == nil) {
		return nil, fmt.Errorf("upsample_param needs upsample_h and upsample_w, or scale, or both scale_h and scale_w")
	}
	sh, sw := int(p.GetScale()), int(p.GetScale())
	if hasPair {
		sh, sw = int(p.GetScaleH()), int(p.GetScaleW())
	}
	if sh <= 1 || sw <= 1 {
		return nil, fmt.Errorf("upsample_param scale %d × %d must exceed 1", sh, sw)
	}
	if (p.GetPadOutH() && sh != 2) || (p.GetPadOutW() && sw != 2) {
		return nil, fmt.Errorf("upsample_param pad_out_h and pad_out_w need a scale of 2 on their axis, got %d × %d", sh, sw)
	}
	h, w := in[2]*sh, in[3]*sw
	if p.GetPadOutH() {
		h--
	}
	if p.GetPadOutW() {
		w--
	}
	return [][]int{{in[0], in[1], h, w}}, nil
}
