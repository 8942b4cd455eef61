package forward

import (
	"fmt"
	"image"
	"image/color"
	"math"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
)

// Preprocess turns an image into a net input as pycaffe's
// caffe.io.load_image and caffe.io.Transformer do in Caffe's
// classification example. The pixel values are scaled to [0, 1],
// resized, transposed from H×W×C to C×H×W and reordered from RGB to BGR.
// Then they are multiplied by RawScale, reduced by Mean and multiplied by
// Scale.
//
// The zero values of RawScale and Scale mean 255 and 1, so a zero
// Preprocess with only Width, Height and Channels set gives BGR pixel
// values in [0, 255], as Caffe's image data layers read them.
type Preprocess struct {
	Width, Height int // input size of the net, in pixels

	// Resize, with CenterCrop, resizes the image so that its shorter side
	// has Resize pixels, keeping the aspect ratio, then takes the centred
	// Width×Height crop. Without them the image is resized straight to
	// Width×Height.
	Resize     int
	CenterCrop bool

	// Channels is 3 for colour nets and 1 for grayscale nets. A colour
	// image becomes the luminance 0.2125 R + 0.7154 G + 0.0721 B, as
	// caffe.io.load_image(color=False) computes it with scikit-image's
	// rgb2gray; a grayscale image is copied to 3 channels for a colour
	// net.
	Channels int

	RGB      bool    // keep RGB channel order (Caffe nets are usually trained on BGR)
	RawScale float32 // multiplies the [0, 1] pixel values; 0 means 255

	// Mean is subtracted after RawScale, per channel in the net's channel
	// order (BGR unless RGB). One value applies to every channel; empty
	// subtracts nothing.
	Mean []float32

	Scale float32 // multiplies the values after the mean is subtracted; 0 means 1
}

// Validate returns an error for options that Image cannot apply.
func (p Preprocess) Validate() error {
	switch {
	case p.Width < 1 || p.Height < 1:
		return fmt.Errorf("forward: preprocess: input size %d×%d must be positive", p.Width, p.Height)
	case p.Channels != 1 && p.Channels != 3:
		return fmt.Errorf("forward: preprocess: %d channels; images give 1 (grayscale) or 3 (colour)", p.Channels)
	case len(p.Mean) != 0 && len(p.Mean) != 1 && len(p.Mean) != p.Channels:
		return fmt.Errorf("forward: preprocess: %d mean values for a %d-channel input; give one per channel or one for all", len(p.Mean), p.Channels)
	case p.Resize < 0:
		return fmt.Errorf("forward: preprocess: resize %d must not be negative", p.Resize)
	case p.Resize > 0 && !p.CenterCrop:
		return fmt.Errorf("forward: preprocess: resizing the shorter side to %d needs a centre crop to reach %d×%d; set CenterCrop too", p.Resize, p.Width, p.Height)
	case p.CenterCrop && p.Resize == 0:
		return fmt.Errorf("forward: preprocess: the centre crop needs the size to resize the shorter side to first")
	case p.CenterCrop && p.Resize < max(p.Width, p.Height):
		return fmt.Errorf("forward: preprocess: shorter side %d is smaller than the %d×%d crop; resize to at least %d", p.Resize, p.Width, p.Height, max(p.Width, p.Height))
	}
	return nil
}

// Image returns img as a 1×C×H×W input tensor. See Preprocess for the
// steps.
//
// NOTE: resizing is bilinear with pixel centres aligned (OpenCV's
// INTER_LINEAR, scikit-image's order=1), with edge pixels repeated
// outside the image. Recent scikit-image versions also smooth an image
// with a Gaussian before shrinking it, which this does not, so pycaffe
// under them gives somewhat different inputs for images larger than the
// net's input.
func (p Preprocess) Image(img image.Image) (*Tensor, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	b := img.Bounds()
	if b.Dx() < 1 || b.Dy() < 1 {
		return nil, fmt.Errorf("forward: preprocess: the image is empty (%d×%d)", b.Dx(), b.Dy())
	}
	// The resized image is fullW×fullH; the output is its window of
	// Width×Height pixels starting at (left, top).
	fullW, fullH, left, top := p.Width, p.Height, 0, 0
	if p.CenterCrop {
		fullW, fullH = shorterSideTo(b.Dx(), b.Dy(), p.Resize)
		left, top = (fullW-p.Width)/2, (fullH-p.Height)/2
	}

	rawScale, scale := float64(p.RawScale), float64(p.Scale)
	if rawScale == 0 {
		rawScale = 255
	}
	if scale == 0 {
		scale = 1
	}
	// source[c] is the colour index (pixelAt's order) of output channel c.
	source := [3]int{0, 1, 2}
	if p.Channels == 3 && !p.RGB {
		source = [3]int{2, 1, 0}
	}
	var mean [3]float64
	for c := range p.Channels {
		switch len(p.Mean) {
		case 1:
			mean[c] = float64(p.Mean[0])
		case p.Channels:
			mean[c] = float64(p.Mean[c])
		}
	}

	// Only the four source pixels around each output pixel are read, so
	// large photos are never converted whole.
	xs := bilinearTaps(b.Dx(), fullW, left, p.Width)
	ys := bilinearTaps(b.Dy(), fullH, top, p.Height)
	out := NewTensor(1, p.Channels, p.Height, p.Width)
	plane := p.Width * p.Height
	for y, ty := range ys {
		for x, tx := range xs {
			p00 := pixelAt(img, b.Min.X+tx.i0, b.Min.Y+ty.i0, p.Channels)
			p01 := pixelAt(img, b.Min.X+tx.i1, b.Min.Y+ty.i0, p.Channels)
			p10 := pixelAt(img, b.Min.X+tx.i0, b.Min.Y+ty.i1, p.Channels)
			p11 := pixelAt(img, b.Min.X+tx.i1, b.Min.Y+ty.i1, p.Channels)
			for c := range p.Channels {
				s := source[c]
				upper := p00[s]*(1-tx.f) + p01[s]*tx.f
				lower := p10[s]*(1-tx.f) + p11[s]*tx.f
				v := upper*(1-ty.f) + lower*ty.f
				out.Data[c*plane+y*p.Width+x] = float32((v*rawScale - mean[c]) * scale)
			}
		}
	}
	return out, nil
}

