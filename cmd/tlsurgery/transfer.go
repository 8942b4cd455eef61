package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
	"github.com/tlsurgery/tlsurgery/convert/npy"
	"github.com/tlsurgery/tlsurgery/convert/onnx"
	"github.com/tlsurgery/tlsurgery/graph"
	"github.com/tlsurgery/tlsurgery/internal/atomicfile"
	"github.com/tlsurgery/tlsurgery/transfer"
)

func newAdviseCommand(stdout io.Writer) *cobra.Command {
	var samples, classes int
	var similar, different bool
	var format string
	var sel selection
	cmd := &cobra.Command{
		Use:   "advise NET [WEIGHTS] --samples N --similar|--different [--classes K]",
		Short: "Name the transfer-learning scenario for a data set and print the commands for this net",
		Long: `advise places a new data set in the size × similarity table of transfer
learning (small or large; similar to the net's original data or
different), explains what to do, and prints the tlsurgery commands for this
net: which blob's codes to train a linear classifier on, or how to set up
fine-tuning. The layers are chosen from the net's structure: the last
hidden layer for similar data, the input of the fully-connected stack for
different data.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if similar == different {
				return fmt.Errorf("give exactly one of --similar and --different")
			}
			opts, err := sel.options()
			if err != nil {
				return err
			}
			net, err := caffe.ReadOptions{StructureOnly: true}.ReadFile(args[0])
			if err != nil {
				return err
			}
			ao := transfer.AdviseOptions{Samples: samples, Classes: classes, Similar: similar, NetPath: args[0], Graph: opts}
			if len(args) == 2 {
				ao.WeightsPath = args[1]
			}
			a, err := transfer.Advise(net, ao)
			if err != nil {
				return err
			}
			if format == "json" {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(a)
			}
			fmt.Fprintf(stdout, "scenario: %s\n%s\n", a.Scenario, a.Explanation)
			if a.Reason != "" {
				fmt.Fprintf(stdout, "layers: %s\n", a.Reason)
			}
			fmt.Fprintln(stdout, "commands:")
			for _, c := range a.Commands {
				fmt.Fprintln(stdout, "  "+c)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&samples, "samples", 0, "number of labelled samples in the new data set")
	f.IntVar(&classes, "classes", 0, "number of new classes (0: unknown)")
	f.BoolVar(&similar, "similar", false, "the new data resembles the net's original training data")
	f.BoolVar(&different, "different", false, "the new data differs from the net's original training data")
	f.StringVar(&format, "format", "text", "output format: text or json")
	sel.register(cmd)
	return cmd
}

func newLinearCommand(stdout, stderr io.Writer) *cobra.Command {
	var out, netPath, weightsPath, blob, name string
	var withONNX bool
	var opts transfer.LinearOptions
	cmd := &cobra.Command{
		Use:   "linear CODES.npy LABELS -o OUT [--net NET --weights WEIGHTS]",
		Short: "Train a linear classifier on CNN codes and append it to the net",
		Long: `linear trains a multinomial logistic regression (or, with --svm, a linear
SVM) on codes from tlsurgery features: CODES.npy holds one row per sample,
LABELS one class number per line (0, 1, ...). It reports training and
validation accuracy and writes the classifier as a Caffe InnerProduct and
Softmax appended to the truncated net given with --net and --weights
(reading the blob --layer, by default the net's output), so OUT.prototxt
and OUT.caffemodel classify images into the new classes directly. Without
--net the classifier alone is written, as a net whose input is the codes.
Training is deterministic for a given --seed.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			codes, err := npy.ReadFile(args[0])
			if err != nil {
				return err
			}
			labels, err := readLabels(args[1])
			if err != nil {
				return err
			}
			if len(codes.Shape) == 0 || codes.Shape[0] != len(labels) {
				return fmt.Errorf("%s has %v codes, %s has %d labels", args[0], codes.Shape, args[1], len(labels))
			}
			d := len(codes.Data) / max(len(labels), 1)
			if opts.Val == 0 {
				opts.Val = -1 // an explicit --val 0 holds nothing out
			}
			if isTerminal(stderr) {
				opts.Progress = func(iter int, loss float64) {
					fmt.Fprintf(stderr, "\riteration %d: loss %.6f", iter, loss)
				}
			}
			c, rep, err := transfer.TrainLinear(codes.Data, d, labels, opts)
			if opts.Progress != nil {
				fmt.Fprintln(stderr)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s on %d codes of %d dimensions, %d classes (L2 %g, %d iterations, loss %.4g)\n", rep.Model, rep.Train, d, c.Classes, rep.L2, rep.Iterations, rep.Loss)
			fmt.Fprintf(stdout, "training accuracy: %.4f\n", rep.TrainAccuracy)
			if !math.IsNaN(rep.ValAccuracy) {
				fmt.Fprintf(stdout, "validation accuracy: %.4f (%d held out)\n", rep.ValAccuracy, rep.Valid)
			}

			var net *caffe.Net
			if netPath != "" {
				if net, _, err = loadNet(netPath, weightsPath, false); err != nil {
					return err
				}
				if blob == "" {
					g := graph.Build(net, graph.Options{})
					outs := g.Outputs()
					if len(outs) != 1 {
						return fmt.Errorf("the net has %d outputs; choose the codes blob with --layer", len(outs))
					}
					blob = outs[0].Blob
				}
			} else {
				blob = "codes"
				net = &caffe.Net{Param: &caffepb.NetParameter{Name: proto.String("linear"), Layer: []*caffepb.LayerParameter{{
					Name: proto.String("codes"), Type: proto.String("Input"), Top: []string{"codes"},
					InputParam: &caffepb.InputParameter{Shape: []*caffepb.BlobShape{{Dim: []int64{1, int64(d)}}}},
				}}}}
			}
			result, err := transfer.AppendClassifier(net, blob, c, name, graph.Options{})
			if err != nil {
				return err
			}
			written, err := writePair(result, out, true, args[0], args[1], netPath, weightsPath)
			if err != nil {
				return err
			}
			if withONNX {
				text, _ := pairPaths(out)
				path := strings.TrimSuffix(text, ".prototxt") + ".onnx"
				if err := onnx.WriteFile(path, result, onnx.Options{}); err != nil {
					return err
				}
				written = append(written, path)
			}
			fmt.Fprintf(stdout, "wrote %s (classifier %q reads %q; probabilities in %q)\n", strings.Join(written, ", "), name, blob, name+"_prob")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "", "output path without extension: writes OUT.prototxt and OUT.caffemodel")
	f.StringVar(&netPath, "net", "", "the truncated net that computes the codes (prototxt or caffemodel)")
	f.StringVar(&weightsPath, "weights", "", "its weights (caffemodel)")
	f.StringVar(&blob, "layer", "", "blob of the net that holds the codes (default: the net's only output)")
	f.StringVar(&name, "name", "classifier", "name of the appended InnerProduct layer")
	f.BoolVar(&withONNX, "onnx", false, "also write OUT.onnx (opset 13) of the net with the classifier")
	f.Float64Var(&opts.L2, "l2", 1e-4, "L2 regularization strength (weight of ½‖W‖²)")
	f.BoolVar(&opts.SVM, "svm", false, "train a linear SVM (one-vs-rest, squared hinge) instead of softmax regression")
	f.Float64Var(&opts.Val, "val", 0.2, "fraction of samples held out for validation (0: none)")
	f.Uint64Var(&opts.Seed, "seed", 1, "seed of the training/validation split")
	f.IntVar(&opts.MaxIter, "max-iter", 500, "maximum L-BFGS iterations")
	return cmd
}

// readLabels reads one integer class per non-empty line.
func readLabels(path string) ([]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []int
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" {
			continue
		}
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("%s:%d: label %q is not a class number (0, 1, ...)", path, line, s)
		}
		out = append(out, v)
	}
	return out, sc.Err()
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func newFinetuneCommand(stdout io.Writer) *cobra.Command {
	var opts transfer.FinetuneOptions
	var sel selection
	cmd := &cobra.Command{
		Use:   "finetune NET WEIGHTS --classes K [--freeze-through LAYER] --base-lr LR -o DIR",
		Short: "Write a kit for fine-tuning a pretrained net on new classes with Caffe",
		Long: `finetune writes into DIR everything Caffe needs to fine-tune a pretrained
net on K new classes:

  train_val.prototxt   Data layers whose sources are placeholders (` + transfer.TrainSourcePlaceholder + `
                       and ` + transfer.ValSourcePlaceholder + `) to replace with your databases,
                       the new classifier, frozen layers, loss and accuracy
  deploy.prototxt      the deploy net with the new classifier
  weights.caffemodel   the pretrained weights without the old classifier
  solver.prototxt      base_lr = --base-lr / 10 (the new classifier learns 10×
                       faster than the pretrained layers), lr_policy "step"

The new classifier has a new name, so Caffe initializes it from its
fillers instead of loading the old weights. Then run:
  caffe train --solver DIR/solver.prototxt --weights DIR/weights.caffemodel`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Dir == "" {
				return fmt.Errorf("missing -o DIR")
			}
			if opts.Classes < 1 {
				return fmt.Errorf("missing --classes K")
			}
			g, err := sel.options()
			if err != nil {
				return err
			}
			opts.Graph = g
			net, _, err := loadNet(args[0], args[1], false)
			if err != nil {
				return err
			}
			kit, err := transfer.Finetune(net, opts)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Join(opts.Dir, "snapshots"), 0o755); err != nil {
				return err
			}
			dir := opts.Dir + string(os.PathSeparator)
			if _, err := writePair(kit.TrainVal, dir+"train_val", false, args...); err != nil {
				return err
			}
			if _, err := writePair(kit.Deploy, dir+"deploy", false, args...); err != nil {
				return err
			}
			if err := (caffe.WriteOptions{Encoding: caffe.Binary}).WriteFile(kit.Deploy, dir+"weights.caffemodel"); err != nil {
				return err
			}
			err = atomicfile.Write(dir+"solver.prototxt", func(w io.Writer) error { return caffe.WriteText(w, kit.Solver) })
			if err != nil {
				return err
			}
			for _, r := range kit.Reports {
				fmt.Fprint(stdout, r)
			}
			fmt.Fprintf(stdout, "wrote %[1]strain_val.prototxt, %[1]sdeploy.prototxt, %[1]sweights.caffemodel, %[1]ssolver.prototxt (base_lr %g)\n", dir, kit.Solver.GetBaseLr())
			fmt.Fprintf(stdout, "replace %s and %s in %strain_val.prototxt with your databases, then run:\n  caffe train --solver %ssolver.prototxt --weights %sweights.caffemodel\n",
				transfer.TrainSourcePlaceholder, transfer.ValSourcePlaceholder, dir, dir, dir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Dir, "output", "o", "", "output folder")
	f.IntVar(&opts.Classes, "classes", 0, "number of new classes")
	f.StringVar(&opts.Layer, "layer", "", "classifier layer to replace (default: the last InnerProduct)")
	f.StringVar(&opts.FreezeThrough, "freeze-through", "", "freeze this layer and every layer it depends on (lr_mult 0)")
	f.Float64Var(&opts.BaseLR, "base-lr", 0.01, "learning rate of the new classifier; the solver's base_lr is 10× smaller")
	f.IntVar(&opts.BatchSize, "batch-size", 32, "batch size of the data layers")
	f.IntVar(&opts.StepSize, "stepsize", 20000, "iterations between 10× learning-rate drops")
	f.IntVar(&opts.MaxIter, "max-iter", 100000, "iterations to train")
	sel.register(cmd)
	return cmd
}
