// Package floatbytes writes float32 slices as little-endian bytes, the
// layout of .npy '<f4' data, safetensors F32 tensors and ONNX raw_data,
// without a conversion loop on little-endian hosts.
package floatbytes

import (
	"encoding/binary"
	"io"
	"math"
	"unsafe"
)

// LittleEndian reports whether the host stores float32 in little-endian
// byte order, so a slice's memory is already the file layout.
var LittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// Write writes the values of s to w as little-endian float32: straight
// from the slice's memory on little-endian hosts, through a small buffer
// elsewhere.
func Write(w io.Writer, s []float32) error {
	if len(s) == 0 {
		return nil
	}
	if LittleEndian {
		_, err := w.Write(unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 4*len(s)))
		return err
	}
	buf := make([]byte, 4*4096)
	for off := 0; off < len(s); off += 4096 {
		chunk := s[off:min(off+4096, len(s))]
		for i, v := range chunk {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		if _, err := w.Write(buf[:4*len(chunk)]); err != nil {
			return err
		}
	}
	return nil
}
