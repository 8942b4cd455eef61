package onnx

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/convert/onnx/onnxpb"
	"github.com/tlsurgery/tlsurgery/graph"
	"github.com/tlsurgery/tlsurgery/internal/atomicfile"
)

// The operator set versions Convert can target, and its default.
const (
	MinOpset     = 9
	MaxOpset     = 17
	DefaultOpset = 13
)

// Options controls an export. The zero value exports the TEST phase of a
// net at opset 13 with the batch size the net declares.
type Options struct {
	// Opset is the version of the default ONNX operator set, from 9 to
	// 17; 0 means 13. The model's IR version follows from it.
	Opset int

	// DynamicBatch makes the first axis of the inputs, and of every shape
	// that follows it, the symbol "N", so the model runs on any batch size.
	DynamicBatch bool

	// Graph selects the phase, stages and level of the net and sets the
	// input shapes, as for graph.Build.
	Graph graph.Options

	// Metadata is stored in the model's metadata_props, for facts a user
	// of the model needs, such as the preprocessing (mean, scale, channel
	// order). Convert adds "caffe_source" and "caffe_format".
	Metadata map[string]string

	// ProducerVersion is stored as the model's producer_version, next to
	// producer_name "tlsurgery".
	ProducerVersion string

	// ExtraOutputs names tensors (by the names the package documentation
	// describes) that become graph outputs in addition to the net's
	// outputs, for checking intermediate values.
	ExtraOutputs []string
}

// Report lists what Convert emitted.
type Report struct {
	Opset     int
	IRVersion int
	Inputs    []string // graph input tensors
	Outputs   []string // graph output tensors
	Layers    []LayerReport
}

// LayerReport is the ONNX side of one Caffe layer.
type LayerReport struct {
	Name string
	Type string
	Ops  []string // ONNX operator types of the layer's nodes, in order
	Note string   // reason the layer has no nodes of its own, or ""
}

// UnsupportedError is returned for a layer that has no exact ONNX form at
// the requested opset.
type UnsupportedError struct {
	Layer  string
	Type   string
	Reason string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("onnx: layer %q (%s) cannot be exported: %s", e.Layer, e.Type, e.Reason)
}

// irVersions maps each opset to the IR version of the ONNX release that
// introduced it, as onnx.helper.VERSION_TABLE of ONNX 1.12 lists them
// (1.4.1 has IR 4 and opset 9, ..., 1.12 has IR 8 and opset 17). Readers accept any IR version
// at least as new as the opset needs.
var irVersions = map[int]int{9: 4, 10: 5, 11: 6, 12: 7, 13: 7, 14: 7, 15: 8, 16: 8, 17: 8}

// IRVersion returns the IR version Convert writes for an opset, or 0 for
// an opset outside MinOpset..MaxOpset.
func IRVersion(opset int) int { return irVersions[opset] }

// WriteFile converts net and writes the model to path atomically.
func WriteFile(path string, net *caffe.Net, opts Options) error {
	model, _, err := Convert(net, opts)
	if err != nil {
		return err
	}
	return WriteModel(path, model)
}

// WriteModel writes a model, such as one that Convert returned, to path
// atomically. The file has the bytes of
// proto.MarshalOptions{Deterministic: true}.Marshal(model), but the
// initializers' raw_data is written from the model's own slices rather
// than from one buffer of the whole encoding, so writing takes little
// memory beyond the model's. The model must not change during the call.
func WriteModel(path string, model *onnxpb.ModelProto) error {
	enc, err := encodeModel(model)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, enc.writeTo)
}

// Convert maps net, with the weights attached to its layers, to an ONNX
// model. It fails when a shape cannot be inferred, a layer that needs
// weights has none, or a layer has no exact ONNX form (*UnsupportedError).
//
// The model is complete: every initializer holds its values in raw_data.
// On little-endian hosts the raw_data of float initializers shares memory
// with the float32 values it was made from, which for weights are the
// blobs of net, so converting copies no weights. Changing those blobs then
// changes the model, and changing raw_data changes the blobs. Clone the
// model with proto.Clone to separate the two.
func Convert(net *caffe.Net, opts Options) (*onnxpb.ModelProto, *Report, error) {
	if opts.Opset == 0 {
		opts.Opset = DefaultOpset
	}
	if opts.Opset < MinOpset || opts.Opset > MaxOpset {
		return nil, nil, fmt.Errorf("onnx: opset %d is not supported; choose %d to %d", opts.Opset, MinOpset, MaxOpset)
	}
	g := graph.Build(net, opts.Graph)
	g.Infer()
	if err := g.Validate(); err != nil {
		return nil, nil, fmt.Errorf("onnx: the net is invalid: %w", err)
	}
	if err := checkShapesKnown(g); err != nil {
		return nil, nil, err
	}

	c := newConverter(g, opts)
	if opts.DynamicBatch {
		if err := c.inferSecondBatch(); err != nil {
			return nil, nil, err
		}
	}
	if err := c.convertLayers(); err != nil {
		return nil, nil, err
	}
	if err := c.addOutputs(); err != nil {
		return nil, nil, err
	}
	return c.model(net), c.report, nil
}

