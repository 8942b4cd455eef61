package graph

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
)

// Rules for layers that combine, split or rearrange blobs without learned
// weights (Embed and Parameter are the exceptions). Data movement (Concat,
// Slice, Reshape, Permute, Crop, ...) costs no arithmetic. Each rule cites
// the Caffe source whose Reshape or LayerSetUp it follows.

// canonicalAxisIndex maps axis to its index from the front, as Caffe's
// Blob::CanonicalAxisIndex does: −1 is the last axis, and the axis must
// exist. field names the parameter in the error.
func canonicalAxisIndex(axis, rank int, field string) (int, error) {
	if rank == 0 {
		return 0, fmt.Errorf("%s %d is out of range: the bottom is a 0-axis scalar", field, axis)
	}
	if axis < -rank || axis >= rank {
		return 0, fmt.Errorf("%s %d is out of range for a bottom with %d axes (valid: %d to %d)", field, axis, rank, -rank, rank-1)
	}
	if axis < 0 {
		axis += rank
	}
	return axis, nil
}

// countBetween is Caffe's Blob::count(start, end): the product of the
// dimensions of axes start to end−1 (1 for an empty range).
func countBetween(shape []int, start, end int) int64 {
	n := int64(1)
	for _, d := range shape[start:end] {
		n *= int64(d)
	}
	return n
}

// shapeProduct is the number of elements of a shape (1 for a 0-axis blob).
func shapeProduct(shape []int) int64 { return countBetween(shape, 0, len(shape)) }

// legacyDims returns num, channels, height and width as Caffe's
// Blob::LegacyShape does: missing trailing axes count as 1, and a blob
// with more than 4 axes has no legacy shape.
func legacyDims(shape []int, name string) ([4]int, error) {
	var d [4]int
	if len(shape) > 4 {
		return d, fmt.Errorf("%s has shape %v; the layer reads num, channels, height and width, so it takes at most 4 axes", name, shape)
	}
	for i := range d {
		d[i] = 1
		if i < len(shape) {
			d[i] = shape[i]
		}
	}
	return d, nil
}

// requireBottoms checks the number of bottoms a layer type takes.
func requireBottoms(c *Context, minCount, maxCount int) error {
	n := len(c.Bottoms)
	switch {
	case minCount == maxCount && n != minCount:
		return fmt.Errorf("%s takes %s, the layer has %d", c.Layer.GetType(), countBottoms(minCount), n)
	case n < minCount:
		return fmt.Errorf("%s takes at least %s, the layer has %d", c.Layer.GetType(), countBottoms(minCount), n)
	case maxCount >= 0 && n > maxCount:
		return fmt.Errorf("%s takes at most %s, the layer has %d", c.Layer.GetType(), countBottoms(maxCount), n)
	}
	return nil
}

func countBottoms(n int) string {
	if n == 1 {
		return "1 bottom"
	}
	return fmt.Sprintf("%d bottoms", n)
}

// rejectInPlace returns an error when a top has the name of a bottom, for
// layer types whose Caffe implementation rejects in-place use.
func rejectInPlace(c *Context) error {
	for _, t := range c.Layer.GetTop() {
		if slices.Contains(c.Layer.GetBottom(), t) {
			return fmt.Errorf("%s does not work in place, but top %q is also a bottom; give the top another name", c.Layer.GetType(), t)
		}
	}
	return nil
}

// copiesOfBottom returns one copy of bottom 0's shape per top.
func copiesOfBottom(c *Context) [][]int {
	out := make([][]int, len(c.Layer.GetTop()))
	for i := range out {
		out[i] = slices.Clone(c.Bottoms[0])
	}
	return out
}

