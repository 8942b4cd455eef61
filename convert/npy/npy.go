// Package npy reads and writes NumPy's .npy arrays and .npz archives of
// float32 data, the exchange format of `tlsurgery run` and `features`.
//
// An .npy file is the magic bytes "\x93NUMPY", a major and minor version
// byte, the header length (2 bytes little-endian in version 1.0, 4 bytes
// in 2.0 and 3.0), a header that is a Python dict literal with the keys
// 'descr', 'fortran_order' and 'shape', padded with spaces and a final
// newline so the data starts at a multiple of 64 bytes, and then the raw
// array data. An .npz file is a zip archive of .npy files, stored or
// deflated (numpy.savez and numpy.savez_compressed).
//
// Write always produces version 1.0 little-endian float32 ('<f4') in C
// order. Read accepts float32, float64, 8/16/32/64-bit integers, unsigned
// integers and booleans, in either byte order, and converts them to
// float32; Fortran-order arrays and object arrays are rejected.
package npy

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/tlsurgery/tlsurgery/internal/atomicfile"
	"github.com/tlsurgery/tlsurgery/internal/floatbytes"
)

// Array is a float32 array in C (row-major) order.
type Array struct {
	Shape []int
	Data  []float32
}

// ErrFormat is matched by errors.Is for every malformed .npy or .npz input.
var ErrFormat = errors.New("npy: malformed file")

const magic = "\x93NUMPY"

// maxHeader bounds the header a reader accepts; NumPy's own limit for
// version 1.0 headers is 65535 bytes.
const maxHeader = 1 << 20

// Write writes a as a version 1.0 .npy stream of little-endian float32.
func Write(w io.Writer, a *Array) error {
	if n, err := count(a.Shape); err != nil || n != len(a.Data) {
		return fmt.Errorf("npy: shape %v does not hold the %d values given", a.Shape, len(a.Data))
	}
	var shape strings.Builder
	shape.WriteByte('(')
	for i, d := range a.Shape {
		if i > 0 {
			shape.WriteString(", ")
		}
		shape.WriteString(strconv.Itoa(d))
	}
	if len(a.Shape) == 1 {
		shape.WriteByte(',')
	}
	shape.WriteByte(')')
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shape.String())
	// Pad so that magic (6) + version (2) + length (2) + header ends on a
	// multiple of 64, with the newline last.
	total := 10 + len(header) + 1
	pad := (64 - total%64) % 64
	header += strings.Repeat(" ", pad) + "\n"
	if len(header) > math.MaxUint16 {
		return fmt.Errorf("npy: shape %v makes a header longer than version 1.0 allows", a.Shape)
	}
	bw := bufio.NewWriter(w)
	bw.WriteString(magic)
	bw.Write([]byte{1, 0})
	binary.Write(bw, binary.LittleEndian, uint16(len(header)))
	bw.WriteString(header)
	if err := floatbytes.Write(bw, a.Data); err != nil {
		return err
	}
	return bw.Flush()
}

// WriteFile writes a to path atomically.
func WriteFile(path string, a *Array) error {
	return atomicfile.Write(path, func(w io.Writer) error { return Write(w, a) })
}

