package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"edgeota/cmd/edgeota/internal/hsm"
	"edgeota/protocol/sign"
)

func newKeygenCmd() *cobra.Command {
	var out, alg, p11 string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "keygen --out NAME [--alg ed25519|es256] [--pkcs11 URI]",
		Short: "Generate a signing key pair (Ed25519 or ECDSA P-256)",
		Long: `Generate a key pair for signing manifests, deployments, provisioning
bundles or trust updates (a root key): Ed25519 (--alg ed25519, the default; COSE alg EdDSA) or ECDSA
P-256 (--alg es256; COSE alg ES256, what secure elements verify fast).

Writes NAME.key (the private key, PKCS#8 PEM, mode 0600) and NAME.pub (the
public key, PKIX PEM). Existing files are never overwritten. The key id
(kid) printed is the first 8 bytes of SHA-256 over the raw public key (the
32 bytes of an Ed25519 key, the 65-byte uncompressed point of a P-256 key);
it is what signed documents carry to name their key.

Give NAME.pub to those who verify: a manifest key to nodes and gateways
(--trust), a deployment key to gateways (--deploy-trust), a root key to
both (--trust-root). Keep NAME.key offline.

With --pkcs11 URI the key pair is created inside a PKCS#11 token (an HSM,
a smart card, SoftHSM2), labelled with the URI's object, its private half
sensitive and not extractable; only NAME.pub is written. Sign with it by
giving the same URI as --key to sign, deploy sign and provision bundle,
or as --root to trust sign.`,
		Example: `  edgeota keygen --out operator
  edgeota keygen --out operator-p256 --alg es256
  edgeota keygen --out operator --alg ed25519 \
      --pkcs11 'pkcs11:token=edgeota;object=operator?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:pin.txt'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("--out NAME is required")
			}
			a, err := parseAlg(alg)
			if err != nil {
				return err
			}
			if p11 != "" {
				return keygenPKCS11(cmd, p11, a, out, asJSON)
			}
			var priv crypto.Signer
			if a == sign.ES256 {
				priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			} else {
				_, priv, err = ed25519.GenerateKey(rand.Reader)
			}
			if err != nil {
				return err
			}
			kp, err := sign.MarshalPrivateKey(priv)
			if err != nil {
				return err
			}
			pp, err := sign.MarshalPublicKey(priv.Public())
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
			kid := sign.KeyIDOf(priv.Public()).String()
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]string{"private_key": keyFile, "public_key": pubFile, "kid": kid, "alg": a.String()})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (private, mode 0600) and %s (public), %s kid %s\n", keyFile, pubFile, a, kid)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "base name of the key files (NAME.key and NAME.pub)")
	cmd.Flags().StringVar(&alg, "alg", "ed25519", "key algorithm: ed25519 (COSE EdDSA) or es256 (ECDSA P-256)")
	cmd.Flags().StringVar(&p11, "pkcs11", "", "create the key pair inside the PKCS#11 token this pkcs11: URI (RFC 7512) names; writes only NAME.pub")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// keygenPKCS11 creates the key pair inside a token and writes NAME.pub.
func keygenPKCS11(cmd *cobra.Command, ref string, a sign.Algorithm, out string, asJSON bool) error {
	u, err := hsm.ParseURI(ref)
	if err != nil {
		return usagef("--pkcs11: %v", err)
	}
	pubFile := out + ".pub"
	if _, err := os.Stat(pubFile); err == nil {
		return fmt.Errorf("%s already exists; refusing to overwrite it", pubFile)
	}
	pub, err := hsm.Generate(u, a)
	if err != nil {
		return fmt.Errorf("--pkcs11 %s: %w", u, err)
	}
	pp, err := sign.MarshalPublicKey(pub)
	if err != nil {
		return err
	}
	if err := writeNewFile(pubFile, pp, 0o644); err != nil {
		return err
	}
	kid := sign.KeyIDOf(pub).String()
	if asJSON {
		return writeJSON(cmd.OutOrStdout(), map[string]string{"pkcs11": u.String(), "public_key": pubFile, "kid": kid, "alg": a.String()})
	}
	fmt.Fprintf(cmd.OutOrStdout(), "created %s key %q in token %q, wrote %s (public), kid %s\n", a, u.Object, u.Token, pubFile, kid)
	return nil
}

// parseAlg reads --alg.
func parseAlg(s string) (sign.Algorithm, error) {
	switch strings.ToLower(s) {
	case "ed25519", "eddsa":
		return sign.EdDSA, nil
	case "es256", "p256", "p-256":
		return sign.ES256, nil
	}
	return 0, usagef("--alg %q: want ed25519 or es256", s)
}

// readPrivateKey loads a PKCS#8 PEM Ed25519 key file (the simulator's
// key, which must be Ed25519).
func readPrivateKey(path string) (ed25519.PrivateKey, error) {
	s, err := readSignerFile(path)
	if err != nil {
		return nil, err
	}
	k, ok := s.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: %w: an ES256 (P-256) key; this one must be Ed25519", path, sign.ErrKey)
	}
	return k, nil
}

// readSignerFile loads a PKCS#8 PEM private key file, Ed25519 or P-256.
func readSignerFile(path string) (crypto.Signer, error) {
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

// readPublicKeys loads PKIX PEM public key files, Ed25519 or P-256.
func readPublicKeys(paths []string) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
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

// readEd25519PublicKeys loads PKIX PEM public key files that must be
// Ed25519: the gateway's trust lists and the keys a provisioning bundle
// carries hold Ed25519 keys only (docs/protocol.md section 1).
func readEd25519PublicKeys(what string, paths []string) ([]ed25519.PublicKey, error) {
	keys, err := readPublicKeys(paths)
	if err != nil {
		return nil, err
	}
	out := make([]ed25519.PublicKey, len(keys))
	for i, k := range keys {
		ed, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%s: %w: an ES256 (P-256) key; %s takes Ed25519 keys only", paths[i], sign.ErrKey, what)
		}
		out[i] = ed
	}
	return out, nil
}
