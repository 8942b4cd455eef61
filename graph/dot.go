package graph

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
)

// DOTOptions configures WriteDOT.
type DOTOptions struct {
	// RankDir is the Graphviz rankdir: "LR" (left to right, the default
	// when empty, as in Caffe's draw_net.py), "TB", "BT" or "RL".
	RankDir string

	// Shapes adds the inferred shape of each blob value to its label.
	// Call Infer before WriteDOT, or every shape is shown as "?".
	Shapes bool
}

// Fill colors of layer boxes by kind, and of blob octagons.
const (
	colorConvolution = "#F4A582" // Convolution, Deconvolution
	colorPooling     = "#FDD49E"
	colorInnerProd   = "#C2A5CF" // InnerProduct
	colorActivation  = "#B8E186" // activations and normalizations
	colorData        = "#92C5DE" // data and input layers
	colorLoss        = "#F4A6C6" // losses and Accuracy
	colorOther       = "#E6E6E6"
	colorBlob        = "#FFF7BC"
)

// WriteDOT writes the graph in Graphviz's DOT language, drawn the way
// Caffe's python/caffe/draw.py draws a net: each layer is a filled box
// labelled with its name, type and key parameters and colored by kind,
// and each blob is an octagon. An edge runs from a blob to every layer
// that reads it and from a layer to every blob it writes.
//
// Blobs get one node per value, so a name that several layers produce
// without working in place shows each value separately. An in-place top
// is a top that is also a bottom of the same layer, such as a ReLU after
// a convolution. As in draw.py, it gets no node of its own. The layer's
// output edge points back into the node of the blob it read, and is
// dashed so the forward direction stays readable. This keeps a chain of
// BatchNorm, Scale and ReLU beside its convolution's output instead of
// adding three nodes and three ranks per convolution to the drawing.
//
// The chain forms loops on one blob node, and the layers that read the
// blob afterwards draw their edge from that same node. The loops alone do
// not show Caffe's order, so when a node has more than one in-place
// writer, each dashed edge is labelled 1, 2, 3, ... in declaration order.
//
// A bottom that no earlier layer produces (a problem Validate reports) is
// drawn as a dashed octagon marked "not produced".
//
// The output depends only on the graph and opts: nodes and edges follow
// the declaration order of the layers.
func (g *Graph) WriteDOT(w io.Writer, opts DOTOptions) error {
	rankDir := opts.RankDir
	switch rankDir {
	case "":
		rankDir = "LR"
	case "LR", "TB", "BT", "RL":
	default:
		return fmt.Errorf("graph: invalid rankdir %q; use LR, TB, BT or RL", opts.RankDir)
	}
	d := &dotWriter{
		g:         g,
		opts:      opts,
		vertical:  rankDir == "TB" || rankDir == "BT",
		ids:       map[string]bool{},
		valueNode: map[*Value]string{},
		missing:   map[string]string{},
		chainLen:  map[string]int{},
	}

	name := "net"
	if g.Net != nil && g.Net.Param.GetName() != "" {
		name = g.Net.Param.GetName()
	}
	fmt.Fprintf(&d.buf, "digraph %s {\n", dotQuote(name))
	fmt.Fprintf(&d.buf, "\trankdir=%s;\n", rankDir)
	d.buf.WriteString("\tnode [fontname=\"Helvetica\", fontsize=11, style=filled];\n")
	d.buf.WriteString("\tedge [fontname=\"Helvetica\", fontsize=9, color=\"#555555\"];\n")

	for _, v := range g.Inputs {
		d.blobNode(v, "")
	}
	for _, l := range g.Layers {
		d.layer(l)
	}
	d.buf.WriteString("}\n")

	_, err := w.Write(d.buf.Bytes())
	return err
}

// dotWriter holds the state of one WriteDOT call.
type dotWriter struct {
	g        *Graph
	opts     DOTOptions
	vertical bool
	buf      bytes.Buffer

	ids       map[string]bool   // node IDs in use
	valueNode map[*Value]string // node ID of each blob value drawn so far
	missing   map[string]string // node ID of each blob read before any layer produced it
	chainLen  map[string]int    // in-place layers drawn so far on each blob node
}

