package forward

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/graph"
)

// Diff is the difference between two tensors.
type Diff struct {
	MaxAbs float64 // max |a − b| over all elements
	MaxRel float64 // MaxAbs ÷ max |b|
}

// SameShape reports whether tensors of shapes a and b hold the same
// values in the same order: the shapes are equal once trailing axes of
// size 1 after the second axis are dropped. So N×C and N×C×1×1 (the
// output of an InnerProduct and of the convolution that fc2conv makes of
// it) count as the same shape.
func SameShape(a, b []int) bool {
	return slices.Equal(trimUnitAxes(a), trimUnitAxes(b))
}

func trimUnitAxes(s []int) []int {
	for len(s) > 2 && s[len(s)-1] == 1 {
		s = s[:len(s)-1]
	}
	return s
}

// Compare returns the maximum absolute and relative difference between a
// and b, with b as the reference: MaxRel is max |a − b| ÷ max |b|. When
// b is all zeros, MaxRel is 0 if a is too and +Inf otherwise.
//
// The shapes must match as SameShape decides; otherwise both differences
// are +Inf. A NaN, or an infinity, counts as equal to the same value at
// the same position and as an infinite difference from anything else.
func Compare(a, b *Tensor) Diff {
	if !SameShape(a.Shape, b.Shape) || len(a.Data) != len(b.Data) {
		return Diff{MaxAbs: math.Inf(1), MaxRel: math.Inf(1)}
	}
	var maxAbs, maxB float64
	for i, bv := range b.Data {
		x, y := float64(a.Data[i]), float64(bv)
		switch {
		case math.IsNaN(x) || math.IsNaN(y):
			if !(math.IsNaN(x) && math.IsNaN(y)) {
				maxAbs = math.Inf(1)
			}
			continue
		case math.IsInf(x, 0) || math.IsInf(y, 0):
			if x != y {
				maxAbs = math.Inf(1)
			}
			continue
		}
		maxAbs = math.Max(maxAbs, math.Abs(x-y))
		maxB = math.Max(maxB, math.Abs(y))
	}
	d := Diff{MaxAbs: maxAbs}
	switch {
	case maxAbs == 0:
		d.MaxRel = 0
	case maxB == 0:
		d.MaxRel = math.Inf(1)
	default:
		d.MaxRel = maxAbs / maxB
	}
	return d
}

// VerifyOptions configures Verify. The zero value feeds random inputs
// drawn with seed 0, compares the outputs that both nets share and
// requires them to be equal.
type VerifyOptions struct {
	// Seed seeds the random inputs: the same seed, input order and
	// shapes give the same values.
	Seed uint64

	// Inputs holds the input values by blob name, used in place of random
	// ones; "" is net A's first input. An input given at another shape
	// than net A declares runs both nets at that shape.
	Inputs map[string]*Tensor

	// Blobs names more blobs to compare, such as intermediate ones, after
	// the shared outputs. Each means the blob's final value and must exist
	// in both nets.
	Blobs []string

	// Tolerance is the largest Diff.MaxRel a blob may have; 0 requires
	// equal values.
	Tolerance float64

	// GraphA and GraphB select the phase, stages and input sizes at which
	// each net is compiled.
	GraphA, GraphB graph.Options
}

// VerifyRow is the comparison of one blob.
type VerifyRow struct {
	Blob           string
	ShapeA, ShapeB []int
	Diff           Diff
	Within         bool // Diff.MaxRel ≤ Tolerance and the shapes match
}

// VerifyReport is the result of Verify.
type VerifyReport struct {
	Rows []VerifyRow

	// Rerun explains that net B declares other input sizes than the ones
	// it ran at (net A's), or is "".
	Rerun string

	Seed   uint64   // seed of the random inputs
	Random []string // inputs filled with random values, in net A's input order
}

// Within reports whether every row is within the tolerance.
func (r *VerifyReport) Within() bool {
	for _, row := range r.Rows {
		if !row.Within {
			return false
		}
	}
	return true
}

