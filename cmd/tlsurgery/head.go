package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/graph"
	"github.com/tlsurgery/tlsurgery/internal/atomicfile"
	"github.com/tlsurgery/tlsurgery/surgery"
)

func newHeadCommand(stdout io.Writer) *cobra.Command {
	var out, layer, name, solverPath, snapshotPrefix string
	var classes, stepSize, maxIter int
	var headLR float64
	var sel selection
	cmd := &cobra.Command{
		Use:   "head NET [WEIGHTS] --classes K -o OUT [--solver SOLVER.prototxt]",
		Short: "Replace the classifier by a new one for K classes, to fine-tune",
		Long: `head replaces the classifier (--layer; by default the last InnerProduct, or
in a net without one the last Convolution when it is 1×1) by a new layer
of the same type with K outputs and a new name (--name; by default the
old name + "_new"), so that Caffe initializes it from its fillers
(gaussian std 0.01 weights, zero biases) instead of loading the old
weights. The new layer learns 10× faster than the others (lr_mult 10,
biases 20). A top named like the old layer is renamed too, and every
later layer that reads it (in-place, loss and accuracy layers) follows.

It writes OUT.prototxt and, when there are weights, OUT.caffemodel without
the old classifier's weights. With --solver it also writes a solver for
` + "`caffe train -solver SOLVER.prototxt -weights OUT.caffemodel`" + `: SGD with
lr_policy "step", gamma 0.1, momentum 0.9 and weight_decay 0.0005, and
base_lr = --base-lr ÷ 10, so that the pretrained layers learn 10× slower
than the new head, whose lr_mult is 10. Its net is OUT.prototxt as given
on the command line, relative to where caffe runs; give a train_val net
as NET for training.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if classes < 1 {
				return fmt.Errorf("missing --classes K (a positive number of classes)")
			}
			if err := checkPairOutput(out, args...); err != nil {
				return err
			}
			if solverPath == "" {
				for _, flag := range []string{"base-lr", "stepsize", "max-iter", "snapshot-prefix"} {
					if cmd.Flags().Changed(flag) {
						return fmt.Errorf("--%s sets a field of the solver file; give --solver PATH to write one", flag)
					}
				}
			}
			opts, err := sel.options()
			if err != nil {
				return err
			}
			weights := ""
			if len(args) == 2 {
				weights = args[1]
			}
			if solverPath != "" {
				for _, in := range args {
					if atomicfile.Same(solverPath, in) {
						return fmt.Errorf("refusing to overwrite the input %s with the solver; choose another --solver", in)
					}
				}
			}
			net, _, err := loadNet(args[0], weights, false)
			if err != nil {
				return err
			}
			result, report, err := surgery.ReplaceHead(net, surgery.HeadOptions{Classes: classes, Layer: layer, Name: name, Graph: opts})
			if err != nil {
				if report != nil && len(report.Refused)+len(report.Warnings) > 0 {
					fmt.Fprint(stdout, report)
				}
				return err
			}
			var solver []byte
			if solverPath != "" {
				text, bin := pairPaths(out)
				if atomicfile.Same(solverPath, text) || atomicfile.Same(solverPath, bin) {
					return fmt.Errorf("the solver %s would replace the net written with -o; choose another --solver", solverPath)
				}
				if snapshotPrefix == "" {
					snapshotPrefix = strings.TrimSuffix(text, ".prototxt")
				}
				solver, err = solverText(surgery.SolverOptions{Net: text, HeadLR: headLR, StepSize: stepSize, MaxIter: maxIter, SnapshotPrefix: snapshotPrefix})
				if err != nil {
					return err
				}
			}
			written, err := writePair(result, out, hasWeights(result), args...)
			if err != nil {
				return err
			}
			if solver != nil {
				if err := atomicfile.Write(solverPath, func(w io.Writer) error { _, err := w.Write(solver); return err }); err != nil {
					return err
				}
				written = append(written, solverPath)
			}
			fmt.Fprint(stdout, report)
			if solver != nil && !hasLossLayer(result, opts) {
				fmt.Fprintln(stdout, "warning: the net has no loss layer, so caffe train cannot train it; run head on the train_val net and point the solver at that")
			}
			fmt.Fprintf(stdout, "wrote %s\n", strings.Join(written, ", "))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "", "output path without extension: writes OUT.prototxt and OUT.caffemodel")
	f.IntVar(&classes, "classes", 0, "number of outputs of the new classifier (required)")
	f.StringVar(&layer, "layer", "", "classifier to replace (default: the last InnerProduct, else a last 1×1 Convolution)")
	f.StringVar(&name, "name", "", `name of the new layer (default: the old name + "_new")`)
	f.StringVar(&solverPath, "solver", "", "also write a fine-tuning solver (SolverParameter text) to this path")
	f.Float64Var(&headLR, "base-lr", 0.01, "learning rate of the new head; the solver's base_lr is this ÷ 10, since the head's lr_mult is 10")
	f.IntVar(&stepSize, "stepsize", 20000, "iterations between the 10× learning-rate drops")
	f.IntVar(&maxIter, "max-iter", 100000, "iterations to train")
	f.StringVar(&snapshotPrefix, "snapshot-prefix", "", "path prefix of the snapshots Caffe writes (default: OUT)")
	sel.register(cmd)
	return cmd
}

// checkPairOutput rejects a missing -o OUT, and an OUT.prototxt or
// OUT.caffemodel that is one of the inputs, before any file is read.
func checkPairOutput(out string, inputs ...string) error {
	if out == "" {
		return fmt.Errorf("missing -o OUT (writes OUT.prototxt and OUT.caffemodel)")
	}
	text, bin := pairPaths(out)
	for _, in := range inputs {
		if atomicfile.Same(text, in) || atomicfile.Same(bin, in) {
			return fmt.Errorf("refusing to overwrite the input %s; choose another -o", in)
		}
	}
	return nil
}

// solverText returns the fine-tuning solver for opts as prototxt text.
func solverText(opts surgery.SolverOptions) ([]byte, error) {
	solver, err := surgery.FinetuneSolver(opts)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	if err := caffe.WriteText(&b, solver); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

// hasLossLayer reports whether a selected layer of net computes a loss.
func hasLossLayer(net *caffe.Net, opts graph.Options) bool {
	g := graph.Build(net, opts)
	for _, l := range g.Layers {
		if strings.HasSuffix(l.Type(), "Loss") {
			return true
		}
	}
	return false
}
