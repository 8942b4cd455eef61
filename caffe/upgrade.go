package caffe

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
)

// Field numbers of NetParameter's two layer lists.
const (
	netLayerNumber  protowire.Number = 100 // layer: current LayerParameter
	netLayersNumber protowire.Number = 2   // layers: V1LayerParameter, which may nest a V0 layer
)

// upgradeNet brings p to the current format in place, in the order Caffe
// applies its upgrades: V0 layers to V1 (folding V0 padding layers into
// the convolution or pooling they feed), V1 data-transformation fields to
// transform_param, V1 layers to current layers, the net-level input fields
// to an Input layer, and BatchNorm parameter specs. order lists the layer
// entries (netLayerNumber or netLayersNumber) as they appeared in the
// file; nil means all `layer` entries first. It returns one note per step
// applied and the generation of the input.
func upgradeNet(p *caffepb.NetParameter, order []protowire.Number, file string) (Generation, []Note, error) {
	var notes []Note
	note := func(format string, args ...any) {
		notes = append(notes, Note{Location: NoLocation(file), Kind: NoteUpgrade, Message: fmt.Sprintf(format, args...)})
	}
	gen := V2
	for _, l := range p.GetLayers() {
		if l.GetLayer() != nil {
			gen = V0
			break
		}
		gen = V1
	}

	if gen == V0 {
		folded, err := upgradeV0Net(p, file)
		if err != nil {
			return gen, nil, err
		}
		msg := fmt.Sprintf("V0 layers upgraded to V1 (%d layers)", len(p.GetLayers()))
		if folded > 0 {
			msg += fmt.Sprintf("; %d padding layers folded into the layer they feed", folded)
		}
		note("%s", msg)
	}
	if n := upgradeDataTransformation(p); n > 0 {
		note("data transformation fields of %d V1 data layers moved to transform_param", n)
	}
	if len(p.GetLayers()) > 0 {
		mixed := len(p.GetLayer()) > 0
		v1Count := len(p.GetLayers())
		lost := upgradeV1Net(p, order)
		if mixed {
			note("the file mixes current `layer` and V1 `layers` entries (Caffe rejects such files); %d V1 layers upgraded and kept in declaration order with the %d current ones", v1Count, len(p.GetLayer())-v1Count)
		} else {
			note("V1 layers upgraded to the current format (%d layers)", v1Count)
		}
		for _, l := range lost {
			notes = append(notes, Note{Location: Location{File: file, Offset: -1, Layer: l.layer, Blob: -1}, Kind: NoteSkipped, Message: l.msg})
		}
	}
	if len(p.GetInput()) > 0 {
		what, err := upgradeNetInput(p, file)
		if err != nil {
			return gen, nil, err
		}
		if what != "" {
			note("%s", what)
		}
	}
	if n := upgradeBatchNorm(p); n > 0 {
		note("lr_mult and decay_mult of the 3 param entries of %d BatchNorm layers set to 0 (BatchNorm statistics are not learned)", n)
	}
	return gen, notes, nil
}

