package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tlsurgery/tlsurgery/internal/corpus"
)

// manifestStoredValues returns, per corpus path, the stored-value total
// the corpus manifest gives for each real caffemodel ("stored values=N").
func manifestStoredValues(t *testing.T) map[string]int64 {
	data, err := os.ReadFile(corpus.Path(t, "MANIFEST.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`stored values=(\d+)`)
	out := map[string]int64{}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Split(line, "\t")
		if len(fields) < 7 {
			continue
		}
		if m := re.FindStringSubmatch(fields[6]); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			out[fields[0]] = n
		}
	}
	return out
}

// TestInspectStoredValues: inspect of each real caffemodel alone lists
// every layer's blob shapes and totals the values the file stores.
func TestInspectStoredValues(t *testing.T) {
	want := manifestStoredValues(t)
	if len(want) < 15 {
		t.Fatalf("found %d caffemodels with a stored-value total in the manifest", len(want))
	}
	for rel, stored := range want {
		t.Run(rel, func(t *testing.T) {
			code, out, errOut := runCommand("inspect", corpus.Path(t, rel), "--format", "json")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var s struct {
				Stored int64 `json:"stored"`
				Layers []struct {
					Name       string  `json:"name"`
					BlobShapes [][]int `json:"blob_shapes"`
				} `json:"layers"`
			}
			if err := json.Unmarshal([]byte(out), &s); err != nil {
				t.Fatal(err)
			}
			if s.Stored != stored {
				t.Errorf("stored values %d, want %d", s.Stored, stored)
			}
			withBlobs := 0
			for _, l := range s.Layers {
				if len(l.BlobShapes) > 0 {
					withBlobs++
				}
			}
			if withBlobs == 0 {
				t.Errorf("no layer lists blob shapes")
			}
		})
	}
}

// TestInspectEveryCorpusNet: inspect finishes without an error on every
// corpus net in every output format (DeepLab's templates after
// substituting their class count; the HDF5 snapshot is refused).
func TestInspectEveryCorpusNet(t *testing.T) {
	dir := t.TempDir()
	for _, path := range corpus.Walk(t, ".prototxt", ".caffemodel", ".h5") {
		rel := strings.TrimPrefix(path, corpus.Path(t)+"/")
		t.Run(rel, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(data, []byte("${NUM_LABELS}")) {
				path = filepath.Join(dir, filepath.Base(path))
				if err := os.WriteFile(path, bytes.ReplaceAll(data, []byte("${NUM_LABELS}"), []byte("21")), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for _, format := range []string{"table", "json", "markdown", "csv"} {
				code, out, errOut := runCommand("inspect", path, "--format", format)
				if strings.HasSuffix(path, ".h5") {
					if code != 2 || !strings.Contains(errOut, "HDF5") {
						t.Errorf("HDF5 file: exit %d, %q", code, errOut)
					}
					return
				}
				if code != 0 || out == "" {
					t.Errorf("--format %s: exit %d: %s", format, code, errOut)
				}
			}
		})
	}
}
