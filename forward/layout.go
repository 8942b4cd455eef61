package forward

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/graph"
)

// Kernels that move or gather values: Permute, Crop, Tile, Reduction,
// ArgMax, ShuffleChannel and Embed. Their top shapes come from the graph
// rules in graph/rules_structure.go.

// permuteKernel follows SSD's permute_layer.cpp: top axis i is bottom
// axis order[i], and the axes that order leaves out follow in their
// original order.
type permuteKernel struct {
	order []int
}

func buildPermute(l *graph.Layer, c *compileContext) (kernel, error) {
	rank := len(l.Bottoms[0].Shape)
	var order []int
	for _, o := range l.Param.GetPermuteParam().GetOrder() {
		a := int(o)
		if a >= rank || slices.Contains(order, a) {
			return nil, fmt.Errorf("permute_param.order %v is not a list of distinct axes below %d", l.Param.GetPermuteParam().GetOrder(), rank)
		}
		order = append(order, a)
	}
	for a := range rank {
		if !slices.Contains(order, a) {
			order = append(order, a)
		}
	}
	return &permuteKernel{order: order}, nil
}

func (k *permuteKernel) forward(bottoms, tops []*Tensor) error {
	in, out := bottoms[0], tops[0]
	rank := len(k.order)
	if len(in.Shape) != rank || len(out.Data) != len(in.Data) {
		return fmt.Errorf("bottom %v and top %v do not match the permutation %v", in.Shape, out.Shape, k.order)
	}
	if rank == 0 {
		copy(out.Data, in.Data)
		return nil
	}
	// step[i] is the bottom stride of top axis i, so an odometer over the
	// top index walks the bottom without divisions.
	strides := make([]int, rank)
	s := 1
	for a := rank - 1; a >= 0; a-- {
		strides[a] = s
		s *= in.Shape[a]
	}
	step := make([]int, rank)
	for i, a := range k.order {
		step[i] = strides[a]
	}
	index := make([]int, rank)
	src := 0
	for i := range out.Data {
		out.Data[i] = in.Data[src]
		for a := rank - 1; a >= 0; a-- {
			index[a]++
			src += step[a]
			if index[a] < out.Shape[a] {
				break
			}
			src -= index[a] * step[a]
			index[a] = 0
		}
	}
	return nil
}

// cropKernel follows Caffe's crop_layer.cpp: every axis from crop_param.axis
// on starts at its offset (one value for all those axes, or one per axis)
// and takes the top's size, which is bottom 1's.
type cropKernel struct {
	offsets []int // per bottom axis, 0 before the crop axis
}

func buildCrop(l *graph.Layer, c *compileContext) (kernel, error) {
	data := l.Bottoms[0].Shape
	p := l.Param.GetCropParam()
	start := canonical(int(p.GetAxis()), len(data))
	if start < 0 || start >= len(data) {
		return nil, fmt.Errorf("crop_param.axis %d is out of range for a bottom with %d axes", p.GetAxis(), len(data))
	}
	given := p.GetOffset()
	if len(given) > 1 && len(given) != len(data)-start {
		return nil, fmt.Errorf("crop_param has %d offset values for the %d axes from axis %d; give one, or one per cropped axis", len(given), len(data)-start, start)
	}
	k := &cropKernel{offsets: make([]int, len(data))}
	for i := start; i < len(data); i++ {
		switch len(given) {
		case 0:
		case 1:
			k.offsets[i] = int(given[0])
		default:
			k.offsets[i] = int(given[i-start])
		}
	}
	return k, nil
}

