package caffe

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
)

// shallowCopy returns a new message of src's type whose fields share
// src's values (lists, messages and byte slices are aliased, not copied).
// Callers replace the fields they change and leave shared ones alone.
func shallowCopy[M proto.Message](src M) M {
	from := src.ProtoReflect()
	to := from.New()
	from.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		to.Set(fd, v)
		return true
	})
	to.SetUnknown(from.GetUnknown())
	return to.Interface().(M)
}

// shallowNet returns a copy of p with its own Layer slice; the layers and
// all other fields are shared with p.
func shallowNet(p *caffepb.NetParameter) *caffepb.NetParameter {
	out := shallowCopy(p)
	out.Layer = append([]*caffepb.LayerParameter(nil), p.GetLayer()...)
	return out
}

// shallowLayer returns a copy of l sharing all field values with l.
func shallowLayer(l *caffepb.LayerParameter) *caffepb.LayerParameter { return shallowCopy(l) }

// CloneNet returns a deep copy of net that shares the weight values
// (BlobProto.Data) with net but nothing else, so surgery can change
// structure and replace blobs without touching the original. Changing a
// value inside a shared Data slice changes both nets; replace the slice
// instead.
func CloneNet(net *Net) *Net {
	out := &Net{Source: net.Source, Encoding: net.Encoding, Generation: net.Generation}
	out.Notes = append([]Note(nil), net.Notes...)
	p := shallowCopy(net.Param)
	p.Layer = make([]*caffepb.LayerParameter, len(net.Param.GetLayer()))
	for i, l := range net.Param.GetLayer() {
		blobs := l.GetBlobs()
		c := shallowLayer(l)
		c.Blobs = nil
		c = proto.Clone(c).(*caffepb.LayerParameter)
		for _, b := range blobs {
			data, diff := b.Data, b.Diff
			nb := shallowCopy(b)
			nb.Data, nb.Diff = nil, nil
			nb = proto.Clone(nb).(*caffepb.BlobProto)
			nb.Data, nb.Diff = data, diff
			c.Blobs = append(c.Blobs, nb)
		}
		p.Layer[i] = c
	}
	p.Layers = nil
	rest := shallowCopy(p)
	rest.Layer = nil
	rest = proto.Clone(rest).(*caffepb.NetParameter)
	rest.Layer = p.Layer
	out.Param = rest
	return out
}