func init() {
	register(&Rule{
		// Caffe's eltwise_layer.cpp: at least 2 bottoms, all of bottom 0's
		// shape, which the top takes. coeff gives one factor per bottom and
		// applies to SUM only.
		Types:      []string{"Eltwise"},
		MinBottoms: 2,
		Tops: func(c *Context) ([][]int, error) {
			if err := requireBottoms(c, 2, -1); err != nil {
				return nil, err
			}
			p := c.Layer.GetEltwiseParam()
			if n := len(p.GetCoeff()); n != 0 && n != len(c.Bottoms) {
				return nil, fmt.Errorf("eltwise_param has %d coeff values for %d bottoms; give one per bottom", n, len(c.Bottoms))
			}
			if len(p.GetCoeff()) > 0 && p.GetOperation() != caffepb.EltwiseParameter_SUM {
				return nil, fmt.Errorf("eltwise_param coeff applies to SUM only, the operation is %v", p.GetOperation())
			}
			for i, b := range c.Bottoms[1:] {
				if !slices.Equal(b, c.Bottoms[0]) {
					return nil, fmt.Errorf("bottom %d has shape %v and bottom 0 has %v; Eltwise needs equal shapes", i+1, b, c.Bottoms[0])
				}
			}
			return [][]int{slices.Clone(c.Bottoms[0])}, nil
		},
		// (n−1)·elements additions (PROD: multiplications, MAX:
		// comparisons); SUM with a coefficient other than 1 adds one
		// multiplication per element of each bottom.
		Cost: func(c *Context, tops [][]int) (int64, int64) {
			n := int64(len(c.Bottoms))
			e := shapeProduct(c.Bottoms[0])
			ops := (n - 1) * e
			for _, k := range c.Layer.GetEltwiseParam().GetCoeff() {
				if k != 1 {
					ops += n * e
					break
				}
			}
			return 0, ops
		},
	})

	register(&Rule{
		// Caffe's concat_layer.cpp: tops concatenate along concat_param.axis
		// (default 1, negative counts from the end); concat_dim is the older
		// spelling and may not be combined with axis. All other axes must
		// match.
		Types: []string{"Concat"},
		Tops: func(c *Context) ([][]int, error) {
			if err := requireBottoms(c, 1, -1); err != nil {
				return nil, err
			}
			p := cmp.Or(c.Layer.GetConcatParam(), &caffepb.ConcatParameter{})
			first := c.Bottoms[0]
			axis, err := legacyAxis(p.Axis, p.ConcatDim, "concat_dim", len(first))
			if err != nil {
				return nil, err
			}
			top := slices.Clone(first)
			for i, b := range c.Bottoms[1:] {
				if len(b) != len(first) {
					return nil, fmt.Errorf("bottom %d has %d axes (%v) and bottom 0 has %d (%v); Concat needs the same number of axes", i+1, len(b), b, len(first), first)
				}
				for a := range b {
					if a != axis && b[a] != first[a] {
						return nil, fmt.Errorf("bottom %d has shape %v and bottom 0 has %v; they may differ only on the concatenation axis %d", i+1, b, first, axis)
					}
				}
				top[axis] += b[axis]
			}
			return [][]int{top}, nil
		},
	})

	register(&Rule{
		// Caffe's slice_layer.cpp: slice_param.axis (default 1; slice_dim
		// is the older spelling) is cut at the increasing slice_point list,
		// one point fewer than tops, or into equal parts when the list is
		// empty.
		Types: []string{"Slice"},
		Tops:  sliceTops,
	})

	register(&Rule{
		// Caffe's split_layer.cpp: every top is a copy of the bottom; the
		// layer does not work in place.
		Types: []string{"Split"},
		Tops: func(c *Context) ([][]int, error) {
			if err := requireBottoms(c, 1, 1); err != nil {
				return nil, err
			}
			if err := rejectInPlace(c); err != nil {
				return nil, err
			}
			return copiesOfBottom(c), nil
		},
	})

	register(&Rule{
		// Caffe's silence_layer.cpp: consumes its bottoms and has no tops.
		Types: []string{"Silence"},
		Tops: func(c *Context) ([][]int, error) {
			return [][]int{}, nil
		},
	})

	register(&Rule{
		// Caffe's flatten_layer.cpp: axes axis..end_axis (defaults 1 and −1)
		// merge into one; the layer does not work in place.
		Types: []string{"Flatten"},
		Tops: func(c *Context) ([][]int, error) {
			if err := requireBottoms(c, 1, 1); err != nil {
				return nil, err
			}
			if err := rejectInPlace(c); err != nil {
				return nil, err
			}
			in := c.Bottoms[0]
			p := c.Layer.GetFlattenParam()
			start, err := canonicalAxisIndex(int(p.GetAxis()), len(in), "flatten_param.axis")
			if err != nil {
				return nil, err
			}
			end, err := canonicalAxisIndex(int(p.GetEndAxis()), len(in), "flatten_param.end_axis")
			if err != nil {
				return nil, err
			}
			// Caffe's Blob::count(start, end+1) accepts end = start−1,
			// which inserts an axis of 1.
			if end+1 < start {
				return nil, fmt.Errorf("flatten_param.end_axis %d comes before axis %d", end, start)
			}
			top := slices.Clone(in[:start])
			top = append(top, int(countBetween(in, start, end+1)))
			top = append(top, in[end+1:]...)
			return [][]int{top}, nil
		},
	})

	register(&Rule{
		// Caffe's reshape_layer.cpp: reshape_param.shape replaces num_axes
		// axes from axis (defaults 0 and −1, meaning all). In the shape, 0
		// copies the bottom's dimension at that position and one −1 is
		// inferred from the element count. The layer does not work in place.
		Types: []string{"Reshape"},
		Tops:  reshapeTops,
	})

	register(&Rule{
		// Caffe's softmax_layer.cpp: the top has the bottom's shape;
		// softmax_param.axis (default 1) must exist.
		Types: []string{"Softmax"},
		Tops: func(c *Context) ([][]int, error) {
			if err := requireBottoms(c, 1, 1); err != nil {
				return nil, err
			}
			if _, err := canonicalAxisIndex(int(c.Layer.GetSoftmaxParam().GetAxis()), len(c.Bottoms[0]), "softmax_param.axis"); err != nil {
				return nil, err
			}
			return copiesOfBottom(c), nil
		},
		// About 3 operations per element: an exponential, its share of the
		// sum and a division (the max subtraction is not counted).
		Cost: func(c *Context, tops [][]int) (int64, int64) {
			return 0, 3 * shapeProduct(c.Bottoms[0])
		},
	})

	register(&Rule{
		// Caffe's argmax_layer.cpp: with argmax_param.axis, the top is the
		// bottom with that axis replaced by top_k. Without it, the search
		// runs over all axes after the first and the top is
		// num × (out_max_val ? 2 : 1) × top_k, padded with 1s to the
		// bottom's number of axes (at least 3).
		Types: []string{"ArgMax"},
		Tops: func(c *Context) ([][]int, error) {
			if err := requireBottoms(c, 1, 1); err != nil {
				return nil, err
			}
			in := c.Bottoms[0]
			p := cmp.Or(c.Layer.GetArgmaxParam(), &caffepb.ArgMaxParameter{})
			k := int(p.GetTopK())
			if k < 1 {
				return nil, fmt.Errorf("argmax_param.top_k %d must be at least 1", k)
			}
			if p.Axis != nil {
				axis, err := canonicalAxisIndex(int(p.GetAxis()), len(in), "argmax_param.axis")
				if err != nil {
					return nil, err
				}
				if k > in[axis] {
					return nil, fmt.Errorf("argmax_param.top_k %d exceeds the %d values on axis %d of bottom %v", k, in[axis], axis, in)
				}
				top := slices.Clone(in)
				top[axis] = k
				return [][]int{top}, nil
			}
			if len(in) == 0 {
				return nil, fmt.Errorf("ArgMax needs a bottom with at least one axis")
			}
			if per := countBetween(in, 1, len(in)); int64(k) > per {
				return nil, fmt.Errorf("argmax_param.top_k %d exceeds the %d values per item of bottom %v", k, per, in)
			}
			top := slices.Repeat([]int{1}, max(len(in), 3))
			top[0] = in[0]
			top[2] = k
			if p.GetOutMaxVal() {
				top[1] = 2
			}
			return [][]int{top}, nil
		},
		// One comparison per bottom element for each of the top_k picks
		// (an estimate of the partial sort).
		Cost: func(c *Context, tops [][]int) (int64, int64) {
			return 0, int64(c.Layer.GetArgmaxParam().GetTopK()) * shapeProduct(c.Bottoms[0])
		},
	})

	register(&Rule{
		// Caffe's crop_layer.cpp: bottom 0 is cropped to bottom 1's size on
		// every axis from crop_param.axis (default 2) on. offset gives one
		// value for all those axes or one per axis (default 0), and offset +
		// size must fit in bottom 0.
		Types:      []string{"Crop"},
		MinBottoms: 2,
		Tops:       cropTops,
	})

	register(&Rule{
		// Caffe's embed_layer.cpp: every bottom value is an index below
		// input_dim into a table of num_output-long rows, so the top is the
		// bottom's shape plus num_output. The table is input_dim ×
		// num_output, plus a num_output bias with bias_term (default true).
		Types: []string{"Embed"},
		Tops: func(c *Context) ([][]int, error) {
			if err := requireBottoms(c, 1, 1); err != nil {
				return nil, err
			}
			n, _, err := embedSizes(c)
			if err != nil {
				return nil, err
			}
			return [][]int{append(slices.Clone(c.Bottoms[0]), n)}, nil
		},
		Blobs: func(c *Context) ([]ParamBlob, error) {
			n, k, err := embedSizes(c)
			if err != nil {
				return nil, err
			}
			out := []ParamBlob{{Shape: []int{k, n}}}
			if c.Layer.GetEmbedParam().GetBiasTerm() {
				out = append(out, ParamBlob{Shape: []int{n}})
			}
			return out, nil
		},
		// A table lookup is a copy; the bias adds one addition per top
		// element.
		Cost: func(c *Context, tops [][]int) (int64, int64) {
			if !c.Layer.GetEmbedParam().GetBiasTerm() || len(tops) == 0 {
				return 0, 0
			}
			return 0, shapeProduct(tops[0])
		},
	})

	register(&Rule{
		// Caffe's tile_layer.cpp: tile_param.axis (default 1) is repeated
		// tiles times; tiles is required and positive.
		Types: []string{"Tile"},
		Tops: func(c *Context) ([][]int, error) {
			if err := requireBottoms(c, 1, 1); err != nil {
				return nil, err
			}
			p := cmp.Or(c.Layer.GetTileParam(), &caffepb.TileParameter{})
			axis, err := canonicalAxisIndex(int(p.GetAxis()), len(c.Bottoms[0]), "tile_param.axis")
			if err != nil {
				return nil, err
			}
			if p.Tiles == nil || p.GetTiles() < 1 {
				return nil, fmt.Errorf("tile_param.tiles must be given and positive, got %d", p.GetTiles())
			}
			top := slices.Clone(c.Bottoms[0])
			top[axis] *= int(p.GetTiles())
			return [][]int{top}, nil
		},
	})

	register(&Rule{
		// Caffe's reduction_layer.cpp: every axis from reduction_param.axis
		// (default 0) on is reduced, so the top is bottom[:axis] (a 0-axis
		// scalar for axis 0).
		Types: []string{"Reduction"},
		Tops: func(c *Context) ([][]int, error) {
			if err := requireBottoms(c, 1, 1); err != nil {
				return nil, err
			}
			in := c.Bottoms[0]
			axis, err := canonicalAxisIndex(int(c.Layer.GetReductionParam().GetAxis()), len(in), "reduction_param.axis")
			if err != nil {
				return nil, err
			}
			return [][]int{append([]int{}, in[:axis]...)}, nil
		},
		// One addition per bottom element, one more per element for the
		// absolute value (ASUM) or square (SUMSQ), and one multiplication
		// per top element for coeff (MEAN folds its division into it).
		Cost: func(c *Context, tops [][]int) (int64, int64) {
			e := shapeProduct(c.Bottoms[0])
			ops := e
			switch c.Layer.GetReductionParam().GetOperation() {
			case caffepb.ReductionParameter_ASUM, caffepb.ReductionParameter_SUMSQ:
				ops += e
			}
			if len(tops) > 0 {
				ops += shapeProduct(tops[0])
			}
			return 0, ops
		},
	})

	register(&Rule{
		// SSD's permute_layer.cpp: top axis i is bottom axis order[i]; the
		// axes that order leaves out follow in their original order.
		// Repeated or out-of-range axes are errors.
		Types: []string{"Permute"},
		Tops: func(c *Context) ([][]int, error) {
			if err := requireBottoms(c, 1, 1); err != nil {
				return nil, err
			}
			in := c.Bottoms[0]
			var order []int
			for _, o := range c.Layer.GetPermuteParam().GetOrder() {
				a := int(o)
				if a >= len(in) {
					return nil, fmt.Errorf("permute_param.order names axis %d, but the bottom %v has %d axes", a, in, len(in))
				}
				if slices.Contains(order, a) {
					return nil, fmt.Errorf("permute_param.order names axis %d twice", a)
				}
				order = append(order, a)
			}
			for a := range in {
				if !slices.Contains(order, a) {
					order = append(order, a)
				}
			}
			top := make([]int, len(in))
			for i, a := range order {
				top[i] = in[a]
			}
			return [][]int{top}, nil
		},
	})

	register(&Rule{
		// ShuffleNet's shuffle_channel_layer.cpp (farmingyard/ShuffleNet):
		// the top has the bottom's shape, and group must divide the
		// channels (axis 1).
		Types: []string{"ShuffleChannel"},
		Tops: func(c *Context) ([][]int, error) {
			if err := requireBottoms(c, 1, 1); err != nil {
				return nil, err
			}
			in := c.Bottoms[0]
			if len(in) < 2 {
				return nil, fmt.Errorf("ShuffleChannel needs a channel axis, the bottom has shape %v", in)
			}
			g := int(c.Layer.GetShuffleChannelParam().GetGroup())
			if g < 1 || in[1]%g != 0 {
				return nil, fmt.Errorf("shuffle_channel_param.group %d must be positive and divide the %d channels", g, in[1])
			}
			return copiesOfBottom(c), nil
		},
	})

	register(&Rule{
		// Caffe's batch_reindex_layer.cpp: bottom 1 is a 1-axis list of item
		// indexes into bottom 0, so the top is len(bottom 1) items of
		// bottom 0's shape.
		Types:      []string{"BatchReindex"},
		MinBottoms: 2,
		Tops: func(c *Context) ([][]int, error) {
			if err := requireBottoms(c, 2, 2); err != nil {
				return nil, err
			}
			data, index := c.Bottoms[0], c.Bottoms[1]
			if len(index) != 1 {
				return nil, fmt.Errorf("bottom 1 (the indexes) has shape %v; BatchReindex needs 1 axis", index)
			}
			if len(data) == 0 {
				return nil, fmt.Errorf("bottom 0 is a 0-axis scalar; BatchReindex needs an item axis")
			}
			top := append([]int{index[0]}, data[1:]...)
			return [][]int{top}, nil
		},
	})

	register(&Rule{
		// Caffe's parameter_layer.hpp: a learned blob of
		// parameter_param.shape, output as the only top.
		Types:      []string{"Parameter"},
		MinBottoms: -1,
		Tops: func(c *Context) ([][]int, error) {
			s, err := parameterShape(c)
			if err != nil {
				return nil, err
			}
			return [][]int{s}, nil
		},
		Blobs: func(c *Context) ([]ParamBlob, error) {
			s, err := parameterShape(c)
			if err != nil {
				return nil, err
			}
			return []ParamBlob{{Shape: s}}, nil
		},
	})

	register(&Rule{
		// Caffe's im2col_layer.cpp: convolution_param's window (no
		// num_output) turns the channel axis into channels × kernel size,
		// and each spatial axis shrinks as a convolution's does.
		Types: []string{"Im2col"},
		Tops: func(c *Context) ([][]int, error) {
			if err := requireBottoms(c, 1, 1); err != nil {
				return nil, err
			}
			w, err := im2colWindow(c)
			if err != nil {
				return nil, err
			}
			in := c.Bottoms[0]
			top := slices.Clone(in)
			top[w.axis] = in[w.axis] * int(countBetween(w.kernel, 0, len(w.kernel)))
			for a := range w.kernel {
				size := in[w.axis+1+a]
				extent := w.dilation[a]*(w.kernel[a]-1) + 1
				if size+2*w.pad[a] < extent {
					return nil, fmt.Errorf("kernel extent %d is larger than the padded input %d on spatial axis %d", extent, size+2*w.pad[a], a)
				}
				top[w.axis+1+a] = (size+2*w.pad[a]-extent)/w.stride[a] + 1
			}
			return [][]int{top}, nil
		},
		Window: func(c *Context) *Window {
			w, err := im2colWindow(c)
			if err != nil || w.axis != 1 {
				return nil
			}
			return &Window{Kernel: w.kernel, Stride: w.stride, Pad: w.pad, Dilation: w.dilation}
		},
	})

	register(&Rule{
		// Caffe's spp_layer.cpp: for each level l < pyramid_height the
		// bottom is pooled into about 2^l × 2^l bins (kernel ceil(size /
		// 2^l), stride = kernel, padding half the shortfall), flattened,
		// and the levels concatenated: N × Σ C·h_l·w_l. With
		// pyramid_height 1 the top is the single pooling's N × C × h × w.
		Types: []string{"SPP"},
		Tops: func(c *Context) ([][]int, error) {
			levels, err := sppLevels(c)
			if err != nil {
				return nil, err
			}
			in := c.Bottoms[0]
			if len(levels) == 1 {
				return [][]int{{in[0], in[1], levels[0].out[0], levels[0].out[1]}}, nil
			}
			sum := 0
			for _, l := range levels {
				sum += in[1] * l.out[0] * l.out[1]
			}
			return [][]int{{in[0], sum}}, nil
		},
		// One comparison or addition per element of each pooling window,
		// as for Pooling.
		Cost: func(c *Context, tops [][]int) (int64, int64) {
			levels, err := sppLevels(c)
			if err != nil {
				return 0, 0
			}
			in := c.Bottoms[0]
			var ops int64
			for _, l := range levels {
				ops += int64(in[0]) * int64(in[1]) * int64(l.out[0]*l.out[1]) * int64(l.kernel[0]*l.kernel[1])
			}
			return 0, ops
		},
	})
	// NOTE: Filter has no rule: its top sizes are the number of nonzero
	// selector values, known only at run time.
}

