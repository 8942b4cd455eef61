package main

import (
	"context"
	"fmt"
	"image"
	_ "image/jpeg" // registers JPEG decoding for image.Decode
	_ "image/png"  // registers PNG decoding for image.Decode
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/convert/npy"
	"github.com/tlsurgery/tlsurgery/forward"
	"github.com/tlsurgery/tlsurgery/graph"
	"github.com/tlsurgery/tlsurgery/internal/atomicfile"
)

// featureFlags contains the flags of the features command.
type featureFlags struct {
	layer, out, npyFile    string
	meanFile               string
	meanValues             []float32
	scale, rawScale        float32
	rgb, crop              bool
	resize, batch          int
	preprocessingFlagNames []string
}

func newFeaturesCommand(stdout, stderr io.Writer) *cobra.Command {
	var ff featureFlags
	cmd := &cobra.Command{
		Use:   "features NET WEIGHTS --layer BLOB -o CODES.npy (IMAGE... | --npy FILE.npy)",
		Short: "Extract one feature vector per image from a blob of a net",
		Long: `features runs a net on images, in batches, and writes the final value of
one blob per image (CaffeNet's fc7 gives the post-ReLU "CNN codes") as
an N×D float32 .npy array, one row per image in the order given. The
file order goes to a text file beside it with the same base name and the
extension .txt, one path per line.

Images are JPEG or PNG files, prepared as pycaffe's caffe.io.load_image
and Transformer prepare them in Caffe's classification example: pixel
values scaled to [0, 1], resized bilinearly to the net's input size (or,
with --resize N --crop, resized so the shorter side is N and then
centre-cropped), channels in BGR order unless --rgb, multiplied by
--raw-scale, minus the mean, multiplied by --scale. A net with one input
channel gets the luminance 0.2125 R + 0.7154 G + 0.0721 B, as
caffe.io.load_image(color=False) computes it.

Give the values the net was trained with. CaffeNet and other ImageNet
nets take the defaults with --mean-values 104,117,123 (or --mean with the
mean file). LeNet's MNIST training scaled 0–255 pixel values by 1/256
(scale: 0.00390625 in its data layer), so give --scale 0.00390625 and keep
--raw-scale 255: a pixel of value x becomes x/256. (--raw-scale 1 would
give x/255/256.)

--npy FILE.npy takes already prepared N×C×H×W arrays instead of images
and uses them as they are. The progress bar is drawn on standard error
only when it is a terminal.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFeatures(cmd, args, &ff, stdout, stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&ff.layer, "layer", "", "blob whose final value is the feature vector, such as fc7")
	f.StringVarP(&ff.out, "output", "o", "", "path of the N×D .npy array to write; the file order goes to the same path with .txt")
	f.StringVar(&ff.npyFile, "npy", "", "prepared N×C×H×W input arrays to use instead of images")
	f.IntVar(&ff.batch, "batch", 16, "images per forward pass")
	f.StringVar(&ff.meanFile, "mean", "", "mean image (.binaryproto or .npy, C×H×W) reduced to one value per channel")
	f.Float32SliceVar(&ff.meanValues, "mean-values", nil, "mean per channel in the net's channel order (BGR unless --rgb), e.g. 104,117,123")
	f.Float32Var(&ff.scale, "scale", 1, "factor applied after the mean is subtracted")
	f.Float32Var(&ff.rawScale, "raw-scale", 255, "factor applied to the [0, 1] pixel values")
	f.BoolVar(&ff.rgb, "rgb", false, "keep RGB channel order instead of Caffe's BGR")
	f.IntVar(&ff.resize, "resize", 0, "with --crop: resize the shorter side to this many pixels")
	f.BoolVar(&ff.crop, "crop", false, "with --resize: take the centre crop of the net's input size")
	ff.preprocessingFlagNames = []string{"mean", "mean-values", "scale", "raw-scale", "rgb", "resize", "crop"}
	cmd.MarkFlagRequired("layer")
	cmd.MarkFlagRequired("output")
	return cmd
}

func runFeatures(cmd *cobra.Command, args []string, ff *featureFlags, stdout, stderr io.Writer) error {
	images := args[2:]
	switch {
	case ff.batch < 1:
		return fmt.Errorf("--batch %d must be at least 1", ff.batch)
	case ff.npyFile != "" && len(images) > 0:
		return fmt.Errorf("give images or --npy, not both")
	case ff.npyFile == "" && len(images) == 0:
		return fmt.Errorf("missing images: give IMAGE... or --npy FILE.npy")
	case ff.meanFile != "" && len(ff.meanValues) > 0:
		return fmt.Errorf("give --mean or --mean-values, not both")
	}
	if ff.npyFile != "" {
		for _, name := range ff.preprocessingFlagNames {
			if cmd.Flags().Changed(name) {
				return fmt.Errorf("--%s prepares images, but --npy arrays are used as they are; prepare the arrays with it instead", name)
			}
		}
	}
	namesPath := strings.TrimSuffix(ff.out, filepath.Ext(ff.out)) + ".txt"
	if namesPath == ff.out {
		return fmt.Errorf("-o %s: the file order is written to the same path with .txt; name the output FILE.npy", ff.out)
	}
	for _, in := range append([]string{args[0], args[1], ff.npyFile, ff.meanFile}, images...) {
		for _, target := range []string{ff.out, namesPath} {
			if in != "" && atomicfile.Same(target, in) {
				return fmt.Errorf("-o would overwrite the input %s; choose another path", in)
			}
		}
	}

	net, _, err := loadNet(args[0], args[1], false)
	if err != nil {
		return err
	}
	var source featureSource
	if ff.npyFile != "" {
		source, err = newArraySource(ff.npyFile)
	} else {
		source, err = newImageSource(net, images, ff)
	}
	if err != nil {
		return err
	}
	codes, err := extractFeatures(cmd.Context(), net, source, ff, stderr)
	if err != nil {
		return err
	}

	if err := npy.WriteFile(ff.out, codes); err != nil {
		return err
	}
	err = atomicfile.Write(namesPath, func(w io.Writer) error {
		for _, name := range source.names() {
			if _, err := fmt.Fprintln(w, name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%s float32, blob %s) and %s\n", ff.out, formatShape(codes.Shape), ff.layer, namesPath)
	return nil
}

// featureSource yields the net inputs of the items, in order.
type featureSource interface {
	count() int
	inputShape() []int // C×H×W of one item
	// batch returns the n×C×H×W input of items [start, start+n).
	batch(start, n int, chw []int) (*forward.Tensor, error)
	names() []string
}

// extractFeatures runs the net on the items of source in batches and
// returns the final value of ff.layer as one row per item.
func extractFeatures(ctx context.Context, net *caffe.Net, source featureSource, ff *featureFlags, stderr io.Writer) (*npy.Array, error) {
	total := source.count()
	chw := source.inputShape()
	// Compiling at the batch size means only a smaller last batch makes
	// Run compile again.
	first := append([]int{min(ff.batch, total)}, chw...)
	compiled, err := forward.Compile(net, forward.Options{Graph: graph.Options{Inputs: map[string][]int{"": first}}})
	if err != nil {
		return nil, err
	}
	inputs := compiled.Inputs()
	if len(inputs) != 1 {
		return nil, fmt.Errorf("features needs a net with one input; this one has %d", len(inputs))
	}
	in := inputs[0]
	if compiled.Graph().Final[ff.layer] == nil {
		return nil, fmt.Errorf("--layer: the net has no blob %q; give a blob name, such as the top of a layer (its outputs: %s)", ff.layer, outputList(compiled.Graph()))
	}

	progress := newProgress(stderr, total)
	var codes []float32
	width := -1
	for start := 0; start < total; start += ff.batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := min(ff.batch, total-start)
		x, err := source.batch(start, n, chw)
		if err != nil {
			return nil, err
		}
		result, err := compiled.Run(map[string]*forward.Tensor{in.Blob: x})
		if err != nil {
			return nil, err
		}
		t := result.Blob(ff.layer)
		if width < 0 {
			width = t.Count() / n
		}
		codes = append(codes, t.Data...)
		if progress != nil {
			progress.Add(n)
		}
	}
	if progress != nil {
		progress.Finish()
	}
	return &npy.Array{Shape: []int{total, width}, Data: codes}, nil
}

// newProgress returns a progress bar on w when w is a terminal, else nil.
func newProgress(w io.Writer, total int) *progressbar.ProgressBar {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("features"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionClearOnFinish(),
	)
}

// imageSource prepares JPEG and PNG files with forward.Preprocess.
type imageSource struct {
	paths []string
	prep  forward.Preprocess
	chw   []int
}

// newImageSource checks the net's input shape and the preprocessing flags
// before any image is read.
func newImageSource(net *caffe.Net, paths []string, ff *featureFlags) (*imageSource, error) {
	compiled, err := forward.Compile(net, forward.Options{})
	if err != nil {
		return nil, err
	}
	inputs := compiled.Inputs()
	if len(inputs) != 1 {
		return nil, fmt.Errorf("features needs a net with one input; this one has %d", len(inputs))
	}
	shape := inputs[0].Shape
	if len(shape) != 4 || shape[1] != 1 && shape[1] != 3 {
		return nil, fmt.Errorf("the net's input %q has shape %s; images need N×1×H×W or N×3×H×W", inputs[0].Blob, formatShape(shape))
	}
	channels := shape[1]

	mean := ff.meanValues
	if ff.meanFile != "" {
		if mean, err = readMeanValues(ff.meanFile); err != nil {
			return nil, err
		}
		if len(mean) != channels {
			return nil, fmt.Errorf("--mean %s has %d channels, the net's input has %d", ff.meanFile, len(mean), channels)
		}
	}
	if ff.resize > 0 != ff.crop {
		return nil, fmt.Errorf("--resize N and --crop go together: resize the shorter side to N, then crop the centre; without both, images are resized straight to the input size")
	}
	if ff.rawScale == 0 || ff.scale == 0 {
		return nil, fmt.Errorf("--raw-scale %g and --scale %g must not be 0", ff.rawScale, ff.scale)
	}
	src := &imageSource{paths: paths, chw: shape[1:], prep: forward.Preprocess{
		Width: shape[3], Height: shape[2], Channels: channels,
		Resize: ff.resize, CenterCrop: ff.crop, RGB: ff.rgb,
		RawScale: ff.rawScale, Mean: mean, Scale: ff.scale,
	}}
	if err := src.prep.Validate(); err != nil {
		return nil, err
	}
	return src, nil
}

func (s *imageSource) count() int        { return len(s.paths) }
func (s *imageSource) inputShape() []int { return s.chw }
func (s *imageSource) names() []string   { return s.paths }

func (s *imageSource) batch(start, n int, chw []int) (*forward.Tensor, error) {
	x := forward.NewTensor(append([]int{n}, chw...)...)
	size := chw[0] * chw[1] * chw[2]
	for i := range n {
		img, err := decodeImage(s.paths[start+i])
		if err != nil {
			return nil, err
		}
		t, err := s.prep.Image(img)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.paths[start+i], err)
		}
		copy(x.Data[i*size:(i+1)*size], t.Data)
	}
	return x, nil
}

func decodeImage(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: decoding the image failed (JPEG and PNG are supported): %w", path, err)
	}
	return img, nil
}

// readMeanValues reads a mean image from a .binaryproto or a C×H×W .npy
// file and returns its per-channel means.
func readMeanValues(path string) ([]float32, error) {
	var blob *caffepb.BlobProto
	if strings.EqualFold(filepath.Ext(path), ".npy") {
		a, err := npy.ReadFile(path)
		if err != nil {
			return nil, err
		}
		dims := make([]int64, len(a.Shape))
		for i, d := range a.Shape {
			dims[i] = int64(d)
		}
		blob = &caffepb.BlobProto{Shape: &caffepb.BlobShape{Dim: dims}, Data: a.Data}
	} else {
		var err error
		if blob, err = caffe.ReadMeanFile(path); err != nil {
			return nil, err
		}
	}
	mean, err := forward.MeanFromBlob(blob)
	if err != nil {
		return nil, fmt.Errorf("--mean %s: %w", path, err)
	}
	return mean, nil
}

// arraySource slices an N×C×H×W .npy array along N.
type arraySource struct {
	path string
	a    *npy.Array
}

func newArraySource(path string) (*arraySource, error) {
	a, err := npy.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(a.Shape) != 4 || a.Shape[0] == 0 {
		return nil, fmt.Errorf("--npy %s has shape %s; features needs N×C×H×W with N ≥ 1", path, formatShape(a.Shape))
	}
	return &arraySource{path: path, a: a}, nil
}

func (s *arraySource) count() int        { return s.a.Shape[0] }
func (s *arraySource) inputShape() []int { return s.a.Shape[1:] }

func (s *arraySource) names() []string {
	names := make([]string, s.count())
	for i := range names {
		names[i] = fmt.Sprintf("%s[%d]", s.path, i)
	}
	return names
}

func (s *arraySource) batch(start, n int, chw []int) (*forward.Tensor, error) {
	size := chw[0] * chw[1] * chw[2]
	return &forward.Tensor{Shape: append([]int{n}, chw...), Data: s.a.Data[start*size : (start+n)*size]}, nil
}
