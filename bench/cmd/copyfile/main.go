// Command copyfile reads a whole file with os.ReadFile and writes its
// bytes to another path the way a safe writer does: in 1 MiB pieces to a
// temporary file beside DST, synced to disk, then renamed over DST:
//
//	copyfile SRC DST
//
// It is the time and memory floor of a command that reads a file into
// memory and writes as many bytes back durably, such as `tlsurgery
// upgrade` of a caffemodel, whose outputs are written the same way.
// Write DST to the directory that the measured command writes to, so
// that both pay the same file system costs.
package main

import (
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: copyfile SRC DST")
		os.Exit(2)
	}
	if err := copyFile(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "copyfile:", err)
		os.Exit(1)
	}
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	// Write in 1 MiB pieces, as the buffered writers of the measured
	// commands do, so the kernel starts writing back as early as theirs.
	for off := 0; off < len(data); off += 1 << 20 {
		if _, err := f.Write(data[off:min(off+1<<20, len(data))]); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return err
	}
	fmt.Printf("%s: wrote %d bytes\n", dst, len(data))
	return nil
}