// v0LayerTypes maps V0 type strings to V1 enum values, as Caffe's V0
// upgrade does; "padding" layers are folded away before this mapping.
var v0LayerTypes = map[string]caffepb.V1LayerParameter_LayerType{
	"accuracy":                  caffepb.V1LayerParameter_ACCURACY,
	"bnll":                      caffepb.V1LayerParameter_BNLL,
	"concat":                    caffepb.V1LayerParameter_CONCAT,
	"conv":                      caffepb.V1LayerParameter_CONVOLUTION,
	"data":                      caffepb.V1LayerParameter_DATA,
	"dropout":                   caffepb.V1LayerParameter_DROPOUT,
	"euclidean_loss":            caffepb.V1LayerParameter_EUCLIDEAN_LOSS,
	"flatten":                   caffepb.V1LayerParameter_FLATTEN,
	"hdf5_data":                 caffepb.V1LayerParameter_HDF5_DATA,
	"hdf5_output":               caffepb.V1LayerParameter_HDF5_OUTPUT,
	"im2col":                    caffepb.V1LayerParameter_IM2COL,
	"images":                    caffepb.V1LayerParameter_IMAGE_DATA,
	"infogain_loss":             caffepb.V1LayerParameter_INFOGAIN_LOSS,
	"innerproduct":              caffepb.V1LayerParameter_INNER_PRODUCT,
	"lrn":                       caffepb.V1LayerParameter_LRN,
	"multinomial_logistic_loss": caffepb.V1LayerParameter_MULTINOMIAL_LOGISTIC_LOSS,
	"pool":                      caffepb.V1LayerParameter_POOLING,
	"relu":                      caffepb.V1LayerParameter_RELU,
	"sigmoid":                   caffepb.V1LayerParameter_SIGMOID,
	"softmax":                   caffepb.V1LayerParameter_SOFTMAX,
	"softmax_loss":              caffepb.V1LayerParameter_SOFTMAX_LOSS,
	"split":                     caffepb.V1LayerParameter_SPLIT,
	"tanh":                      caffepb.V1LayerParameter_TANH,
	"window_data":               caffepb.V1LayerParameter_WINDOW_DATA,
}

// upgradeV0Net replaces each V0 layer (a V1LayerParameter whose `layer`
// holds a V0LayerParameter) by an equivalent V1 layer. A V0 "padding"
// layer is dropped and its pad moved into the conv or pool layer that
// reads its output, which then reads the padding layer's input instead.
// It returns the number of padding layers folded.
func upgradeV0Net(p *caffepb.NetParameter, file string) (int, error) {
	lastTop := map[string]int{} // blob name -> index in p.Layers of its last producer, -1 for net inputs
	for _, in := range p.GetInput() {
		lastTop[in] = -1
	}
	var out []*caffepb.V1LayerParameter
	folded := 0
	for i, conn := range p.GetLayers() {
		v0 := conn.GetLayer()
		if v0.GetType() != "padding" {
			out = append(out, proto.Clone(conn).(*caffepb.V1LayerParameter))
		} else {
			folded++
		}
		for j, bottom := range conn.GetBottom() {
			src, ok := lastTop[bottom]
			if !ok {
				loc := NoLocation(file)
				loc.Layer = v0.GetName()
				return 0, &FormatError{Location: loc, Msg: fmt.Sprintf("bottom %q is produced by no earlier layer and is not a net input", bottom)}
			}
			if src < 0 || p.Layers[src].GetLayer().GetType() != "padding" {
				continue
			}
			pad := p.Layers[src]
			if t := v0.GetType(); t != "conv" && t != "pool" || len(conn.GetBottom()) != 1 || len(pad.GetBottom()) != 1 || len(pad.GetTop()) != 1 {
				loc := NoLocation(file)
				loc.Layer = v0.GetName()
				return 0, &UnsupportedError{Location: loc, What: fmt.Sprintf("V0 padding layer %q feeding a %q layer", pad.GetLayer().GetName(), t),
					Hint: "Caffe folds padding layers only into a single-input conv or pool layer; move the pad into that layer by hand"}
			}
			last := out[len(out)-1]
			last.Layer.Pad = proto.Uint32(pad.GetLayer().GetPad())
			last.Bottom[j] = pad.GetBottom()[0]
		}
		for _, top := range conn.GetTop() {
			lastTop[top] = i
		}
	}

	upgraded := make([]*caffepb.V1LayerParameter, len(out))
	for i, conn := range out {
		l, err := upgradeV0Layer(conn, file)
		if err != nil {
			return 0, err
		}
		upgraded[i] = l
	}
	p.Layers = upgraded
	return folded, nil
}

