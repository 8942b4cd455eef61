// Command copyfile reads a whole file with os.ReadFile and writes its
// bytes to another path with os.WriteFile:
//
//	copyfile SRC DST
//
// It is the time and memory floor of a command that reads a file into
// memory and writes as many bytes back, such as `tlsurgery upgrade` of a
// caffemodel. Write DST to the directory that the measured command
// writes to, so that both pay the same file system costs.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: copyfile SRC DST")
		os.Exit(2)
	}
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "copyfile:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(os.Args[2], data, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "copyfile:", err)
		os.Exit(1)
	}
	fmt.Printf("%s: wrote %d bytes\n", os.Args[2], len(data))
}
