// Command forwardtime compiles a net once and times its forward pass, so
// that the time of `tlsurgery run` can be split into loading and
// computing, and compared with peers that also time the forward pass
// alone (bench/opencv_forward.py, bench/ort_forward.js):
//
//	forwardtime [-cpuprofile FILE] NET WEIGHTS INPUT.npy RUNS
//
// It feeds the .npy array to the net's only input and runs the forward
// pass once untimed, then RUNS times. It prints one JSON line: the time to
// read and compile the net, the median and every run's wall and CPU time
// in milliseconds, and the memory of one run in decimal MB:
//
//   - weights_mb: the float values of the net's blobs.
//   - activations_mb: every top of the last run, the input excluded.
//     Run allocates a new tensor for each top, in-place layers included.
//   - other_mb: what else one run allocates (im2col columns and the
//     like), runtime.MemStats.TotalAlloc over the run minus the
//     activations.
//
// CPU time is the process's user plus system time (getrusage), so it
// counts every thread that the run uses.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/convert/npy"
	"github.com/tlsurgery/tlsurgery/forward"
	"github.com/tlsurgery/tlsurgery/graph"
)

// report is the JSON line that forwardtime prints. The timing fields
// have the same names in the peers' output.
type report struct {
	LoadMs        float64   `json:"load_ms"`
	MedianMs      float64   `json:"median_ms"`
	MedianCPUMs   float64   `json:"median_cpu_ms"`
	WallMs        []float64 `json:"wall_ms"`
	CPUMs         []float64 `json:"cpu_ms"`
	OutputShape   []int     `json:"output_shape"`
	WeightsMB     float64   `json:"weights_mb"`
	ActivationsMB float64   `json:"activations_mb"`
	OtherMB       float64   `json:"other_mb"`
}

func main() {
	profile := flag.String("cpuprofile", "", "write a CPU profile of the timed runs to this file, for go tool pprof")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: forwardtime [-cpuprofile FILE] NET WEIGHTS INPUT.npy RUNS")
		flag.PrintDefaults()
	}
	flag.Parse()
	runs, err := strconv.Atoi(flag.Arg(3))
	if flag.NArg() != 4 || err != nil || runs < 1 {
		flag.Usage()
		os.Exit(2)
	}
	r, err := timeForward(flag.Arg(0), flag.Arg(1), flag.Arg(2), runs, *profile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "forwardtime:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		fmt.Fprintln(os.Stderr, "forwardtime:", err)
		os.Exit(1)
	}
}

func timeForward(netPath, weightsPath, inputPath string, runs int, profile string) (*report, error) {
	start := time.Now()
	array, err := npy.ReadFile(inputPath)
	if err != nil {
		return nil, err
	}
	input := &forward.Tensor{Shape: array.Shape, Data: array.Data}
	net, err := loadNet(netPath, weightsPath)
	if err != nil {
		return nil, err
	}
	compiled, err := compileFor(net, input.Shape)
	if err != nil {
		return nil, err
	}
	inputs := map[string]*forward.Tensor{compiled.Inputs()[0].Blob: input}
	r := &report{LoadMs: milliseconds(time.Since(start)), WeightsMB: megabytes(weightBytes(net))}

	result, err := compiled.Run(inputs)
	if err != nil {
		return nil, err
	}
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}

	var allocated uint64
	for range runs {
		// The collection runs outside the timed part, so each run starts
		// with the garbage of the one before it freed.
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		cpuStart := cpuTime()
		wallStart := time.Now()
		result, err = compiled.Run(inputs)
		r.WallMs = append(r.WallMs, milliseconds(time.Since(wallStart)))
		r.CPUMs = append(r.CPUMs, milliseconds(cpuTime()-cpuStart))
		runtime.ReadMemStats(&after)
		if err != nil {
			return nil, err
		}
		allocated = after.TotalAlloc - before.TotalAlloc
	}
	r.MedianMs, r.MedianCPUMs = median(r.WallMs), median(r.CPUMs)

	activations := 0
	for _, v := range result.Graph().Values {
		if t := result.Value(v); t != nil && t != input {
			activations += 4 * len(t.Data)
		}
	}
	r.ActivationsMB = megabytes(activations)
	r.OtherMB = megabytes(int(allocated) - activations)
	if outputs := result.Graph().Outputs(); len(outputs) > 0 {
		r.OutputShape = result.Value(outputs[0]).Shape
	}
	return r, nil
}

// loadNet reads the net and attaches the weights to it, as `tlsurgery
// run` does.
func loadNet(netPath, weightsPath string) (*caffe.Net, error) {
	net, err := caffe.ReadFile(netPath)
	if err != nil {
		return nil, err
	}
	weights, err := caffe.ReadFile(weightsPath)
	if err != nil {
		return nil, err
	}
	net, _, err = caffe.AttachWeights(net, weights)
	return net, err
}

// compileFor compiles a net with one input for the given input shape, so
// that Run does not compile it again.
func compileFor(net *caffe.Net, shape []int) (*forward.Net, error) {
	compiled, err := forward.Compile(net, forward.Options{})
	if err != nil {
		return nil, err
	}
	inputs := compiled.Inputs()
	if len(inputs) != 1 {
		return nil, fmt.Errorf("the net has %d inputs; forwardtime feeds one", len(inputs))
	}
	if slices.Equal(inputs[0].Shape, shape) {
		return compiled, nil
	}
	return forward.Compile(net, forward.Options{Graph: graph.Options{Inputs: map[string][]int{inputs[0].Blob: shape}}})
}

// cpuTime returns the user plus system time of the process so far.
func cpuTime() time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return 0
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

// weightBytes returns the bytes of the float32 values in net's blobs.
func weightBytes(net *caffe.Net) int {
	n := 0
	for _, l := range net.Param.GetLayer() {
		for _, b := range l.GetBlobs() {
			n += 4 * len(b.GetData())
		}
	}
	return n
}

func median(values []float64) float64 {
	sorted := slices.Sorted(slices.Values(values))
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func milliseconds(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func megabytes(n int) float64 { return float64(n) / 1e6 }
