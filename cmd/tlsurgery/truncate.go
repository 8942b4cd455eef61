package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tlsurgery/tlsurgery/surgery"
)

func newTruncateCommand(stdout io.Writer) *cobra.Command {
	var out, at string
	var sel selection
	cmd := &cobra.Command{
		Use:   "truncate NET [WEIGHTS] --at LAYER|BLOB -o OUT",
		Short: "Cut a net after a layer or blob, to use it as a feature extractor",
		Long: `truncate keeps only the layers that the chosen output depends on and
writes a deploy net that outputs it. A blob name means the blob's final
value, after every layer that writes it in place (CaffeNet's fc7 is the
post-ReLU "CNN code"); a layer name means that layer's own output; a name
that is both means the blob. Loss and accuracy layers go; the weights of
the kept layers stay.

It writes OUT.prototxt and, when there are weights, OUT.caffemodel.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if at == "" {
				return fmt.Errorf("missing --at LAYER|BLOB")
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
			result, report, err := surgery.Truncate(net, at, opts)
			if err != nil {
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
	f.StringVar(&at, "at", "", "blob (final value) or layer whose output the truncated net produces")
	sel.register(cmd)
	return cmd
}