// legacyAxis resolves an axis given either as a signed axis field or as
// the older unsigned field legacyName (concat_dim, slice_dim), which Caffe
// forbids combining and does not count from the end.
func legacyAxis(axis *int32, legacy *uint32, legacyName string, rank int) (int, error) {
	if axis != nil && legacy != nil {
		return 0, fmt.Errorf("both axis and %s are given; give one", legacyName)
	}
	if legacy != nil {
		if int(*legacy) >= rank {
			return 0, fmt.Errorf("%s %d is out of range for a bottom with %d axes", legacyName, *legacy, rank)
		}
		return int(*legacy), nil
	}
	a := int32(1)
	if axis != nil {
		a = *axis
	}
	return canonicalAxisIndex(int(a), rank, "axis")
}

func sliceTops(c *Context) ([][]int, error) {
	if err := requireBottoms(c, 1, 1); err != nil {
		return nil, err
	}
	in := c.Bottoms[0]
	p := cmp.Or(c.Layer.GetSliceParam(), &caffepb.SliceParameter{})
	axis, err := legacyAxis(p.Axis, p.SliceDim, "slice_dim", len(in))
	if err != nil {
		return nil, err
	}
	n := len(c.Layer.GetTop())
	if n == 0 {
		return nil, fmt.Errorf("Slice needs at least one top")
	}

	size := in[axis]
	sizes := make([]int, 0, n)
	points := p.GetSlicePoint()
	if len(points) == 0 {
		if size%n != 0 {
			return nil, fmt.Errorf("%d tops do not divide the %d values of axis %d evenly; give slice_point", n, size, axis)
		}
		for range n {
			sizes = append(sizes, size/n)
		}
	} else {
		if len(points) != n-1 {
			return nil, fmt.Errorf("slice_param has %d slice_point values for %d tops; give one fewer than the tops", len(points), n)
		}
		prev := 0
		for _, sp := range points {
			pt := int(sp)
			// Caffe requires increasing points; a point at or past the
			// end would leave an empty or negative slice.
			if pt <= prev || pt >= size {
				return nil, fmt.Errorf("slice_point %v must increase strictly within 1 to %d (axis %d has %d values)", points, size-1, axis, size)
			}
			sizes = append(sizes, pt-prev)
			prev = pt
		}
		sizes = append(sizes, size-prev)
	}

	out := make([][]int, n)
	for i, s := range sizes {
		out[i] = slices.Clone(in)
		out[i][axis] = s
	}
	return out, nil
}

