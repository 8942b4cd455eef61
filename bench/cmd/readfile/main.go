// Command readfile reads a whole file with os.ReadFile and prints its
// size in bytes: the time and memory floor of any Go program that holds
// the file's bytes in memory at once.
//
//	readfile FILE
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: readfile FILE")
		os.Exit(2)
	}
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "readfile:", err)
		os.Exit(1)
	}
	fmt.Printf("%s: %d bytes\n", os.Args[1], len(data))
}