func (k *cropKernel) forward(bottoms, tops []*Tensor) error {
	in, out := bottoms[0], tops[0]
	rank := len(in.Shape)
	if len(out.Shape) != rank || rank != len(k.offsets) {
		return fmt.Errorf("bottom %v and top %v do not have the %d axes the crop was compiled for", in.Shape, out.Shape, len(k.offsets))
	}
	for a := range rank {
		if k.offsets[a]+out.Shape[a] > in.Shape[a] {
			return fmt.Errorf("crop on axis %d needs offset %d + size %d, but the bottom %v has %d", a, k.offsets[a], out.Shape[a], in.Shape, in.Shape[a])
		}
	}
	if len(out.Data) == 0 {
		return nil
	}
	if rank == 0 {
		copy(out.Data, in.Data)
		return nil
	}
	strides := make([]int, rank)
	s := 1
	for a := rank - 1; a >= 0; a-- {
		strides[a] = s
		s *= in.Shape[a]
	}
	// Copy one contiguous row of the last axis at a time, walking the
	// other top axes with an odometer.
	rowLen := out.Shape[rank-1]
	index := make([]int, rank-1)
	for dst := 0; dst < len(out.Data); dst += rowLen {
		src := k.offsets[rank-1]
		for a, i := range index {
			src += (i + k.offsets[a]) * strides[a]
		}
		copy(out.Data[dst:dst+rowLen], in.Data[src:src+rowLen])
		for a := rank - 2; a >= 0; a-- {
			index[a]++
			if index[a] < out.Shape[a] {
				break
			}
			index[a] = 0
		}
	}
	return nil
}

// tileKernel follows Caffe's tile_layer.cpp: each block of the axes from
// tile_param.axis on is written tiles times in a row.
type tileKernel struct {
	axis, tiles int
}

func (k *tileKernel) forward(bottoms, tops []*Tensor) error {
	in, out := bottoms[0], tops[0]
	inner := product(in.Shape[k.axis:])
	outer := product(in.Shape[:k.axis])
	if len(out.Data) != outer*inner*k.tiles {
		return fmt.Errorf("top %v does not hold %d tiles of bottom %v", out.Shape, k.tiles, in.Shape)
	}
	dst := 0
	for o := range outer {
		block := in.Data[o*inner : (o+1)*inner]
		for range k.tiles {
			copy(out.Data[dst:dst+inner], block)
			dst += inner
		}
	}
	return nil
}

// reductionKernel follows Caffe's reduction_layer.cpp: each group of the
// axes from reduction_param.axis on becomes one value (SUM, ASUM, SUMSQ or
// MEAN), multiplied by coeff. MEAN divides coeff by the group size.
type reductionKernel struct {
	axis  int
	op    caffepb.ReductionParameter_ReductionOp
	coeff float32
}

func buildReduction(l *graph.Layer, c *compileContext) (kernel, error) {
	p := l.Param.GetReductionParam()
	in := l.Bottoms[0].Shape
	axis := canonical(int(p.GetAxis()), len(in))
	if axis < 0 || axis >= len(in) {
		return nil, fmt.Errorf("reduction_param.axis %d is out of range for a bottom with %d axes", p.GetAxis(), len(in))
	}
	k := &reductionKernel{axis: axis, op: p.GetOperation(), coeff: p.GetCoeff()}
	switch k.op {
	case caffepb.ReductionParameter_SUM, caffepb.ReductionParameter_ASUM, caffepb.ReductionParameter_SUMSQ:
	case caffepb.ReductionParameter_MEAN:
		// Caffe divides the float coeff by the group size once, in Reshape.
		k.coeff /= float32(product(in[axis:]))
	default:
		return nil, fmt.Errorf("reduction_param.operation %v is not SUM, ASUM, SUMSQ or MEAN", k.op)
	}
	return k, nil
}

func (k *reductionKernel) forward(bottoms, tops []*Tensor) error {
	in, out := bottoms[0], tops[0]
	dim := product(in.Shape[k.axis:])
	num := product(in.Shape[:k.axis])
	if len(out.Data) != num {
		return fmt.Errorf("top %v does not hold the %d reductions of bottom %v", out.Shape, num, in.Shape)
	}
	for i := range num {
		var sum float64
		for _, v := range in.Data[i*dim : (i+1)*dim] {
			x := float64(v)
			switch k.op {
			case caffepb.ReductionParameter_ASUM:
				sum += math.Abs(x)
			case caffepb.ReductionParameter_SUMSQ:
				sum += x * x
			default:
				sum += x
			}
		}
		out.Data[i] = float32(sum)
		if k.coeff != 1 {
			out.Data[i] *= k.coeff
		}
	}
	return nil
}

