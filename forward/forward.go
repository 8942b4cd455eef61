package forward

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/graph"
)

// Tensor is a float32 array in C order.
type Tensor struct {
	Shape []int
	Data  []float32
}

// NewTensor returns a zeroed tensor of the given shape.
func NewTensor(shape ...int) *Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return &Tensor{Shape: slices.Clone(shape), Data: make([]float32, n)}
}

// Count returns the number of elements of t.
func (t *Tensor) Count() int { return len(t.Data) }

// Options configures Compile. The zero value selects the TEST phase at the
// net's declared input sizes and uses every CPU.
type Options struct {
	Graph   graph.Options
	Workers int // goroutines for batch-parallel kernels; 0 means runtime.GOMAXPROCS(0)

	// MaxActivationBytes bounds the float32 memory of all blob values a
	// run allocates, checked by Compile from the inferred shapes before
	// anything is allocated; 0 means 8 GiB.
	MaxActivationBytes int64
}

// kernel computes a layer's tops from its bottoms.
type kernel interface {
	forward(bottoms, tops []*Tensor) error
}

// builder prepares the kernel of one layer; l's shapes are inferred.
type builder func(l *graph.Layer, c *compileContext) (kernel, error)

var kernels = map[string]builder{}

// registerKernel adds a builder for each layer type.
func registerKernel(b builder, types ...string) {
	for _, t := range types {
		if kernels[t] != nil {
			panic("forward: two kernels for layer type " + t)
		}
		kernels[t] = b
	}
}