func reshapeTops(c *Context) ([][]int, error) {
	if err := requireBottoms(c, 1, 1); err != nil {
		return nil, err
	}
	if err := rejectInPlace(c); err != nil {
		return nil, err
	}
	in := c.Bottoms[0]
	p := c.Layer.GetReshapeParam()
	dims := p.GetShape().GetDim()

	inferred := -1
	for i, d := range dims {
		switch {
		case d == -1 && inferred >= 0:
			return nil, fmt.Errorf("reshape_param.shape %v has more than one -1; at most one dimension can be inferred", dims)
		case d == -1:
			inferred = i
		case d < -1:
			return nil, fmt.Errorf("reshape_param.shape %v has the invalid dimension %d", dims, d)
		}
	}

	// A negative axis counts from after the last axis: −1 appends.
	start := int(p.GetAxis())
	if start < 0 {
		start += len(in) + 1
	}
	if start < 0 || start > len(in) {
		return nil, fmt.Errorf("reshape_param.axis %d is out of range for a bottom with %d axes", p.GetAxis(), len(in))
	}
	numAxes := int(p.GetNumAxes())
	if numAxes < -1 {
		return nil, fmt.Errorf("reshape_param.num_axes %d must be -1 (all) or at least 0", numAxes)
	}
	end := len(in)
	if numAxes >= 0 {
		end = start + numAxes
	}
	if end > len(in) {
		return nil, fmt.Errorf("reshape_param axis %d plus num_axes %d exceeds the %d axes of bottom %v", start, numAxes, len(in), in)
	}

	top := slices.Clone(in[:start])
	for i, d := range dims {
		if d == 0 {
			// 0 copies the bottom dimension at the same position.
			if start+i >= len(in) {
				return nil, fmt.Errorf("reshape_param.shape %v has a 0 at position %d, but bottom %v has no axis %d to copy", dims, i, in, start+i)
			}
			top = append(top, in[start+i])
			continue
		}
		top = append(top, int(d))
	}
	top = append(top, in[end:]...)

	total := shapeProduct(in)
	if inferred >= 0 {
		known := int64(1)
		for i, d := range top {
			if i != start+inferred {
				known *= int64(d)
			}
		}
		if known == 0 || total%known != 0 {
			return nil, fmt.Errorf("bottom %v has %d elements, which the other dimensions of %v (product %d) do not divide", in, total, top, known)
		}
		top[start+inferred] = int(total / known)
	}
	if got := shapeProduct(top); got != total {
		return nil, fmt.Errorf("reshape to %v gives %d elements, bottom %v has %d", top, got, in, total)
	}
	return [][]int{top}, nil
}

