package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"edgeota/gateway/admin"
	"edgeota/protocol/sign"
	"edgeota/protocol/trust"
)

func newTrustCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trust",
		Short: "Rotate keys over the air: sign, push and show trust updates",
		Long: `A trust update (docs/protocol.md "Trust update") replaces, on a gateway
and on every node it serves, the manifest keys, the deployment keys and the
root keys, signed by the current root keys. 'trust sign' builds and signs
one from .pub files; 'trust push' hands it to a gateway, which checks it,
takes its keys and serves it to its nodes; 'trust show' prints one.`,
		Args: noArgs,
		RunE: showHelp,
	}
	cmd.AddCommand(newTrustSignCmd(), newTrustPushCmd(), newTrustShowCmd())
	return cmd
}

func newTrustSignCmd() *cobra.Command {
	var manifest, deployment, roots, signers []string
	var version, threshold uint64
	var out string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "sign --version N --manifest-key K.pub [...] --root-key R.pub [...] --root R.key [...] -o T.cose",
		Short: "Build and sign a trust update from public key files",
		Long: `Build a trust update: version --version (above the one the gateway and
nodes hold), the full new sets of manifest keys (--manifest-key, at least
one), deployment keys (--deployment-key) and root keys (--root-key, at
least one; repeat a current root to keep it), and --threshold, how many of
those roots must sign the next update (default 1). Each key is a .pub file
of an Ed25519 or P-256 key, and keeps its algorithm in the update.

It is signed with each --root private key: these must be roots the gateway
and nodes hold now, as many as their threshold asks. One --root gives one
COSE_Sign1; several give an array of them over the same payload.`,
		Example: `  edgeota trust sign --version 2 --manifest-key operator-b.pub --deployment-key deployer.pub \
      --root-key root.pub --root root.key -o trust-2.cose`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if version == 0 || len(manifest) == 0 || len(roots) == 0 || len(signers) == 0 || out == "" {
				return usagef("--version N, at least one --manifest-key, one --root-key, one --root and -o FILE are required")
			}
			u := &trust.Update{Format: trust.Format, Version: version, Issued: uint64(time.Now().Unix()), Threshold: threshold}
			var err error
			if u.ManifestKeys, err = trustKeys(manifest); err != nil {
				return err
			}
			if u.DeploymentKeys, err = trustKeys(deployment); err != nil {
				return err
			}
			if u.RootKeys, err = trustKeys(roots); err != nil {
				return err
			}
			var ss []*sign.Signer
			for _, p := range signers {
				k, done, err := openSigningKey(p)
				if err != nil {
					return err
				}
				defer done()
				s, err := sign.NewSigner(k)
				if err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				ss = append(ss, s)
			}
			b, err := trust.Sign(u, ss...)
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, b, 0o644); err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"out": out, "trust": trustView(u, ss)})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signed trust update version %d (%d manifest, %d deployment, %d root keys, threshold %d) with %d root(s) -> %s\n",
				u.Version, len(u.ManifestKeys), len(u.DeploymentKeys), len(u.RootKeys), u.Threshold, len(ss), out)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.Uint64Var(&version, "version", 0, "the update's version, above the one held now")
	fl.StringArrayVar(&manifest, "manifest-key", nil, "a manifest key of the new set (PKIX PEM .pub); repeat for several")
	fl.StringArrayVar(&deployment, "deployment-key", nil, "a deployment key of the new set; repeat for several")
	fl.StringArrayVar(&roots, "root-key", nil, "a root key of the new set (who may sign the next update); repeat for several")
	fl.Uint64Var(&threshold, "threshold", 1, "how many of the new roots must sign the next update")
	fl.StringArrayVar(&signers, "root", nil, "a current root that signs this update: a PKCS#8 PEM file or a pkcs11: URI (RFC 7512) naming a key in an HSM; repeat for a threshold")
	fl.StringVarP(&out, "out", "o", "", "file to write the signed update to")
	fl.BoolVar(&asJSON, "json", false, "print what was signed as JSON")
	return cmd
}

