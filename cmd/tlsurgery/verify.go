package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
	"github.com/spf13/cobra"

	"github.com/tlsurgery/tlsurgery/forward"
)

func newVerifyCommand(stdout io.Writer) *cobra.Command {
	var opts forward.VerifyOptions
	var inputFlags []string
	cmd := &cobra.Command{
		Use:   "verify NET_A WEIGHTS_A NET_B WEIGHTS_B",
		Short: "Run two nets on the same input and compare their outputs",
		Long: `verify checks that a rewritten net computes what the original does. It runs
both nets forward on the same input and compares the final value of
every output blob whose name both nets have, and of the blobs named with
--blobs. The input is standard normal noise drawn with --seed unless
--input gives it. A table lists each blob with both shapes, the maximum
absolute difference and the maximum relative difference, max |A − B| ÷
max |B|; a blob is within the tolerance when its relative difference is
at most --tolerance. Shapes N×C and N×C×1×1 (an InnerProduct output and
the convolution fc2conv makes of it) count as the same.

When NET_B declares another input size than NET_A, as after fc2conv
with --new-input, NET_B runs at NET_A's input size and verify says so.

Exit status: 0 when every blob is within the tolerance, 1 when any is
beyond it, 2 on errors.`,
		Args: cobra.ExactArgs(4),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Tolerance < 0 {
				return fmt.Errorf("--tolerance %g must not be negative", opts.Tolerance)
			}
			inputs, err := readInputArrays(inputFlags)
			if err != nil {
				return err
			}
			opts.Inputs = inputs
			netA, _, err := loadNet(args[0], args[1], false)
			if err != nil {
				return err
			}
			netB, _, err := loadNet(args[2], args[3], false)
			if err != nil {
				return err
			}
			report, err := forward.Verify(netA, netB, opts)
			if err != nil {
				return err
			}
			if err := printVerifyReport(stdout, report, opts.Tolerance); err != nil {
				return err
			}
			if !report.Within() {
				return exitStatus(exitDiffs)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Float64Var(&opts.Tolerance, "tolerance", 1e-5, "largest relative difference, max |A − B| ÷ max |B|, a blob may have")
	f.Uint64Var(&opts.Seed, "seed", 1, "seed of the random input")
	f.StringSliceVar(&opts.Blobs, "blobs", nil, "more blobs to compare, such as intermediate ones (final values)")
	f.StringArrayVar(&inputFlags, "input", nil, "input values instead of random ones: NAME=FILE.npy, or FILE.npy for NET_A's first input (repeatable)")
	return cmd
}

func printVerifyReport(w io.Writer, r *forward.VerifyReport, tolerance float64) error {
	if len(r.Random) > 0 {
		fmt.Fprintf(w, "random input %s (standard normal, seed %d)\n", strings.Join(r.Random, ", "), r.Seed)
	}
	if r.Rerun != "" {
		fmt.Fprintln(w, r.Rerun)
	}

	table := tablewriter.NewTable(w,
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithRowAlignmentConfig(tw.CellAlignment{PerColumn: []tw.Align{tw.AlignLeft, tw.AlignLeft, tw.AlignLeft, tw.AlignRight, tw.AlignRight, tw.AlignLeft}}),
	)
	table.Header([]string{"blob", "shape A", "shape B", "max abs", "max rel", "ok"})

	beyond := 0
	for _, row := range r.Rows {
		ok := "yes"
		if !row.Within {
			ok = "NO"
			beyond++
		}
		if !forward.SameShape(row.ShapeA, row.ShapeB) {
			ok = "NO: shapes differ"
		}
		cells := []string{row.Blob, formatShape(row.ShapeA), formatShape(row.ShapeB),
			fmt.Sprintf("%.3g", row.Diff.MaxAbs), fmt.Sprintf("%.3g", row.Diff.MaxRel), ok}
		if err := table.Append(cells); err != nil {
			return err
		}
	}
	if err := table.Render(); err != nil {
		return err
	}

	blobs := "blobs"
	if len(r.Rows) == 1 {
		blobs = "blob"
	}
	if beyond == 0 {
		fmt.Fprintf(w, "%d %s within relative tolerance %g\n", len(r.Rows), blobs, tolerance)
		return nil
	}
	fmt.Fprintf(w, "%d of %d %s beyond relative tolerance %g\n", beyond, len(r.Rows), blobs, tolerance)
	return nil
}
