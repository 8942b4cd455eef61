package graph

import (
	"os"
	"strings"
	"testing"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/internal/corpus"
)

// FuzzInfer builds, infers and validates arbitrary nets: layer
// parameters are untrusted input, so every rule must report bad values
// as problems and never panic.
func FuzzInfer(f *testing.F) {
	for _, path := range corpus.Walk(f, ".prototxt") {
		if st, err := os.Stat(path); err == nil && st.Size() < 8<<10 {
			if data, err := os.ReadFile(path); err == nil {
				f.Add(string(data))
			}
		}
	}
	for _, typ := range Types() {
		f.Add(`layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 5 dim: 4 } } }
layer { name: "l" type: "` + typ + `" bottom: "x" bottom: "x" top: "y" }`)
	}
	f.Fuzz(func(t *testing.T, src string) {
		net, err := caffe.ReadOptions{Name: "fuzz"}.Read(strings.NewReader(src))
		if err != nil {
			return
		}
		for _, train := range []bool{false, true} {
			s, g := Summarize(net, Options{Train: train})
			_ = g.Validate()
			_ = s
		}
	})
}
