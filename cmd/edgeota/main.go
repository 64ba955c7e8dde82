// Command edgeota is the one binary of edgeota: the gateway, the node agent,
// the simulator and the operator tools (keys, signing, deployments).
//
// Run "edgeota --help" for the list of subcommands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit code: 0 on
// success, 1 when the command failed or found its input invalid, 2 on a
// usage error.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var se *silentExit
	if errors.As(err, &se) {
		return se.code
	}
	fmt.Fprintf(stderr, "edgeota: %v\n", err)
	var ue *usageError
	if errors.As(err, &ue) || isCobraUsageError(err) {
		fmt.Fprintln(stderr, "Run 'edgeota --help' or 'edgeota COMMAND --help' for usage.")
		return 2
	}
	return 1
}
