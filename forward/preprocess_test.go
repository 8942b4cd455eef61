package forward

import (
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/convert/npy"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
	"github.com/tlsurgery/tlsurgery/internal/oracle"
)

func grayImage(w, h int, values ...uint8) *image.Gray {
	img := image.NewGray(image.Rect(0, 0, w, h))
	copy(img.Pix, values)
	return img
}

func TestPreprocessBilinearUpscale(t *testing.T) {
	p := Preprocess{Width: 4, Height: 1, Channels: 1, RawScale: 1}
	got, err := p.Image(grayImage(2, 1, 0, 255))
	if err != nil {
		t.Fatal(err)
	}
	// Output centres 0.5, 1.5, 2.5, 3.5 map to source -0.25 (clamped to
	// 0), 0.25, 0.75 and 1.25 (clamped to 1).
	if want := []float32{0, 0.25, 0.75, 1}; !slices.Equal(got.Data, want) {
		t.Errorf("values %v, want %v", got.Data, want)
	}
	if want := []int{1, 1, 1, 4}; !slices.Equal(got.Shape, want) {
		t.Errorf("shape %v, want %v", got.Shape, want)
	}
}

func TestPreprocessBilinearDownscale(t *testing.T) {
	p := Preprocess{Width: 2, Height: 1, Channels: 1}
	got, err := p.Image(grayImage(4, 1, 10, 20, 30, 40))
	if err != nil {
		t.Fatal(err)
	}
	// Output centres map to source 0.5 and 2.5: the means of pairs.
	if want := []float32{15, 35}; !slices.Equal(got.Data, want) {
		t.Errorf("values %v, want %v", got.Data, want)
	}
}

func TestPreprocessChannelOrder(t *testing.T) {
	red := image.NewNRGBA(image.Rect(0, 0, 1, 1))
	red.SetNRGBA(0, 0, color.NRGBA{R: 255, A: 255})
	tests := []struct {
		name string
		p    Preprocess
		want []float32
	}{
		{"BGR", Preprocess{Width: 1, Height: 1, Channels: 3}, []float32{0, 0, 255}},
		{"RGB", Preprocess{Width: 1, Height: 1, Channels: 3, RGB: true}, []float32{255, 0, 0}},
		{"mean and scale", Preprocess{Width: 1, Height: 1, Channels: 3, Mean: []float32{10, 20, 30}, Scale: 2}, []float32{-20, -40, 450}},
		{"one mean value", Preprocess{Width: 1, Height: 1, Channels: 3, Mean: []float32{5}}, []float32{-5, -5, 250}},
		{"raw scale", Preprocess{Width: 1, Height: 1, Channels: 3, RawScale: 1}, []float32{0, 0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.p.Image(red)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Data, tt.want) {
				t.Errorf("values %v, want %v", got.Data, tt.want)
			}
		})
	}
}

func TestPreprocessGrayscale(t *testing.T) {
	colours := image.NewNRGBA(image.Rect(0, 0, 3, 1))
	colours.SetNRGBA(0, 0, color.NRGBA{R: 255, A: 255})
	colours.SetNRGBA(1, 0, color.NRGBA{G: 255, A: 255})
	colours.SetNRGBA(2, 0, color.NRGBA{B: 255, A: 255})
	p := Preprocess{Width: 3, Height: 1, Channels: 1, RawScale: 1}
	got, err := p.Image(colours)
	if err != nil {
		t.Fatal(err)
	}
	if want := []float32{0.2125, 0.7154, 0.0721}; !slices.Equal(got.Data, want) {
		t.Errorf("luminance of red, green, blue %v, want %v", got.Data, want)
	}

	got, err = Preprocess{Width: 1, Height: 1, Channels: 3}.Image(grayImage(1, 1, 100))
	if err != nil {
		t.Fatal(err)
	}
	if want := []float32{100, 100, 100}; !slices.Equal(got.Data, want) {
		t.Errorf("grayscale image in a colour net %v, want %v", got.Data, want)
	}
}

