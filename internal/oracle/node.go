package oracle

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tlsurgery/tlsurgery/internal/corpus"
)

// ORTRunScript runs ONNX models with ONNX Runtime for Node and saves their
// outputs as .npy files. See the comment at the top of ort_run.js for its
// JSON input and output.
//
//go:embed ort_run.js
var ORTRunScript string

var (
	nodeOnce    sync.Once
	nodePath    string
	nodeModules string
	nodeErr     string

	onnxOnce sync.Once
	onnxErr  string
)

// Node returns the node binary that runs ORTRunScript. It checks once per
// test binary that node exists and loads onnxruntime-node from
// internal/oracle/node/node_modules (or $TLSURGERY_ORT_MODULES). When it
// cannot, the test is skipped, or fails under CI=true.
func Node(tb testing.TB) string {
	tb.Helper()
	nodeOnce.Do(func() {
		var err error
		if nodePath, err = exec.LookPath("node"); err != nil {
			nodeErr = "node is not on PATH"
			return
		}
		nodeModules = os.Getenv("TLSURGERY_ORT_MODULES")
		if nodeModules == "" {
			root, err := moduleRoot()
			if err != nil {
				nodeErr = err.Error()
				return
			}
			nodeModules = filepath.Join(root, "internal", "oracle", "node", "node_modules")
		}
		check := `require(require("path").join(process.argv[1], "onnxruntime-node"))`
		out, err := exec.Command(nodePath, "-e", check, nodeModules).CombinedOutput()
		if err != nil {
			nodeErr = fmt.Sprintf("node cannot load onnxruntime-node from %s: %v: %s", nodeModules, err, lastLine(out))
		}
	})
	if nodeErr == "" {
		return nodePath
	}
	missing(tb, nodeErr+". Run bash scripts/install-oracles.sh, or set TLSURGERY_ORT_MODULES to a node_modules folder that has onnxruntime-node")
	return ""
}

// RunNode runs script (JavaScript source, such as ORTRunScript) with
// stdin, and returns its stdout. A non-zero exit fails the test with the
// script's stderr.
func RunNode(tb testing.TB, script string, stdin []byte) []byte {
	tb.Helper()
	node := Node(tb)
	cmd := exec.CommandContext(tb.Context(), node, "-e", script)
	cmd.Env = append(os.Environ(), "TLSURGERY_ORT_MODULES="+nodeModules)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("node script failed: %v\nstderr:\n%s", err, stderr.String())
	}
	return stdout.Bytes()
}

// ONNXChecker checks once per test binary that the oracle Python imports
// onnx (Debian's python3-onnx), whose onnx.checker validates exported
// models. When it cannot, the test is skipped, or fails under CI=true.
func ONNXChecker(tb testing.TB) {
	tb.Helper()
	python := Python(tb)
	onnxOnce.Do(func() {
		out, err := exec.Command(python, "-c", "import onnx, onnx.checker").CombinedOutput()
		if err != nil {
			onnxErr = fmt.Sprintf("%s cannot import onnx: %v: %s", python, err, lastLine(out))
		}
	})
	if onnxErr != "" {
		missing(tb, onnxErr+". Run bash scripts/install-oracles.sh")
	}
}

// missing skips the test for a missing oracle, or fails it under CI=true.
func missing(tb testing.TB, msg string) {
	tb.Helper()
	if corpus.InCI() {
		tb.Fatalf("oracle missing: %s. CI=true requires the oracles", msg)
	}
	tb.Skipf("SKIP: oracle missing: %s", msg)
}

// moduleRoot returns the folder of go.mod above the working directory.
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("no go.mod above %s", wd)
		}
	}
}

func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}
