package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func writeString(s string) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := io.WriteString(w, s)
		return err
	}
}

// assertOnlyFiles fails unless dir contains exactly the named entries, so a
// leftover temporary file shows up by name.
func assertOnlyFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("directory contains %q, want %q", got, names)
	}
}

func assertContent(t *testing.T, path, want string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s contains %q, want %q", path, got, want)
	}
}

func TestWriteNewFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.caffemodel")

	if err := Write(path, writeString("weights")); err != nil {
		t.Fatal(err)
	}

	assertContent(t, path, "weights")
	assertOnlyFiles(t, dir, "out.caffemodel")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && info.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", info.Mode().Perm())
	}
}

func TestWriteKeepsPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no Unix permission bits")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "out.caffemodel")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}

	if err := Write(path, writeString("new")); err != nil {
		t.Fatal(err)
	}

	assertContent(t, path, "new")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", info.Mode().Perm())
	}
}

func TestWriteLargePayload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "big")
	payload := strings.Repeat("0123456789abcdef", 3*bufferSize/16+7)

	if err := Write(path, writeString(payload)); err != nil {
		t.Fatal(err)
	}

	assertContent(t, path, payload)
}

func TestWriteFailures(t *testing.T) {
	errWrite := errors.New("encoder failed")
	tests := []struct {
		name  string
		write func(io.Writer) error
	}{
		{"error", func(io.Writer) error { return errWrite }},
		{"error after bytes", func(w io.Writer) error {
			if _, err := io.WriteString(w, strings.Repeat("x", 2*bufferSize)); err != nil {
				return err
			}
			return errWrite
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "target")
			if err := os.WriteFile(path, []byte("original"), 0o644); err != nil {
				t.Fatal(err)
			}

			err := Write(path, tt.write)

			if !errors.Is(err, errWrite) {
				t.Errorf("Write returned %v, want the write error unchanged", err)
			}
			assertContent(t, path, "original")
			assertOnlyFiles(t, dir, "target")
		})
	}
}

func TestWriteFailureNewFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "target")

	err := Write(path, func(io.Writer) error { return errors.New("no") })

	if err == nil {
		t.Fatal("Write succeeded, want the write error")
	}
	assertOnlyFiles(t, dir)
}

func TestWritePanic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "target")
	if err := os.WriteFile(path, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}

	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the panic value %q", r, "boom")
			}
		}()
		_ = Write(path, func(w io.Writer) error {
			_, _ = io.WriteString(w, "partial")
			panic("boom")
		})
	}()

	assertContent(t, path, "original")
	assertOnlyFiles(t, dir, "target")
}

func TestWriteRejectsDirectory(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}

	called := false
	err := Write(sub, func(io.Writer) error { called = true; return nil })

	if err == nil {
		t.Fatal("Write to a directory succeeded")
	}
	if called {
		t.Error("write function ran although the target is a directory")
	}
	assertOnlyFiles(t, dir, "sub")
}

func TestWriteMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "out")

	err := Write(path, writeString("x"))

	if err == nil {
		t.Fatal("Write into a missing directory succeeded")
	}
}

func TestWriteThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	link := filepath.Join(dir, "link")
	if err := os.WriteFile(real, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Skipf("cannot create symbolic links here: %v", err)
	}

	if err := Write(link, writeString("new")); err != nil {
		t.Fatal(err)
	}

	assertContent(t, real, "new")
	info, err := os.Lstat(link)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode()&os.ModeSymlink == 0 {
		t.Error("the symbolic link was replaced by a regular file")
	}
}

func TestSame(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	b := filepath.Join(dir, "b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hard := filepath.Join(dir, "hard")
	if err := os.Link(a, hard); err != nil {
		t.Skipf("cannot create hard links here: %v", err)
	}
	dotted := filepath.Join(dir, ".", "a")

	tests := []struct {
		name string
		x, y string
		want bool
	}{
		{"same path", a, a, true},
		{"dotted path", a, dotted, true},
		{"hard link", a, hard, true},
		{"different files", a, b, false},
		{"missing file", a, filepath.Join(dir, "missing"), false},
		{"both missing", filepath.Join(dir, "m1"), filepath.Join(dir, "m1"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Same(tt.x, tt.y); got != tt.want {
				t.Errorf("Same(%q, %q) = %v, want %v", tt.x, tt.y, got, tt.want)
			}
		})
	}
}
