// Command tlsurgery inspects Caffe checkpoints and rewrites them for
// transfer learning. Run `tlsurgery help` for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/spf13/cobra"
)

// Exit statuses, as gofmt and diff use them.
const (
	exitOK    = 0
	exitDiffs = 1 // verify found differences beyond the tolerance
	exitError = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit status. It is the
// single exit point, so tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCommand(stdin, stdout, stderr)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	var status exitStatus
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &status):
		return int(status)
	}
	fmt.Fprintln(stderr, "tlsurgery:", err)
	return exitError
}

// exitStatus is returned by a command that printed its own outcome and
// only needs a non-zero status.
type exitStatus int

func (s exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(s)) }

func newRootCommand(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "tlsurgery",
		Short: "Inspect Caffe checkpoints and rewrite them for transfer learning",
		Long: `tlsurgery reads Caffe nets (.prototxt) and weights (.caffemodel) of every
format generation (V0, V1, current) and common forks, with no Caffe or
Python installed, and shows or rewrites them.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newInspectCommand(stdout),
		newUpgradeCommand(stdin, stdout, stderr),
		newInitCommand(stdout, stderr),
		newFC2ConvCommand(stdout),
		newTruncateCommand(stdout),
		newAdviseCommand(stdout),
		newLinearCommand(stdout, stderr),
		newFinetuneCommand(stdout),
		newGraphCommand(stdout, stderr),
		newRunCommand(stdout),
		newVerifyCommand(stdout),
		newFeaturesCommand(stdout, stderr),
		newFreezeCommand(stdout),
		newHeadCommand(stdout),
		newFoldBNCommand(stdout),
		newExportCommand(stdout, stderr),
	)
	return root
}
