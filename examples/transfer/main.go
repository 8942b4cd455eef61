// Command transfer turns the two data sets of the README's worked example
// into NumPy arrays that `tlsurgery features --npy` reads, with one label
// per line beside them:
//
//	go run ./examples/transfer digits DIGITS.csv.gz OUT
//	go run ./examples/transfer idx [--limit N] IMAGES.idx.gz LABELS.idx.gz OUT
//
// digits: the 8×8 handwritten digits scikit-learn ships (64 pixels 0–16
// and the label per row), laid out like MNIST: scaled to 0–255, resized
// to 20×20 bilinearly, centred on a 28×28 canvas. idx: MNIST-format
// images such as Fashion-MNIST. Pixels are then multiplied by 1/256, as
// LeNet's training data were. OUT.npy holds N×1×28×28 float32 values and
// OUT.txt the labels.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tlsurgery/tlsurgery/convert/npy"
	"github.com/tlsurgery/tlsurgery/internal/atomicfile"
	"github.com/tlsurgery/tlsurgery/transfer"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "transfer:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("transfer", flag.ContinueOnError)
	limit := fs.Int("limit", 0, "read only the first N images of an IDX file (0: all)")
	scale := fs.Float64("scale", 1.0/256, "factor applied to the 0–255 pixel values")
	if len(args) == 0 {
		return fmt.Errorf("usage: transfer digits CSV OUT | transfer idx [--limit N] IMAGES LABELS OUT (flags before the file names)")
	}
	mode := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	rest := fs.Args()

	var im *transfer.Images
	var out string
	var err error
	switch {
	case mode == "digits" && len(rest) == 2:
		im, err = transfer.ReadDigitsCSV(rest[0], float32(*scale))
		out = rest[1]
	case mode == "idx" && len(rest) == 3:
		im, err = transfer.ReadIDX(rest[0], rest[1], *limit, float32(*scale))
		out = rest[2]
	default:
		return fmt.Errorf("usage: transfer digits CSV OUT | transfer idx [--limit N] IMAGES LABELS OUT (flags before the file names)")
	}
	if err != nil {
		return err
	}
	if err := npy.WriteFile(out+".npy", &npy.Array{Shape: []int{im.N, 1, im.H, im.W}, Data: im.Data}); err != nil {
		return err
	}
	err = atomicfile.Write(out+".txt", func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		for _, l := range im.Labels {
			fmt.Fprintln(bw, l)
		}
		return bw.Flush()
	})
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s.npy (%d×1×%d×%d) and %s.txt\n", out, im.N, im.H, im.W, out)
	return nil
}