// ReadFile reads one .npy file.
func ReadFile(path string) (*Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	a, err := Read(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// Read reads one .npy stream. size is the number of bytes r holds, or -1
// when unknown; the data is allocated only after the bytes arrive when
// size is unknown.
func Read(r io.Reader, size int64) (*Array, error) {
	br := bufio.NewReader(r)
	pre := make([]byte, 8)
	if _, err := io.ReadFull(br, pre); err != nil {
		return nil, formatErr("the file is shorter than the .npy preamble")
	}
	if string(pre[:6]) != magic {
		return nil, formatErr("missing the .npy magic bytes \\x93NUMPY")
	}
	var hlen int
	switch pre[6] {
	case 1:
		var n uint16
		if err := binary.Read(br, binary.LittleEndian, &n); err != nil {
			return nil, formatErr("truncated header length")
		}
		hlen = int(n)
	case 2, 3:
		var n uint32
		if err := binary.Read(br, binary.LittleEndian, &n); err != nil {
			return nil, formatErr("truncated header length")
		}
		if n > maxHeader {
			return nil, formatErr(fmt.Sprintf("header length %d is larger than %d", n, maxHeader))
		}
		hlen = int(n)
	default:
		return nil, formatErr(fmt.Sprintf("unsupported .npy version %d.%d", pre[6], pre[7]))
	}
	header := make([]byte, hlen)
	if _, err := io.ReadFull(br, header); err != nil {
		return nil, formatErr("truncated header")
	}
	dt, order, shape, err := parseHeader(string(header))
	if err != nil {
		return nil, err
	}
	if order {
		return nil, formatErr("Fortran-order arrays are not supported; save with numpy.ascontiguousarray")
	}
	n, err := count(shape)
	if err != nil {
		return nil, err
	}
	need := int64(n) * int64(dt.size)
	if size >= 0 {
		left := size - int64(10+hlen)
		if pre[6] != 1 {
			left -= 2
		}
		if need > left {
			return nil, formatErr(fmt.Sprintf("shape %v needs %d data bytes, the file has %d", shape, need, left))
		}
	}
	raw, err := readN(br, need, size >= 0)
	if err != nil {
		return nil, err
	}
	return &Array{Shape: shape, Data: dt.convert(raw, n)}, nil
}

// readN reads exactly n bytes; with an unknown size it grows the buffer
// as the bytes arrive instead of trusting n.
func readN(r io.Reader, n int64, known bool) ([]byte, error) {
	if known {
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, formatErr("truncated data")
		}
		return buf, nil
	}
	var buf bytes.Buffer
	got, err := io.CopyN(&buf, r, n)
	if err != nil || got != n {
		return nil, formatErr("truncated data")
	}
	return buf.Bytes(), nil
}

func formatErr(msg string) error { return fmt.Errorf("%w: %s", ErrFormat, msg) }

// count returns the element count of shape, checking for overflow.
func count(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, formatErr(fmt.Sprintf("negative dimension in shape %v", shape))
		}
		if d != 0 && n > math.MaxInt32/d {
			return 0, formatErr(fmt.Sprintf("shape %v has too many elements", shape))
		}
		n *= d
	}
	return n, nil
}

// dtype is one of NumPy's numeric array-protocol type strings.
type dtype struct {
	kind  byte // 'f', 'i', 'u', 'b'
	size  int
	order binary.ByteOrder
}

func (d dtype) convert(raw []byte, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		b := raw[i*d.size : (i+1)*d.size]
		switch {
		case d.kind == 'f' && d.size == 4:
			out[i] = math.Float32frombits(d.order.Uint32(b))
		case d.kind == 'f' && d.size == 8:
			out[i] = float32(math.Float64frombits(d.order.Uint64(b)))
		case d.kind == 'f' && d.size == 2:
			out[i] = halfToFloat32(d.order.Uint16(b))
		case d.kind == 'i' && d.size == 1:
			out[i] = float32(int8(b[0]))
		case d.kind == 'i' && d.size == 2:
			out[i] = float32(int16(d.order.Uint16(b)))
		case d.kind == 'i' && d.size == 4:
			out[i] = float32(int32(d.order.Uint32(b)))
		case d.kind == 'i' && d.size == 8:
			out[i] = float32(int64(d.order.Uint64(b)))
		case d.kind == 'u' && d.size == 1, d.kind == 'b':
			out[i] = float32(b[0])
		case d.kind == 'u' && d.size == 2:
			out[i] = float32(d.order.Uint16(b))
		case d.kind == 'u' && d.size == 4:
			out[i] = float32(d.order.Uint32(b))
		case d.kind == 'u' && d.size == 8:
			out[i] = float32(d.order.Uint64(b))
		}
	}
	return out
}

func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | frac<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
	case frac == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal half: value = frac × 2^-24.
	f := float32(frac) * (1.0 / (1 << 24))
	if sign != 0 {
		f = -f
	}
	return f
}

