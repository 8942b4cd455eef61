package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tlsurgery/tlsurgery/convert/npy"
	"github.com/tlsurgery/tlsurgery/forward"
	"github.com/tlsurgery/tlsurgery/graph"
	"github.com/tlsurgery/tlsurgery/internal/atomicfile"
)

func newRunCommand(stdout io.Writer) *cobra.Command {
	var out string
	var inputFlags, blobs []string
	cmd := &cobra.Command{
		Use:   "run NET [WEIGHTS] --input [NAME=]FILE.npy ... -o OUT.npz",
		Short: "Run a net forward on NumPy arrays and save blobs to an .npz archive",
		Long: `run computes a net on the CPU in float32 with Caffe's semantics, with no
Caffe installed, and writes the requested blobs to an .npz archive that
numpy.load reads, one array per blob, keyed by blob name.

Each --input gives the values of one input blob as an .npy array in
N×C×H×W order; an unnamed --input FILE.npy goes to the net's only input.
The net runs at the arrays' shapes, which may differ from the ones it
declares. Arrays of any numeric dtype are read as float32.

--blobs names the blobs to save; each means the blob's final value,
after every layer that writes it in place (CaffeNet's fc7 is the
post-ReLU value). By default the net's outputs are saved.

Layer types the forward pass runs: ` + strings.Join(forward.SupportedTypes(), ", ") + `.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			inputs, err := readInputArrays(inputFlags)
			if err != nil {
				return err
			}
			if len(inputs) == 0 {
				return fmt.Errorf("missing --input [NAME=]FILE.npy")
			}
			weights := ""
			if len(args) == 2 {
				weights = args[1]
			}
			net, _, err := loadNet(args[0], weights, false)
			if err != nil {
				return err
			}

			shapes := map[string][]int{}
			for name, t := range inputs {
				shapes[name] = t.Shape
			}
			compiled, err := forward.Compile(net, forward.Options{Graph: graph.Options{Inputs: shapes}})
			if err != nil {
				return err
			}
			if inputs, err = matchInputs(compiled, inputs); err != nil {
				return err
			}
			result, err := compiled.Run(inputs)
			if err != nil {
				return err
			}

			if len(blobs) == 0 {
				for _, v := range result.Graph().Outputs() {
					blobs = append(blobs, v.Blob)
				}
			}
			arrays := map[string]*npy.Array{}
			for _, name := range blobs {
				t := result.Blob(name)
				if t == nil {
					return fmt.Errorf("--blobs: the net has no blob %q (its outputs: %s)", name, outputList(result.Graph()))
				}
				arrays[name] = &npy.Array{Shape: t.Shape, Data: t.Data}
			}
			for _, spec := range inputFlags {
				if _, file := splitInputFlag(spec); atomicfile.Same(out, file) {
					return fmt.Errorf("-o would overwrite the input %s; choose another path", file)
				}
			}
			if err := npy.WriteNPZFile(out, arrays); err != nil {
				return err
			}
			for _, name := range blobs {
				fmt.Fprintf(stdout, "%s\t%s\n", name, formatShape(arrays[name].Shape))
			}
			fmt.Fprintf(stdout, "wrote %s\n", out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&inputFlags, "input", nil, "values of an input blob: NAME=FILE.npy, or FILE.npy for the net's only input (repeatable)")
	f.StringVarP(&out, "output", "o", "", "path of the .npz archive to write")
	f.StringSliceVar(&blobs, "blobs", nil, "blobs to save, by name (final values; default: the net's outputs)")
	cmd.MarkFlagRequired("output")
	return cmd
}

// splitInputFlag splits an --input value NAME=FILE.npy into its blob name
// and file; a value without "=" has the name "".
func splitInputFlag(spec string) (name, file string) {
	if name, file, found := strings.Cut(spec, "="); found {
		return name, file
	}
	return "", spec
}

// readInputArrays reads the .npy files of --input values, keyed by blob
// name ("" for an unnamed one).
func readInputArrays(specs []string) (map[string]*forward.Tensor, error) {
	inputs := map[string]*forward.Tensor{}
	for _, spec := range specs {
		name, file := splitInputFlag(spec)
		if file == "" {
			return nil, fmt.Errorf("--input %q: missing the .npy file; use NAME=FILE.npy or FILE.npy", spec)
		}
		if _, dup := inputs[name]; dup {
			if name == "" {
				return nil, fmt.Errorf("--input %q: only one input may be unnamed; name each as NAME=FILE.npy", spec)
			}
			return nil, fmt.Errorf("--input %q: input %q is given twice", spec, name)
		}
		a, err := npy.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--input %q: %w", spec, err)
		}
		inputs[name] = &forward.Tensor{Shape: a.Shape, Data: a.Data}
	}
	return inputs, nil
}

// matchInputs returns inputs with the unnamed one keyed by the net's only
// input, and checks that every name is an input of the net and every
// input has values.
func matchInputs(n *forward.Net, inputs map[string]*forward.Tensor) (map[string]*forward.Tensor, error) {
	var names []string
	for _, v := range n.Inputs() {
		names = append(names, v.Blob)
	}
	out := map[string]*forward.Tensor{}
	for name, t := range inputs {
		if name == "" {
			if len(names) != 1 {
				return nil, fmt.Errorf("--input FILE.npy without a name needs a net with one input; this one has %d (%s), so use NAME=FILE.npy", len(names), quoteList(names))
			}
			name = names[0]
		}
		if !slices.Contains(names, name) {
			return nil, fmt.Errorf("--input: the net has no input %q (its inputs: %s)", name, quoteList(names))
		}
		if out[name] != nil {
			return nil, fmt.Errorf("--input: input %q is given twice", name)
		}
		out[name] = t
	}
	for _, name := range names {
		if out[name] == nil {
			return nil, fmt.Errorf("missing --input %s=FILE.npy (the net's inputs: %s)", name, quoteList(names))
		}
	}
	return out, nil
}

func outputList(g *graph.Graph) string {
	var names []string
	for _, v := range g.Outputs() {
		names = append(names, v.Blob)
	}
	if len(names) == 0 {
		return "none"
	}
	return quoteList(names)
}

func quoteList(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(quoted, ", ")
}
