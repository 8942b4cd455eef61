package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tlsurgery/tlsurgery/graph"
	"github.com/tlsurgery/tlsurgery/internal/atomicfile"
)

// errNoDot is returned when an image format is requested and Graphviz is
// not on PATH.
var errNoDot = errors.New("graphviz's dot is not installed; install the graphviz package (Debian: apt-get install graphviz) or use --format dot")

func newGraphCommand(stdout, stderr io.Writer) *cobra.Command {
	var format, output, rankDir string
	var shapes bool
	var sel selection
	cmd := &cobra.Command{
		Use:   "graph NET [WEIGHTS]",
		Short: "Draw the layers and blobs of a net as a Graphviz graph",
		Long: `graph draws the net as Caffe's draw_net.py does: layers are boxes colored
by kind and labelled with their name, type and key parameters, blobs are
octagons, and edges run from each blob to the layers that read it and
from each layer to the blobs it writes. A layer that works in place has
a dashed edge back into the blob it reads, numbered in Caffe's order when
several layers work in place on the same blob.

--format dot writes the Graphviz DOT text. svg and png run Graphviz's dot
program, which must be on PATH (Debian package graphviz).

NET is a .prototxt or a .caffemodel; WEIGHTS, when given, is a caffemodel
whose blobs are matched to NET's layers by name, as for inspect.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch format {
			case "dot", "svg", "png":
			default:
				return fmt.Errorf("invalid --format %q; use dot, svg or png", format)
			}
			rankDir = strings.ToUpper(rankDir)
			for _, in := range args {
				if output != "" && output != "-" && atomicfile.Same(output, in) {
					return fmt.Errorf("refusing to overwrite the input %s; choose another -o", in)
				}
			}
			dot := ""
			if format != "dot" {
				// Checked first, so a missing Graphviz fails before a
				// large net is read.
				path, err := exec.LookPath("dot")
				if err != nil {
					return errNoDot
				}
				dot = path
			}
			opts, err := sel.options()
			if err != nil {
				return err
			}
			net, notes, err := loadStructure(args)
			if err != nil {
				return err
			}
			for _, n := range notes {
				fmt.Fprintln(stderr, "note:", n.String())
			}

			g := graph.Build(net, opts)
			g.Infer()
			if err := g.Validate(); err != nil {
				// The graph is still drawn, so the problems are warnings.
				for _, line := range strings.Split(err.Error(), "\n") {
					fmt.Fprintln(stderr, "warning:", line)
				}
			}
			var text bytes.Buffer
			if err := g.WriteDOT(&text, graph.DOTOptions{RankDir: rankDir, Shapes: shapes}); err != nil {
				return err
			}

			render := func(w io.Writer) error {
				if format == "dot" {
					_, err := w.Write(text.Bytes())
					return err
				}
				return runDot(cmd.Context(), dot, format, &text, w)
			}
			if output == "" || output == "-" {
				return render(stdout)
			}
			return atomicfile.Write(output, render)
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "dot", "output format: dot (Graphviz text), svg or png (run Graphviz's dot)")
	f.StringVarP(&output, "output", "o", "", "output file, replaced atomically (default: standard output)")
	f.StringVar(&rankDir, "rankdir", "LR", "direction of the layout: LR, TB, BT or RL")
	f.BoolVar(&shapes, "shapes", false, "label each blob with its inferred shape")
	sel.register(cmd)
	return cmd
}

// runDot renders DOT text as an image in format (a dot -T value) with the
// Graphviz dot program at path.
func runDot(ctx context.Context, path, format string, text io.Reader, w io.Writer) error {
	var stderr bytes.Buffer
	c := exec.CommandContext(ctx, path, "-T"+format)
	c.Stdin = text
	c.Stdout = w
	c.Stderr = &stderr
	if err := c.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return fmt.Errorf("dot -T%s failed: %w", format, err)
		}
		return fmt.Errorf("dot -T%s failed: %w: %s", format, err, msg)
	}
	return nil
}