// TestPreprocessLeNetScaling checks that the default raw scale with a
// scale of 1/256 gives x/256 exactly for every 8-bit value x, the input
// that LeNet's training data layer (scale: 0.00390625) produced.
func TestPreprocessLeNetScaling(t *testing.T) {
	values := make([]uint8, 256)
	for i := range values {
		values[i] = uint8(i)
	}
	p := Preprocess{Width: 256, Height: 1, Channels: 1, Scale: 0.00390625}
	got, err := p.Image(grayImage(256, 1, values...))
	if err != nil {
		t.Fatal(err)
	}
	for x, v := range got.Data {
		if v != float32(x)/256 {
			t.Fatalf("pixel %d became %v, want %v", x, v, float32(x)/256)
		}
	}
}

func TestPreprocessCenterCrop(t *testing.T) {
	values := make([]uint8, 8*4)
	for i := range values {
		values[i] = uint8(i)
	}
	p := Preprocess{Width: 4, Height: 4, Channels: 1, Resize: 4, CenterCrop: true}
	got, err := p.Image(grayImage(8, 4, values...))
	if err != nil {
		t.Fatal(err)
	}
	// The shorter side is already 4, so the crop is columns 2 to 5.
	var want []float32
	for y := range 4 {
		for x := 2; x < 6; x++ {
			want = append(want, float32(values[y*8+x]))
		}
	}
	if !slices.Equal(got.Data, want) {
		t.Errorf("values %v, want %v", got.Data, want)
	}
}

