package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tlsurgery/tlsurgery/surgery"
)

func newFoldBNCommand(stdout io.Writer) *cobra.Command {
	var out string
	var sel selection
	cmd := &cobra.Command{
		Use:   "fold-bn NET [WEIGHTS] -o OUT",
		Short: "Fold BatchNorm and Scale layers into the convolution before them",
		Long: `fold-bn folds each BatchNorm that directly follows a Convolution or
InnerProduct, and the Scale that directly follows it, into that layer's
weights and bias, and removes them, so a deploy net runs faster and gives
the same outputs:

  w' = w·γ/√(var+eps)    b' = (b − mean)·γ/√(var+eps) + β

per output channel, with the BatchNorm's stored statistics (divided by its
moving-average factor) and its eps. A layer without a bias gets one. A
layer is folded only when no other layer reads the values in between;
BatchNorm layers that stay are listed with the reason. The statistics
come from the weights, so give WEIGHTS (or a caffemodel as NET).

It writes OUT.prototxt and OUT.caffemodel.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkPairOutput(out, args...); err != nil {
				return err
			}
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
			result, report, err := surgery.FoldBatchNorm(net, opts)
			if err != nil {
				if report != nil && len(report.Refused)+len(report.Warnings) > 0 {
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
	cmd.Flags().StringVarP(&out, "output", "o", "", "output path without extension: writes OUT.prototxt and OUT.caffemodel")
	sel.register(cmd)
	return cmd
}