// checkShapesKnown requires every value's shape, because several
// mappings compute ONNX attributes from shapes.
func checkShapesKnown(g *graph.Graph) error {
	var unknown []string
	for _, l := range g.Layers {
		if l.Unknown != "" {
			unknown = append(unknown, fmt.Sprintf("%s (%s): %s", l.Name(), l.Type(), l.Unknown))
		}
	}
	for _, v := range g.Inputs {
		if v.Shape == nil {
			unknown = append(unknown, fmt.Sprintf("net input %s: no shape", v.Blob))
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("onnx: the shapes of these layers are unknown, so the net cannot be exported; set the input shapes in Options.Graph.Inputs (--input):\n  %s", strings.Join(unknown, "\n  "))
	}
	return nil
}

// mapper emits the ONNX nodes of one Caffe layer.
type mapper func(c *converter, l *graph.Layer) error

// mappers is the registry of layer types, filled by the init functions of
// the op_*.go files.
var mappers = map[string]mapper{}

func register(m mapper, types ...string) {
	for _, t := range types {
		if mappers[t] != nil {
			panic("onnx: two mappings for layer type " + t)
		}
		mappers[t] = m
	}
}

// SupportedTypes returns the Caffe layer types Convert maps, sorted. Some
// are supported only with certain parameters or opsets.
func SupportedTypes() []string {
	return slices.Sorted(maps.Keys(mappers))
}

// converter holds the model under construction.
type converter struct {
	opts  Options
	opset int
	g     *graph.Graph

	// second is g inferred with every input's batch size plus one, when
	// DynamicBatch is set: the axes whose sizes differ follow the batch.
	second map[*graph.Value]*graph.Value

	out    *onnxpb.GraphProto
	report *Report

	names     map[*graph.Value]string // tensor name of each value
	taken     map[string]bool         // tensor and initializer names in use
	nodeNames map[string]bool
	inputSeen map[*graph.Value]bool

	// fusedInto maps a Scale layer to the BatchNorm layer whose
	// BatchNormalization node applies it.
	fusedInto map[*graph.Layer]*graph.Layer
	fusedWith map[*graph.Layer]*graph.Layer // the reverse: BatchNorm to Scale

	// poolMasks marks the MAX pooling masks, which are ONNX MaxPool
	// indices (int64) rather than Caffe's float positions.
	poolMasks map[*graph.Value]bool

	layer *graph.Layer // the layer being mapped
	ops   []string     // operator types emitted for it
}

func newConverter(g *graph.Graph, opts Options) *converter {
	c := &converter{
		opts: opts, opset: opts.Opset, g: g,
		out:       &onnxpb.GraphProto{Name: proto.String(graphName(g.Net))},
		report:    &Report{Opset: opts.Opset, IRVersion: irVersions[opts.Opset]},
		names:     map[*graph.Value]string{},
		taken:     map[string]bool{},
		nodeNames: map[string]bool{},
		inputSeen: map[*graph.Value]bool{},
		fusedInto: map[*graph.Layer]*graph.Layer{},
		fusedWith: map[*graph.Layer]*graph.Layer{},
		poolMasks: map[*graph.Value]bool{},
	}
	c.nameValues()
	c.planFusions()
	return c
}

func graphName(net *caffe.Net) string {
	if n := net.Param.GetName(); n != "" {
		return n
	}
	return "caffe_net"
}

// nameValues gives every value its tensor name: final values first, so
// they keep their blob names, then the earlier values of in-place blobs.
func (c *converter) nameValues() {
	for _, v := range c.g.Values {
		if c.g.Final[v.Blob] == v {
			c.names[v] = v.Blob
			c.taken[v.Blob] = true
		}
	}
	for _, v := range c.g.Values {
		if c.g.Final[v.Blob] == v {
			continue
		}
		writer := "input"
		if v.Producer != nil {
			writer = v.Producer.Name()
		}
		c.names[v] = c.unique(v.Blob + "@" + writer)
	}
}

// unique returns name, or name with "#2", "#3", ... appended when it is
// taken, and marks the result taken.
func (c *converter) unique(name string) string {
	candidate := name
	for i := 2; c.taken[candidate]; i++ {
		candidate = fmt.Sprintf("%s#%d", name, i)
	}
	c.taken[candidate] = true
	return candidate
}

// planFusions finds each BatchNorm layer whose output value is read only
// by a one-bottom Scale layer on the channel axis, so that one
// BatchNormalization node does both.
func (c *converter) planFusions() {
	extra := map[string]bool{}
	for _, name := range c.opts.ExtraOutputs {
		extra[name] = true
	}
	for _, l := range c.g.Layers {
		if l.Type() != "BatchNorm" || len(l.Tops) != 1 || l.Param.GetBatchNormParam().GetScaleBias() {
			continue
		}
		v := l.Tops[0]
		if len(v.Consumers) != 1 || extra[c.names[v]] {
			continue
		}
		s := v.Consumers[0]
		p := s.Param.GetScaleParam()
		if s.Type() != "Scale" || len(s.Bottoms) != 1 || len(s.Tops) != 1 || len(v.Shape) < 2 {
			continue
		}
		if axis, err := canonicalAxis(int(p.GetAxis()), len(v.Shape)); err != nil || axis != 1 || p.GetNumAxes() != 1 {
			continue
		}
		c.fusedInto[s] = l
		c.fusedWith[l] = s
	}
}

// inferSecondBatch infers the graph again with every input's first axis
// one larger, to learn which axes follow the batch size.
func (c *converter) inferSecondBatch() error {
	opts := c.opts.Graph
	opts.Inputs = maps.Clone(opts.Inputs)
	if opts.Inputs == nil {
		opts.Inputs = map[string][]int{}
	}
	delete(opts.Inputs, "")
	for _, v := range c.graphInputValues() {
		if len(v.Shape) == 0 {
			return fmt.Errorf("onnx: --dynamic-batch needs inputs with a batch axis, but input %s is a scalar", v.Blob)
		}
		s := slices.Clone(v.Shape)
		s[0]++
		opts.Inputs[v.Blob] = s
	}
	g2 := graph.Build(c.g.Net, opts)
	g2.Infer()
	if len(g2.Values) != len(c.g.Values) {
		return fmt.Errorf("onnx: internal error: the graph changed with the batch size")
	}
	c.second = map[*graph.Value]*graph.Value{}
	for i, v := range c.g.Values {
		c.second[v] = g2.Values[i]
	}
	return nil
}

// graphInputValues returns the values that become graph inputs: net-level
// inputs and the tops of data layers.
func (c *converter) graphInputValues() []*graph.Value {
	out := slices.Clone(c.g.Inputs)
	for _, l := range c.g.Layers {
		if isDataLayer(l.Type()) {
			out = append(out, l.Tops...)
		}
	}
	return out
}

// batchAxes returns, for a value, which axes change with the batch size
// (all false without DynamicBatch).
func (c *converter) batchAxes(v *graph.Value) []bool {
	axes := make([]bool, len(v.Shape))
	if c.second == nil {
		return axes
	}
	w := c.second[v]
	for i := range axes {
		axes[i] = w == nil || i >= len(w.Shape) || w.Shape[i] != v.Shape[i]
	}
	return axes
}

// followsBatch reports whether a value's first axis is the batch axis
// and no other axis changes with the batch size.
func (c *converter) followsBatch(v *graph.Value) bool {
	axes := c.batchAxes(v)
	return len(axes) > 0 && axes[0] && !slices.Contains(axes[1:], true)
}

// isStatic reports whether no axis of v changes with the batch size.
func (c *converter) isStatic(v *graph.Value) bool {
	return !slices.Contains(c.batchAxes(v), true)
}

func (c *converter) convertLayers() error {
	for _, v := range c.g.Inputs {
		c.addInput(v)
	}
	for _, l := range c.g.Layers {
		c.layer, c.ops = l, nil
		rep := LayerReport{Name: l.Name(), Type: l.Type()}
		if bn := c.fusedInto[l]; bn != nil {
			rep.Note = fmt.Sprintf("applied by the BatchNormalization node of %s", bn.Name())
			c.report.Layers = append(c.report.Layers, rep)
			continue
		}
		m := mappers[l.Type()]
		if m == nil {
			return unsupported(l, "no ONNX mapping for this layer type; the supported types are %s", strings.Join(SupportedTypes(), ", "))
		}
		if err := m(c, l); err != nil {
			return err
		}
		for i, t := range l.Tops {
			if c.poolMasks[t] && len(t.Consumers) == 0 && c.g.Final[t.Blob] == t {
				return unsupported(l, "top %d (%s) is a max-pooling mask, which ONNX stores as MaxPool indices, not Caffe's positions; only an Upsample layer may read it", i, t.Blob)
			}
		}
		rep.Ops = c.ops
		switch {
		case isDataLayer(l.Type()):
			rep.Note = "graph input"
		case len(rep.Ops) == 0:
			rep.Note = "no computation"
		}
		c.report.Layers = append(c.report.Layers, rep)
	}
	return nil
}

// addInput declares v as a graph input once.
func (c *converter) addInput(v *graph.Value) {
	if c.inputSeen[v] {
		return
	}
	c.inputSeen[v] = true
	c.out.Input = append(c.out.Input, c.valueInfo(c.names[v], v.Shape, c.batchAxes(v), onnxpb.TensorProto_FLOAT))
	c.report.Inputs = append(c.report.Inputs, c.names[v])
}

func (c *converter) addOutputs() error {
	listed := map[string]bool{}
	add := func(v *graph.Value) {
		name := c.names[v]
		if listed[name] {
			return
		}
		listed[name] = true
		c.out.Output = append(c.out.Output, c.valueInfo(name, v.Shape, c.batchAxes(v), onnxpb.TensorProto_FLOAT))
		c.report.Outputs = append(c.report.Outputs, name)
	}
	for _, v := range c.g.Outputs() {
		if c.poolMasks[v] {
			continue
		}
		add(v)
	}
	byName := map[string]*graph.Value{}
	for v, name := range c.names {
		byName[name] = v
	}
	for _, name := range c.opts.ExtraOutputs {
		v := byName[name]
		if v == nil {
			known := slices.Sorted(maps.Keys(byName))
			return fmt.Errorf("onnx: extra output %q is not a tensor of the exported graph; tensors: %s", name, strings.Join(known, ", "))
		}
		if c.poolMasks[v] {
			return fmt.Errorf("onnx: extra output %q is a max-pooling mask, which ONNX stores as MaxPool indices", name)
		}
		if c.fusedWithOutput(v) {
			return fmt.Errorf("onnx: extra output %q is not computed: its BatchNorm and Scale layers run as one node", name)
		}
		add(v)
	}
	if len(c.out.Output) == 0 {
		return fmt.Errorf("onnx: the net has no outputs")
	}
	return nil
}

// fusedWithOutput reports whether v is the BatchNorm output that a fused
// Scale consumes, which no node produces.
func (c *converter) fusedWithOutput(v *graph.Value) bool {
	return v.Producer != nil && c.fusedWith[v.Producer] != nil
}

func (c *converter) valueInfo(name string, shape []int, batch []bool, elem onnxpb.TensorProto_DataType) *onnxpb.ValueInfoProto {
	dims := make([]*onnxpb.TensorShapeProto_Dimension, len(shape))
	for i, d := range shape {
		if i == 0 && i < len(batch) && batch[i] {
			dims[i] = &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}}
			continue
		}
		dims[i] = &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}}
	}
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(elem)),
			Shape:    &onnxpb.TensorShapeProto{Dim: dims},
		}}},
	}
}

