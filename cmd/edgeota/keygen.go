package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"edgeota/protocol/sign"
)

func newKeygenCmd() *cobra.Command {
	var out string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "keygen --out NAME",
		Short: "Generate an Ed25519 signing key pair",
		Long: `Generate an Ed25519 key pair for signing manifests or deployments.

Writes NAME.key (the private key, PKCS#8 PEM, mode 0600) and NAME.pub (the
public key, PKIX PEM). Existing files are never overwritten. The key id
(kid) printed is the first 8 bytes of SHA-256 over the raw public key; it is
what signed documents carry to name their key.

Give NAME.pub to nodes (--trust) and gateways; keep NAME.key offline.`,
		Example: "  edgeota keygen --out operator",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("--out NAME is required")
			}
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			kp, err := sign.MarshalPrivateKey(priv)
			if err != nil {
				return err
			}
			pp, err := sign.MarshalPublicKey(pub)
			if err != nil {
				return err
			}
			keyFile, pubFile := out+".key", out+".pub"
			for _, f := range []string{keyFile, pubFile} {
				if _, err := os.Stat(f); err == nil {
					return fmt.Errorf("%s already exists; refusing to overwrite it", f)
				}
			}
			if err := writeNewFile(keyFile, kp, 0o600); err != nil {
				return err
			}
			if err := writeNewFile(pubFile, pp, 0o644); err != nil {
				os.Remove(keyFile)
				return err
			}
			kid := sign.KeyIDOf(pub).String()
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]string{"private_key": keyFile, "public_key": pubFile, "kid": kid})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (private, mode 0600) and %s (public), kid %s\n", keyFile, pubFile, kid)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "base name of the key files (NAME.key and NAME.pub)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// readPrivateKey loads a PKCS#8 PEM Ed25519 key file.
func readPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := sign.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// readPublicKeys loads PKIX PEM Ed25519 public key files.
func readPublicKeys(paths []string) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		k, err := sign.ParsePublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
