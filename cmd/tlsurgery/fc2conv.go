package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tlsurgery/tlsurgery/surgery"
)

func newFC2ConvCommand(stdout io.Writer) *cobra.Command {
	var out, suffix string
	var layers, newInputs []string
	var sel selection
	cmd := &cobra.Command{
		Use:   "fc2conv NET [WEIGHTS] -o OUT",
		Short: "Rewrite InnerProduct layers as equivalent convolutions",
		Long: `fc2conv turns each InnerProduct layer (or those named with --layers) into
the convolution that computes the same outputs: an InnerProduct over a
C×H×W volume becomes an H×W convolution with stride 1 and no padding, one
over a vector a 1×1 convolution. The weights are reshaped, not retrained.
A Flatten or Reshape feeding a converted layer is bypassed. With
--new-input the converted net declares a larger input and produces a map
of outputs (CaffeNet at 1,3,451,451 gives an 8×8 map).

It writes OUT.prototxt and, when there are weights, OUT.caffemodel, and
prints what changed; layers that cannot be converted exactly stay as they
are and are listed with the reason.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := sel.options()
			if err != nil {
				return err
			}
			weights := ""
			if len(args) == 2 {
				weights = args[1]
			}
			net, _, err := loadNet(args[0], weights, false)
			if err != nil {
				return err
			}
			fo := surgery.FCToConvOptions{Layers: layers, Suffix: suffix, Graph: opts}
			if len(newInputs) > 0 {
				ns := selection{inputs: newInputs}
				no, err := ns.options()
				if err != nil {
					return err
				}
				fo.NewInputs = no.Inputs
			}
			result, report, err := surgery.FCToConv(net, fo)
			if err != nil {
				if report != nil {
					fmt.Fprint(stdout, report)
				}
				return err
			}
			written, err := writePair(result, out, hasWeights(result), args...)
			if err != nil {
				return err
			}
			fmt.Fprint(stdout, report)
			fmt.Fprintf(stdout, "wrote %s\n", strings.Join(written, ", "))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "", "output path without extension: writes OUT.prototxt and OUT.caffemodel")
	f.StringSliceVar(&layers, "layers", nil, "InnerProduct layers to convert (default: all)")
	f.StringVar(&suffix, "suffix", "", "append this to the names of converted layers (and of their tops named like them)")
	f.StringArrayVar(&newInputs, "new-input", nil, "input size N,C,H,W (or NAME=N,C,H,W) to write into the converted net")
	sel.register(cmd)
	return cmd
}
