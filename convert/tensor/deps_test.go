package tensor

import (
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// goListDeps returns the packages that the packages matching patterns
// import, directly or not, including the matched packages themselves and
// leaving out test files. With -e, a package that fails to compile is
// still listed with its imports.
func goListDeps(t *testing.T, patterns ...string) []string {
	t.Helper()
	args := append([]string{"list", "-e", "-deps"}, patterns...)
	cmd := exec.CommandContext(t.Context(), "go", args...)
	cmd.Dir = "../.." // the module root, so patterns are relative to it
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			stderr = string(exitErr.Stderr)
		}
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return strings.Fields(string(out))
}

func TestCommandDoesNotLinkGorgonia(t *testing.T) {
	deps := goListDeps(t, "./cmd/tlsurgery")
	if !slices.Contains(deps, "github.com/tlsurgery/tlsurgery/caffe") {
		t.Fatalf("go list -deps ./cmd/tlsurgery lists no caffe package, so the check below would prove nothing:\n%s", strings.Join(deps, "\n"))
	}
	for _, dep := range deps {
		if strings.HasPrefix(dep, "gorgonia.org/") {
			t.Errorf("cmd/tlsurgery depends on %s; only convert/tensor may import gorgonia", dep)
		}
	}
}

func TestLibrariesDoNotImportCLIPackages(t *testing.T) {
	isCLIPackage := func(dep string) bool {
		return strings.HasPrefix(dep, "github.com/spf13/cobra") || strings.HasPrefix(dep, "github.com/olekukonko/tablewriter")
	}
	if !slices.ContainsFunc(goListDeps(t, "./cmd/tlsurgery"), isCLIPackage) {
		t.Fatal("cmd/tlsurgery depends on neither cobra nor tablewriter, so the check below would prove nothing")
	}

	for _, pkg := range []string{"./caffe/...", "./graph/...", "./surgery/...", "./convert/..."} {
		deps := goListDeps(t, pkg)
		for _, dep := range deps {
			if isCLIPackage(dep) {
				t.Errorf("%s depends on %s; command-line packages belong in cmd/", pkg, dep)
			}
		}
	}
}
