package main

import (
	"crypto"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgeota/protocol/sign"
)

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "op")
	out := mustCLI(t, "keygen", "--out", base, "--json")
	var res struct{ PrivateKey, PublicKey, KID string }
	if err := json.Unmarshal([]byte(strings.ReplaceAll(out, "_", "")), &res); err != nil {
		t.Fatalf("bad JSON %q: %v", out, err)
	}
	st, err := os.Stat(base + ".key")
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v, want 0600", st.Mode().Perm())
	}
	kb, _ := os.ReadFile(base + ".key")
	pb, _ := os.ReadFile(base + ".pub")
	priv, err := sign.ParsePrivateKey(kb)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := sign.ParsePublicKey(pb)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(priv.Public()) {
		t.Fatal("public key does not match private key")
	}
	if res.KID != sign.KeyIDOf(pub).String() {
		t.Fatalf("kid %s, want %s", res.KID, sign.KeyIDOf(pub))
	}

	// Refuses to overwrite either file, and leaves them unchanged.
	_, errs, code := cli(t, "keygen", "--out", base)
	if code != 1 || !strings.Contains(errs, "refusing to overwrite") {
		t.Fatalf("second keygen: exit %d, %s", code, errs)
	}
	os.Remove(base + ".key")
	_, _, code = cli(t, "keygen", "--out", base)
	if code != 1 {
		t.Fatal("keygen overwrote an existing .pub")
	}
	if after, _ := os.ReadFile(base + ".pub"); string(after) != string(pb) {
		t.Fatal("public key changed")
	}
}

// TestES256KeyEndToEnd: keygen --alg es256 writes a P-256 key pair whose
// kid is over the 65-byte point; sign takes it; verify accepts the
// manifest with the P-256 key among the trusted ones and names the
// reason when the kid is unknown.
func TestES256KeyEndToEnd(t *testing.T) {
	f := newFixture(t)
	base := filepath.Join(f.dir, "p256")
	out := mustCLI(t, "keygen", "--out", base, "--alg", "es256", "--json")
	var res struct{ KID, Alg string }
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Alg != "ES256" {
		t.Fatalf("keygen %q: %v", out, err)
	}
	pb, _ := os.ReadFile(base + ".pub")
	pub, err := sign.ParsePublicKey(pb)
	if err != nil {
		t.Fatal(err)
	}
	raw, alg, err := sign.RawPublicKey(pub)
	if err != nil || alg != sign.ES256 || len(raw) != 65 || res.KID != sign.KeyIDOf(pub).String() {
		t.Fatalf("public key %x alg %v kid %s: %v", raw, alg, res.KID, err)
	}
	m := filepath.Join(f.dir, "p256.cose")
	mustCLI(t, "sign", "--key", base+".key", "--image", f.image, "--component", "kws-model", "--version", "1.5.0",
		"--seq", "43", "--class", testClass, "--out", m)
	out = mustCLI(t, "verify", "--trust", f.pub, "--trust", base+".pub", "--image", f.image, m)
	if !strings.Contains(out, "valid manifest") {
		t.Fatalf("verify: %q", out)
	}
	if _, errs, code := cli(t, "verify", "--trust", f.pub, m); code != 1 || !strings.Contains(errs, "unknown kid") {
		t.Fatalf("verify with the Ed25519 key only: exit %d, %s", code, errs)
	}
}