// upgradeV0Layer converts one V0 layer; fields that do not apply to the
// layer's type are an error, as in Caffe.
func upgradeV0Layer(conn *caffepb.V1LayerParameter, file string) (*caffepb.V1LayerParameter, error) {
	v0 := conn.GetLayer()
	l := &caffepb.V1LayerParameter{Bottom: conn.GetBottom(), Top: conn.GetTop()}
	typ := v0.GetType()
	loc := NoLocation(file)
	loc.Layer = v0.GetName()
	misplaced := func(field string) error {
		return &FormatError{Location: loc, Msg: fmt.Sprintf("V0 field %s does not apply to layer type %q", field, typ), Hint: "remove the field or fix the layer type"}
	}
	if v0.Name != nil {
		l.Name = v0.Name
	}
	if v0.Type != nil {
		t, ok := v0LayerTypes[typ]
		if !ok {
			return nil, &UnsupportedError{Location: loc, What: fmt.Sprintf("V0 layer type %q", typ), Hint: "Caffe's V0 format has no such type; check the spelling"}
		}
		l.Type = t.Enum()
	}
	l.Blobs = v0.GetBlobs()
	l.BlobsLr = v0.GetBlobsLr()
	l.WeightDecay = v0.GetWeightDecay()

	conv := func() *caffepb.ConvolutionParameter {
		if l.ConvolutionParam == nil {
			l.ConvolutionParam = &caffepb.ConvolutionParameter{}
		}
		return l.ConvolutionParam
	}
	ip := func() *caffepb.InnerProductParameter {
		if l.InnerProductParam == nil {
			l.InnerProductParam = &caffepb.InnerProductParameter{}
		}
		return l.InnerProductParam
	}
	pool := func() *caffepb.PoolingParameter {
		if l.PoolingParam == nil {
			l.PoolingParam = &caffepb.PoolingParameter{}
		}
		return l.PoolingParam
	}
	lrn := func() *caffepb.LRNParameter {
		if l.LrnParam == nil {
			l.LrnParam = &caffepb.LRNParameter{}
		}
		return l.LrnParam
	}
	transform := func() *caffepb.TransformationParameter {
		if l.TransformParam == nil {
			l.TransformParam = &caffepb.TransformationParameter{}
		}
		return l.TransformParam
	}
	data := func() *caffepb.DataParameter {
		if l.DataParam == nil {
			l.DataParam = &caffepb.DataParameter{}
		}
		return l.DataParam
	}
	images := func() *caffepb.ImageDataParameter {
		if l.ImageDataParam == nil {
			l.ImageDataParam = &caffepb.ImageDataParameter{}
		}
		return l.ImageDataParam
	}
	window := func() *caffepb.WindowDataParameter {
		if l.WindowDataParam == nil {
			l.WindowDataParam = &caffepb.WindowDataParameter{}
		}
		return l.WindowDataParam
	}
	hdf5 := func() *caffepb.HDF5DataParameter {
		if l.Hdf5DataParam == nil {
			l.Hdf5DataParam = &caffepb.HDF5DataParameter{}
		}
		return l.Hdf5DataParam
	}

	if v0.NumOutput != nil {
		switch typ {
		case "conv":
			conv().NumOutput = v0.NumOutput
		case "innerproduct":
			ip().NumOutput = v0.NumOutput
		default:
			return nil, misplaced("num_output")
		}
	}
	if v0.Biasterm != nil {
		switch typ {
		case "conv":
			conv().BiasTerm = v0.Biasterm
		case "innerproduct":
			ip().BiasTerm = v0.Biasterm
		default:
			return nil, misplaced("biasterm")
		}
	}
	if v0.WeightFiller != nil {
		switch typ {
		case "conv":
			conv().WeightFiller = v0.WeightFiller
		case "innerproduct":
			ip().WeightFiller = v0.WeightFiller
		default:
			return nil, misplaced("weight_filler")
		}
	}
	if v0.BiasFiller != nil {
		switch typ {
		case "conv":
			conv().BiasFiller = v0.BiasFiller
		case "innerproduct":
			ip().BiasFiller = v0.BiasFiller
		default:
			return nil, misplaced("bias_filler")
		}
	}
	if v0.Pad != nil {
		switch typ {
		case "conv":
			conv().Pad = append(conv().Pad, v0.GetPad())
		case "pool":
			pool().Pad = proto.Uint32(v0.GetPad())
		default:
			return nil, misplaced("pad")
		}
	}
	if v0.Kernelsize != nil {
		switch typ {
		case "conv":
			conv().KernelSize = append(conv().KernelSize, v0.GetKernelsize())
		case "pool":
			pool().KernelSize = proto.Uint32(v0.GetKernelsize())
		default:
			return nil, misplaced("kernelsize")
		}
	}
	if v0.Group != nil {
		if typ != "conv" {
			return nil, misplaced("group")
		}
		conv().Group = v0.Group
	}
	if v0.Stride != nil {
		switch typ {
		case "conv":
			conv().Stride = append(conv().Stride, v0.GetStride())
		case "pool":
			pool().Stride = proto.Uint32(v0.GetStride())
		default:
			return nil, misplaced("stride")
		}
	}
	if v0.Pool != nil {
		if typ != "pool" {
			return nil, misplaced("pool")
		}
		var m caffepb.PoolingParameter_PoolMethod
		switch v0.GetPool() {
		case caffepb.V0LayerParameter_MAX:
			m = caffepb.PoolingParameter_MAX
		case caffepb.V0LayerParameter_AVE:
			m = caffepb.PoolingParameter_AVE
		case caffepb.V0LayerParameter_STOCHASTIC:
			m = caffepb.PoolingParameter_STOCHASTIC
		default:
			return nil, &FormatError{Location: loc, Msg: fmt.Sprintf("unknown V0 pool method %d", v0.GetPool())}
		}
		pool().Pool = m.Enum()
	}
	if v0.DropoutRatio != nil {
		if typ != "dropout" {
			return nil, misplaced("dropout_ratio")
		}
		l.DropoutParam = &caffepb.DropoutParameter{DropoutRatio: v0.DropoutRatio}
	}
	if v0.LocalSize != nil {
		if typ != "lrn" {
			return nil, misplaced("local_size")
		}
		lrn().LocalSize = v0.LocalSize
	}
	if v0.Alpha != nil {
		if typ != "lrn" {
			return nil, misplaced("alpha")
		}
		lrn().Alpha = v0.Alpha
	}
	if v0.Beta != nil {
		if typ != "lrn" {
			return nil, misplaced("beta")
		}
		lrn().Beta = v0.Beta
	}
	if v0.K != nil {
		if typ != "lrn" {
			return nil, misplaced("k")
		}
		lrn().K = v0.K
	}
	if v0.Source != nil {
		switch typ {
		case "data":
			data().Source = v0.Source
		case "hdf5_data":
			hdf5().Source = v0.Source
		case "images":
			images().Source = v0.Source
		case "window_data":
			window().Source = v0.Source
		case "infogain_loss":
			l.InfogainLossParam = &caffepb.InfogainLossParameter{Source: v0.Source}
		default:
			return nil, misplaced("source")
		}
	}
	if v0.Scale != nil {
		transform().Scale = v0.Scale
	}
	if v0.Meanfile != nil {
		transform().MeanFile = v0.Meanfile
	}
	if v0.Batchsize != nil {
		switch typ {
		case "data":
			data().BatchSize = v0.Batchsize
		case "hdf5_data":
			hdf5().BatchSize = v0.Batchsize
		case "images":
			images().BatchSize = v0.Batchsize
		case "window_data":
			window().BatchSize = v0.Batchsize
		default:
			return nil, misplaced("batchsize")
		}
	}
	if v0.Cropsize != nil {
		transform().CropSize = v0.Cropsize
	}
	if v0.Mirror != nil {
		transform().Mirror = v0.Mirror
	}
	if v0.RandSkip != nil {
		switch typ {
		case "data":
			data().RandSkip = v0.RandSkip
		case "images":
			images().RandSkip = v0.RandSkip
		default:
			return nil, misplaced("rand_skip")
		}
	}
	if v0.ShuffleImages != nil {
		if typ != "images" {
			return nil, misplaced("shuffle_images")
		}
		images().Shuffle = v0.ShuffleImages
	}
	if v0.NewHeight != nil {
		if typ != "images" {
			return nil, misplaced("new_height")
		}
		images().NewHeight = proto.Uint32(uint32(v0.GetNewHeight()))
	}
	if v0.NewWidth != nil {
		if typ != "images" {
			return nil, misplaced("new_width")
		}
		images().NewWidth = proto.Uint32(uint32(v0.GetNewWidth()))
	}
	if v0.ConcatDim != nil {
		if typ != "concat" {
			return nil, misplaced("concat_dim")
		}
		l.ConcatParam = &caffepb.ConcatParameter{ConcatDim: v0.ConcatDim}
	}
	if v0.DetFgThreshold != nil {
		if typ != "window_data" {
			return nil, misplaced("det_fg_threshold")
		}
		window().FgThreshold = v0.DetFgThreshold
	}
	if v0.DetBgThreshold != nil {
		if typ != "window_data" {
			return nil, misplaced("det_bg_threshold")
		}
		window().BgThreshold = v0.DetBgThreshold
	}
	if v0.DetFgFraction != nil {
		if typ != "window_data" {
			return nil, misplaced("det_fg_fraction")
		}
		window().FgFraction = v0.DetFgFraction
	}
	if v0.DetContextPad != nil {
		if typ != "window_data" {
			return nil, misplaced("det_context_pad")
		}
		window().ContextPad = v0.DetContextPad
	}
	if v0.DetCropMode != nil {
		if typ != "window_data" {
			return nil, misplaced("det_crop_mode")
		}
		window().CropMode = v0.DetCropMode
	}
	if v0.Hdf5OutputParam != nil {
		if typ != "hdf5_output" {
			return nil, misplaced("hdf5_output_param")
		}
		l.Hdf5OutputParam = v0.Hdf5OutputParam
	}
	// Fields the text reader kept because the schema lacks them travel on.
	l.ProtoReflect().SetUnknown(keptFields(v0.ProtoReflect().GetUnknown()))
	return l, nil
}

