package caffe

import (
	"fmt"
	"io"
	"os"

	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
)

const meanKind = "Caffe mean file (.binaryproto, one serialized BlobProto)"

// ReadMeanFile reads a mean image from a .binaryproto file. See ReadMean.
func ReadMeanFile(path string) (*caffepb.BlobProto, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("caffe: %w", err)
	}
	defer f.Close()

	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("caffe: %w", err)
	}
	if info.IsDir() {
		return nil, &FormatError{
			Location: NoLocation(path),
			Msg:      "is a directory, expected a mean file",
			Hint:     "give the path of the .binaryproto file",
		}
	}
	size := int64(-1)
	if info.Mode().IsRegular() {
		size = info.Size()
	}
	return ReadMean(f, size, path)
}

// ReadMean reads a mean image, one serialized BlobProto as Caffe's
// compute_image_mean writes it, from r, which holds size bytes, or an
// unknown number when size is -1. name is used for r in errors.
//
// The blob is decoded like the blobs of a caffemodel, so values stored as
// double_data or NVIDIA Caffe's raw_data are converted to float32 in Data.
// The shape may be given by shape or by the legacy num, channels, height
// and width fields (see BlobShape). Errors are *FormatError for an
// empty, truncated or corrupt file, for a blob without values and for
// values that disagree with the shape, and *UnsupportedError for HDF5 and
// NumPy files.
func ReadMean(r io.Reader, size int64, name string) (*caffepb.BlobProto, error) {
	d := newDecoder(r, size, name, meanKind)
	if err := d.checkSignature(); err != nil {
		return nil, err
	}
	b, err := d.readBlob(d.inputEnd())
	if err != nil {
		return nil, err
	}

	loc := NoLocation(name)
	if err := CheckBlob(b, loc); err != nil {
		return nil, err
	}
	if len(b.GetData()) == 0 {
		return nil, &FormatError{
			Location: loc,
			Msg:      fmt.Sprintf("the blob has no values (shape %v), so it is not a mean image", blobDims(b)),
			Hint:     "a .binaryproto mean file holds one BlobProto with the mean image; the file is truncated or is another kind of file",
		}
	}
	return b, nil
}