func cropTops(c *Context) ([][]int, error) {
	if err := requireBottoms(c, 2, 2); err != nil {
		return nil, err
	}
	data, ref := c.Bottoms[0], c.Bottoms[1]
	if len(data) != len(ref) {
		return nil, fmt.Errorf("bottom 0 %v and bottom 1 %v have different numbers of axes; Crop needs the same number", data, ref)
	}
	p := c.Layer.GetCropParam()
	start, err := canonicalAxisIndex(int(p.GetAxis()), len(data), "crop_param.axis")
	if err != nil {
		return nil, err
	}
	offsets := p.GetOffset()
	if len(offsets) > 1 && len(offsets) != len(data)-start {
		return nil, fmt.Errorf("crop_param has %d offset values for the %d axes from axis %d; give one, or one per cropped axis", len(offsets), len(data)-start, start)
	}
	top := slices.Clone(data)
	for i := start; i < len(data); i++ {
		off := 0
		switch len(offsets) {
		case 0:
		case 1:
			off = int(offsets[0])
		default:
			off = int(offsets[i-start])
		}
		if off+ref[i] > data[i] {
			return nil, fmt.Errorf("crop on axis %d needs offset %d + size %d = %d values, but bottom 0 %v has %d", i, off, ref[i], off+ref[i], data, data[i])
		}
		top[i] = ref[i]
	}
	return [][]int{top}, nil
}

// embedSizes returns Embed's num_output and input_dim, both required.
func embedSizes(c *Context) (n, k int, err error) {
	p := c.Layer.GetEmbedParam()
	n, k = int(p.GetNumOutput()), int(p.GetInputDim())
	if n < 1 || k < 1 {
		return 0, 0, fmt.Errorf("embed_param needs a positive num_output and input_dim, got %d and %d", n, k)
	}
	return n, k, nil
}

// parameterShape reads parameter_param.shape, rejecting negative sizes.
func parameterShape(c *Context) ([]int, error) {
	p := c.Layer.GetParameterParam()
	if p.GetShape() == nil {
		return nil, fmt.Errorf("missing parameter_param.shape")
	}
	dims := p.GetShape().GetDim()
	out := make([]int, len(dims))
	for i, d := range dims {
		if d < 0 {
			return nil, fmt.Errorf("parameter_param.shape %v has the negative dimension %d", dims, d)
		}
		out[i] = int(d)
	}
	return out, nil
}

// im2colGeometry is Im2col's window: channel axis and per spatial axis
// kernel, stride, pad and dilation.
type im2colGeometry struct {
	axis                          int
	kernel, stride, pad, dilation []int
}

// im2colWindow reads convolution_param as Caffe's im2col_layer.cpp does:
// kernel_h/kernel_w (2 spatial axes only) or kernel_size (one value, or
// one per axis), the same for stride (default 1) and pad (default 0), and
// dilation (default 1).
func im2colWindow(c *Context) (*im2colGeometry, error) {
	p := c.Layer.GetConvolutionParam()
	if p == nil {
		return nil, fmt.Errorf("missing convolution_param")
	}
	in := c.Bottoms[0]
	axis, err := canonicalAxisIndex(int(p.GetAxis()), len(in), "convolution_param.axis")
	if err != nil {
		return nil, err
	}
	spatial := len(in) - axis - 1
	if spatial < 1 {
		return nil, fmt.Errorf("bottom %v has no spatial axes after the channel axis %d", in, axis)
	}
	perAxisValues := func(list []uint32, def int, name string) ([]int, error) {
		out := make([]int, spatial)
		switch len(list) {
		case 0:
			if def < 0 {
				return nil, fmt.Errorf("missing convolution_param.%s", name)
			}
			for i := range out {
				out[i] = def
			}
		case 1, spatial:
			for i := range out {
				out[i] = int(list[min(i, len(list)-1)])
			}
		default:
			return nil, fmt.Errorf("convolution_param.%s has %d values for %d spatial axes; give one or one per axis", name, len(list), spatial)
		}
		return out, nil
	}
	pair := func(h, w *uint32, list []uint32, def int, name string) ([]int, error) {
		if h == nil && w == nil {
			return perAxisValues(list, def, name)
		}
		if spatial != 2 {
			return nil, fmt.Errorf("convolution_param.%s_h and %s_w need 2 spatial axes, the bottom %v has %d", name, name, in, spatial)
		}
		if h == nil || w == nil {
			return nil, fmt.Errorf("convolution_param needs both %s_h and %s_w", name, name)
		}
		if len(list) > 0 {
			listName := name
			if name == "kernel" {
				listName = "kernel_size"
			}
			return nil, fmt.Errorf("convolution_param gives both %s and %s_h/%s_w; give one form", listName, name, name)
		}
		return []int{int(*h), int(*w)}, nil
	}
	g := &im2colGeometry{axis: axis}
	if g.kernel, err = pair(p.KernelH, p.KernelW, p.GetKernelSize(), -1, "kernel"); err != nil {
		return nil, err
	}
	if g.stride, err = pair(p.StrideH, p.StrideW, p.GetStride(), 1, "stride"); err != nil {
		return nil, err
	}
	if g.pad, err = pair(p.PadH, p.PadW, p.GetPad(), 0, "pad"); err != nil {
		return nil, err
	}
	if g.dilation, err = perAxisValues(p.GetDilation(), 1, "dilation"); err != nil {
		return nil, err
	}
	for i := range g.kernel {
		if g.kernel[i] < 1 || g.stride[i] < 1 || g.dilation[i] < 1 {
			return nil, fmt.Errorf("kernel %v, stride %v and dilation %v must be positive", g.kernel, g.stride, g.dilation)
		}
	}
	return g, nil
}

