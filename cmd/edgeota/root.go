package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// version is the edgeota release, set at build time with
// -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "edgeota",
		Short: "Keep fleets of constrained AIoT nodes safely up to date with signed ML models",
		Long: `edgeota keeps fleets of constrained AIoT nodes up to date with new ML models.

An edge gateway caches signed models and serves them to nearby nodes over
CoAP block-wise transfers; nodes install them into a dual-slot flash layout,
run them on probation and confirm or revert by themselves. Every model is a
COSE_Sign1-signed CBOR manifest, and nodes refuse anything that does not
verify against the operator's keys.

Operator workflow:
  edgeota keygen --out operator                    # operator.key + operator.pub
  edgeota sign --key operator.key --image model.bin --component kws-model \
      --version 1.4.0 --seq 42 --class UUID --out kws-1.4.0.cose
  edgeota inspect kws-1.4.0.cose                   # the manifest as JSON
  edgeota verify --trust operator.pub --image model.bin kws-1.4.0.cose
  edgeota deploy sign --key operator.key rollout.yaml --out rollout.cose`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          noArgs,
		RunE:          showHelp,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.PersistentFlags().String("log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().String("log-format", "text", "log format: text or json (log/slog, on stderr)")
	root.AddCommand(
		newKeygenCmd(),
		newSignCmd(),
		newVerifyCmd(),
		newInspectCmd(),
		newDeployCmd(),
		newNodeCmd(),
		newGatewayCmd(),
		newModelCmd(),
		newNodesCmd(),
		newWatchCmd(),
		newRolloutCmd(),
		newSimCmd(),
		newProvisionCmd(),
		newTrustCmd(),
		newHealthcheckCmd(),
		newManCmd(),
	)
	return root
}

// usageError marks a command line that could not be understood: exit 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return &usageError{fmt.Errorf(format, args...)} }

func isCobraUsageError(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "unknown command") || strings.HasPrefix(s, "unknown flag") ||
		strings.HasPrefix(s, "required flag") || strings.Contains(s, "accepts ") && strings.Contains(s, " arg(s)")
}

// noArgs refuses positional arguments, naming them and listing
// subcommands when the command has any.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.HasSubCommands() {
		return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return usagef("%s takes no arguments, got %q", cmd.CommandPath(), args)
}

// showHelp is the action of a command group: its help (its arguments were
// refused by noArgs already).
func showHelp(cmd *cobra.Command, _ []string) error { return cmd.Help() }

// exactArgs wants exactly n positional arguments, described by what.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s wants %s, got %d argument(s)", cmd.CommandPath(), what, len(args))
		}
		return nil
	}
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeOutput writes a command's output file: a new file, or over an
// existing one when force is set.
func writeOutput(name string, data []byte, force bool) error {
	if force {
		return os.WriteFile(name, data, 0o644)
	}
	return writeNewFile(name, data, 0o644)
}

// writeNewFile creates name with the given mode and content, refusing to
// overwrite an existing file.
func writeNewFile(name string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s already exists; refusing to overwrite it", name)
		}
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(name)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(name)
		return err
	}
	return f.Close()
}

// loggerFrom builds the slog logger the persistent --log-level and
// --log-format flags ask for, writing to stderr.
func loggerFrom(cmd *cobra.Command) *slog.Logger {
	log, _ := leveledLogger(cmd)
	return log
}

// leveledLogger is loggerFrom with the level the logger reads on every
// record, which a reload may change.
func leveledLogger(cmd *cobra.Command) (*slog.Logger, *slog.LevelVar) {
	level, _ := cmd.Flags().GetString("log-level")
	format, _ := cmd.Flags().GetString("log-format")
	lv := new(slog.LevelVar)
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err == nil {
		lv.Set(l)
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), opts)), lv
	}
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), opts)), lv
}
