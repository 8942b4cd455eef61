package surgery

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/graph"
)

// FCToConvOptions configures FCToConv. The zero value converts every
// InnerProduct layer of the TEST phase in place of its name and keeps
// the input size.
type FCToConvOptions struct {
	// Layers names the InnerProduct layers to convert; empty means all.
	Layers []string

	// Suffix is appended to the name of each converted layer, and to its
	// top when the top has the layer's name (as fc6 → fc6-conv in Caffe's
	// net surgery example). Empty keeps the names, so other tools still
	// match the weights by name.
	Suffix string

	// Graph selects the phase and gives the input sizes at which the
	// kernels are computed (the net's declared sizes by default).
	Graph graph.Options

	// NewInputs writes new input sizes into the converted net, by input
	// blob name ("" for the first input), e.g. 1×3×451×451 for a score
	// map from CaffeNet.
	NewInputs map[string][]int
}

// FCToConv rewrites InnerProduct layers as equivalent convolutions. An
// InnerProduct over a C×H×W volume becomes an H×W convolution with stride
// 1 and no padding; one over a vector (the output of a converted layer)
// becomes a 1×1 convolution. The weights keep their memory order and get
// the shape N×C×H×W (a `transpose: true` layer's K×N weights are
// transposed first); biases are kept. A Flatten or flattening Reshape
// that feeds a converted layer is bypassed, and removed when nothing else
// reads it. At the original input size the outputs are identical; at a
// larger one the net produces a map of outputs.
//
// Layers that cannot be converted exactly stay InnerProduct and are listed
// in the report with the reason: an axis other than 1, an input whose
// shape is unknown or that is a Concat of flattened blobs, or a vector
// input from a layer that stays InnerProduct. net is not modified; the
// result shares unchanged weight values with it.
func FCToConv(net *caffe.Net, opts FCToConvOptions) (*caffe.Net, *Report, error) {
	r := newReport("fc2conv")
	g := graph.Build(net, opts.Graph)
	g.Infer()

	want := map[string]bool{}
	for _, name := range opts.Layers {
		l := g.LayerByName(name)
		switch {
		case l == nil:
			return nil, nil, fmt.Errorf("surgery: fc2conv: no layer %q in the net's selected layers", name)
		case l.Type() != "InnerProduct":
			return nil, nil, fmt.Errorf("surgery: fc2conv: layer %q is a %s, not an InnerProduct", name, l.Type())
		}
		want[name] = true
	}

	out := caffe.CloneNet(net)
	layers := out.Param.GetLayer()
	// fourD holds values whose 4-axis form (N×C×1×1 for a converted
	// layer's output) the converted net produces; a vector input is only
	// convertible when it comes from such a value.
	fourD := map[*graph.Value]bool{}
	removed := map[int]bool{}
	renamed := map[*caffepb.LayerParameter]map[string]string{} // layer -> old top name -> new
	for _, l := range g.Layers {
		if len(l.Bottoms) > 0 && fourD[l.Bottoms[0]] && passesShape(l) {
			for _, t := range l.Tops {
				fourD[t] = true
			}
		}
		if l.Type() != "InnerProduct" || len(want) > 0 && !want[l.Name()] {
			continue
		}
		conv, src, flatten, err := planConversion(l, fourD)
		if err != nil {
			r.refusef(l.Name(), "%v", err)
			continue
		}

		lp := layers[l.Index]
		if err := convertLayer(lp, conv, src); err != nil {
			r.refusef(l.Name(), "%v", err)
			continue
		}
		if flatten != nil && len(flatten.Tops[0].Consumers) == 1 {
			removed[flatten.Index] = true
			r.changef(flatten.Name(), "%s removed: %s now reads %q directly", flatten.Type(), l.Name(), src.Blob)
		}
		for _, t := range l.Tops {
			fourD[t] = true
		}
		r.changef(l.Name(), "InnerProduct → Convolution %s over %s (weights %s)", kernelString(conv.kernel), shapeString(src.Shape[1:]), shapeString([]int{conv.outputs, conv.channels, conv.kernel[0], conv.kernel[1]}))

		if opts.Suffix != "" {
			old := lp.GetName()
			lp.Name = proto.String(old + opts.Suffix)
			for i, t := range lp.GetTop() {
				if t == old {
					lp.Top[i] = t + opts.Suffix
					renamed[lp] = map[string]string{t: t + opts.Suffix}
				}
			}
		}
	}
	if len(r.Changes) == 0 {
		if len(r.Refused) > 0 {
			return nil, r, fmt.Errorf("surgery: fc2conv: no InnerProduct layer can be converted: %w", ErrNothingToDo)
		}
		return nil, r, fmt.Errorf("surgery: fc2conv: the net has no InnerProduct layer: %w", ErrNothingToDo)
	}

	kept := layers[:0:0]
	for i, lp := range layers {
		if !removed[i] {
			kept = append(kept, lp)
		}
	}
	out.Param.Layer = kept
	applyRenames(out.Param, renamed)

	checkOpts := opts.Graph
	if len(opts.NewInputs) > 0 {
		if err := SetInputShapes(out, opts.NewInputs); err != nil {
			return nil, nil, err
		}
		checkOpts.Inputs = nil
	}
	if err := finish(out, checkOpts, r); err != nil {
		return nil, nil, fmt.Errorf("surgery: fc2conv produced an invalid net: %w", err)
	}
	return out, r, nil
}

// conversion is the convolution an InnerProduct becomes.
type conversion struct {
	outputs, channels int
	kernel            [2]int
	transpose         bool
	k                 int // inputs per output, C·H·W
}

// planConversion decides whether l converts, and from which value.
func planConversion(l *graph.Layer, fourD map[*graph.Value]bool) (*conversion, *graph.Value, *graph.Layer, error) {
	p := l.Param.GetInnerProductParam()
	in := l.Bottoms[0]
	if in.Shape == nil {
		return nil, nil, nil, fmt.Errorf("the shape of its input %q is unknown; give the input size", in.Blob)
	}
	axis := int(p.GetAxis())
	if axis < 0 {
		axis += len(in.Shape)
	}
	if axis != 1 {
		return nil, nil, nil, fmt.Errorf("axis %d: the product covers only axes %d and later of %s, which leaves no spatial window for a convolution", p.GetAxis(), axis, shapeString(in.Shape))
	}
	if len(l.Bottoms) != 1 {
		return nil, nil, nil, fmt.Errorf("an InnerProduct with %d bottoms shares weights across them; convert it by hand", len(l.Bottoms))
	}

	src, flatten := in, (*graph.Layer)(nil)
	if prod := in.Producer; prod != nil {
		switch {
		case prod.Type() == "Concat" && len(in.Shape) != 4:
			// A Concat of 4-axis volumes along channels is one volume; a
			// Concat of flattened vectors is not: its parts had different
			// spatial sizes, so no single window covers them.
			return nil, nil, nil, fmt.Errorf("its input %q is a Concat of %d blobs that were flattened, which do not form one C×H×W volume", in.Blob, len(prod.Bottoms))
		case isFlattening(prod) && in == prod.Tops[0] && in.Version == 0:
			if b := prod.Bottoms[0]; len(b.Shape) == 4 {
				src, flatten = b, prod
			}
		}
	}

	c := &conversion{outputs: int(p.GetNumOutput()), transpose: p.GetTranspose()}
	switch len(src.Shape) {
	case 4:
		c.channels, c.kernel = src.Shape[1], [2]int{src.Shape[2], src.Shape[3]}
	case 2:
		if !fourD[src] {
			from := "a net input"
			if src.Producer != nil {
				from = fmt.Sprintf("layer %q", src.Producer.Name())
			}
			return nil, nil, nil, fmt.Errorf("its input %q is a vector from %s, which stays as it is; a convolution needs a 4-axis input", src.Blob, from)
		}
		c.channels, c.kernel = src.Shape[1], [2]int{1, 1}
	default:
		return nil, nil, nil, fmt.Errorf("its input %q has shape %s; only 4-axis volumes and vectors convert", src.Blob, shapeString(src.Shape))
	}
	c.k = c.channels * c.kernel[0] * c.kernel[1]
	if len(l.Blobs) > 0 && l.Blobs[0].Shape[len(l.Blobs[0].Shape)-1] != c.k && !c.transpose {
		return nil, nil, nil, fmt.Errorf("weights %v do not take %d inputs", l.Blobs[0].Shape, c.k)
	}
	return c, src, flatten, nil
}

// isFlattening reports whether l is a Flatten of everything after the
// batch axis, or a Reshape to (batch, everything).
func isFlattening(l *graph.Layer) bool {
	if len(l.Tops) != 1 || len(l.Bottoms) != 1 || l.Tops[0].Shape == nil || len(l.Tops[0].Shape) != 2 {
		return false
	}
	switch l.Type() {
	case "Flatten", "Reshape":
		in := l.Bottoms[0].Shape
		return in != nil && in[0] == l.Tops[0].Shape[0]
	}
	return false
}

// passesShape reports whether l maps a 4-axis N×C×1×1 value to the same
// form, as element-wise layers do, so a converted layer's output keeps
// feeding later conversions.
func passesShape(l *graph.Layer) bool {
	switch l.Type() {
	case "ReLU", "PReLU", "ELU", "Sigmoid", "TanH", "AbsVal", "BNLL", "Power", "Exp", "Log",
		"Threshold", "Clip", "Swish", "ReLU6", "Dropout", "BatchNorm", "Scale", "Bias", "Split":
		return true
	}
	return false
}