// sppLevel is one pyramid level of an SPP layer: its pooling kernel and
// output height and width.
type sppLevel struct {
	kernel, out [2]int
}

// sppLevels computes the pooling of each pyramid level as Caffe's
// spp_layer.cpp GetPoolingParam sets it up, with Caffe's pooled size
// (rounded up, minus the last window if it starts in the padding).
func sppLevels(c *Context) ([]sppLevel, error) {
	if err := requireBottoms(c, 1, 1); err != nil {
		return nil, err
	}
	in := c.Bottoms[0]
	if len(in) != 4 {
		return nil, fmt.Errorf("SPP needs a bottom with 4 axes (num, channels, height, width), got %v", in)
	}
	height := int(c.Layer.GetSppParam().GetPyramidHeight())
	if height < 1 {
		return nil, fmt.Errorf("spp_param.pyramid_height must be at least 1, got %d", height)
	}
	if height > 30 {
		return nil, fmt.Errorf("spp_param.pyramid_height %d gives more than 2^30 bins per side", height)
	}
	levels := make([]sppLevel, height)
	for l := range levels {
		bins := 1 << l
		for a, size := range in[2:] {
			if size < 1 {
				return nil, fmt.Errorf("SPP needs a positive height and width, got %v", in)
			}
			k := (size + bins - 1) / bins
			pad := (k*bins - size + 1) / 2
			if pad >= k {
				return nil, fmt.Errorf("pyramid level %d splits size %d into %d bins with kernel %d and padding %d; Caffe's pooling needs the padding below the kernel, so lower pyramid_height", l, size, bins, k, pad)
			}
			out := ceilDiv(size+2*pad-k, k) + 1
			if pad > 0 && (out-1)*k >= size+pad {
				out--
			}
			levels[l].kernel[a] = k
			levels[l].out[a] = out
		}
	}
	return levels, nil
}

// ceilDiv divides a non-negative a by a positive b, rounding up.
func ceilDiv(a, b int) int { return (a + b - 1) / b }
