package main

import (
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newManCmd is the hidden command that writes the man pages of the
// command tree, for the packages (make package): one page per command,
// edgeota(1), edgeota-gateway(1) and so on, each from the command's
// help. Their date is SOURCE_DATE_EPOCH when set, so that a package
// build is reproducible.
func newManCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write the man pages of every command into DIR (for packaging)",
		Hidden: true,
		Args:   exactArgs(1, "the directory to write the pages into"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			return doc.GenManTree(root, &doc.GenManHeader{Section: "1",
				Source: "edgeota " + version, Manual: "edgeota manual"}, args[0])
		},
	}
}
