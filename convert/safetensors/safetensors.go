package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/internal/atomicfile"
	"github.com/tlsurgery/tlsurgery/internal/floatbytes"
)

// MaxHeaderSize is the largest JSON header, in bytes, that Write produces.
// It is the limit of the reference reader (see the package documentation).
const MaxHeaderSize = 100_000_000

// chunkValues is the number of float32 values converted to bytes per write.
const chunkValues = 16 << 10

// Options configures Write.
type Options struct {
	// Metadata is stored in the header's "__metadata__" map next to
	// "source" (the net's Source) and "format" ("caffe"). An entry with
	// the key "source" or "format" replaces the default value. Keys and
	// values must be valid UTF-8.
	Metadata map[string]string
}

// tensor is one blob as Write stores it.
type tensor struct {
	name   string
	shape  []int
	values []float32

	// scaled marks BatchNorm statistics, which are written as
	// values[i] / factor, or 0 when factor is 0.
	scaled bool
	factor float32
}

// WriteFile writes the weights of net to path atomically. See Write.
func WriteFile(path string, net *caffe.Net, opts Options) error {
	return atomicfile.Write(path, func(w io.Writer) error { return Write(w, net, opts) })
}

// Write writes the weights of net to w as a safetensors file, one float32
// tensor per stored blob, named as the package documentation describes.
// Tensors follow the net's layer order and each layer's blob order.
//
// Write checks the whole net before it writes the first byte, and fails
// without writing when:
//   - two blobs map to the same tensor name,
//   - a blob has no values (a net read with StructureOnly) or a value count
//     that does not match its shape,
//   - a BatchNorm layer stores mean and variance without a one-value
//     moving-average factor,
//   - a layer name or metadata string is not valid UTF-8,
//   - the header would exceed MaxHeaderSize.
//
// The values are converted to bytes in chunks as they are written, so Write
// keeps no second copy of the weights in memory.
func Write(w io.Writer, net *caffe.Net, opts Options) error {
	tensors, err := collectTensors(net)
	if err != nil {
		return err
	}
	header, err := encodeHeader(tensors, metadata(net, opts))
	if err != nil {
		return err
	}

	prefix := make([]byte, 8, 8+len(header))
	binary.LittleEndian.PutUint64(prefix, uint64(len(header)))
	if _, err := w.Write(append(prefix, header...)); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}

	buf := make([]byte, 4*chunkValues)
	for _, t := range tensors {
		if err := writeValues(w, buf, t); err != nil {
			return fmt.Errorf("safetensors: tensor %s: %w", t.name, err)
		}
	}
	return nil
}

// collectTensors names and checks every blob of net, in layer and blob
// order. Blobs are not copied.
func collectTensors(net *caffe.Net) ([]tensor, error) {
	var tensors []tensor
	owners := map[string]string{} // tensor name -> the blob that took it, for errors
	for _, layer := range net.Param.GetLayer() {
		factor, hasFactor, err := batchNormFactor(layer)
		if err != nil {
			return nil, err
		}
		for i, blob := range layer.GetBlobs() {
			suffix, ok := blobSuffix(layer, i)
			if !ok {
				continue
			}
			name := layer.GetName() + "." + suffix
			owner := fmt.Sprintf("layer %q (%s) blob %d", layer.GetName(), layer.GetType(), i)
			if !utf8.ValidString(name) {
				return nil, fmt.Errorf("safetensors: %s: layer name is not valid UTF-8, which the JSON header requires; rename the layer", owner)
			}
			if first, dup := owners[name]; dup {
				return nil, fmt.Errorf("safetensors: %s and %s both map to tensor %q; give the layers distinct names", first, owner, name)
			}
			owners[name] = owner

			shape, err := checkedShape(blob)
			if err != nil {
				return nil, fmt.Errorf("safetensors: %s: %w", owner, err)
			}
			t := tensor{name: name, shape: shape, values: blob.Data}
			if hasFactor && i < 2 {
				t.scaled, t.factor = true, factor
			}
			tensors = append(tensors, t)
		}
	}
	return tensors, nil
}

// blobSuffix returns the name suffix of blob i of layer, or false for a
// blob that is not written (the BatchNorm moving-average factor).
func blobSuffix(layer *caffepb.LayerParameter, i int) (string, bool) {
	pick := func(names ...string) (string, bool) {
		if i < len(names) {
			return names[i], names[i] != ""
		}
		return strconv.Itoa(i), true
	}
	switch layer.GetType() {
	case "Convolution", "Deconvolution", "DepthwiseConvolution", "ConvolutionDepthwise", "InnerProduct", "Embed":
		return pick("weight", "bias")
	case "Scale":
		if len(layer.GetBottom()) > 1 {
			return pick("bias")
		}
		return pick("weight", "bias")
	case "PReLU":
		return pick("weight")
	case "BatchNorm":
		return pick("running_mean", "running_var", "", "weight", "bias")
	case "BN":
		return pick("weight", "bias", "running_mean", "running_var")
	}
	return strconv.Itoa(i), true
}

