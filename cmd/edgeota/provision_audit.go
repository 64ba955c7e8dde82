package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"edgeota/protocol"
)

func newProvisionAuditCmd() *cobra.Command {
	var api adminFlags
	var node string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "audit --admin URL [--node ID] [--json]",
		Short: "Show a gateway's provisioning audit log: who provisioned which node, with what, and when",
		Long: `Show the provisioning audit log a gateway keeps: one entry per provisioning
commit a node reported after it said Hello (status event state 9, forwarded
upstream too). Each entry names the operator key that signed the bundle, the
node's labels and component under the new configuration, when the gateway
recorded it, and whether the report came over the node's own DTLS session.`,
		Example: "  edgeota provision audit --admin http://127.0.0.1:8080 --node node-0001",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := api.client()
			if err != nil {
				return err
			}
			entries, err := c.Audit(cmd.Context(), node)
			if err != nil {
				return api.explain(err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), entries)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tWHEN\tNODE\tBY\tLABELS\tCOMPONENT\tDTLS\tDETAIL")
			for _, e := range entries {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%v\t%s\n", e.Seq, e.At.Format(time.RFC3339), e.Node, e.Actor,
					protocol.FormatLabels(e.Labels), e.Component, e.Authenticated, e.Detail)
			}
			return tw.Flush()
		},
	}
	api.register(cmd.Flags(), defaultAdmin, "the gateway's admin API URL")
	cmd.Flags().StringVar(&node, "node", "", "only this node's entries")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}
