package caffe

import (
	"fmt"
	"slices"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
)

// AttachWeights returns a copy of net whose layers carry the blobs of the
// layers with the same name in weights, as Caffe's CopyTrainedLayersFrom
// matches them. Neither argument is changed; the blobs' values are shared.
//
// The notes list layers of net that have no weights, and layers of
// weights that net lacks (both normal: data layers have no weights, and a
// caffemodel saved from a training net has layers a deploy net drops).
// A blob count or shape that disagrees with the layer's parameters is an
// error naming the layer, as it is in Caffe.
func AttachWeights(net, weights *Net) (*Net, []Note, error) {
	out := CloneNet(net)
	byName := map[string]*caffepb.LayerParameter{}
	for _, l := range weights.Param.GetLayer() {
		if len(l.GetBlobs()) > 0 {
			byName[l.GetName()] = l
		}
	}
	used := map[string]bool{}
	var notes []Note
	for _, l := range out.Param.GetLayer() {
		src, ok := byName[l.GetName()]
		if !ok {
			if len(l.GetBlobs()) == 0 && expectedBlobCount(l) > 0 {
				loc := NoLocation(net.Source)
				loc.Layer = l.GetName()
				notes = append(notes, Note{Location: loc, Kind: NoteMismatch, Message: fmt.Sprintf("%s layer has no weights in %s; it keeps what it had", l.GetType(), weights.Source)})
			}
			continue
		}
		used[l.GetName()] = true
		loc := NoLocation(weights.Source)
		loc.Layer = l.GetName()
		if err := checkLayerBlobs(l, src.GetBlobs(), loc); err != nil {
			return nil, nil, err
		}
		l.Blobs = src.GetBlobs()
	}
	for _, l := range weights.Param.GetLayer() {
		if len(l.GetBlobs()) > 0 && !used[l.GetName()] {
			loc := NoLocation(weights.Source)
			loc.Layer = l.GetName()
			notes = append(notes, Note{Location: loc, Kind: NoteMismatch, Message: fmt.Sprintf("%s layer with %d blobs matches no layer of %s and is ignored", l.GetType(), len(l.GetBlobs()), net.Source)})
		}
	}
	return out, notes, nil
}

// expectedBlobCount returns how many blobs a layer of a common type
// stores, or -1 when this package does not know the type's rule.
func expectedBlobCount(l *caffepb.LayerParameter) int {
	bias := func(b bool) int {
		if b {
			return 2
		}
		return 1
	}
	switch l.GetType() {
	case "Convolution", "Deconvolution", "DepthwiseConvolution", "ConvolutionDepthwise":
		return bias(l.GetConvolutionParam().GetBiasTerm())
	case "InnerProduct":
		return bias(l.GetInnerProductParam().GetBiasTerm())
	case "BatchNorm":
		return 3
	case "Scale":
		return bias(l.GetScaleParam().GetBiasTerm())
	case "PReLU":
		return 1
	}
	return -1
}

// checkLayerBlobs compares blobs with what l's parameters fix: the blob
// count, and for Convolution, Deconvolution and InnerProduct the output
// count and kernel size. Input channel counts need shape inference and
// are checked by the graph package.
func checkLayerBlobs(l *caffepb.LayerParameter, blobs []*caffepb.BlobProto, loc Location) error {
	fail := func(blob int, format string, args ...any) error {
		loc.Blob = blob
		return &FormatError{Location: loc, Msg: fmt.Sprintf(format, args...),
			Hint: "the weights belong to a different net; use the prototxt the caffemodel was trained with"}
	}
	if want := expectedBlobCount(l); want >= 0 && len(blobs) != want {
		return fail(-1, "%s layer needs %d blobs, the weights have %d", l.GetType(), want, len(blobs))
	}
	for i, b := range blobs {
		if len(b.Data) == 0 && len(b.DoubleData) == 0 && b.RawData == nil {
			continue // a structure-only read: shapes only, checked below
		}
		loc.Blob = i
		if err := CheckBlob(b, loc); err != nil {
			return err
		}
	}
	loc.Blob = -1
	switch l.GetType() {
	case "Convolution", "Deconvolution", "DepthwiseConvolution", "ConvolutionDepthwise":
		p := l.GetConvolutionParam()
		n := int(p.GetNumOutput())
		w := BlobShape(blobs[0])
		if len(w) < 3 {
			return fail(0, "weights of shape %v are not a filter bank", w)
		}
		outAxis := 0
		if l.GetType() == "Deconvolution" {
			outAxis = 1 // Deconvolution stores (input channels, outputs / group, kernel...)
			n /= max(int(p.GetGroup()), 1)
		}
		if w[outAxis] != n {
			return fail(0, "weights of shape %v do not have num_output %d on axis %d", w, p.GetNumOutput(), outAxis)
		}
		if k := kernelDims(p, len(w)-2); k != nil && !slices.Equal(w[2:], k) {
			return fail(0, "weights of shape %v do not match the kernel %v", w, k)
		}
		if len(blobs) > 1 {
			if c, _ := BlobCount(blobs[1]); c != int(p.GetNumOutput()) {
				return fail(1, "bias has %d values, num_output is %d", c, p.GetNumOutput())
			}
		}
	case "InnerProduct":
		p := l.GetInnerProductParam()
		w := trimLegacy(blobs[0])
		if len(w) != 2 {
			return fail(0, "weights of shape %v are not a matrix", BlobShape(blobs[0]))
		}
		axis := 0
		if p.GetTranspose() {
			axis = 1
		}
		if w[axis] != int(p.GetNumOutput()) {
			return fail(0, "weights of shape %v do not have num_output %d on axis %d", BlobShape(blobs[0]), p.GetNumOutput(), axis)
		}
		if len(blobs) > 1 {
			if c, _ := BlobCount(blobs[1]); c != int(p.GetNumOutput()) {
				return fail(1, "bias has %d values, num_output is %d", c, p.GetNumOutput())
			}
		}
	}
	return nil
}

// trimLegacy returns a blob's shape with the leading 1s of legacy 4-D
// dimensions removed: V1 files store an InnerProduct's N×K weights as
// 1×1×N×K and its bias as 1×1×1×N.
func trimLegacy(b *caffepb.BlobProto) []int {
	s := BlobShape(b)
	if b.GetShape() != nil {
		return s
	}
	for len(s) > 2 && s[0] == 1 {
		s = s[1:]
	}
	return s
}

// kernelDims returns the kernel size per spatial axis from kernel_size
// or kernel_h/kernel_w, or nil when it is not given.
func kernelDims(p *caffepb.ConvolutionParameter, axes int) []int {
	if p.KernelH != nil || p.KernelW != nil {
		return []int{int(p.GetKernelH()), int(p.GetKernelW())}
	}
	ks := p.GetKernelSize()
	switch {
	case len(ks) == 0:
		return nil
	case len(ks) == 1:
		out := make([]int, axes)
		for i := range out {
			out[i] = int(ks[0])
		}
		return out
	}
	out := make([]int, len(ks))
	for i, k := range ks {
		out[i] = int(k)
	}
	return out
}