// argMaxKernel follows Caffe's argmax_layer.cpp. Along argmax_param.axis,
// or over all axes after the first when axis is unset, it keeps the top_k
// largest values: their indexes, or with out_max_val their values (with
// axis) or indexes followed by values (without). Caffe ranks (value, index)
// pairs with std::greater, so among equal values the larger index comes
// first.
type argMaxKernel struct {
	hasAxis bool
	axis    int
	topK    int
	maxVal  bool
}

func buildArgMax(l *graph.Layer, c *compileContext) (kernel, error) {
	p := cmp.Or(l.Param.GetArgmaxParam(), &caffepb.ArgMaxParameter{})
	in := l.Bottoms[0].Shape
	k := &argMaxKernel{hasAxis: p.Axis != nil, topK: int(p.GetTopK()), maxVal: p.GetOutMaxVal()}
	if k.topK < 1 {
		return nil, fmt.Errorf("argmax_param.top_k %d must be at least 1", k.topK)
	}
	if len(in) == 0 {
		return nil, fmt.Errorf("ArgMax needs a bottom with at least one axis")
	}
	if k.hasAxis {
		k.axis = canonical(int(p.GetAxis()), len(in))
		if k.axis < 0 || k.axis >= len(in) {
			return nil, fmt.Errorf("argmax_param.axis %d is out of range for a bottom with %d axes", p.GetAxis(), len(in))
		}
		if k.topK > in[k.axis] {
			return nil, fmt.Errorf("argmax_param.top_k %d exceeds the %d values on axis %d", k.topK, in[k.axis], k.axis)
		}
	} else if k.topK > product(in[1:]) {
		return nil, fmt.Errorf("argmax_param.top_k %d exceeds the %d values per item", k.topK, product(in[1:]))
	}
	return k, nil
}

func (k *argMaxKernel) forward(bottoms, tops []*Tensor) error {
	in, out := bottoms[0], tops[0]
	dim, stride := product(in.Shape[1:]), 1
	if k.hasAxis {
		dim = in.Shape[k.axis]
		stride = product(in.Shape[k.axis+1:])
	}
	if dim == 0 {
		return nil
	}
	num := len(in.Data) / dim
	want := num * k.topK
	if k.maxVal && !k.hasAxis {
		want *= 2
	}
	if len(out.Data) != want {
		return fmt.Errorf("top %v does not hold %d values for bottom %v", out.Shape, want, in.Shape)
	}
	type pair struct {
		value float32
		index int
	}
	pairs := make([]pair, dim)
	for i := range num {
		base := i/stride*dim*stride + i%stride
		if k.topK == 1 && !k.maxVal {
			// One pass finds the same winner as the sort: a later equal
			// value has a larger index, so it wins the tie.
			best, at := in.Data[base], 0
			for j := 1; j < dim; j++ {
				if v := in.Data[base+j*stride]; v >= best {
					best, at = v, j
				}
			}
			out.Data[i] = float32(at)
			continue
		}
		for j := range pairs {
			pairs[j] = pair{in.Data[base+j*stride], j}
		}
		// Descending by value, then by index, as std::greater orders pairs.
		slices.SortFunc(pairs, func(a, b pair) int {
			if c := cmp.Compare(b.value, a.value); c != 0 {
				return c
			}
			return cmp.Compare(b.index, a.index)
		})
		for j := range k.topK {
			at := (i/stride*k.topK+j)*stride + i%stride
			switch {
			case k.maxVal && k.hasAxis:
				out.Data[at] = pairs[j].value
			case k.maxVal:
				out.Data[2*i*k.topK+j] = float32(pairs[j].index)
				out.Data[2*i*k.topK+k.topK+j] = pairs[j].value
			default:
				out.Data[at] = float32(pairs[j].index)
			}
		}
	}
	return nil
}

// shuffleChannelKernel follows ShuffleNet's shuffle_channel_layer.cpp
// (farmingyard/ShuffleNet): the channels, read as a group × (C/group)
// matrix, are transposed, so channel g·(C/group)+j moves to j·group+g.
type shuffleChannelKernel struct {
	group int
}

