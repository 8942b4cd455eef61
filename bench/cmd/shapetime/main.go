// Command shapetime times shape inference of a net in one process, the
// peer of OpenCV's Net.getLayersShapes (bench/opencv_shapes.py):
//
//	shapetime NET RUNS
//
// It reads the net's structure once. Then it builds the layer graph and
// infers every blob's shape, once untimed and then RUNS times. It prints
// one JSON line: the time to read the net, the median and every run's wall
// time in milliseconds, and the number of layers.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/graph"
)

type report struct {
	LoadMs   float64   `json:"load_ms"`
	MedianMs float64   `json:"median_ms"`
	WallMs   []float64 `json:"wall_ms"`
	Layers   int       `json:"layers"`
}

func main() {
	runs, err := 0, error(nil)
	if len(os.Args) == 3 {
		runs, err = strconv.Atoi(os.Args[2])
	}
	if len(os.Args) != 3 || err != nil || runs < 1 {
		fmt.Fprintln(os.Stderr, "usage: shapetime NET RUNS")
		os.Exit(2)
	}

	start := time.Now()
	net, err := caffe.ReadOptions{StructureOnly: true}.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "shapetime:", err)
		os.Exit(1)
	}
	r := report{LoadMs: milliseconds(time.Since(start))}

	g, err := inferShapes(net)
	if err != nil {
		fmt.Fprintln(os.Stderr, "shapetime:", err)
		os.Exit(1)
	}
	r.Layers = len(g.Layers)
	for range runs {
		start := time.Now()
		if _, err := inferShapes(net); err != nil {
			fmt.Fprintln(os.Stderr, "shapetime:", err)
			os.Exit(1)
		}
		r.WallMs = append(r.WallMs, milliseconds(time.Since(start)))
	}
	sorted := slices.Sorted(slices.Values(r.WallMs))
	r.MedianMs = sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		r.MedianMs = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		fmt.Fprintln(os.Stderr, "shapetime:", err)
		os.Exit(1)
	}
}

// inferShapes builds the graph of net's TEST phase and infers its shapes,
// as `tlsurgery inspect` does before printing.
func inferShapes(net *caffe.Net) (*graph.Graph, error) {
	g := graph.Build(net, graph.Options{})
	g.Infer()
	return g, g.Validate()
}

func milliseconds(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