// upgradeDataTransformation moves the V1 data layers' scale, mean_file,
// crop_size and mirror into transform_param, and returns how many layers
// changed.
func upgradeDataTransformation(p *caffepb.NetParameter) int {
	changed := 0
	for _, l := range p.GetLayers() {
		var params protoreflect.Message
		switch l.GetType() {
		case caffepb.V1LayerParameter_DATA:
			params = l.GetDataParam().ProtoReflect()
		case caffepb.V1LayerParameter_IMAGE_DATA:
			params = l.GetImageDataParam().ProtoReflect()
		case caffepb.V1LayerParameter_WINDOW_DATA:
			params = l.GetWindowDataParam().ProtoReflect()
		default:
			continue
		}
		if !params.IsValid() {
			continue
		}
		moved := false
		for _, name := range []protoreflect.Name{"scale", "mean_file", "crop_size", "mirror"} {
			fd := params.Descriptor().Fields().ByName(name)
			if fd == nil || !params.Has(fd) {
				continue
			}
			if l.TransformParam == nil {
				l.TransformParam = &caffepb.TransformationParameter{}
			}
			tm := l.TransformParam.ProtoReflect()
			tm.Set(tm.Descriptor().Fields().ByName(name), params.Get(fd))
			params.Clear(fd)
			moved = true
		}
		if moved {
			changed++
		}
	}
	return changed
}