func (c *converter) model(net *caffe.Net) *onnxpb.ModelProto {
	meta := maps.Clone(c.opts.Metadata)
	if meta == nil {
		meta = map[string]string{}
	}
	if net.Source != "" {
		meta["caffe_source"] = filepath.Base(net.Source)
	}
	meta["caffe_format"] = fmt.Sprintf("%s, %s format", net.Encoding, net.Generation)
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var props []*onnxpb.StringStringEntryProto
	for _, k := range keys {
		props = append(props, &onnxpb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(meta[k])})
	}
	m := &onnxpb.ModelProto{
		IrVersion:     proto.Int64(int64(irVersions[c.opset])),
		OpsetImport:   []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(int64(c.opset))}},
		ProducerName:  proto.String("tlsurgery"),
		Graph:         c.out,
		MetadataProps: props,
	}
	if c.opts.ProducerVersion != "" {
		m.ProducerVersion = proto.String(c.opts.ProducerVersion)
	}
	return m
}

// unsupported returns an *UnsupportedError for l.
func unsupported(l *graph.Layer, format string, args ...any) error {
	return &UnsupportedError{Layer: l.Name(), Type: l.Type(), Reason: fmt.Sprintf(format, args...)}
}

// IsUnsupported reports whether err is or wraps an *UnsupportedError.
func IsUnsupported(err error) bool {
	var u *UnsupportedError
	return errors.As(err, &u)
}
