package main

import (
	"fmt"
	"os"
	"sort"

	"github.com/spf13/cobra"

	"edgeota/gateway"
	"edgeota/gateway/admin"
)

func newGatewayKeysCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage the nodes' DTLS pre-shared keys in a gateway's registry",
		Long: `Manage the nodes' DTLS pre-shared keys (PSKs) a gateway authenticates nodes
with. A node's PSK identity is its node id; a node without a key cannot open
a DTLS session. Keys are never shown back: list prints node ids only.

With --data DIR the command works on the database of a gateway that is not
running; with --admin URL it goes through a running gateway's admin API,
which also closes the sessions of nodes whose key changed.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newGatewayKeysImportCmd(), newGatewayKeysListCmd(), newGatewayKeysDeleteCmd())
	return cmd
}

// gatewayTarget is where a keys or backup subcommand works: a stopped
// gateway's data directory, or a running gateway's admin API.
type gatewayTarget struct {
	data  string
	admin adminFlags
}

func (k *gatewayTarget) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&k.data, "data", "", "data directory of a gateway that is not running")
	k.admin.register(cmd.Flags(), "", "admin API URL of a running gateway (instead of --data)")
}

func (k *gatewayTarget) check() error {
	if (k.data == "") == (k.admin.url == "") {
		return usagef("give either --data DIR (gateway stopped) or --admin URL (gateway running)")
	}
	return nil
}

func newGatewayKeysImportCmd() *cobra.Command {
	var t gatewayTarget
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "import (--data DIR | --admin URL) FILE",
		Short: "Import nodes' pre-shared keys from a CSV or JSON file",
		Long: `Import nodes' DTLS pre-shared keys, all or nothing: a file with one bad line
changes nothing.

CSV has the header node_id,psk; JSON is an array of {"node_id": ..., "psk": ...}
(chosen by a .json name or a leading '['). A key is its literal string, or
"hex:" followed by hex digits; 16 to 64 bytes. Importing a key for a node
that has one replaces it.`,
		Example: `  printf 'node_id,psk\nnode-1,hex:000102030405060708090a0b0c0d0e0f\n' > nodes.csv
  edgeota gateway keys import --data /var/lib/edgeota nodes.csv
  edgeota gateway keys import --admin http://127.0.0.1:8080 --token-file admin.token nodes.json`,
		Args: exactArgs(1, "one key file (CSV or JSON)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := t.check(); err != nil {
				return err
			}
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			keys, err := gateway.ParseKeys(args[0], b)
			if err != nil {
				return err
			}
			var changed []string
			if t.data != "" {
				if changed, err = gateway.ImportKeys(t.data, keys); err != nil {
					return err
				}
			} else {
				c, err := t.admin.client()
				if err != nil {
					return err
				}
				entries := make([]admin.Key, 0, len(keys))
				for n, k := range keys {
					entries = append(entries, admin.Key{NodeID: n, PSK: "hex:" + fmt.Sprintf("%x", k)})
				}
				res, err := c.PutKeys(cmd.Context(), entries)
				if err != nil {
					return t.admin.explain(err)
				}
				changed = res.Changed
			}
			if changed == nil {
				changed = []string{}
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"imported": len(keys), "changed": changed})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %d keys (%d new or changed)\n", len(keys), len(changed))
			return nil
		},
	}
	t.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func newGatewayKeysListCmd() *cobra.Command {
	var api adminFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list --admin URL [--json]",
		Short: "List the nodes that have a key (never the keys)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := api.client()
			if err != nil {
				return err
			}
			nodes, err := c.Keys(cmd.Context())
			if err != nil {
				return api.explain(err)
			}
			sort.Strings(nodes)
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"nodes": append([]string{}, nodes...)})
			}
			for _, n := range nodes {
				fmt.Fprintln(cmd.OutOrStdout(), n)
			}
			return nil
		},
	}
	api.register(cmd.Flags(), defaultAdmin, "the gateway's admin API URL")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func newGatewayKeysDeleteCmd() *cobra.Command {
	var api adminFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "delete --admin URL NODE",
		Short: "Forget a node's key: it can no longer open a DTLS session, and its session is closed",
		Args:  exactArgs(1, "one node id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := api.client()
			if err != nil {
				return err
			}
			if err := c.DeleteKey(cmd.Context(), args[0]); err != nil {
				return api.explain(err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"deleted": args[0]})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted the key of %s\n", args[0])
			return nil
		},
	}
	api.register(cmd.Flags(), defaultAdmin, "the gateway's admin API URL")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
