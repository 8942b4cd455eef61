package caffe

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
)

// ReadOptions configures reading a net. The zero value reads everything,
// weights included, and names a reader's input "-" in messages.
type ReadOptions struct {
	// Name is used for the input in errors and notes when reading from an
	// io.Reader; ReadFile uses the path. Empty means "-".
	Name string

	// StructureOnly skips the values of weight blobs in binary files
	// without decoding them; blob shapes are still read. Blobs then have
	// a shape and no Data, and such a net cannot be written as binary.
	StructureOnly bool
}

// hdf5Signature starts every HDF5 file, including Caffe's HDF5 snapshots.
var hdf5Signature = []byte("\x89HDF\r\n\x1a\n")

// ReadFile reads a net, text or binary, from path with default options.
func ReadFile(path string) (*Net, error) { return ReadOptions{}.ReadFile(path) }

// Read reads a net, text or binary, from r with default options.
func Read(r io.Reader) (*Net, error) { return ReadOptions{}.Read(r) }

// ReadFile reads a net from path. See Read.
func (o ReadOptions) ReadFile(path string) (*Net, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("caffe: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("caffe: %w", err)
	}
	if st.IsDir() {
		return nil, &FormatError{Location: NoLocation(path), Msg: "is a directory", Hint: "give the path of a .prototxt or .caffemodel file"}
	}
	o.Name = path
	size := int64(-1)
	if st.Mode().IsRegular() {
		size = st.Size()
	}
	return o.read(f, size)
}

// Read reads a net from r. It detects text or binary by content, not by
// name: binary protobuf starts with field tags and length bytes that are
// not printable text. Old formats (V0, V1, net-level input fields) are
// upgraded to the current one with a note per step. Fields and values the
// schema lacks are kept and noted.
//
// Errors are *FormatError for malformed input and *UnsupportedError for
// valid input this package cannot read (such as HDF5 weights).
func (o ReadOptions) Read(r io.Reader) (*Net, error) {
	if o.Name == "" {
		o.Name = "-"
	}
	size := int64(-1)
	if s, ok := r.(interface{ Stat() (os.FileInfo, error) }); ok {
		if st, err := s.Stat(); err == nil && st.Mode().IsRegular() {
			size = st.Size()
		}
	}
	return o.read(r, size)
}

func (o ReadOptions) read(r io.Reader, size int64) (*Net, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(4096)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("caffe: reading %s: %w", o.Name, err)
	}
	if len(head) == 0 {
		return nil, &FormatError{Location: NoLocation(o.Name), Msg: "the file is empty", Hint: "check that the download or copy finished"}
	}
	if bytes.HasPrefix(head, hdf5Signature) {
		return nil, &UnsupportedError{Location: NoLocation(o.Name), What: "HDF5 weights file (a Caffe snapshot saved with snapshot_format: HDF5)",
			Hint: "load it in Caffe and save it again as a binary proto caffemodel"}
	}

	net := &Net{Source: o.Name}
	var order []protowire.Number
	if looksLikeText(head) {
		net.Encoding = Text
		var notes []Note
		net.Param, order, notes, err = decodeTextNet(br, o.Name)
		net.Notes = append(net.Notes, notes...)
	} else {
		net.Encoding = Binary
		// bufio.Reader does not pass Seek through; wrap so that skipping
		// weights can still seek the underlying file.
		var notes []Note
		net.Param, order, notes, err = decodeBinary(&peekedReader{br: br, under: r}, size, o.Name, o.StructureOnly)
		net.Notes = append(net.Notes, notes...)
	}
	if err != nil {
		return nil, err
	}

	gen, notes, err := upgradeNet(net.Param, order, o.Name)
	if err != nil {
		return nil, err
	}
	net.Generation = gen
	net.Notes = append(net.Notes, notes...)
	if net.Encoding == Binary {
		net.Notes = append(net.Notes, binaryUnknownNotes(net)...)
	}
	return net, nil
}

// looksLikeText reports whether head is the start of a text file: valid
// UTF-8 (allowing a rune cut at the end) with no control bytes other than
// white space. A binary NetParameter starts with a field tag and a length
// byte, which is a control byte for every name shorter than 32 bytes and
// is followed by non-ASCII tags soon after.
func looksLikeText(head []byte) bool {
	for i := 0; i < len(head); {
		c := head[i]
		if c < 0x80 {
			if c < ' ' && c != '\n' && c != '\r' && c != '\t' && c != '\f' && c != '\v' || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(head[i:])
		if r == utf8.RuneError && n <= 1 {
			return len(head)-i < utf8.UTFMax && !utf8.FullRune(head[i:])
		}
		i += n
	}
	return true
}

// peekedReader reads through the buffered reader that sniffed the input,
// and seeks the underlying reader when it can and the buffer is drained.
type peekedReader struct {
	br    *bufio.Reader
	under io.Reader
}

func (p *peekedReader) Read(b []byte) (int, error) { return p.br.Read(b) }

// Seek supports only relative forward seeks (whence io.SeekCurrent), the
// one use decodeBinary has for it, so skipped weights are never read.
func (p *peekedReader) Seek(offset int64, whence int) (int64, error) {
	if whence != io.SeekCurrent || offset < 0 {
		return 0, errors.New("caffe: peekedReader seeks only forward from the current position")
	}
	if n := int64(p.br.Buffered()); offset <= n {
		_, err := p.br.Discard(int(offset))
		return 0, err
	}
	s, ok := p.under.(io.Seeker)
	if !ok {
		_, err := io.CopyN(io.Discard, p.br, offset)
		return 0, err
	}
	buffered := int64(p.br.Buffered())
	if _, err := p.br.Discard(int(buffered)); err != nil {
		return 0, err
	}
	pos, err := s.Seek(offset-buffered, io.SeekCurrent)
	p.br.Reset(p.under)
	return pos, err
}

// decodeTextNet parses a text NetParameter and returns it with the order
// of its layer entries.
func decodeTextNet(r io.Reader, name string) (*caffepb.NetParameter, []protowire.Number, []Note, error) {
	src, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("caffe: reading %s: %w", name, err)
	}
	tree, err := parseText(string(src), name)
	if err != nil {
		return nil, nil, nil, err
	}
	var order []protowire.Number
	for _, f := range tree.fields {
		switch f.name {
		case "layer":
			order = append(order, netLayerNumber)
		case "layers":
			order = append(order, netLayersNumber)
		}
	}
	p := &caffepb.NetParameter{}
	d := &textDecoder{file: name}
	if err := d.decodeMessage(p.ProtoReflect(), tree, ""); err != nil {
		return nil, nil, nil, err
	}
	return p, order, d.notes, nil
}
