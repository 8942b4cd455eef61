package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/internal/atomicfile"
	"github.com/tlsurgery/tlsurgery/surgery"
)

func newFreezeCommand(stdout io.Writer) *cobra.Command {
	var out, through string
	var sel selection
	cmd := &cobra.Command{
		Use:   "freeze NET --through LAYER -o OUT.prototxt",
		Short: "Stop training of a layer and of every layer before it",
		Long: `freeze sets lr_mult: 0 and decay_mult: 0 on every learnable blob of LAYER
and of every layer LAYER depends on, so that fine-tuning trains only the
layers after it. Existing param entries keep their other fields; missing
ones are added, one per learnable blob. BatchNorm statistics are not
learned and get nothing. A frozen blob shared by param name with a layer
that stays trainable is reported, because Caffe rejects shared blobs with
mismatched lr_mult.

NET is usually a train_val prototxt. Only the net is written, as text to
OUT.prototxt; weights do not change, so train with the caffemodel you
have.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if through == "" {
				return fmt.Errorf("missing --through LAYER")
			}
			if out == "" {
				return fmt.Errorf("missing -o OUT.prototxt")
			}
			if atomicfile.Same(out, args[0]) {
				return fmt.Errorf("refusing to overwrite the input %s; choose another -o", args[0])
			}
			opts, err := sel.options()
			if err != nil {
				return err
			}
			net, _, err := loadNet(args[0], "", true)
			if err != nil {
				return err
			}
			result, report, err := surgery.Freeze(net, through, opts)
			if err != nil {
				if report != nil && len(report.Refused)+len(report.Warnings) > 0 {
					fmt.Fprint(stdout, report)
				}
				return err
			}
			if err := (caffe.WriteOptions{Encoding: caffe.Text}).WriteFile(result, out); err != nil {
				return err
			}
			fmt.Fprint(stdout, report)
			fmt.Fprintf(stdout, "wrote %s\n", out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "", "path of the net to write, as text (OUT.prototxt)")
	f.StringVar(&through, "through", "", "last layer to freeze; every layer it depends on is frozen too")
	sel.register(cmd)
	return cmd
}