// shorterSideTo returns the size of a w×h image resized so that its
// shorter side is n, rounding the longer side to the nearest pixel.
func shorterSideTo(w, h, n int) (int, int) {
	if w <= h {
		return n, int(math.Round(float64(h) * float64(n) / float64(w)))
	}
	return int(math.Round(float64(w) * float64(n) / float64(h))), n
}

// Luminance weights of scikit-image's rgb2gray (ITU-R BT.709), which
// caffe.io.load_image(color=False) uses.
const (
	grayR = 0.2125
	grayG = 0.7154
	grayB = 0.0721
)

// pixelAt returns the pixel at (x, y) of img with values in [0, 1]: R,
// G, B for three channels, the luminance first for one. Alpha is dropped
// as caffe.io.load_image drops it, so non-premultiplied images keep their
// colour values.
func pixelAt(img image.Image, x, y, channels int) [3]float64 {
	if gray, ok := grayAt(img, x, y); ok {
		return [3]float64{gray, gray, gray}
	}
	r, g, b := rgbAt(img, x, y)
	if channels == 1 {
		return [3]float64{grayR*r + grayG*g + grayB*b}
	}
	return [3]float64{r, g, b}
}

// grayAt returns the value of a grayscale image's pixel, scaled to
// [0, 1], and false for other images.
func grayAt(img image.Image, x, y int) (float64, bool) {
	switch m := img.(type) {
	case *image.Gray:
		return float64(m.GrayAt(x, y).Y) / 0xff, true
	case *image.Gray16:
		return float64(m.Gray16At(x, y).Y) / 0xffff, true
	}
	return 0, false
}

// rgbAt returns the colour of a pixel scaled to [0, 1], without
// premultiplied alpha.
func rgbAt(img image.Image, x, y int) (r, g, b float64) {
	switch m := img.(type) {
	case *image.NRGBA:
		c := m.NRGBAAt(x, y)
		return float64(c.R) / 0xff, float64(c.G) / 0xff, float64(c.B) / 0xff
	case *image.NRGBA64:
		c := m.NRGBA64At(x, y)
		return float64(c.R) / 0xffff, float64(c.G) / 0xffff, float64(c.B) / 0xffff
	case *image.YCbCr:
		// JPEG colour: converted to 8-bit RGB as libjpeg, which pycaffe's
		// image readers use, converts it, not to YCbCr.RGBA's 16 bits.
		c := m.YCbCrAt(x, y)
		r, g, b := color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
		return float64(r) / 0xff, float64(g) / 0xff, float64(b) / 0xff
	case *image.CMYK:
		c := m.CMYKAt(x, y)
		r, g, b := color.CMYKToRGB(c.C, c.M, c.Y, c.K)
		return float64(r) / 0xff, float64(g) / 0xff, float64(b) / 0xff
	}
	// RGBA returns alpha-premultiplied 16-bit values, which equal the
	// colour for opaque images.
	r16, g16, b16, _ := img.At(x, y).RGBA()
	return float64(r16) / 0xffff, float64(g16) / 0xffff, float64(b16) / 0xffff
}

// tap is one output coordinate's two source neighbours and the weight of
// the second.
type tap struct {
	i0, i1 int
	f      float64
}

// bilinearTaps returns the taps of output positions offset … offset+n−1
// along an axis resized from in to full pixels.
func bilinearTaps(in, full, offset, n int) []tap {
	taps := make([]tap, n)
	step := float64(in) / float64(full)
	for k := range taps {
		s := (float64(offset+k)+0.5)*step - 0.5
		s = math.Max(0, math.Min(s, float64(in-1)))
		i0 := int(s)
		i1 := min(i0+1, in-1)
		taps[k] = tap{i0: i0, i1: i1, f: s - float64(i0)}
	}
	return taps
}

// MeanFromBlob reduces a mean image, such as a .binaryproto that Caffe's
// compute_image_mean wrote, to one value per channel, as Caffe's
// classification example does with mean(1).mean(1). The blob's shape
// must be 1×C×H×W, C×H×W or C (already per channel). The values keep the
// blob's channel order, which is BGR for means computed from Caffe's
// image databases.
func MeanFromBlob(b *caffepb.BlobProto) ([]float32, error) {
	shape := caffe.BlobShape(b)
	data := b.GetData()
	if n, err := caffe.BlobCount(b); err != nil || n != len(data) || len(data) == 0 {
		return nil, fmt.Errorf("forward: the mean blob has %d values for shape %s", len(data), shapeText(shape))
	}
	var channels int
	switch {
	case len(shape) == 4 && shape[0] == 1:
		channels = shape[1]
	case len(shape) == 3 || len(shape) == 1:
		channels = shape[0]
	default:
		return nil, fmt.Errorf("forward: the mean blob has shape %s; expected 1×C×H×W, C×H×W or C", shapeText(shape))
	}
	plane := len(data) / channels
	means := make([]float32, channels)
	for c := range means {
		var sum float64
		for _, v := range data[c*plane : (c+1)*plane] {
			sum += float64(v)
		}
		means[c] = float32(sum / float64(plane))
	}
	return means, nil
}