func TestPreprocessRejects(t *testing.T) {
	img := grayImage(4, 4, 0)
	tests := []struct {
		name string
		p    Preprocess
		want string
	}{
		{"no size", Preprocess{Channels: 3}, "input size 0×0 must be positive"},
		{"two channels", Preprocess{Width: 2, Height: 2, Channels: 2}, "2 channels"},
		{"two mean values", Preprocess{Width: 2, Height: 2, Channels: 3, Mean: []float32{1, 2}}, "2 mean values for a 3-channel input"},
		{"resize without crop", Preprocess{Width: 2, Height: 2, Channels: 1, Resize: 4}, "set CenterCrop too"},
		{"crop without resize", Preprocess{Width: 2, Height: 2, Channels: 1, CenterCrop: true}, "needs the size"},
		{"resize below crop", Preprocess{Width: 4, Height: 2, Channels: 1, Resize: 3, CenterCrop: true}, "resize to at least 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.p.Image(img)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestMeanFromBlobILSVRC(t *testing.T) {
	b, err := caffe.ReadMeanFile(corpus.Path(t, "caffemodel", "mean", "ILSVRC12_mean.binaryproto"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := MeanFromBlob(b)
	if err != nil {
		t.Fatal(err)
	}
	// The channel means (BGR) the corpus manifest records for this file.
	want := []float64{104.009, 116.673, 122.674}
	if len(got) != len(want) {
		t.Fatalf("%d channel means, want %d", len(got), len(want))
	}
	for c := range want {
		if math.Abs(float64(got[c])-want[c]) > 1e-3 {
			t.Errorf("channel %d mean %v, want %v", c, got[c], want[c])
		}
	}
}

// preprocessOracleScript resizes a PNG with OpenCV's INTER_LINEAR in
// float64, after the same grayscale conversion and channel order as
// Preprocess, and saves each job's 1×C×H×W result as an .npy file.
const preprocessOracleScript = `"""Preprocess a PNG with OpenCV for comparison."""
import json, sys
import cv2
import numpy as np

jobs = json.load(sys.stdin)
for job in jobs:
    bgr = cv2.imread(job["png"], cv2.IMREAD_COLOR).astype(np.float64) / 255
    if job["channels"] == 1:
        img = 0.2125 * bgr[:, :, 2] + 0.7154 * bgr[:, :, 1] + 0.0721 * bgr[:, :, 0]
        img = img[:, :, np.newaxis]
    else:
        img = bgr
    h, w = img.shape[:2]
    full_w, full_h, left, top = job["width"], job["height"], 0, 0
    if job["resize"]:
        n = job["resize"]
        if w <= h:
            full_w, full_h = n, int(round(h * n / w))
        else:
            full_w, full_h = int(round(w * n / h)), n
        left, top = (full_w - job["width"]) // 2, (full_h - job["height"]) // 2
    out = cv2.resize(img, (full_w, full_h), interpolation=cv2.INTER_LINEAR)
    if out.ndim == 2:
        out = out[:, :, np.newaxis]
    out = out[top:top + job["height"], left:left + job["width"], :]
    out = out.transpose(2, 0, 1)[np.newaxis]
    out = (out * 255 - np.array(job["mean"]).reshape(1, -1, 1, 1)) * job["scale"]
    np.save(job["out"], out.astype(np.float32))
`

// TestPreprocessMatchesOpenCV preprocesses a photograph (decoded by Go and
// saved losslessly, so both sides start from the same pixels) and
// compares with OpenCV's bilinear resize.
func TestPreprocessMatchesOpenCV(t *testing.T) {
	oracle.Python(t)
	f, err := os.Open(filepath.Join(corpus.Shared(t), "datasets", "photos", "china.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pngPath := filepath.Join(dir, "china.png")
	out, err := os.Create(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(out, img); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}

	type job struct {
		PNG      string    `json:"png"`
		Channels int       `json:"channels"`
		Width    int       `json:"width"`
		Height   int       `json:"height"`
		Resize   int       `json:"resize"`
		Mean     []float32 `json:"mean"`
		Scale    float32   `json:"scale"`
		Out      string    `json:"out"`
	}
	tests := []struct {
		name string
		p    Preprocess
	}{
		{"colour straight", Preprocess{Width: 227, Height: 227, Channels: 3, Mean: []float32{104, 117, 123}}},
		{"colour crop", Preprocess{Width: 227, Height: 227, Channels: 3, Resize: 256, CenterCrop: true, Mean: []float32{104, 117, 123}}},
		{"gray upscale", Preprocess{Width: 700, Height: 500, Channels: 1, Scale: 0.00390625}},
		{"gray LeNet", Preprocess{Width: 28, Height: 28, Channels: 1, Scale: 0.00390625}},
	}
	var jobs []job
	for _, tt := range tests {
		mean := tt.p.Mean
		if mean == nil {
			mean = make([]float32, tt.p.Channels)
		}
		scale := tt.p.Scale
		if scale == 0 {
			scale = 1
		}
		jobs = append(jobs, job{PNG: pngPath, Channels: tt.p.Channels, Width: tt.p.Width, Height: tt.p.Height,
			Resize: tt.p.Resize, Mean: mean, Scale: scale, Out: filepath.Join(dir, tt.name+".npy")})
	}
	stdin, err := json.Marshal(jobs)
	if err != nil {
		t.Fatal(err)
	}
	oracle.RunPython(t, preprocessOracleScript, stdin)

	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.p.Image(img)
			if err != nil {
				t.Fatal(err)
			}
			want, err := npy.ReadFile(jobs[i].Out)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Shape, want.Shape) {
				t.Fatalf("shape %v, OpenCV's %v", got.Shape, want.Shape)
			}
			d := Compare(got, &Tensor{Shape: want.Shape, Data: want.Data})
			t.Logf("max abs difference %.3g, relative %.3g", d.MaxAbs, d.MaxRel)
			// OpenCV computes source coordinates in float32, which for a
			// 640-pixel axis are off by up to about 4e-5 pixel, so
			// relative differences near 2e-5 are expected.
			if d.MaxRel > 1e-4 {
				t.Errorf("relative difference %.3g from OpenCV, want ≤ 1e-4", d.MaxRel)
			}
		})
	}
}
