// Package corpus locates the shared folder of real Caffe files that tests
// and benchmarks read by path. It is found as ../shared beside the
// repository root, or at $TLSURGERY_SHARED when that is set.
package corpus

import (
	"os"
	"path/filepath"
	"testing"
)

// Shared returns the shared folder (the parent of corpus/ and datasets/).
// When it is missing the test is skipped with a message, except under
// CI=true, where a missing folder fails the test.
func Shared(tb testing.TB) string {
	tb.Helper()
	if dir := os.Getenv("TLSURGERY_SHARED"); dir != "" {
		return mustExist(tb, dir)
	}
	wd, err := os.Getwd()
	if err != nil {
		tb.Fatalf("corpus: %v", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return mustExist(tb, filepath.Join(filepath.Dir(dir), "shared"))
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	return mustExist(tb, filepath.Join(wd, "shared"))
}

// Path returns a path under the shared corpus folder, e.g.
// Path(t, "caffemodel", "lenet", "lenet.prototxt").
func Path(tb testing.TB, elem ...string) string {
	tb.Helper()
	return filepath.Join(append([]string{Shared(tb), "corpus"}, elem...)...)
}

// Glob returns the files under the corpus folder that match pattern
// (filepath.Glob syntax, relative to corpus/), and fails when none match.
func Glob(tb testing.TB, pattern string) []string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(Shared(tb), "corpus", pattern))
	if err != nil {
		tb.Fatalf("corpus: %v", err)
	}
	if len(files) == 0 {
		tb.Fatalf("corpus: no file matches %s", pattern)
	}
	return files
}

// Walk returns every regular file under the corpus folder whose name ends
// with one of the suffixes, sorted by path.
func Walk(tb testing.TB, suffixes ...string) []string {
	tb.Helper()
	var out []string
	root := filepath.Join(Shared(tb), "corpus")
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		for _, s := range suffixes {
			if len(path) >= len(s) && path[len(path)-len(s):] == s {
				out = append(out, path)
				break
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("corpus: %v", err)
	}
	return out
}

// InCI reports whether the tests run under CI=true, where missing oracles
// and missing shared files are failures rather than skips.
func InCI() bool { return os.Getenv("CI") == "true" }

func mustExist(tb testing.TB, dir string) string {
	tb.Helper()
	if _, err := os.Stat(filepath.Join(dir, "corpus")); err != nil {
		if InCI() {
			tb.Fatalf("shared corpus not found at %s: %v (CI=true needs it; put ../shared beside the repository or set TLSURGERY_SHARED)", dir, err)
		}
		tb.Skipf("SKIP: shared corpus not found at %s; put ../shared beside the repository or set TLSURGERY_SHARED", dir)
	}
	return dir
}
