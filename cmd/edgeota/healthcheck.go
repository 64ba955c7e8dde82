package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

// newHealthcheckCmd is 'edgeota healthcheck': one GET of a gateway's
// /healthz through the admin API client, for the container image's
// HEALTHCHECK (which has no curl) and for service monitors.
func newHealthcheckCmd() *cobra.Command {
	var af adminFlags
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck [--admin URL] [--token-file FILE]",
		Short: "Ask a gateway's admin API whether it is up (/healthz): exit 0 if so, 1 if not",
		Long: `Ask a running gateway's admin API whether it is up: one GET of /healthz,
with the bearer token of --token-file (the gateway's --admin-token-file).
It prints "ok" and the gateway's id and exits 0 when the gateway answers
within --timeout, and exits 1 with the reason when it does not answer, refuses
the token or answers anything else.

It is the health check of the container image (scripts/packaging/Containerfile),
which has no shell and no curl, and suits any monitor that runs a command.`,
		Example: `  edgeota healthcheck --token-file /var/lib/edgeota/admin.token
  edgeota healthcheck --admin https://gw.example:8080 --admin-ca ca.pem --token-file admin.token`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if timeout <= 0 {
				return usagef("--timeout %v: want a positive duration such as 5s", timeout)
			}
			c, err := af.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			h, err := c.Health(ctx)
			if err != nil {
				return fmt.Errorf("not healthy: %w", af.explain(err))
			}
			if h.Status != "ok" {
				return fmt.Errorf("not healthy: the gateway at %s answered status %q", c.BaseURL(), h.Status)
			}
			id := h.GatewayID
			if id == "" {
				id = "(no uplink id)"
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "ok: gateway %s at %s\n", id, c.BaseURL())
			return err
		},
	}
	af.register(cmd.Flags(), defaultAdmin, "admin API URL of the gateway")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "longest wait for the answer")
	return cmd
}
