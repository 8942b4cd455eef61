// Package oracle runs independent programs that tests compare tlsurgery
// with. The oracles are OpenCV's Caffe importer and NumPy under Debian's
// Python; scripts/install-oracles.sh installs them.
package oracle

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/tlsurgery/tlsurgery/internal/corpus"
)

// OpenCVLoadScript loads Caffe nets with cv2.dnn.readNetFromCaffe and
// prints their layer names. See the docstring in opencv_load.py for its
// JSON input and output.
//
//go:embed opencv_load.py
var OpenCVLoadScript string

// OpenCVForwardScript runs Caffe nets forward in OpenCV on seeded random
// input and saves the outputs as .npy files. See the docstring in
// opencv_forward.py for its JSON input and output.
//
//go:embed opencv_forward.py
var OpenCVForwardScript string

// defaultPython is Debian's Python, which imports the python3-opencv and
// python3-numpy packages. A python3 earlier on PATH (pyenv, a venv)
// usually cannot.
const defaultPython = "/usr/bin/python3"

var (
	checkOnce   sync.Once
	checkedPath string
	checkErr    string
)

// Python returns the interpreter that runs the oracle scripts:
// $TLSURGERY_PYTHON when set, else /usr/bin/python3. It checks once per
// test binary that the interpreter can import cv2 and numpy. When it
// cannot, the test is skipped, or fails under CI=true.
func Python(tb testing.TB) string {
	tb.Helper()
	checkOnce.Do(func() {
		checkedPath = os.Getenv("TLSURGERY_PYTHON")
		if checkedPath == "" {
			checkedPath = defaultPython
		}
		out, err := exec.Command(checkedPath, "-c", "import cv2, numpy").CombinedOutput()
		if err != nil {
			checkErr = err.Error()
			// The last line of a traceback names the missing module.
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if last := lines[len(lines)-1]; last != "" {
				checkErr += ": " + last
			}
		}
	})
	if checkErr == "" {
		return checkedPath
	}
	msg := fmt.Sprintf("oracle missing: %s cannot import cv2 and numpy (%s). Run bash scripts/install-oracles.sh, or set TLSURGERY_PYTHON to a Python that has them", checkedPath, checkErr)
	if corpus.InCI() {
		tb.Fatalf("%s. CI=true requires the oracles", msg)
	}
	tb.Skipf("SKIP: %s", msg)
	return ""
}

// RunPython runs script (Python source, such as OpenCVLoadScript) with
// stdin and the arguments in sys.argv[1:], and returns its stdout. A
// non-zero exit fails the test with the script's stderr.
func RunPython(tb testing.TB, script string, stdin []byte, args ...string) []byte {
	tb.Helper()
	python := Python(tb)
	cmd := exec.CommandContext(tb.Context(), python, append([]string{"-c", script}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("oracle script %q failed: %v\nstderr:\n%s", scriptName(script), err, stderr.String())
	}
	return stdout.Bytes()
}

// scriptName returns the first line of a script's docstring, to name the
// script in failures.
func scriptName(script string) string {
	line, _, _ := strings.Cut(strings.TrimLeft(script, "\"\n "), "\n")
	return strings.Trim(line, "\" ")
}
