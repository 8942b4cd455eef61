package caffe

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/internal/atomicfile"
)

// WriteOptions configures writing a net. The zero value chooses the
// encoding from the file name and refuses to replace the net's source.
type WriteOptions struct {
	// Encoding forces text or binary; 0 chooses by extension: .prototxt,
	// .pbtxt and .txt are text, everything else is binary.
	Encoding Encoding

	// ReplaceSource allows writing over the file the net was read from.
	ReplaceSource bool

	// NoWeights writes the structure only: layer blobs are left out.
	NoWeights bool
}

// EncodingForPath returns the encoding WriteFile uses for path.
func EncodingForPath(path string) Encoding {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".prototxt", ".pbtxt", ".txt", ".pt":
		return Text
	}
	return Binary
}

// WriteFile writes net to path atomically: to a temporary file beside
// it, renamed over path only when complete.
func (o WriteOptions) WriteFile(net *Net, path string) error {
	if !o.ReplaceSource && net.Source != "" && atomicfile.Same(net.Source, path) {
		return fmt.Errorf("caffe: refusing to overwrite the input %s; write to another path", path)
	}
	enc := o.Encoding
	if enc == 0 {
		enc = EncodingForPath(path)
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		return o.write(w, net.Param, enc)
	})
}

// Write writes net to w in the given encoding (Text when enc is 0).
func (o WriteOptions) Write(w io.Writer, net *Net) error {
	enc := o.Encoding
	if enc == 0 {
		enc = Text
	}
	return o.write(w, net.Param, enc)
}

func (o WriteOptions) write(w io.Writer, p *caffepb.NetParameter, enc Encoding) error {
	if len(p.GetLayers()) > 0 {
		return fmt.Errorf("caffe: the net still has V1 layers; read it with ReadFile or Read, which upgrade them")
	}
	if o.NoWeights || enc == Text {
		p = withoutBlobs(p)
	}
	if enc == Text {
		return encodeText(w, p.ProtoReflect())
	}
	if hasKeptText(p.ProtoReflect()) {
		// Fields kept from a text file have no wire meaning: write a copy
		// without them. The copy shares the weight values.
		p = CloneNet(&Net{Param: p}).Param
		dropKeptText(p.ProtoReflect())
	}
	return encodeBinary(w, p)
}

// withoutBlobs returns a shallow copy of p whose layers carry no blobs;
// p is not changed.
func withoutBlobs(p *caffepb.NetParameter) *caffepb.NetParameter {
	out := shallowNet(p)
	for i, l := range p.GetLayer() {
		if len(l.GetBlobs()) == 0 {
			continue
		}
		c := shallowLayer(l)
		c.Blobs = nil
		out.Layer[i] = c
	}
	return out
}
