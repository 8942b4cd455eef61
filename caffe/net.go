package caffe

import "github.com/tlsurgery/tlsurgery/caffe/caffepb"

// Encoding is the serialization of a net file.
type Encoding int

const (
	Text   Encoding = iota + 1 // protobuf text format (.prototxt)
	Binary                     // protobuf wire format (.caffemodel, .binaryproto)
)

func (e Encoding) String() string {
	switch e {
	case Text:
		return "text"
	case Binary:
		return "binary"
	}
	return "unknown"
}

// Generation is the generation of Caffe's net format a file was written in.
type Generation int

const (
	V0 Generation = iota + 1 // layers { layer { type: "conv" } }: nested V0LayerParameter
	V1                       // layers { type: CONVOLUTION }: V1LayerParameter with enum types
	V2                       // layer { type: "Convolution" }: the current LayerParameter
)

func (g Generation) String() string {
	switch g {
	case V0:
		return "V0"
	case V1:
		return "V1"
	case V2:
		return "current"
	}
	return "unknown"
}

// NoteKind classifies a Note.
type NoteKind int

const (
	NoteUpgrade   NoteKind = iota + 1 // an upgrade step applied to an old format
	NoteUnknown                       // a field or value the schema lacks, kept as it was
	NoteConverted                     // a value stored in another encoding and converted
	NoteMismatch                      // net and weights disagree (layers or blobs missing on one side)
	NoteSkipped                       // something read but not kept, with the reason
)

func (k NoteKind) String() string {
	switch k {
	case NoteUpgrade:
		return "upgrade"
	case NoteUnknown:
		return "unknown"
	case NoteConverted:
		return "converted"
	case NoteMismatch:
		return "mismatch"
	case NoteSkipped:
		return "skipped"
	}
	return "note"
}

// Note is one thing a reader did or found that the caller should know
// about but that did not stop reading.
type Note struct {
	Location
	Kind    NoteKind
	Message string
}

func (n Note) String() string { return n.Location.String() + ": " + n.Kind.String() + ": " + n.Message }

// Net is a net read from a file, always in the current format: its layers
// are in Param.Layer, never in the V0/V1 field Param.Layers.
//
// Weights live in the blobs of each layer (LayerParameter.Blobs); a blob's
// values are in BlobProto.Data whatever encoding the file used.
type Net struct {
	Param *caffepb.NetParameter

	Source     string     // path or name the net was read from
	Encoding   Encoding   // encoding of the source
	Generation Generation // format generation of the source, before upgrades
	Notes      []Note     // upgrades applied, unknown fields kept, conversions
}