// layer writes the node of l, the nodes of the tops it creates and its
// edges.
func (d *dotWriter) layer(l *Layer) {
	id := d.uniqueID("layer:" + l.Name())
	fmt.Fprintf(&d.buf, "\t%s [shape=box, fillcolor=%s, label=%s];\n",
		dotQuote(id), dotQuote(layerColor(l)), dotQuote(d.layerLabel(l)))

	for _, b := range l.Bottoms {
		fmt.Fprintf(&d.buf, "\t%s -> %s;\n", dotQuote(d.bottomNode(b)), dotQuote(id))
	}
	for i, t := range l.Tops {
		if l.InPlace(i) {
			target := d.overwrittenNode(l, t)
			d.valueNode[t] = target
			d.chainLen[target]++
			attrs := "style=dashed"
			if step := d.chainLen[target]; step > 1 || d.chainContinues(t) {
				attrs += ", label=" + dotQuote(strconv.Itoa(step))
			}
			fmt.Fprintf(&d.buf, "\t%s -> %s [%s];\n", dotQuote(id), dotQuote(target), attrs)
			continue
		}
		top := d.blobNode(t, "")
		fmt.Fprintf(&d.buf, "\t%s -> %s;\n", dotQuote(id), dotQuote(top))
	}
}

// chainContinues reports whether a later layer overwrites the value t in
// place again.
func (d *dotWriter) chainContinues(t *Value) bool {
	for _, c := range t.Consumers {
		for i, top := range c.Tops {
			if top.Blob == t.Blob && c.InPlace(i) {
				return true
			}
		}
	}
	return false
}

// overwrittenNode returns the node of the bottom that top t of l
// overwrites.
func (d *dotWriter) overwrittenNode(l *Layer, t *Value) string {
	for _, b := range l.Bottoms {
		if b.Blob == t.Blob {
			return d.bottomNode(b)
		}
	}
	// InPlace guarantees a bottom of the same name, so this is unreachable.
	return d.blobNode(t, "")
}

// bottomNode returns the node of a value a layer reads, writing the
// dashed node of a blob no earlier layer produced the first time it is
// read.
func (d *dotWriter) bottomNode(v *Value) string {
	if id, ok := d.valueNode[v]; ok {
		return id
	}
	if v.Version >= 0 {
		return d.blobNode(v, "")
	}
	if id, ok := d.missing[v.Blob]; ok {
		return id
	}
	id := d.blobNode(v, "not produced")
	d.missing[v.Blob] = id
	return id
}

// blobNode writes the octagon of value v and returns its node ID. The
// first node of a blob has the ID "blob:NAME"; later values of the same
// name get "blob:NAME#VERSION".
func (d *dotWriter) blobNode(v *Value, note string) string {
	id := "blob:" + v.Blob
	if d.ids[id] {
		id = d.uniqueID(id + "#" + strconv.Itoa(v.Version))
	} else {
		d.ids[id] = true
	}
	d.valueNode[v] = id

	lines := []string{v.Blob}
	if d.opts.Shapes && note == "" {
		lines = append(lines, dotShape(v.Shape))
	}
	style := "filled"
	if note != "" {
		lines = append(lines, "("+note+")")
		style = "filled,dashed"
	}
	fmt.Fprintf(&d.buf, "\t%s [shape=octagon, style=%s, fillcolor=%s, label=%s];\n",
		dotQuote(id), dotQuote(style), dotQuote(colorBlob), dotQuote(strings.Join(lines, "\n")))
	return id
}

// uniqueID returns id, or id with the first free suffix "~2", "~3", ...
// when another node already has it, and marks the result as used.
func (d *dotWriter) uniqueID(id string) string {
	out := id
	for n := 2; d.ids[out]; n++ {
		out = id + "~" + strconv.Itoa(n)
	}
	d.ids[out] = true
	return out
}

// layerLabel returns the text of a layer's box: its name, its type in
// brackets (with the method for pooling, as draw.py writes it) and the
// key parameters of convolution, pooling and inner product layers.
// Left-to-right layouts have room for height, so the name, the type and
// each group of parameters get a line. Top-to-bottom layouts have room
// for width, so they use two lines.
func (d *dotWriter) layerLabel(l *Layer) string {
	kind, params := layerParams(l.Param)
	if d.vertical {
		label := l.Name() + " (" + kind + ")"
		if len(params) > 0 {
			label += "\n" + strings.Join(params, ", ")
		}
		return label
	}
	return strings.Join(append([]string{l.Name(), "(" + kind + ")"}, params...), "\n")
}