type lostField struct{ layer, msg string }

// upgradeV1Net converts p.Layers to current layers, merged with the
// existing p.Layer entries in declaration order. Fields with the same name
// and type in both layer messages (bottom, top, include, exclude, blobs,
// loss_weight and every *_param) are copied as they are; type, param,
// blob_share_mode, blobs_lr and weight_decay are converted as Caffe does.
func upgradeV1Net(p *caffepb.NetParameter, order []protowire.Number) []lostField {
	var lost []lostField
	converted := make([]*caffepb.LayerParameter, len(p.Layers))
	for i, v1 := range p.Layers {
		var l []lostField
		converted[i], l = upgradeV1Layer(v1)
		lost = append(lost, l...)
	}
	current := p.Layer
	merged := make([]*caffepb.LayerParameter, 0, len(current)+len(converted))
	ci, vi := 0, 0
	for _, num := range order {
		switch {
		case num == netLayerNumber && ci < len(current):
			merged = append(merged, current[ci])
			ci++
		case num == netLayersNumber && vi < len(converted):
			merged = append(merged, converted[vi])
			vi++
		}
	}
	merged = append(merged, current[ci:]...)
	merged = append(merged, converted[vi:]...)
	p.Layer = merged
	p.Layers = nil
	return lost
}

// v1TypeNames gives the current type string of each V1 enum value.
var v1TypeNames = map[caffepb.V1LayerParameter_LayerType]string{
	caffepb.V1LayerParameter_NONE:                       "",
	caffepb.V1LayerParameter_ABSVAL:                     "AbsVal",
	caffepb.V1LayerParameter_ACCURACY:                   "Accuracy",
	caffepb.V1LayerParameter_ARGMAX:                     "ArgMax",
	caffepb.V1LayerParameter_BNLL:                       "BNLL",
	caffepb.V1LayerParameter_CONCAT:                     "Concat",
	caffepb.V1LayerParameter_CONTRASTIVE_LOSS:           "ContrastiveLoss",
	caffepb.V1LayerParameter_CONVOLUTION:                "Convolution",
	caffepb.V1LayerParameter_DECONVOLUTION:              "Deconvolution",
	caffepb.V1LayerParameter_DATA:                       "Data",
	caffepb.V1LayerParameter_DROPOUT:                    "Dropout",
	caffepb.V1LayerParameter_DUMMY_DATA:                 "DummyData",
	caffepb.V1LayerParameter_EUCLIDEAN_LOSS:             "EuclideanLoss",
	caffepb.V1LayerParameter_ELTWISE:                    "Eltwise",
	caffepb.V1LayerParameter_EXP:                        "Exp",
	caffepb.V1LayerParameter_FLATTEN:                    "Flatten",
	caffepb.V1LayerParameter_HDF5_DATA:                  "HDF5Data",
	caffepb.V1LayerParameter_HDF5_OUTPUT:                "HDF5Output",
	caffepb.V1LayerParameter_HINGE_LOSS:                 "HingeLoss",
	caffepb.V1LayerParameter_IM2COL:                     "Im2col",
	caffepb.V1LayerParameter_IMAGE_DATA:                 "ImageData",
	caffepb.V1LayerParameter_INFOGAIN_LOSS:              "InfogainLoss",
	caffepb.V1LayerParameter_INNER_PRODUCT:              "InnerProduct",
	caffepb.V1LayerParameter_LRN:                        "LRN",
	caffepb.V1LayerParameter_MEMORY_DATA:                "MemoryData",
	caffepb.V1LayerParameter_MULTINOMIAL_LOGISTIC_LOSS:  "MultinomialLogisticLoss",
	caffepb.V1LayerParameter_MVN:                        "MVN",
	caffepb.V1LayerParameter_POOLING:                    "Pooling",
	caffepb.V1LayerParameter_POWER:                      "Power",
	caffepb.V1LayerParameter_RELU:                       "ReLU",
	caffepb.V1LayerParameter_SIGMOID:                    "Sigmoid",
	caffepb.V1LayerParameter_SIGMOID_CROSS_ENTROPY_LOSS: "SigmoidCrossEntropyLoss",
	caffepb.V1LayerParameter_SILENCE:                    "Silence",
	caffepb.V1LayerParameter_SOFTMAX:                    "Softmax",
	caffepb.V1LayerParameter_SOFTMAX_LOSS:               "SoftmaxWithLoss",
	caffepb.V1LayerParameter_SPLIT:                      "Split",
	caffepb.V1LayerParameter_SLICE:                      "Slice",
	caffepb.V1LayerParameter_TANH:                       "TanH",
	caffepb.V1LayerParameter_WINDOW_DATA:                "WindowData",
	caffepb.V1LayerParameter_THRESHOLD:                  "Threshold",
}

