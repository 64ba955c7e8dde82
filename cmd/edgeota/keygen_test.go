package main

import (
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
	if !pub.Equal(priv.Public()) {
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