// batchNormFactor returns the moving-average factor of a BatchNorm layer
// with weights, and false for every other layer and for a BatchNorm layer
// without blobs.
func batchNormFactor(layer *caffepb.LayerParameter) (float32, bool, error) {
	blobs := layer.GetBlobs()
	if layer.GetType() != "BatchNorm" || len(blobs) == 0 {
		return 0, false, nil
	}
	if len(blobs) < 3 {
		return 0, false, fmt.Errorf("safetensors: BatchNorm layer %q has %d blobs, but Caffe stores 3 (mean, variance, moving-average factor); "+
			"without the factor the statistics cannot be recovered", layer.GetName(), len(blobs))
	}
	if n := len(blobs[2].Data); n != 1 {
		return 0, false, fmt.Errorf("safetensors: BatchNorm layer %q: moving-average factor (blob 2) has %d values, want 1", layer.GetName(), n)
	}
	return blobs[2].Data[0], true, nil
}

// checkedShape returns the shape of blob after checking that its values
// fill that shape.
func checkedShape(blob *caffepb.BlobProto) ([]int, error) {
	count, err := caffe.BlobCount(blob)
	if err != nil {
		return nil, err
	}
	shape := caffe.BlobShape(blob)
	switch {
	case len(blob.Data) == 0 && count > 0:
		return nil, fmt.Errorf("blob of shape %v has no values; read the weights without StructureOnly", shape)
	case len(blob.Data) != count:
		return nil, fmt.Errorf("blob has %d values but its shape %v needs %d", len(blob.Data), shape, count)
	}
	return shape, nil
}

// metadata returns the "__metadata__" map of the header.
func metadata(net *caffe.Net, opts Options) map[string]string {
	out := map[string]string{"source": net.Source, "format": "caffe"}
	maps.Copy(out, opts.Metadata)
	return out
}

// encodeHeader returns the JSON header, padded with spaces to a multiple
// of 8 bytes. Tensor entries come first, in the order of tensors, and
// "__metadata__" last with its keys sorted, so equal nets give equal bytes.
func encodeHeader(tensors []tensor, meta map[string]string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	var offset uint64
	for _, t := range tensors {
		size := 4 * uint64(len(t.values))
		writeString(&b, t.name)
		b.WriteString(`:{"dtype":"F32","shape":[`)
		for i, d := range t.shape {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(d))
		}
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]},`, offset, offset+size)
		offset += size
	}

	b.WriteString(`"__metadata__":{`)
	for i, key := range slices.Sorted(maps.Keys(meta)) {
		value := meta[key]
		if !utf8.ValidString(key) || !utf8.ValidString(value) {
			return nil, fmt.Errorf("safetensors: metadata entry %q: %q is not valid UTF-8, which the JSON header requires", key, value)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		writeString(&b, key)
		b.WriteByte(':')
		writeString(&b, value)
	}
	b.WriteString("}}")

	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	if b.Len() > MaxHeaderSize {
		return nil, fmt.Errorf("safetensors: the header of %d tensors is %d bytes, more than the %d bytes that safetensors readers accept; "+
			"shorten the layer names or the metadata", len(tensors), b.Len(), MaxHeaderSize)
	}
	return b.Bytes(), nil
}

// writeString appends s to b as a JSON string. Unlike json.Marshal, it
// leaves <, > and & unescaped, so names read as they are in the net.
func writeString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	// Encoding a string cannot fail, and bytes.Buffer.Write returns no errors.
	_ = enc.Encode(s)
	b.Truncate(b.Len() - 1) // Encode ends the value with a newline
}

// writeValues writes the values of t as little-endian float32, converting
// at most len(buf)/4 values at a time.
func writeValues(w io.Writer, buf []byte, t tensor) error {
	if !t.scaled {
		return floatbytes.Write(w, t.values)
	}
	for start := 0; start < len(t.values); start += len(buf) / 4 {
		chunk := t.values[start:min(start+len(buf)/4, len(t.values))]
		for i, v := range chunk {
			if t.scaled {
				v = scaleStatistic(v, t.factor)
			}
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		if _, err := w.Write(buf[:4*len(chunk)]); err != nil {
			return err
		}
	}
	return nil
}

// scaleStatistic returns a BatchNorm running sum divided by the
// moving-average factor, or 0 when the factor is 0.
//
// NOTE: Caffe's BatchNorm forward pass (batch_norm_layer.cpp) multiplies by
// 1/factor instead, which can differ from v/factor in the last bit when the
// factor is not a power of two.
func scaleStatistic(v, factor float32) float32 {
	if factor == 0 {
		return 0
	}
	return float32(v / factor)
}