func upgradeV1Layer(v1 *caffepb.V1LayerParameter) (*caffepb.LayerParameter, []lostField) {
	var lost []lostField
	l := &caffepb.LayerParameter{}
	src, dst := v1.ProtoReflect(), l.ProtoReflect()
	special := map[protoreflect.Name]bool{"type": true, "param": true, "blob_share_mode": true, "blobs_lr": true, "weight_decay": true, "layer": true}
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if special[fd.Name()] {
			return true
		}
		to := dst.Descriptor().Fields().ByName(fd.Name())
		if to == nil || to.Kind() != fd.Kind() || to.Cardinality() != fd.Cardinality() ||
			fd.Message() != nil && to.Message().FullName() != fd.Message().FullName() {
			lost = append(lost, lostField{v1.GetName(), fmt.Sprintf("V1 field %s has no counterpart in the current format and was dropped", fd.Name())})
			return true
		}
		dst.Set(to, v) // the V1 message is discarded after the upgrade, so sharing values is safe
		return true
	})

	if v1.Type != nil {
		name, ok := v1TypeNames[v1.GetType()]
		if !ok {
			name = v1.GetType().String()
			lost = append(lost, lostField{v1.GetName(), fmt.Sprintf("V1 layer type %s has no current name; kept as %q", name, name)})
		}
		l.Type = proto.String(name)
	}
	growParams := func(n int) {
		for len(l.Param) < n {
			l.Param = append(l.Param, &caffepb.ParamSpec{})
		}
	}
	for i, name := range v1.GetParam() {
		growParams(i + 1)
		l.Param[i].Name = proto.String(name)
	}
	for i, mode := range v1.GetBlobShareMode() {
		growParams(i + 1)
		m := caffepb.ParamSpec_STRICT
		if mode == caffepb.V1LayerParameter_PERMISSIVE {
			m = caffepb.ParamSpec_PERMISSIVE
		}
		l.Param[i].ShareMode = m.Enum()
	}
	for i, lr := range v1.GetBlobsLr() {
		growParams(i + 1)
		l.Param[i].LrMult = proto.Float32(lr)
	}
	for i, decay := range v1.GetWeightDecay() {
		growParams(i + 1)
		l.Param[i].DecayMult = proto.Float32(decay)
	}
	if v1.GetLayer() != nil {
		lost = append(lost, lostField{v1.GetName(), "a nested V0 layer inside an upgraded V1 layer was dropped, as Caffe does"})
	}
	raw := src.GetUnknown()
	kept := keptFields(raw)
	if len(kept) != len(raw) {
		lost = append(lost, lostField{v1.GetName(), "binary fields unknown to the V1 schema have no defined meaning in the current format and were dropped"})
	}
	lost = append(lost, redecodeKept(l, kept)...)
	return l, lost
}