// SupportedTypes returns the layer types Run can compute, sorted.
func SupportedTypes() []string {
	out := make([]string, 0, len(kernels))
	for t := range kernels {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

type compileContext struct {
	workers int
}

// weights returns the float values of blob i of l, checked against the
// shape the graph infers for it.
func (c *compileContext) weights(l *graph.Layer, i int) ([]float32, error) {
	blobs := l.Param.GetBlobs()
	if i >= len(blobs) {
		return nil, fmt.Errorf("forward: layer %q (%s) has %d weight blobs, needs blob %d; give the weights", l.Name(), l.Type(), len(blobs), i)
	}
	data := blobs[i].GetData()
	n, _ := caffe.BlobCount(blobs[i])
	if len(data) != n || n == 0 && i < len(l.Blobs) && len(l.Blobs[i].Shape) > 0 {
		return nil, fmt.Errorf("forward: layer %q (%s) blob %d has %d values, its shape needs %d; read the weights fully", l.Name(), l.Type(), i, len(data), n)
	}
	if i < len(l.Blobs) {
		want := 1
		for _, d := range l.Blobs[i].Shape {
			want *= d
		}
		if want != n {
			return nil, fmt.Errorf("forward: layer %q (%s) blob %d has %d values, the layer's parameters and input shape need %d", l.Name(), l.Type(), i, n, want)
		}
	}
	return data, nil
}

// Net is a compiled net ready to run.
type Net struct {
	net     *caffe.Net
	opts    Options
	g       *graph.Graph
	kernels []kernel
}

// Compile prepares net for Run. Every selected layer must have a kernel,
// known shapes and, where it stores blobs, their values.
func Compile(net *caffe.Net, opts Options) (*Net, error) {
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	g := graph.Build(net, opts.Graph)
	g.Infer()
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	if opts.MaxActivationBytes <= 0 {
		opts.MaxActivationBytes = 8 << 30
	}
	var total int64
	for _, v := range g.Values {
		n := int64(1)
		for _, d := range v.Shape {
			n *= int64(d)
			if n > math.MaxInt32 {
				return nil, fmt.Errorf("forward: blob %q of shape %v has more than 2^31-1 values, Caffe's limit", v.Blob, v.Shape)
			}
		}
		total += 4 * n
	}
	if total > opts.MaxActivationBytes {
		return nil, fmt.Errorf("forward: the blob values need %d MiB, more than the %d MiB allowed; use a smaller batch or input size", total>>20, opts.MaxActivationBytes>>20)
	}
	c := &compileContext{workers: opts.Workers}
	n := &Net{net: net, opts: opts, g: g}
	for _, l := range g.Layers {
		if l.Unknown != "" {
			return nil, fmt.Errorf("forward: layer %q (%s): %s", l.Name(), l.Type(), l.Unknown)
		}
		b := kernels[l.Type()]
		if b == nil {
			return nil, fmt.Errorf("forward: layer %q: type %q is not supported by the forward pass", l.Name(), l.Type())
		}
		k, err := b(l, c)
		if err != nil {
			return nil, fmt.Errorf("forward: layer %q (%s): %w", l.Name(), l.Type(), err)
		}
		n.kernels = append(n.kernels, k)
	}
	return n, nil
}

// Graph returns the graph the net was compiled for (its shapes are the
// shapes Run produces).
func (n *Net) Graph() *graph.Graph { return n.g }

// Inputs returns the blobs Run needs: the net-level inputs and the tops
// of Input and data layers, in order.
func (n *Net) Inputs() []*graph.Value {
	var out []*graph.Value
	out = append(out, n.g.Inputs...)
	for _, l := range n.g.Layers {
		if isSource(l.Type()) {
			out = append(out, l.Tops...)
		}
	}
	return out
}

func isSource(t string) bool {
	switch t {
	case "Input", "Data", "ImageData", "MemoryData", "DummyData", "HDF5Data", "WindowData", "AnnotatedData":
		return true
	}
	return false
}

// Result holds every value computed by Run.
type Result struct {
	g      *graph.Graph
	values map[*graph.Value]*Tensor
}

// Blob returns the final value of a blob, or nil if there is none.
func (r *Result) Blob(name string) *Tensor {
	v := r.g.Final[name]
	if v == nil {
		return nil
	}
	return r.values[v]
}

// Value returns the tensor of one value of the graph.
func (r *Result) Value(v *graph.Value) *Tensor { return r.values[v] }

// Graph returns the graph whose values the result holds.
func (r *Result) Graph() *graph.Graph { return r.g }

// Run computes the net on the inputs, keyed by input blob name. When an
// input's shape differs from the compiled one, the net is compiled again
// for the new shapes first (the receiver is not changed). Input tensors
// are not modified.
func (n *Net) Run(inputs map[string]*Tensor) (*Result, error) {
	net := n
	reshape := map[string][]int{}
	for _, v := range n.Inputs() {
		t := inputs[v.Blob]
		if t == nil {
			return nil, fmt.Errorf("forward: missing input %q of shape %v", v.Blob, v.Shape)
		}
		if !slices.Equal(t.Shape, v.Shape) {
			reshape[v.Blob] = t.Shape
		}
	}
	if len(reshape) > 0 {
		opts := n.opts
		opts.Graph.Inputs = map[string][]int{}
		for k, s := range n.opts.Graph.Inputs {
			if k != "" {
				opts.Graph.Inputs[k] = s
			}
		}
		for k, s := range reshape {
			opts.Graph.Inputs[k] = s
		}
		var err error
		if net, err = Compile(n.net, opts); err != nil {
			return nil, err
		}
	}

	r := &Result{g: net.g, values: map[*graph.Value]*Tensor{}}
	for _, v := range net.g.Inputs {
		r.values[v] = inputs[v.Blob]
	}
	for i, l := range net.g.Layers {
		bottoms := make([]*Tensor, len(l.Bottoms))
		for j, b := range l.Bottoms {
			bottoms[j] = r.values[b]
		}
		if rk, ok := net.kernels[i].(resizingKernel); ok {
			out, err := rk.forwardResize(bottoms)
			if err == nil && len(out) != len(l.Tops) {
				err = fmt.Errorf("the kernel returned %d tops for %d", len(out), len(l.Tops))
			}
			if err != nil {
				return nil, fmt.Errorf("forward: layer %q (%s): %w", l.Name(), l.Type(), err)
			}
			for j, t := range l.Tops {
				r.values[t] = out[j]
			}
			continue
		}
		tops := make([]*Tensor, len(l.Tops))
		for j, t := range l.Tops {
			if isSource(l.Type()) {
				in := inputs[t.Blob]
				if len(in.Data) != product(in.Shape) {
					return nil, fmt.Errorf("forward: input %q has %d values for shape %v", t.Blob, len(in.Data), in.Shape)
				}
				tops[j] = in
				continue
			}
			tops[j] = NewTensor(t.Shape...)
		}
		if !isSource(l.Type()) {
			if err := net.kernels[i].forward(bottoms, tops); err != nil {
				return nil, fmt.Errorf("forward: layer %q (%s): %w", l.Name(), l.Type(), err)
			}
		}
		for j, t := range l.Tops {
			r.values[t] = tops[j]
		}
	}
	return r, nil
}

func product(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

func init() {
	registerKernel(func(l *graph.Layer, c *compileContext) (kernel, error) { return nil, nil },
		"Input", "Data", "ImageData", "MemoryData", "DummyData", "HDF5Data", "WindowData", "AnnotatedData")
}

// parallel runs fn(i) for i in [0, n) on up to workers goroutines.
func parallel(n, workers int, fn func(i int)) {
	if workers <= 1 || n <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	done := make(chan struct{})
	w := min(workers, n)
	for range w {
		go func() {
			for i := range next {
				fn(i)
			}
			done <- struct{}{}
		}()
	}
	for range w {
		<-done
	}
}
