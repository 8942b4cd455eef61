package main

import (
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/convert/npy"
	"github.com/tlsurgery/tlsurgery/convert/onnx"
	"github.com/tlsurgery/tlsurgery/convert/safetensors"
	"github.com/tlsurgery/tlsurgery/internal/atomicfile"
)

// Metadata keys that export writes for the preprocessing flags.
const (
	metaMean         = "preprocess_mean"
	metaScale        = "preprocess_scale"
	metaChannelOrder = "preprocess_channel_order"
)

func newExportCommand(stdout, stderr io.Writer) *cobra.Command {
	var (
		to, out      string
		opset        int
		dynamicBatch bool
		mean         string
		scale        float64
		bgr          bool
		sel          selection
	)
	cmd := &cobra.Command{
		Use:   "export NET [WEIGHTS] --to onnx|safetensors|npz -o OUT",
		Short: "Write a net with its weights as ONNX, or its weights as safetensors or .npz",
		Long: `export writes NET with its weights in another format:

  onnx         an ONNX model (graph and weights) for ONNX Runtime, OpenCV,
               TensorRT and other ONNX tools
  safetensors  the weights only, one tensor per blob named LAYER.weight,
               LAYER.bias, LAYER.running_mean, LAYER.running_var or LAYER.N
  npz          the weights only, as a NumPy .npz archive of LAYER/N arrays

NET is a .prototxt or a .caffemodel; WEIGHTS, when given, is a caffemodel
whose blobs are matched to NET's layers by name. OUT is written atomically.

For ONNX, every layer of the selected phase is mapped to ONNX operators
that compute what Caffe computes; a layer without an exact ONNX form
(DetectionOutput, for one) stops the export with its name and the reason.
Node names are the Caffe layer names and tensor names the blob names; a
value that a later in-place layer overwrites is named BLOB@LAYER after the
layer that wrote it. --dynamic-batch makes the batch axis the symbol N.

--mean, --scale and --bgr record the preprocessing the model expects in
the file's metadata (ONNX metadata_props or the safetensors header), as
preprocess_mean, preprocess_scale and preprocess_channel_order. They do
not change the model.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("missing -o OUT")
			}
			for _, in := range args {
				if atomicfile.Same(in, out) {
					return fmt.Errorf("-o %s is an input file; write to another path", out)
				}
			}
			if to != "onnx" && (cmd.Flags().Changed("opset") || dynamicBatch) {
				return fmt.Errorf("--opset and --dynamic-batch apply to --to onnx only")
			}
			meta, err := preprocessMetadata(mean, scale, cmd.Flags().Changed("scale"), bgr)
			if err != nil {
				return err
			}
			if to == "npz" && len(meta) > 0 {
				return fmt.Errorf("--mean, --scale and --bgr need --to onnx or safetensors: an .npz archive has no metadata")
			}
			weightsPath := ""
			if len(args) == 2 {
				weightsPath = args[1]
			}

			switch to {
			case "onnx":
				return exportONNX(stdout, stderr, args[0], weightsPath, out, &sel, onnx.Options{
					Opset: opset, DynamicBatch: dynamicBatch, Metadata: meta, ProducerVersion: producerVersion(),
				})
			case "safetensors", "npz":
				bar := newPhaseBar(stderr)
				defer bar.finish()
				bar.step("reading weights")
				net, notes, err := loadNet(args[0], weightsPath, false)
				if err != nil {
					return err
				}
				bar.step("writing " + out)
				defer printNotes(stderr, notes)
				if !hasWeights(net) {
					return fmt.Errorf("%s has no weights; give a caffemodel as NET or WEIGHTS", args[0])
				}
				if to == "safetensors" {
					err = safetensors.WriteFile(out, net, safetensors.Options{Metadata: meta})
				} else {
					err = npy.WriteNPZFile(out, npy.NetArrays(net))
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "wrote %s (%s)\n", out, to)
				return nil
			case "":
				return fmt.Errorf("missing --to; choose onnx, safetensors or npz")
			}
			return fmt.Errorf("unknown --to %q; choose onnx, safetensors or npz", to)
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "output format: onnx, safetensors or npz (required)")
	f.StringVarP(&out, "output", "o", "", "file to write (required)")
	f.IntVar(&opset, "opset", onnx.DefaultOpset, fmt.Sprintf("ONNX operator set version, %d to %d", onnx.MinOpset, onnx.MaxOpset))
	f.BoolVar(&dynamicBatch, "dynamic-batch", false, "make the batch axis of the ONNX model's inputs and outputs the symbol N")
	f.StringVar(&mean, "mean", "", "per-channel mean subtracted from the input, in the input's channel order, e.g. 104,117,123 (metadata only)")
	f.Float64Var(&scale, "scale", 1, "factor applied to the input after the mean, e.g. 0.017 (metadata only)")
	f.BoolVar(&bgr, "bgr", false, "record that the input channels are in BGR order, as Caffe models trained with OpenCV images expect (metadata only)")
	sel.register(cmd)
	return cmd
}

// preprocessMetadata turns the preprocessing flags into metadata entries.
func preprocessMetadata(mean string, scale float64, scaleSet, bgr bool) (map[string]string, error) {
	meta := map[string]string{}
	if mean != "" {
		var values []string
		for _, part := range strings.Split(mean, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
			if err != nil {
				return nil, fmt.Errorf("--mean %q: %q is not a number; give one value per channel, such as 104,117,123", mean, part)
			}
			values = append(values, strconv.FormatFloat(v, 'g', -1, 64))
		}
		meta[metaMean] = strings.Join(values, ",")
	}
	if scaleSet {
		if scale == 0 {
			return nil, fmt.Errorf("--scale 0 would erase the input; give a non-zero factor")
		}
		meta[metaScale] = strconv.FormatFloat(scale, 'g', -1, 64)
	}
	if bgr {
		meta[metaChannelOrder] = "BGR"
	}
	return meta, nil
}

func exportONNX(stdout, stderr io.Writer, netPath, weightsPath, out string, sel *selection, opts onnx.Options) error {
	gopts, err := sel.options()
	if err != nil {
		return err
	}
	opts.Graph = gopts
	bar := newPhaseBar(stderr)
	defer bar.finish()
	bar.step("reading weights")
	net, notes, err := loadNet(netPath, weightsPath, false)
	if err != nil {
		return err
	}
	bar.step("converting to ONNX")
	defer printNotes(stderr, notes)
	model, report, err := onnx.Convert(net, opts)
	var unsupported *onnx.UnsupportedError
	if errors.As(err, &unsupported) {
		return fmt.Errorf("%w\nsee tlsurgery export --help; tlsurgery truncate can cut the net before such a layer", err)
	}
	if err != nil {
		return err
	}
	bar.step("writing " + out)
	if err := onnx.WriteModel(out, model); err != nil {
		return err
	}
	bar.finish()
	nodes := 0
	for _, l := range report.Layers {
		nodes += len(l.Ops)
	}
	fmt.Fprintf(stdout, "wrote %s (ONNX opset %d, IR version %d): %d nodes from %d layers\n",
		out, report.Opset, report.IRVersion, nodes, len(report.Layers))
	fmt.Fprintf(stdout, "inputs:  %s\n", strings.Join(report.Inputs, ", "))
	fmt.Fprintf(stdout, "outputs: %s\n", strings.Join(report.Outputs, ", "))
	return nil
}

// producerVersion returns the version stored as the model's
// producer_version: the module version of this build, which is
// "(devel)" for a build from a checkout.
func producerVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		return info.Main.Version
	}
	return "(devel)"
}

// printNotes writes the reader's notes, one per line.
func printNotes(w io.Writer, notes []caffe.Note) {
	for _, n := range notes {
		fmt.Fprintln(w, n.String())
	}
}
