package caffe

import (
	"errors"
	"fmt"
	"strings"
)

// ErrFormat is matched by errors.Is for every *FormatError.
var ErrFormat = errors.New("caffe: malformed file")

// ErrUnsupported is matched by errors.Is for every *UnsupportedError.
var ErrUnsupported = errors.New("caffe: unsupported input")

// Location names a place in an input file. The zero value of each field
// means "unknown": Offset is -1 for text input and for binary input whose
// position was not tracked, Line and Column are 0 for binary input.
type Location struct {
	File   string // path, "-" for standard input, or the name given in ReadOptions
	Offset int64  // byte offset in binary input, or -1
	Line   int    // 1-based line in text input, or 0
	Column int    // 1-based column in text input, or 0
	Layer  string // layer name, or ""
	Blob   int    // blob index within the layer, or -1
}

// NoLocation returns a Location for file with every other field unknown.
func NoLocation(file string) Location {
	return Location{File: file, Offset: -1, Blob: -1}
}

// String formats the location as "file:line:col", "file: offset N" and
// the layer and blob where known.
func (l Location) String() string {
	var b strings.Builder
	b.WriteString(l.File)
	switch {
	case l.Line > 0:
		fmt.Fprintf(&b, ":%d:%d", l.Line, l.Column)
	case l.Offset >= 0:
		fmt.Fprintf(&b, ": byte offset %d", l.Offset)
	}
	if l.Layer != "" {
		fmt.Fprintf(&b, ": layer %q", l.Layer)
	}
	if l.Blob >= 0 {
		fmt.Fprintf(&b, ": blob %d", l.Blob)
	}
	return b.String()
}

// FormatError reports input that is not a valid Caffe file: truncated or
// corrupt bytes, invalid text, lengths that disagree with shapes.
type FormatError struct {
	Location
	Msg  string // what is wrong, lowercase, no trailing period
	Hint string // what the user can do, or ""
}

func (e *FormatError) Error() string {
	s := "caffe: " + e.Location.String() + ": " + e.Msg
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// Is reports whether target is ErrFormat.
func (e *FormatError) Is(target error) bool { return target == ErrFormat }

// UnsupportedError reports valid input that this package cannot handle,
// such as an HDF5 weights snapshot.
type UnsupportedError struct {
	Location
	What string // the unsupported feature or value
	Hint string // what the user can do, or ""
}

func (e *UnsupportedError) Error() string {
	s := "caffe: " + e.Location.String() + ": unsupported " + e.What
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// Is reports whether target is ErrUnsupported.
func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupported }
