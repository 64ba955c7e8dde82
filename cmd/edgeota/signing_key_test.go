package main

import (
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgeota/protocol/provision"
	"edgeota/protocol/sign"
	"edgeota/test/softhsm"
)

// TestSigningCommandsWithPKCS11: keygen --pkcs11 creates each kind of key
// inside a fresh SoftHSM2 token; sign, deploy sign and provision bundle
// sign with --key URI; verify (the node's verifier) accepts what they
// wrote with the .pub keygen wrote.
func TestSigningCommandsWithPKCS11(t *testing.T) {
	if !cgoEnabled {
		t.Skip("built without cgo: no PKCS#11")
	}
	for _, alg := range []string{"ed25519", "es256"} {
		t.Run(alg, func(t *testing.T) {
			tok := softhsm.New(t, "edgeota")
			f := newFixture(t)
			uri := tok.URI("operator")
			pub := filepath.Join(f.dir, "hsm-operator")
			out := mustCLI(t, "keygen", "--out", pub, "--alg", alg, "--pkcs11", uri, "--json")
			var res struct{ KID, Alg, PublicKey string }
			if err := json.Unmarshal([]byte(strings.ReplaceAll(out, "public_key", "publickey")), &res); err != nil {
				t.Fatalf("keygen %q: %v", out, err)
			}
			if _, err := os.Stat(pub + ".key"); err == nil {
				t.Fatal("keygen --pkcs11 wrote a private key file")
			}
			m := filepath.Join(f.dir, "hsm.cose")
			mustCLI(t, "sign", "--key", uri, "--image", f.image, "--component", "kws-model", "--version", "1.5.0",
				"--seq", "43", "--class", testClass, "--out", m)
			v := mustCLI(t, "verify", "--json", "--trust", pub+".pub", "--image", f.image, m)
			if !strings.Contains(v, `"valid": true`) || !strings.Contains(v, res.KID) {
				t.Fatalf("verify: %s (kid %s)", v, res.KID)
			}
			yml := filepath.Join(f.dir, "rollout.yaml")
			os.WriteFile(yml, []byte("id: hsm-1\nseq: 1\nmanifest: hsm.cose\ntarget_cohort: \"hw:rev2\"\nwaves:\n  - {percent: 100, bake: 0s}\n"), 0o644)
			d := filepath.Join(f.dir, "rollout.cose")
			mustCLI(t, "deploy", "sign", "--key", uri, yml, "--out", d)
			if v := mustCLI(t, "verify", "--trust", pub+".pub", d); !strings.Contains(v, "valid deployment") {
				t.Fatalf("verify deployment: %s", v)
			}
		})
	}
}

// TestProvisionBundleWithPKCS11: an Ed25519 operator key in a token signs
// a provisioning bundle the node's operator store accepts; a P-256 one is
// refused with the reason.
func TestProvisionBundleWithPKCS11(t *testing.T) {
	if !cgoEnabled {
		t.Skip("built without cgo: no PKCS#11")
	}
	tok := softhsm.New(t, "edgeota")
	f := newProvFixture(t)
	pub := filepath.Join(f.dir, "hsm-op")
	mustCLI(t, "keygen", "--out", pub, "--pkcs11", tok.URI("operator"))
	args := f.bundleArgs()
	for i := range args {
		if args[i] == f.opKey {
			args[i] = tok.URI("operator")
		}
	}
	out := filepath.Join(f.dir, "n1.bundle")
	mustCLI(t, append([]string{"provision", "bundle", "--node", "n1", "--component", "kws-model", "--out", out}, args...)...)
	pb, _ := os.ReadFile(pub + ".pub")
	k, err := sign.ParsePublicKey(pb)
	if err != nil {
		t.Fatal(err)
	}
	trust, _ := sign.NewTrustStore(sign.RoleOperator, k.(ed25519.PublicKey))
	signed, _ := os.ReadFile(out)
	if _, _, err := provision.Verify(signed, trust); err != nil {
		t.Fatalf("node refuses the token-signed bundle: %v", err)
	}

	mustCLI(t, "keygen", "--out", filepath.Join(f.dir, "hsm-p256"), "--alg", "es256", "--pkcs11", tok.URI("p256"))
	for i := range args {
		if args[i] == tok.URI("operator") {
			args[i] = tok.URI("p256")
		}
	}
	_, errs, code := cli(t, append([]string{"provision", "bundle", "--node", "n1", "--component", "kws-model", "--out", out + "2"}, args...)...)
	if code != 1 || !strings.Contains(errs, "provisioning bundles are signed with Ed25519") {
		t.Fatalf("P-256 operator key: exit %d, %s", code, errs)
	}
}

// TestPKCS11URIRefusals: a --key URI without module-path, with an unknown
// attribute, or naming a key the token lacks is refused with the reason.
func TestPKCS11URIRefusals(t *testing.T) {
	f := newFixture(t)
	signArgs := func(key string) []string {
		return []string{"sign", "--key", key, "--image", f.image, "--component", "kws-model", "--version", "1",
			"--seq", "1", "--class", testClass, "--out", filepath.Join(f.dir, "x.cose")}
	}
	tests := []struct {
		name, key string
		code      int
		says      string
	}{
		{"missing module-path", "pkcs11:token=edgeota;object=operator?pin-value=1234", 2, "no module-path"},
		{"unknown attribute", "pkcs11:token=edgeota;object=operator;color=red?module-path=/usr/lib/softhsm/libsofthsm2.so", 2, `unknown path attribute "color"`},
	}
	if cgoEnabled {
		tok := softhsm.New(t, "edgeota")
		tests = append(tests,
			struct {
				name, key string
				code      int
				says      string
			}{"missing object", tok.URI("nobody"), 1, `holds no private key object "nobody"`},
			struct {
				name, key string
				code      int
				says      string
			}{"wrong PIN", strings.Replace(tok.URI("operator"), "pin-source=file:"+tok.PINFile, "pin-value=0000", 1), 1, "refused the user PIN"})
		mustCLI(t, "keygen", "--out", filepath.Join(f.dir, "k"), "--pkcs11", tok.URI("operator"))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs, code := cli(t, signArgs(tt.key)...)
			if code != tt.code || !strings.Contains(errs, tt.says) {
				t.Fatalf("exit %d, %s; want exit %d saying %q", code, errs, tt.code, tt.says)
			}
		})
	}
}

// TestTrustSignWithRootsInOneToken: trust sign holds a threshold of roots
// at once; two roots of both kinds in one token sign one update (which
// needs one module initialisation shared by both keys).
func TestTrustSignWithRootsInOneToken(t *testing.T) {
	if !cgoEnabled {
		t.Skip("built without cgo: no PKCS#11")
	}
	tok := softhsm.New(t, "roots")
	f := newFixture(t)
	ra, rb := filepath.Join(f.dir, "root-a"), filepath.Join(f.dir, "root-b")
	mustCLI(t, "keygen", "--out", ra, "--alg", "ed25519", "--pkcs11", tok.URI("root-a"))
	mustCLI(t, "keygen", "--out", rb, "--alg", "es256", "--pkcs11", tok.URI("root-b"))
	out := mustCLI(t, "trust", "sign", "--version", "2", "--manifest-key", f.pub, "--root-key", ra+".pub", "--root-key", rb+".pub",
		"--threshold", "2", "--root", tok.URI("root-a"), "--root", tok.URI("root-b"), "-o", filepath.Join(f.dir, "t2.cose"))
	if !strings.Contains(out, "with 2 root(s)") {
		t.Fatalf("trust sign: %s", out)
	}
}