// convertLayer turns the InnerProduct lp into its convolution, reading
// src, and replaces its weight blobs (the clone's blob values are shared
// with the input net, so new BlobProto messages are made).
func convertLayer(lp *caffepb.LayerParameter, c *conversion, src *graph.Value) error {
	ip := lp.GetInnerProductParam()
	cp := &caffepb.ConvolutionParameter{
		NumOutput:    proto.Uint32(uint32(c.outputs)),
		WeightFiller: ip.GetWeightFiller(),
		BiasFiller:   ip.GetBiasFiller(),
	}
	if ip.BiasTerm != nil {
		cp.BiasTerm = ip.BiasTerm
	}
	if c.kernel[0] == c.kernel[1] {
		cp.KernelSize = []uint32{uint32(c.kernel[0])}
	} else {
		cp.KernelH, cp.KernelW = proto.Uint32(uint32(c.kernel[0])), proto.Uint32(uint32(c.kernel[1]))
	}

	if blobs := lp.GetBlobs(); len(blobs) > 0 {
		w := blobs[0]
		data := w.GetData()
		if w.GetData() != nil && len(data) != c.outputs*c.k {
			return fmt.Errorf("weights hold %d values, %d outputs × %d inputs need %d", len(data), c.outputs, c.k, c.outputs*c.k)
		}
		if c.transpose && data != nil {
			data = transposed(data, c.k, c.outputs)
		}
		nw := &caffepb.BlobProto{Shape: &caffepb.BlobShape{Dim: []int64{int64(c.outputs), int64(c.channels), int64(c.kernel[0]), int64(c.kernel[1])}}, Data: data}
		lp.Blobs = []*caffepb.BlobProto{nw}
		if len(blobs) > 1 {
			nb := &caffepb.BlobProto{Shape: &caffepb.BlobShape{Dim: []int64{int64(c.outputs)}}, Data: blobs[1].GetData()}
			lp.Blobs = append(lp.Blobs, nb)
		}
	}

	lp.Type = proto.String("Convolution")
	lp.InnerProductParam = nil
	lp.ConvolutionParam = cp
	if src.Blob != lp.GetBottom()[0] {
		lp.Bottom[0] = src.Blob
	}
	return nil
}

// transposed returns the rows × cols matrix m (row-major) transposed.
func transposed(m []float32, rows, cols int) []float32 {
	out := make([]float32, len(m))
	for i := range rows {
		for j := range cols {
			out[j*rows+i] = m[i*cols+j]
		}
	}
	return out
}

// applyRenames makes later layers read a renamed top: renamed maps each
// renamed layer to its old and new top names. Bottoms with an old name
// after that layer, and in-place tops on it, take the new name until
// another layer produces the old name again.
func applyRenames(p *caffepb.NetParameter, renamed map[*caffepb.LayerParameter]map[string]string) {
	if len(renamed) == 0 {
		return
	}
	active := map[string]string{}
	for _, lp := range p.GetLayer() {
		for i, b := range lp.GetBottom() {
			if n, ok := active[b]; ok {
				lp.Bottom[i] = n
			}
		}
		if names, ok := renamed[lp]; ok {
			for old, n := range names {
				active[old] = n
			}
			continue
		}
		for i, t := range lp.GetTop() {
			n, ok := active[t]
			switch {
			case ok && slices.Contains(lp.GetBottom(), n):
				lp.Top[i] = n // in place on the renamed blob
			case ok:
				delete(active, t) // a new producer of the old name
			}
		}
	}
}

// SetInputShapes writes new sizes into the Input layers (or net-level
// inputs) of net, by blob name ("" for the first input). net is changed;
// callers pass a copy.
func SetInputShapes(net *caffe.Net, inputs map[string][]int) error {
	first := ""
	for _, lp := range net.Param.GetLayer() {
		if lp.GetType() == "Input" && len(lp.GetTop()) > 0 {
			first = lp.GetTop()[0]
			break
		}
	}
	if first == "" && len(net.Param.GetInput()) > 0 {
		first = net.Param.GetInput()[0]
	}
	set := map[string]bool{}
	for name, shape := range inputs {
		blob := name
		if blob == "" {
			blob = first
		}
		dims := make([]int64, len(shape))
		for i, d := range shape {
			dims[i] = int64(d)
		}
		for _, lp := range net.Param.GetLayer() {
			if lp.GetType() != "Input" {
				continue
			}
			ip := lp.GetInputParam()
			for i, t := range lp.GetTop() {
				if t != blob {
					continue
				}
				if len(ip.GetShape()) == 1 && len(lp.GetTop()) > 1 {
					// One shape shared by several tops: give each its own first.
					for range lp.GetTop()[1:] {
						ip.Shape = append(ip.Shape, proto.Clone(ip.Shape[0]).(*caffepb.BlobShape))
					}
				}
				ip.Shape[i] = &caffepb.BlobShape{Dim: dims}
				set[name] = true
			}
		}
		if !set[name] {
			return fmt.Errorf("surgery: no Input layer produces %q; the net's inputs are set by data layers, which state no size", blob)
		}
	}
	return nil
}

// finish validates the rewritten net and lists its outputs with their
// shapes in the report.
func finish(net *caffe.Net, opts graph.Options, r *Report) error {
	g := graph.Build(net, opts)
	g.Infer()
	if err := g.Validate(); err != nil {
		return err
	}
	for _, v := range g.Outputs() {
		r.Outputs = append(r.Outputs, v.Blob+" "+shapeString(v.Shape))
	}
	return nil
}

func shapeString(s []int) string {
	if s == nil {
		return "?"
	}
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = strconv.Itoa(d)
	}
	return strings.Join(parts, "×")
}

func kernelString(k [2]int) string { return fmt.Sprintf("%d×%d", k[0], k[1]) }
