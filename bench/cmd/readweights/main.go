// Command readweights reads a Caffe net or caffemodel with the caffe
// package and prints what it read, so that a benchmark of the process
// measures a real load:
//
//	readweights [-structure] FILE
//
// The output line gives the number of layers and blobs, the number of
// float values decoded into memory (0 with -structure) and the number of
// values that the blob shapes describe.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/tlsurgery/tlsurgery/caffe"
)

func main() {
	structure := flag.Bool("structure", false, "read blob shapes only and skip the weight values")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: readweights [-structure] FILE")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}

	path := flag.Arg(0)
	net, err := caffe.ReadOptions{StructureOnly: *structure}.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "readweights:", err)
		os.Exit(1)
	}

	blobs, valuesRead, valuesByShape := 0, 0, 0
	for _, l := range net.Param.GetLayer() {
		for _, b := range l.GetBlobs() {
			blobs++
			valuesRead += len(b.GetData()) + len(b.GetDiff())
			count, err := caffe.BlobCount(b)
			if err != nil {
				fmt.Fprintf(os.Stderr, "readweights: %s: layer %q: %v\n", path, l.GetName(), err)
				os.Exit(1)
			}
			valuesByShape += count
		}
	}
	fmt.Printf("%s: %d layers, %d blobs, %d float values read, %d values by blob shape\n",
		path, len(net.Param.GetLayer()), blobs, valuesRead, valuesByShape)
}