// parseHeader reads the dict literal of an .npy header.
func parseHeader(h string) (dtype, bool, []int, error) {
	var dt dtype
	get := func(key string) (string, bool) {
		i := strings.Index(h, "'"+key+"'")
		if i < 0 {
			i = strings.Index(h, "\""+key+"\"")
		}
		if i < 0 {
			return "", false
		}
		rest := strings.TrimLeft(h[i+len(key)+2:], " ")
		if !strings.HasPrefix(rest, ":") {
			return "", false
		}
		return strings.TrimLeft(rest[1:], " "), true
	}
	descr, ok := get("descr")
	if !ok || len(descr) < 2 || descr[0] != '\'' && descr[0] != '"' {
		return dt, false, nil, formatErr("header has no 'descr' string")
	}
	end := strings.IndexByte(descr[1:], descr[0])
	if end < 0 {
		return dt, false, nil, formatErr("unterminated 'descr'")
	}
	d := descr[1 : 1+end]
	if len(d) < 3 {
		return dt, false, nil, formatErr(fmt.Sprintf("unsupported dtype %q", d))
	}
	switch d[0] {
	case '<', '|':
		dt.order = binary.LittleEndian
	case '>':
		dt.order = binary.BigEndian
	case '=':
		dt.order = binary.NativeEndian
	default:
		return dt, false, nil, formatErr(fmt.Sprintf("unsupported dtype %q", d))
	}
	dt.kind = d[1]
	size, err := strconv.Atoi(d[2:])
	if err != nil {
		return dt, false, nil, formatErr(fmt.Sprintf("unsupported dtype %q", d))
	}
	dt.size = size
	switch {
	case dt.kind == 'f' && (size == 2 || size == 4 || size == 8),
		(dt.kind == 'i' || dt.kind == 'u') && (size == 1 || size == 2 || size == 4 || size == 8),
		dt.kind == 'b' && size == 1:
	default:
		return dt, false, nil, formatErr(fmt.Sprintf("unsupported dtype %q; use float32", d))
	}

	fo, ok := get("fortran_order")
	if !ok {
		return dt, false, nil, formatErr("header has no 'fortran_order'")
	}
	fortran := strings.HasPrefix(fo, "True")

	sh, ok := get("shape")
	if !ok || !strings.HasPrefix(sh, "(") {
		return dt, false, nil, formatErr("header has no 'shape' tuple")
	}
	close := strings.IndexByte(sh, ')')
	if close < 0 {
		return dt, false, nil, formatErr("unterminated 'shape' tuple")
	}
	var shape []int
	for _, part := range strings.Split(sh[1:close], ",") {
		part = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(part), "L"))
		if part == "" {
			continue
		}
		v, err := strconv.Atoi(part)
		if err != nil || v < 0 {
			return dt, false, nil, formatErr(fmt.Sprintf("invalid dimension %q in shape", part))
		}
		shape = append(shape, v)
	}
	return dt, fortran, shape, nil
}

// WriteNPZ writes the arrays to an uncompressed .npz archive, one member
// NAME.npy per array, in name order.
func WriteNPZ(w io.Writer, arrays map[string]*Array) error {
	zw := zip.NewWriter(w)
	names := make([]string, 0, len(arrays))
	for name := range arrays {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		f, err := zw.CreateHeader(&zip.FileHeader{Name: name + ".npy", Method: zip.Store})
		if err != nil {
			return err
		}
		if err := Write(f, arrays[name]); err != nil {
			return fmt.Errorf("npy: writing %s: %w", name, err)
		}
	}
	return zw.Close()
}

// WriteNPZFile writes the arrays to path atomically.
func WriteNPZFile(path string, arrays map[string]*Array) error {
	return atomicfile.Write(path, func(w io.Writer) error { return WriteNPZ(w, arrays) })
}

// ReadNPZFile reads every .npy member of an .npz archive, keyed by the
// member name without ".npy".
func ReadNPZFile(p string) (map[string]*Array, error) {
	zr, err := zip.OpenReader(p)
	if err != nil {
		return nil, fmt.Errorf("npy: %s: %w", p, err)
	}
	defer zr.Close()
	out := map[string]*Array{}
	for _, f := range zr.File {
		if !strings.HasSuffix(f.Name, ".npy") {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("npy: %s: %s: %w", p, f.Name, err)
		}
		a, err := Read(rc, -1) // the archive's stated size is not trusted
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", p, f.Name, err)
		}
		out[strings.TrimSuffix(path.Clean(f.Name), ".npy")] = a
	}
	return out, nil
}
