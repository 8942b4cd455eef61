// Package atomicfile replaces files so that readers see either the old
// content or the complete new content, never a partly written file.
package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// bufferSize is the write buffer in front of the temporary file. Writes at
// least this large bypass the buffer, so big payloads are not copied twice.
const bufferSize = 1 << 20

// Write replaces the file at path with the bytes that write produces.
//
// The bytes go to a temporary file in the same directory, which is flushed,
// synced to disk, closed and then renamed over path. When write returns an
// error or panics, or any of those steps fails, the temporary file is
// removed and path is left as it was. A panic continues after the cleanup,
// and an error from write is returned unchanged.
//
// The new file keeps the permission bits of the file it replaces, or gets
// 0644 when path does not exist yet. When path is a symbolic link, the file
// it points to is replaced and the link is kept.
func Write(path string, write func(w io.Writer) error) (err error) {
	target, perm, err := resolveTarget(path)
	if err != nil {
		return err
	}

	dir, base := filepath.Split(target)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("atomicfile: create temporary file for %s: %w", path, err)
	}
	tmpName := tmp.Name()
	renamed := false
	defer func() {
		if !renamed {
			// Close may already have run, so its error here carries no news.
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()

	buffered := bufio.NewWriterSize(tmp, bufferSize)
	if err := write(buffered); err != nil {
		return err
	}
	if err := buffered.Flush(); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", tmpName, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if err := os.Rename(tmpName, target); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	renamed = true

	syncDir(dir)
	return nil
}

// resolveTarget returns the regular file that path names (following
// symbolic links) and the permission bits the replacement gets.
func resolveTarget(path string) (string, fs.FileMode, error) {
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return path, 0o644, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("atomicfile: %w", err)
	}

	target := path
	if info.Mode()&fs.ModeSymlink != 0 {
		target, err = filepath.EvalSymlinks(path)
		if errors.Is(err, fs.ErrNotExist) {
			return "", 0, fmt.Errorf("atomicfile: %s is a symbolic link to a missing file; remove the link or create its target first", path)
		}
		if err != nil {
			return "", 0, fmt.Errorf("atomicfile: %w", err)
		}
		info, err = os.Stat(target)
		if err != nil {
			return "", 0, fmt.Errorf("atomicfile: %w", err)
		}
	}
	if !info.Mode().IsRegular() {
		return "", 0, fmt.Errorf("atomicfile: %s is not a regular file (mode %v); choose a file path as output", path, info.Mode())
	}
	return target, info.Mode().Perm(), nil
}

// syncDir flushes the directory entry of a rename to disk. Errors are
// ignored because some systems (Windows, some network file systems) cannot
// sync a directory, and the file content itself is already synced.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}

// Same reports whether a and b name the same existing file, following
// symbolic links. It returns false when either path cannot be examined.
func Same(a, b string) bool {
	infoA, err := os.Stat(a)
	if err != nil {
		return false
	}
	infoB, err := os.Stat(b)
	if err != nil {
		return false
	}
	return os.SameFile(infoA, infoB)
}
