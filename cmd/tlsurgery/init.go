package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/internal/atomicfile"
	"github.com/tlsurgery/tlsurgery/surgery"
)

func newInitCommand(stdout, stderr io.Writer) *cobra.Command {
	var out string
	var seed uint64
	var sel selection
	cmd := &cobra.Command{
		Use:   "init NET -o OUT.caffemodel",
		Short: "Write weights drawn from the layers' fillers, to start a net from scratch",
		Long: `init writes a caffemodel for NET whose blobs have the shapes the layer
parameters and input sizes imply, with values drawn from each layer's
weight_filler and bias_filler as Caffe draws them when it sets a net up.
A layer without a filler gets Caffe's default for its type: constant 0 for
most, 0.25 for PReLU, 1 for Scale and Normalize. BatchNorm statistics get a
valid normalization (mean near 0, variance between 0.5 and 1.5, factor 1)
instead of Caffe's zeros.

The same NET and --seed give the same bytes. Weights that NET already
carries are replaced. OUT is written atomically and must differ from NET.
A net that does not state its input size (one that reads a database)
needs --input.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "-" {
				return fmt.Errorf("-o -: init writes a file, not standard output; give a path such as init.caffemodel")
			}
			if caffe.EncodingForPath(out) == caffe.Text {
				return fmt.Errorf("-o %s: a text file cannot hold weights; name a binary file such as %s.caffemodel", out, strings.TrimSuffix(out, ".prototxt"))
			}
			if atomicfile.Same(args[0], out) {
				return fmt.Errorf("-o %s is the input NET; write to another path", out)
			}
			opts, err := sel.options()
			if err != nil {
				return err
			}
			// The existing weights are replaced, so their values are not read.
			net, err := caffe.ReadOptions{StructureOnly: true}.ReadFile(args[0])
			if err != nil {
				return err
			}
			for _, n := range net.Notes {
				fmt.Fprintln(stderr, n.String())
			}

			initialized, report, err := surgery.InitWeights(net, surgery.InitOptions{
				Seed: seed, Inputs: opts.Inputs, Train: opts.Train, Stages: opts.Stages, Level: opts.Level,
			})
			var unknown *surgery.UnknownShapesError
			if errors.As(err, &unknown) {
				return fmt.Errorf("the blob shapes of %s are unknown, so they cannot be initialized:\n  %s\n"+
					"give the input size with --input N,C,H,W, or the shape of a top without a shape rule with --shape BLOB=D1,D2,...",
					unknown.Count(), strings.Join(unknown.Layers, "\n  "))
			}
			if err != nil {
				return err
			}
			if err := (caffe.WriteOptions{Encoding: caffe.Binary}).WriteFile(initialized, out); err != nil {
				return err
			}
			return printInitReport(stdout, report, seed, out)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "caffemodel to write (required)")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "seed of the random fillers")
	_ = cmd.MarkFlagRequired("output")
	sel.register(cmd)
	return cmd
}

// printInitReport prints one line per initialized layer with its blob
// shapes and fillers, then the totals and the file written.
func printInitReport(w io.Writer, report *surgery.InitReport, seed uint64, path string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "layer\ttype\tblobs\tfillers")
	for _, l := range report.Layers {
		shapes := make([]string, len(l.Blobs))
		fillers := make([]string, len(l.Blobs))
		for i, b := range l.Blobs {
			shapes[i] = formatShape(b.Shape)
			fillers[i] = b.Filler
			switch {
			case b.SharedFrom != "":
				fillers[i] = "shared with " + b.SharedFrom
			case b.Default:
				fillers[i] += " (default)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", l.Name, l.Type, strings.Join(shapes, ", "), strings.Join(fillers, "; "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	layers := "layers"
	if len(report.Layers) == 1 {
		layers = "layer"
	}
	fmt.Fprintf(w, "\ninitialized %d %s with seed %d\n", len(report.Layers), layers, seed)
	fmt.Fprintf(w, "learnable parameters: %s\n", formatCount(report.Learnable))
	fmt.Fprintf(w, "stored values: %s (learnable + %s statistics)\n", formatCount(report.Stored()), formatCount(report.Statistics))
	_, err := fmt.Fprintf(w, "wrote %s\n", path)
	return err
}