// trustKeys reads .pub files into key entries, each with its algorithm.
func trustKeys(paths []string) ([]trust.Key, error) {
	pubs, err := readPublicKeys(paths)
	if err != nil {
		return nil, err
	}
	out := make([]trust.Key, len(pubs))
	for i, p := range pubs {
		if out[i], err = trust.KeyOf(p); err != nil {
			return nil, fmt.Errorf("%s: %w", paths[i], err)
		}
	}
	return out, nil
}

func trustView(u *trust.Update, ss []*sign.Signer) admin.Trust {
	keys := func(ks []trust.Key) []admin.TrustKey {
		out := make([]admin.TrustKey, len(ks))
		for i, k := range ks {
			out[i] = admin.TrustKey{Alg: sign.Algorithm(k.Alg).String(), KID: k.ID().String()}
		}
		return out
	}
	t := admin.Trust{Version: u.Version, Issued: u.Issued, ManifestKeys: keys(u.ManifestKeys),
		DeploymentKeys: keys(u.DeploymentKeys), RootKeys: keys(u.RootKeys), Threshold: u.Threshold}
	for _, s := range ss {
		t.SignedBy = append(t.SignedBy, s.KeyID().String())
	}
	return t
}

func newTrustPushCmd() *cobra.Command {
	var api adminFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "push --admin URL T.cose",
		Short: "Hand a signed trust update to a gateway: it and its nodes take its keys",
		Long: `Hand a signed trust update (edgeota trust sign) to a gateway's admin API.
The gateway checks it against the root keys it holds (--trust-root, or
those of the last update) and its version; it then saves it, verifies
models and deployments with the new keys at once, and serves it to its
nodes (/n/{node}/trust, observed), which check it the same way and apply
it atomically. A refused update changes nothing and the reason is printed.`,
		Example: "  edgeota trust push --admin http://127.0.0.1:8080 trust-2.cose",
		Args:    exactArgs(1, "one signed trust update (T.cose)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := api.client()
			if err != nil {
				return err
			}
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			t, err := c.PutTrust(cmd.Context(), b)
			if err != nil {
				return api.explain(err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), t)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "trust version %d applied: %d manifest, %d deployment, %d root keys, threshold %d\n",
				t.Version, len(t.ManifestKeys), len(t.DeploymentKeys), len(t.RootKeys), t.Threshold)
			return nil
		},
	}
	api.register(cmd.Flags(), defaultAdmin, "the gateway's admin API URL")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the applied update as JSON")
	return cmd
}

func newTrustShowCmd() *cobra.Command {
	var api adminFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show [T.cose]",
		Short: "Show a trust update: a file, or the one a gateway applied",
		Long: `Show a signed trust update file (its signatures are not checked: the
holder checks them against its roots), or, without a file, the one the
gateway at --admin applied last.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var t admin.Trust
			if len(args) == 1 {
				b, err := os.ReadFile(args[0])
				if err != nil {
					return err
				}
				u, kids, err := trust.Inspect(b)
				if err != nil {
					return fmt.Errorf("%s: %w", args[0], err)
				}
				t = trustView(u, nil)
				for _, k := range kids {
					t.SignedBy = append(t.SignedBy, k.String())
				}
			} else {
				c, err := api.client()
				if err != nil {
					return err
				}
				if t, err = c.Trust(cmd.Context()); err != nil {
					return api.explain(err)
				}
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), t)
			}
			printTrust(cmd.OutOrStdout(), t)
			return nil
		},
	}
	api.register(cmd.Flags(), defaultAdmin, "the gateway's admin API URL (without a file)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func printTrust(w io.Writer, t admin.Trust) {
	fmt.Fprintf(w, "trust version %d, issued %s, threshold %d\n", t.Version, time.Unix(int64(t.Issued), 0).UTC().Format(time.RFC3339), t.Threshold)
	for _, set := range []struct {
		name string
		keys []admin.TrustKey
	}{{"manifest", t.ManifestKeys}, {"deployment", t.DeploymentKeys}, {"root", t.RootKeys}} {
		for _, k := range set.keys {
			fmt.Fprintf(w, "  %-10s  %-5s  %s\n", set.name, k.Alg, k.KID)
		}
	}
	if len(t.SignedBy) > 0 {
		fmt.Fprintf(w, "signed by %v\n", t.SignedBy)
	}
}
