//go:build cgo

package hsm

import (
	"crypto"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"

	"edgeota/protocol"
	"edgeota/protocol/sign"
	"edgeota/test/softhsm"
)

func manifest() *protocol.Manifest {
	return &protocol.Manifest{Format: 1, Seq: 7, Component: "kws-model", Version: "1.4.0", Size: 4096, Epoch: 1}
}

func mustURI(t testing.TB, s string) *URI {
	t.Helper()
	u, err := ParseURI(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

var algs = []sign.Algorithm{sign.EdDSA, sign.ES256}

// TestSignInTokenVerifyOnNode: keygen creates the key pair inside a fresh
// SoftHSM2 token; the key opened by its URI signs a manifest through
// PKCS#11 (CKM_EDDSA or CKM_ECDSA); the node's ordinary verifier, a
// sign.TrustStore holding the public key keygen returned, accepts it.
func TestSignInTokenVerifyOnNode(t *testing.T) {
	for _, alg := range algs {
		t.Run(alg.String(), func(t *testing.T) {
			tok := softhsm.New(t, "edgeota")
			u := mustURI(t, tok.URI("operator"))
			pub, err := Generate(u, alg)
			if err != nil {
				t.Fatal(err)
			}
			if _, a, err := sign.RawPublicKey(pub); err != nil || a != alg {
				t.Fatalf("generated %T alg %v: %v", pub, a, err)
			}
			if _, err := Generate(u, alg); !errors.Is(err, ErrExists) {
				t.Fatalf("second keygen with the same label: %v, want ErrExists", err)
			}
			k, err := Open(u)
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			if sign.KeyIDOf(k.Public()) != sign.KeyIDOf(pub) {
				t.Fatal("the opened key is not the generated one")
			}
			s, err := sign.NewSigner(k)
			if err != nil {
				t.Fatal(err)
			}
			b, err := s.SignManifest(manifest())
			if err != nil {
				t.Fatal(err)
			}
			node, err := sign.NewTrustStore(sign.RoleManifest, pub)
			if err != nil {
				t.Fatal(err)
			}
			m, err := node.VerifyManifest(b)
			if err != nil || m.Seq != 7 {
				t.Fatalf("node refuses the token's manifest: %v", err)
			}
			if e, _ := sign.Parse(b); e.Algorithm != alg {
				t.Fatalf("envelope alg %v, want %v", e.Algorithm, alg)
			}
		})
	}
}

// TestTokenErrors: each way a token can refuse names its reason.
func TestTokenErrors(t *testing.T) {
	tok := softhsm.New(t, "edgeota")
	if _, err := Generate(mustURI(t, tok.URI("operator")), sign.EdDSA); err != nil {
		t.Fatal(err)
	}
	notLib := filepath.Join(tok.Dir, "not-a-library.so")
	if err := os.WriteFile(notLib, []byte("text"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := "pkcs11:token=edgeota;object=operator?module-path="
	tests := []struct {
		name, uri string
		want      error
		says      string
	}{
		{"wrong PIN", base + tok.Module + "&pin-value=0000", ErrPIN, "refused the user PIN"},
		{"missing object", strings.Replace(tok.URI("operator"), "object=operator", "object=deployer", 1), ErrNoObject, `no private key object "deployer"`},
		{"missing token", strings.Replace(tok.URI("operator"), "token=edgeota", "token=other", 1), ErrToken, `no token labelled "other"`},
		{"missing token by serial", strings.Replace(tok.URI("operator"), "token=edgeota", "serial=0000", 1), ErrToken, `no token with serial "0000" among`},
		{"module that does not load", base + notLib + "&pin-value=1234", ErrModule, "not a PKCS#11 library"},
		{"module that is not there", base + "/nonexistent/libpkcs11.so&pin-value=1234", ErrModule, "no such file"},
		{"pin file that is not there", base + tok.Module + "&pin-source=file:/nonexistent/pin", ErrPIN, "pin-source"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := Open(mustURI(t, tt.uri))
			if err == nil {
				k.Close()
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("err = %v, want %v saying %q", err, tt.want, tt.says)
			}
		})
	}
}

// TestTokenWithoutMechanism: a token that does not offer CKM_EDDSA (or
// CKM_ECDSA, or their key generation) is named as such. SoftHSM2 offers
// them all, so the test hides one from the mechanism list.
func TestTokenWithoutMechanism(t *testing.T) {
	tok := softhsm.New(t, "edgeota")
	for _, alg := range algs {
		if _, err := Generate(mustURI(t, tok.URI("key-"+alg.String())), alg); err != nil {
			t.Fatal(err)
		}
	}
	real := mechanisms
	t.Cleanup(func() { mechanisms = real })
	without := func(drop uint) {
		mechanisms = func(ctx *pkcs11.Ctx, slot uint) ([]*pkcs11.Mechanism, error) {
			ms, err := real(ctx, slot)
			var out []*pkcs11.Mechanism
			for _, m := range ms {
				if m.Mechanism != drop {
					out = append(out, m)
				}
			}
			return out, err
		}
	}
	tests := []struct {
		name   string
		drop   uint
		do     func() error
		naming string
	}{
		{"sign Ed25519", ckmEdDSA, func() error { _, err := Open(mustURI(t, tok.URI("key-EdDSA"))); return err }, "CKM_EDDSA"},
		{"sign ES256", pkcs11.CKM_ECDSA, func() error { _, err := Open(mustURI(t, tok.URI("key-ES256"))); return err }, "CKM_ECDSA"},
		{"generate Ed25519", ckmECEdwardsKeyPairGen, func() error { _, err := Generate(mustURI(t, tok.URI("new")), sign.EdDSA); return err }, "CKM_EC_EDWARDS_KEY_PAIR_GEN"},
		{"generate ES256", pkcs11.CKM_EC_KEY_PAIR_GEN, func() error { _, err := Generate(mustURI(t, tok.URI("new")), sign.ES256); return err }, "CKM_EC_KEY_PAIR_GEN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			without(tt.drop)
			err := tt.do()
			if !errors.Is(err, ErrMechanism) || !strings.Contains(err.Error(), tt.naming) {
				t.Fatalf("err = %v, want ErrMechanism naming %s", err, tt.naming)
			}
		})
	}
}

// BenchmarkSignSoftHSM times signing a manifest through SoftHSM2, key and
// session opened once: a figure, not a limit.
func BenchmarkSignSoftHSM(b *testing.B) {
	for _, alg := range algs {
		b.Run("alg="+alg.String(), func(b *testing.B) {
			tok := softhsm.New(b, "bench")
			u := mustURI(b, tok.URI("operator"))
			if _, err := Generate(u, alg); err != nil {
				b.Fatal(err)
			}
			k, err := Open(u)
			if err != nil {
				b.Fatal(err)
			}
			defer k.Close()
			var signer crypto.Signer = k
			s, err := sign.NewSigner(signer)
			if err != nil {
				b.Fatal(err)
			}
			m := manifest()
			for b.Loop() {
				if _, err := s.SignManifest(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestKeysOpenTogether: keys of both kinds, in one token and in two
// tokens of the same module, are open at once (one initialised module,
// one login per token) and each signs what its own public key verifies;
// closing one leaves the others working.
func TestKeysOpenTogether(t *testing.T) {
	tok := softhsm.New(t, "edgeota")
	if out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", "second",
		"--pin", softhsm.UserPIN, "--so-pin", softhsm.SOPIN).CombinedOutput(); err != nil {
		t.Fatalf("second token: %v\n%s", err, out)
	}
	second := &softhsm.Token{Label: "second", Module: tok.Module, PINFile: tok.PINFile, Dir: tok.Dir}
	uris := []string{tok.URI("ed-a"), tok.URI("p256-a"), second.URI("ed-b"), second.URI("p256-b")}
	var keys []*Key
	for i, s := range uris {
		if _, err := Generate(mustURI(t, s), algs[i%2]); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range uris {
		k, err := Open(mustURI(t, s))
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		keys = append(keys, k)
	}
	signAll := func(ks []*Key) {
		t.Helper()
		for i, k := range ks {
			s, err := sign.NewSigner(k)
			if err != nil {
				t.Fatal(err)
			}
			b, err := s.SignManifest(manifest())
			if err != nil {
				t.Fatalf("key %d: %v", i, err)
			}
			ts, _ := sign.NewTrustStore(sign.RoleManifest, k.Public())
			if _, err := ts.VerifyManifest(b); err != nil {
				t.Fatalf("key %d: %v", i, err)
			}
		}
	}
	signAll(keys)
	if err := keys[0].Close(); err != nil {
		t.Fatal(err)
	}
	signAll(keys[1:])
	for _, k := range keys[1:] {
		if err := k.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
