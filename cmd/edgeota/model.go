package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"edgeota/gateway/admin"
)

func newModelCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Manage the models a gateway caches",
		Args:  noArgs,
		RunE:  showHelp,
	}
	cmd.AddCommand(newModelPushCmd(), newModelListCmd())
	return cmd
}

func newModelPushCmd() *cobra.Command {
	var api adminFlags
	var manifest, image, assign string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "push --admin URL --manifest M.cose --image FILE [--assign all|ID,ID...]",
		Short: "Upload a signed model to a gateway, and optionally assign it",
		Long: `Upload a signed model (its manifest and image) to a gateway's admin API.
The gateway stores it only when the manifest verifies against its trust
keys and the image's size and digest match; otherwise nothing is stored and
the reason is printed.

--assign ID,ID assigns the manifest to those nodes; --assign all assigns it
to every node, including nodes that say Hello later (a standing rule, until
another assignment or a rollout replaces it). Nodes observing their
manifest are notified at once.`,
		Example: "  edgeota model push --admin http://127.0.0.1:8080 --manifest kws-1.4.0.cose --image kws-1.4.0.bin --assign all",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if manifest == "" || image == "" {
				return usagef("--manifest M.cose and --image FILE are required")
			}
			c, err := api.client()
			if err != nil {
				return err
			}
			signed, err := os.ReadFile(manifest)
			if err != nil {
				return err
			}
			f, err := os.Open(image)
			if err != nil {
				return err
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			var body io.Reader = f
			if !asJSON {
				bar := progressbar.NewOptions64(st.Size(), progressbar.OptionSetWriter(cmd.ErrOrStderr()),
					progressbar.OptionShowBytes(true), progressbar.OptionSetDescription("uploading"),
					progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionOnCompletion(func() { fmt.Fprintln(cmd.ErrOrStderr()) }))
				r := progressbar.NewReader(f, bar)
				body = &r
			}
			m, err := c.PutModel(cmd.Context(), signed, body)
			if err != nil {
				return api.explain(err)
			}
			out := map[string]any{"model": m}
			if assign != "" {
				var res admin.AssignmentResult
				if assign == "all" {
					res, err = c.AssignAll(cmd.Context(), signed)
				} else {
					res, err = c.Assign(cmd.Context(), signed, strings.Split(assign, ","))
				}
				if err != nil {
					return fmt.Errorf("model stored, but the assignment failed: %w", api.explain(err))
				}
				out["assignment"] = res
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "stored %s %s seq %d (%d bytes, sha256 %s)\n", m.Component, m.Version, m.Seq, m.SizeBytes, m.Digest)
			if assign == "all" {
				fmt.Fprintln(cmd.OutOrStdout(), "assigned to every node, including nodes that say Hello later")
			} else if assign != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "assigned to %s\n", assign)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	api.register(fl, defaultAdmin, "the gateway's admin API URL")
	fl.StringVar(&manifest, "manifest", "", "signed manifest (from edgeota sign)")
	fl.StringVar(&image, "image", "", "model image")
	fl.StringVar(&assign, "assign", "", "assign to nodes: all, or ID,ID,...")
	fl.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func newModelListCmd() *cobra.Command {
	var api adminFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list --admin URL [--json]",
		Short: "List the models a gateway caches",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := api.client()
			if err != nil {
				return err
			}
			ms, err := c.Models(cmd.Context())
			if err != nil {
				return api.explain(err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), ms)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%-16s  %-12s  %-10s  %5s  %5s  %10s  %s\n", "DIGEST", "COMPONENT", "VERSION", "SEQ", "EPOCH", "BYTES", "LAST USED")
			for _, m := range ms {
				fmt.Fprintf(w, "%-16s  %-12s  %-10s  %5d  %5d  %10d  %s\n", m.Digest[:16], m.Component, m.Version, m.Seq, m.Epoch, m.SizeBytes, m.LastUsed.Format(time.RFC3339))
			}
			return nil
		},
	}
	api.register(cmd.Flags(), defaultAdmin, "the gateway's admin API URL")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}