func (k *shuffleChannelKernel) forward(bottoms, tops []*Tensor) error {
	in, out := bottoms[0], tops[0]
	if len(in.Shape) < 2 || in.Shape[1]%k.group != 0 {
		return fmt.Errorf("group %d does not divide the channels of bottom %v", k.group, in.Shape)
	}
	channels := in.Shape[1]
	plane := product(in.Shape[2:])
	cols := channels / k.group
	for n := range in.Shape[0] {
		src := in.Data[n*channels*plane : (n+1)*channels*plane]
		dst := out.Data[n*channels*plane : (n+1)*channels*plane]
		for g := range k.group {
			for j := range cols {
				from := (g*cols + j) * plane
				to := (j*k.group + g) * plane
				copy(dst[to:to+plane], src[from:from+plane])
			}
		}
	}
	return nil
}

// embedKernel follows Caffe's embed_layer.cpp: each bottom value is a row
// index into the input_dim × num_output table, and the top gets that row
// plus the bias.
type embedKernel struct {
	inputDim, numOutput int
	table, bias         []float32
}

func buildEmbed(l *graph.Layer, c *compileContext) (kernel, error) {
	p := l.Param.GetEmbedParam()
	k := &embedKernel{inputDim: int(p.GetInputDim()), numOutput: int(p.GetNumOutput())}
	if k.inputDim < 1 || k.numOutput < 1 {
		return nil, fmt.Errorf("embed_param needs a positive num_output and input_dim, got %d and %d", k.numOutput, k.inputDim)
	}
	var err error
	if k.table, err = c.weights(l, 0); err != nil {
		return nil, err
	}
	if len(k.table) != k.inputDim*k.numOutput {
		return nil, fmt.Errorf("the table has %d values; input_dim %d × num_output %d need %d", len(k.table), k.inputDim, k.numOutput, k.inputDim*k.numOutput)
	}
	if p.GetBiasTerm() {
		if k.bias, err = c.weights(l, 1); err != nil {
			return nil, err
		}
		if len(k.bias) != k.numOutput {
			return nil, fmt.Errorf("the bias has %d values; num_output is %d", len(k.bias), k.numOutput)
		}
	}
	return k, nil
}

func (k *embedKernel) forward(bottoms, tops []*Tensor) error {
	in, out := bottoms[0], tops[0]
	if len(out.Data) != len(in.Data)*k.numOutput {
		return fmt.Errorf("top %v does not hold %d rows of %d", out.Shape, len(in.Data), k.numOutput)
	}
	for n, v := range in.Data {
		// Caffe's release build truncates the index toward zero, as
		// static_cast<int> does. Its range check runs in debug builds only,
		// so an index outside the table is an error here.
		if !(v > -1 && v < float32(k.inputDim)) {
			return fmt.Errorf("bottom value %v at position %d is not an index into the %d rows of the table", v, n, k.inputDim)
		}
		row := int(v)
		dst := out.Data[n*k.numOutput : (n+1)*k.numOutput]
		copy(dst, k.table[row*k.numOutput:(row+1)*k.numOutput])
		for j, b := range k.bias {
			dst[j] += b
		}
	}
	return nil
}

func init() {
	registerKernel(buildPermute, "Permute")
	registerKernel(buildCrop, "Crop")
	registerKernel(func(l *graph.Layer, c *compileContext) (kernel, error) {
		p := cmp.Or(l.Param.GetTileParam(), &caffepb.TileParameter{})
		rank := len(l.Bottoms[0].Shape)
		axis := canonical(int(p.GetAxis()), rank)
		if axis < 0 || axis >= rank {
			return nil, fmt.Errorf("tile_param.axis %d is out of range for a bottom with %d axes", p.GetAxis(), rank)
		}
		if p.Tiles == nil || p.GetTiles() < 1 {
			return nil, fmt.Errorf("tile_param.tiles must be given and positive, got %d", p.GetTiles())
		}
		return &tileKernel{axis: axis, tiles: int(p.GetTiles())}, nil
	}, "Tile")
	registerKernel(buildReduction, "Reduction")
	registerKernel(buildArgMax, "ArgMax")
	registerKernel(func(l *graph.Layer, c *compileContext) (kernel, error) {
		g := int(l.Param.GetShuffleChannelParam().GetGroup())
		if g < 1 {
			return nil, fmt.Errorf("shuffle_channel_param.group %d must be positive", g)
		}
		return &shuffleChannelKernel{group: g}, nil
	}, "ShuffleChannel")
	registerKernel(buildEmbed, "Embed")
}
