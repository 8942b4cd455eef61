package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/internal/atomicfile"
)

// loadNet reads NET and, when given, matches WEIGHTS to it by layer name
// (a caffemodel alone carries its net). Weight values are read unless
// structureOnly is set. Notes of the reads and the matching are returned.
func loadNet(netPath, weightsPath string, structureOnly bool) (*caffe.Net, []caffe.Note, error) {
	opts := caffe.ReadOptions{StructureOnly: structureOnly}
	net, err := opts.ReadFile(netPath)
	if err != nil {
		return nil, nil, err
	}
	notes := net.Notes
	if weightsPath == "" {
		return net, notes, nil
	}
	weights, err := opts.ReadFile(weightsPath)
	if err != nil {
		return nil, nil, err
	}
	notes = append(notes, weights.Notes...)
	matched, more, err := caffe.AttachWeights(net, weights)
	if err != nil {
		return nil, nil, err
	}
	return matched, append(notes, more...), nil
}

// pairPaths returns OUT.prototxt and OUT.caffemodel for -o OUT; an
// extension given with OUT is dropped.
func pairPaths(out string) (string, string) {
	base := out
	switch strings.ToLower(filepath.Ext(out)) {
	case ".prototxt", ".caffemodel":
		base = strings.TrimSuffix(out, filepath.Ext(out))
	}
	return base + ".prototxt", base + ".caffemodel"
}

// writePair writes net as OUT.prototxt and, when it has weights,
// OUT.caffemodel, both atomically, refusing to replace any of inputs.
// It returns the paths written.
func writePair(net *caffe.Net, out string, withWeights bool, inputs ...string) ([]string, error) {
	if out == "" {
		return nil, fmt.Errorf("missing -o OUT (writes OUT.prototxt and OUT.caffemodel)")
	}
	text, bin := pairPaths(out)
	targets := []string{text}
	if withWeights {
		targets = append(targets, bin)
	}
	for _, t := range targets {
		for _, in := range inputs {
			if in != "" && atomicfile.Same(t, in) {
				return nil, fmt.Errorf("refusing to overwrite the input %s; choose another -o", in)
			}
		}
	}
	if err := (caffe.WriteOptions{Encoding: caffe.Text, ReplaceSource: true}).WriteFile(net, text); err != nil {
		return nil, err
	}
	if withWeights {
		if err := (caffe.WriteOptions{Encoding: caffe.Binary, ReplaceSource: true}).WriteFile(net, bin); err != nil {
			return nil, err
		}
	}
	return targets, nil
}

// hasWeights reports whether any layer of net carries blobs.
func hasWeights(net *caffe.Net) bool {
	for _, l := range net.Param.GetLayer() {
		if len(l.GetBlobs()) > 0 {
			return true
		}
	}
	return false
}
