package transfer

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// Images is a batch of single-channel images as N×1×H×W float32 values,
// with one label per image.
type Images struct {
	N, H, W int
	Data    []float32
	Labels  []int
}

// openMaybeGzip opens path, decompressing it when it is gzip.
func openMaybeGzip(path string) (io.Reader, func() error, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReader(f)
	if head, _ := br.Peek(2); len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		return zr, f.Close, nil
	}
	return br, f.Close, nil
}

// ReadDigitsCSV reads the 8×8 handwritten digits of the UCI optical
// digits set (64 pixel columns with values 0–16, then the label) and
// lays each one out as MNIST does: scaled to 0–255, resized to 20×20 with
// bilinear interpolation, placed at offset (4, 4) on a 28×28 zero canvas,
// then multiplied by scale (1/256 gives LeNet's training input range).
func ReadDigitsCSV(path string, scale float32) (*Images, error) {
	r, closeFn, err := openMaybeGzip(path)
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	defer closeFn()
	out := &Images{H: 28, W: 28}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		fields := strings.Split(text, ",")
		if len(fields) != 65 {
			return nil, fmt.Errorf("transfer: %s:%d: %d columns, want 64 pixels and a label", path, line, len(fields))
		}
		var small [64]float64
		for i := range 64 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil || v < 0 || v > 16 {
				return nil, fmt.Errorf("transfer: %s:%d: pixel %d is %q, want 0 to 16", path, line, i, fields[i])
			}
			small[i] = v * 255 / 16
		}
		label, err := strconv.Atoi(fields[64])
		if err != nil || label < 0 {
			return nil, fmt.Errorf("transfer: %s:%d: label %q is not a class number", path, line, fields[64])
		}
		canvas := make([]float32, 28*28)
		big := resizeBilinear(small[:], 8, 8, 20, 20)
		for y := range 20 {
			for x := range 20 {
				canvas[(y+4)*28+x+4] = float32(big[y*20+x]) * scale
			}
		}
		out.Data = append(out.Data, canvas...)
		out.Labels = append(out.Labels, label)
		out.N++
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("transfer: %s: %w", path, err)
	}
	return out, nil
}

// resizeBilinear resizes an h×w image to oh×ow with half-pixel centres
// (the convention of OpenCV's INTER_LINEAR and of most image libraries).
func resizeBilinear(src []float64, h, w, oh, ow int) []float64 {
	out := make([]float64, oh*ow)
	sy, sx := float64(h)/float64(oh), float64(w)/float64(ow)
	for y := range oh {
		fy := math.Min(math.Max((float64(y)+0.5)*sy-0.5, 0), float64(h-1))
		y0 := int(fy)
		y1 := min(y0+1, h-1)
		ay := fy - float64(y0)
		for x := range ow {
			fx := math.Min(math.Max((float64(x)+0.5)*sx-0.5, 0), float64(w-1))
			x0 := int(fx)
			x1 := min(x0+1, w-1)
			ax := fx - float64(x0)
			top := src[y0*w+x0]*(1-ax) + src[y0*w+x1]*ax
			bot := src[y1*w+x0]*(1-ax) + src[y1*w+x1]*ax
			out[y*ow+x] = top*(1-ay) + bot*ay
		}
	}
	return out
}

// ReadIDX reads the first limit images (all when limit ≤ 0) of an IDX
// image file and its label file (MNIST's and Fashion-MNIST's format,
// gzip-compressed or not), with pixel values multiplied by scale.
func ReadIDX(imagesPath, labelsPath string, limit int, scale float32) (*Images, error) {
	ir, closeImages, err := openMaybeGzip(imagesPath)
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	defer closeImages()
	var head [4]uint32
	if err := binary.Read(ir, binary.BigEndian, &head); err != nil {
		return nil, fmt.Errorf("transfer: %s: truncated IDX header", imagesPath)
	}
	if head[0] != 0x00000803 {
		return nil, fmt.Errorf("transfer: %s: magic %#x is not an IDX image file (0x803)", imagesPath, head[0])
	}
	n, h, w := int(head[1]), int(head[2]), int(head[3])
	if h <= 0 || w <= 0 || h > 4096 || w > 4096 {
		return nil, fmt.Errorf("transfer: %s: image size %d×%d is not plausible", imagesPath, h, w)
	}
	if limit > 0 {
		n = min(n, limit)
	}

	lr, closeLabels, err := openMaybeGzip(labelsPath)
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	defer closeLabels()
	var lhead [2]uint32
	if err := binary.Read(lr, binary.BigEndian, &lhead); err != nil || lhead[0] != 0x00000801 {
		return nil, fmt.Errorf("transfer: %s: not an IDX label file (magic 0x801)", labelsPath)
	}
	n = min(n, int(lhead[1]))

	out := &Images{H: h, W: w}
	pix := make([]byte, h*w)
	lab := make([]byte, 1)
	for range n {
		if _, err := io.ReadFull(ir, pix); err != nil {
			return nil, fmt.Errorf("transfer: %s: truncated after %d images", imagesPath, out.N)
		}
		if _, err := io.ReadFull(lr, lab); err != nil {
			return nil, fmt.Errorf("transfer: %s: truncated after %d labels", labelsPath, out.N)
		}
		for _, p := range pix {
			out.Data = append(out.Data, float32(p)*scale)
		}
		out.Labels = append(out.Labels, int(lab[0]))
		out.N++
	}
	return out, nil
}
