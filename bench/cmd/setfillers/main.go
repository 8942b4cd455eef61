// Command setfillers writes a copy of a net definition in which every
// Convolution, Deconvolution and InnerProduct layer without a
// weight_filler gets an MSRA one (Gaussian, std √(2/fan-in)):
//
//	setfillers NET.prototxt OUT.prototxt
//
// Deploy nets usually name no fillers, so `tlsurgery init` would give
// their weights Caffe's default, constant 0. The benchmarks need nonzero
// weights because gonum's Sgemm skips the work for a zero entry of its
// first operand, which for a convolution is the filter matrix. Biases keep
// their default of 0, and other layer types are left as they are. The
// output is in the current text format, whatever the generation of NET.
package main

import (
	"fmt"
	"os"

	"google.golang.org/protobuf/proto"

	"github.com/tlsurgery/tlsurgery/caffe"
	"github.com/tlsurgery/tlsurgery/caffe/caffepb"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: setfillers NET.prototxt OUT.prototxt")
		os.Exit(2)
	}
	count, err := setFillers(os.Args[1], os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "setfillers:", err)
		os.Exit(1)
	}
	fmt.Printf("%s: set the weight filler of %d layers\n", os.Args[2], count)
}

// setFillers writes the net at in with MSRA weight fillers to out and
// returns the number of layers it changed.
func setFillers(in, out string) (int, error) {
	net, err := caffe.ReadOptions{StructureOnly: true}.ReadFile(in)
	if err != nil {
		return 0, err
	}
	count := 0
	for _, l := range net.Param.GetLayer() {
		switch l.GetType() {
		case "Convolution", "Deconvolution":
			if p := l.GetConvolutionParam(); p != nil && p.WeightFiller == nil {
				p.WeightFiller = msraFiller()
				count++
			}
		case "InnerProduct":
			if p := l.GetInnerProductParam(); p != nil && p.WeightFiller == nil {
				p.WeightFiller = msraFiller()
				count++
			}
		}
	}
	return count, caffe.WriteOptions{Encoding: caffe.Text}.WriteFile(net, out)
}

func msraFiller() *caffepb.FillerParameter {
	return &caffepb.FillerParameter{Type: proto.String("msra")}
}