// layerParams returns the type of a layer as its label shows it and its
// key parameters, grouped into lines of "name value" items. Values are
// written as the net file states them, so a kernel_size of 3 reads
// "kernel 3" whatever the number of spatial axes.
func layerParams(p *caffepb.LayerParameter) (kind string, lines []string) {
	kind = p.GetType()
	switch kind {
	case "Convolution", "Deconvolution":
		c := p.GetConvolutionParam()
		if c == nil {
			return kind, nil
		}
		outputs := "num_output " + strconv.FormatUint(uint64(c.GetNumOutput()), 10)
		if c.GetGroup() != 1 {
			outputs += ", group " + strconv.FormatUint(uint64(c.GetGroup()), 10)
		}
		window := "kernel " + axesValue(c.KernelH, c.KernelW, c.GetKernelSize(), "?") +
			", stride " + axesValue(c.StrideH, c.StrideW, c.GetStride(), "1") +
			", pad " + axesValue(c.PadH, c.PadW, c.GetPad(), "0")
		if dilation := axesValue(nil, nil, c.GetDilation(), "1"); dilation != "1" {
			window += ", dilation " + dilation
		}
		return kind, []string{outputs, window}
	case "Pooling":
		c := p.GetPoolingParam()
		if c == nil {
			c = &caffepb.PoolingParameter{}
		}
		kind = c.GetPool().String() + " " + kind
		if c.GetGlobalPooling() {
			return kind, []string{"global"}
		}
		window := "kernel " + axesValue(c.KernelH, c.KernelW, optionalList(c.KernelSize), "?") +
			", stride " + axesValue(c.StrideH, c.StrideW, optionalList(c.Stride), "1") +
			", pad " + axesValue(c.PadH, c.PadW, optionalList(c.Pad), "0")
		return kind, []string{window}
	case "InnerProduct":
		return kind, []string{"num_output " + strconv.FormatUint(uint64(p.GetInnerProductParam().GetNumOutput()), 10)}
	}
	return kind, nil
}

// axesValue formats a window parameter given either as a height and
// width pair or as one value for all axes (or one per axis): "3", "3×1".
// It returns def when the parameter is not set.
func axesValue(h, w *uint32, list []uint32, def string) string {
	if h != nil || w != nil {
		return optionalValue(h, def) + "×" + optionalValue(w, def)
	}
	if len(list) == 0 {
		return def
	}
	parts := make([]string, len(list))
	for i, v := range list {
		parts[i] = strconv.FormatUint(uint64(v), 10)
	}
	return strings.Join(parts, "×")
}

func optionalValue(v *uint32, def string) string {
	if v == nil {
		return def
	}
	return strconv.FormatUint(uint64(*v), 10)
}

func optionalList(v *uint32) []uint32 {
	if v == nil {
		return nil
	}
	return []uint32{*v}
}

// layerColor returns the fill color for the kind of layer l is.
func layerColor(l *Layer) string {
	t := l.Type()
	switch {
	case t == "Convolution" || t == "Deconvolution":
		return colorConvolution
	case t == "Pooling":
		return colorPooling
	case t == "InnerProduct":
		return colorInnerProd
	case activationTypes[t]:
		return colorActivation
	case isInputType(t) && len(l.Bottoms) == 0:
		// A Python layer with bottoms is a computation, not a data source.
		return colorData
	case strings.HasSuffix(t, "Loss") || t == "Accuracy":
		return colorLoss
	}
	return colorOther
}

// activationTypes are the element-wise activations of BVLC Caffe and
// common forks, and the normalization layers. draw.py fills in-place
// layers, which are mostly of these types, in green.
var activationTypes = map[string]bool{
	"AbsVal": true, "BNLL": true, "Clip": true, "Dropout": true, "ELU": true,
	"Exp": true, "Log": true, "Power": true, "PReLU": true, "ReLU": true,
	"ReLU6": true, "Sigmoid": true, "Softmax": true, "Swish": true,
	"TanH": true, "Threshold": true,
	"BatchNorm": true, "Bias": true, "LRN": true, "MVN": true,
	"Normalize": true, "Scale": true,
}

// dotShape formats a shape for a blob label: "64×3×224×224", or "?"
// when it is unknown.
func dotShape(s []int) string {
	if s == nil {
		return "?"
	}
	parts := make([]string, len(s))
	for i, n := range s {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, "×")
}

// dotQuote returns s as a DOT double-quoted string. A backslash becomes
// "\\" and a double quote "\"", so neither ends the string early nor
// starts a Graphviz label escape such as \N, and a line break becomes the
// label escape "\n" (a centred line). Graphviz reads the string as UTF-8.
func dotQuote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			// A bare carriage return would break the line in the DOT file.
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