// redecodeKept reads the fields that the text reader kept for a V1 layer
// into the current layer l: a name the V1 schema lacked may be a field of
// the current one. An unknown V1 type (a fork's enum value) becomes the
// type string of the same spelling.
func redecodeKept(l *caffepb.LayerParameter, kept []byte) []lostField {
	var lost []lostField
	for len(kept) > 0 {
		_, _, n := protowire.ConsumeField(kept)
		_, _, tagLen := protowire.ConsumeTag(kept)
		text, _ := protowire.ConsumeString(kept[tagLen:n])
		kept = kept[n:]
		tree, err := parseText(text, "")
		if err != nil || len(tree.fields) != 1 {
			continue
		}
		f := tree.fields[0]
		if f.name == "type" && len(f.values) == 1 && f.values[0].kind == textIdent {
			l.Type = proto.String(f.values[0].raw)
			lost = append(lost, lostField{l.GetName(), fmt.Sprintf("V1 layer type %s is not in the schema; kept as type %q", f.values[0].raw, f.values[0].raw)})
			continue
		}
		d := &textDecoder{}
		if err := d.decodeMessage(l.ProtoReflect(), tree, l.GetName()); err != nil {
			lost = append(lost, lostField{l.GetName(), fmt.Sprintf("V1 field %q cannot be expressed in the current format and was dropped: %v", f.name, err)})
		}
	}
	return lost
}

// keptFields returns the fields of raw that the text reader kept
// (textKeepNumber), dropping other unknown fields.
func keptFields(raw []byte) []byte {
	var out []byte
	for len(raw) > 0 {
		num, _, n := protowire.ConsumeField(raw)
		if n < 0 {
			break
		}
		if num == textKeepNumber {
			out = append(out, raw[:n]...)
		}
		raw = raw[n:]
	}
	return out
}

// upgradeNetInput turns the net-level input, input_dim and input_shape
// fields into one Input layer named "input" placed first, as Caffe does.
// Input names without sizes are left as they are.
func upgradeNetInput(p *caffepb.NetParameter, file string) (string, error) {
	inputs, dims, shapes := p.GetInput(), p.GetInputDim(), p.GetInputShape()
	if len(dims) == 0 && len(shapes) == 0 {
		// Caffe drops such names, which old caffemodels carry; a net that
		// reads them would then lose its input, so they stay.
		return "", nil
	}
	p.Input, p.InputDim, p.InputShape = nil, nil, nil
	layer := &caffepb.LayerParameter{Name: proto.String("input"), Type: proto.String("Input"), InputParam: &caffepb.InputParameter{}}
	for i, name := range inputs {
		layer.Top = append(layer.Top, name)
		switch {
		case len(shapes) > 0:
			if i >= len(shapes) {
				return "", &FormatError{Location: NoLocation(file), Msg: fmt.Sprintf("%d inputs but %d input_shape entries", len(inputs), len(shapes)), Hint: "give one input_shape per input"}
			}
			layer.InputParam.Shape = append(layer.InputParam.Shape, shapes[i])
		default:
			if len(dims) < 4*(i+1) {
				return "", &FormatError{Location: NoLocation(file), Msg: fmt.Sprintf("%d inputs but %d input_dim values", len(inputs), len(dims)), Hint: "give four input_dim values (N, C, H, W) per input"}
			}
			shape := &caffepb.BlobShape{}
			for _, d := range dims[4*i : 4*i+4] {
				shape.Dim = append(shape.Dim, int64(d))
			}
			layer.InputParam.Shape = append(layer.InputParam.Shape, shape)
		}
	}
	p.Layer = append([]*caffepb.LayerParameter{layer}, p.Layer...)
	form := "input_dim"
	if len(shapes) > 0 {
		form = "input_shape"
	}
	return fmt.Sprintf("net-level input + %s upgraded to an Input layer named \"input\" with tops %v", form, inputs), nil
}

// upgradeBatchNorm zeroes lr_mult and decay_mult of BatchNorm layers that
// still declare three param entries, the definition Caffe used before
// BatchNorm fixed its own multipliers; it returns the count changed.
func upgradeBatchNorm(p *caffepb.NetParameter) int {
	n := 0
	for _, l := range p.GetLayer() {
		if l.GetType() != "BatchNorm" || len(l.GetParam()) != 3 {
			continue
		}
		changed := false
		for _, ps := range l.Param {
			if ps.GetLrMult() != 0 || ps.GetDecayMult() != 0 || ps.LrMult == nil || ps.DecayMult == nil {
				changed = true
			}
			ps.LrMult, ps.DecayMult = proto.Float32(0), proto.Float32(0)
		}
		if changed {
			n++
		}
	}
	return n
}