// Verify runs netA and netB on the same inputs and compares the final
// values of every output blob whose name both nets have, then of
// opts.Blobs. The inputs are net A's: opts.Inputs where given, otherwise
// standard normal values drawn with opts.Seed. Net B must read inputs of
// the same names. When B declares other input sizes, such as a larger
// input after fc2conv with a new input size, B is run at A's sizes
// instead (Run compiles it again for them) and Rerun records it.
//
// An error means a net could not be compiled or run, or the nets share
// no output and opts.Blobs is empty. Differences beyond the tolerance
// are not errors, so see VerifyReport.Within.
func Verify(netA, netB *caffe.Net, opts VerifyOptions) (*VerifyReport, error) {
	a, err := Compile(netA, Options{Graph: opts.GraphA})
	if err != nil {
		return nil, fmt.Errorf("net A: %w", err)
	}
	b, err := Compile(netB, Options{Graph: opts.GraphB})
	if err != nil {
		return nil, fmt.Errorf("net B: %w", err)
	}

	report := &VerifyReport{Seed: opts.Seed}
	inputs, err := verifyInputs(a, opts, report)
	if err != nil {
		return nil, err
	}
	var reshaped []string
	for _, v := range b.Inputs() {
		t := inputs[v.Blob]
		if t == nil {
			return nil, fmt.Errorf("forward: net B reads input %q, which net A does not have (A's inputs: %s)", v.Blob, inputNames(a))
		}
		if !slices.Equal(v.Shape, t.Shape) {
			reshaped = append(reshaped, fmt.Sprintf("%q as %s", v.Blob, shapeText(v.Shape)))
		}
	}

	names := sharedOutputs(a, b)
	for _, name := range opts.Blobs {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("forward: the nets share no output blob name (A's outputs: %s; B's outputs: %s); name blobs to compare", outputNames(a), outputNames(b))
	}
	for _, name := range names {
		if a.g.Final[name] == nil {
			return nil, fmt.Errorf("forward: net A has no blob %q", name)
		}
		if b.g.Final[name] == nil {
			return nil, fmt.Errorf("forward: net B has no blob %q", name)
		}
	}

	ra, err := a.Run(inputs)
	if err != nil {
		return nil, fmt.Errorf("net A: %w", err)
	}
	rb, err := b.Run(inputs)
	if err != nil {
		return nil, fmt.Errorf("net B: %w", err)
	}
	if len(reshaped) > 0 {
		sizes := make([]string, 0, len(reshaped))
		for _, v := range a.Inputs() {
			sizes = append(sizes, fmt.Sprintf("%q %s", v.Blob, shapeText(inputs[v.Blob].Shape)))
		}
		report.Rerun = fmt.Sprintf("net B declares input %s; it ran at net A's input size (%s)",
			strings.Join(reshaped, ", "), strings.Join(sizes, ", "))
	}

	for _, name := range names {
		ta, tb := ra.Blob(name), rb.Blob(name)
		row := VerifyRow{Blob: name, ShapeA: ta.Shape, ShapeB: tb.Shape, Diff: Compare(ta, tb)}
		row.Within = SameShape(ta.Shape, tb.Shape) && row.Diff.MaxRel <= opts.Tolerance
		report.Rows = append(report.Rows, row)
	}
	return report, nil
}

// verifyInputs returns the inputs of net a: the given ones, with "" taken
// as the first input, and random ones for the rest.
func verifyInputs(a *Net, opts VerifyOptions, report *VerifyReport) (map[string]*Tensor, error) {
	declared := a.Inputs()
	if len(declared) == 0 {
		return nil, fmt.Errorf("forward: net A has no inputs")
	}
	inputs := map[string]*Tensor{}
	for name, t := range opts.Inputs {
		if name == "" {
			name = declared[0].Blob
		}
		if !slices.ContainsFunc(declared, func(v *graph.Value) bool { return v.Blob == name }) {
			return nil, fmt.Errorf("forward: net A has no input %q (its inputs: %s)", name, inputNames(a))
		}
		if inputs[name] != nil {
			return nil, fmt.Errorf("forward: input %q is given twice", name)
		}
		inputs[name] = t
	}
	for i, v := range declared {
		if inputs[v.Blob] != nil {
			continue
		}
		if v.Shape == nil {
			return nil, fmt.Errorf("forward: net A's input %q has no declared shape; give its values", v.Blob)
		}
		inputs[v.Blob] = RandomTensor(opts.Seed, uint64(i), v.Shape...)
		report.Random = append(report.Random, v.Blob)
	}
	return inputs, nil
}

// RandomTensor returns a tensor of standard normal values drawn from a PCG
// generator seeded with (seed, stream), so the same arguments give the
// same values.
func RandomTensor(seed, stream uint64, shape ...int) *Tensor {
	t := NewTensor(shape...)
	rng := rand.New(rand.NewPCG(seed, stream))
	for i := range t.Data {
		t.Data[i] = float32(rng.NormFloat64())
	}
	return t
}

// sharedOutputs returns the names of a's outputs that are outputs of b
// too, in a's order.
func sharedOutputs(a, b *Net) []string {
	var names []string
	for _, v := range a.g.Outputs() {
		if slices.ContainsFunc(b.g.Outputs(), func(w *graph.Value) bool { return w.Blob == v.Blob }) {
			names = append(names, v.Blob)
		}
	}
	return names
}

func inputNames(n *Net) string {
	var names []string
	for _, v := range n.Inputs() {
		names = append(names, fmt.Sprintf("%q", v.Blob))
	}
	return strings.Join(names, ", ")
}

func outputNames(n *Net) string {
	var names []string
	for _, v := range n.g.Outputs() {
		names = append(names, fmt.Sprintf("%q", v.Blob))
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// shapeText writes a shape as 1×3×227×227.
func shapeText(s []int) string {
	if s == nil {
		return "?"
	}
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return strings.Join(parts, "×")
}
