package main

import (
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgeota/gateway"
	"edgeota/gateway/gatewaytest"
	"edgeota/protocol/sign"
	"edgeota/protocol/trust"
)

// TestTrustSignShowPush: trust sign builds an update of both algorithms
// signed by two roots (k of n), trust show reads it back from the file,
// trust push hands it to a gateway holding those roots with threshold 2
// and trust show --admin prints what it applied; a replay and a file that
// is no trust update are refused with their reason and exit 1.
func TestTrustSignShowPush(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	for _, k := range []string{"b", "r1", "r2"} {
		mustCLI(t, "keygen", "--out", p(k))
	}
	mustCLI(t, "keygen", "--out", p("e"), "--alg", "es256")
	out := mustCLI(t, "trust", "sign", "--version", "1", "--manifest-key", p("b.pub"), "--manifest-key", p("e.pub"),
		"--root-key", p("r1.pub"), "--root-key", p("r2.pub"), "--threshold", "2", "--root", p("r1.key"), "--root", p("r2.key"), "-o", p("t1.cose"))
	if !strings.Contains(out, "version 1 (2 manifest, 0 deployment, 2 root keys, threshold 2) with 2 root(s)") {
		t.Fatalf("trust sign: %q", out)
	}
	out = mustCLI(t, "trust", "show", p("t1.cose"))
	if !strings.Contains(out, "EdDSA") || !strings.Contains(out, "ES256") || strings.Count(out, "root ") != 2 {
		t.Fatalf("trust show FILE: %q", out)
	}

	var roots []ed25519.PublicKey
	for _, k := range []string{"r1", "r2"} {
		b, _ := os.ReadFile(p(k + ".pub"))
		pub, err := sign.ParsePublicKey(b)
		if err != nil {
			t.Fatal(err)
		}
		roots = append(roots, pub.(ed25519.PublicKey))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	manifest := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	gatewaytest.Start(t, gateway.Config{DataDir: t.TempDir(), Trust: []ed25519.PublicKey{manifest}, CoAPSAddr: "127.0.0.1:0",
		AdminListener: ln, TrustRoots: []crypto.PublicKey{roots[0], roots[1]}, TrustThreshold: 2, Logger: slog.New(slog.DiscardHandler)})
	admin := "http://" + ln.Addr().String()

	// One root of the two the gateway asks for.
	mustCLI(t, "trust", "sign", "--version", "1", "--manifest-key", p("b.pub"), "--root-key", p("r1.pub"), "--root", p("r1.key"), "-o", p("one.cose"))
	if _, errs, code := cli(t, "trust", "push", "--admin", admin, p("one.cose")); code != 1 || !strings.Contains(errs, trust.ErrThreshold.Error()) {
		t.Fatalf("push signed by one root of two: exit %d: %s", code, errs)
	}
	out = mustCLI(t, "trust", "push", "--admin", admin, "--json", p("t1.cose"))
	var got struct {
		Version  uint64   `json:"version"`
		SignedBy []string `json:"signed_by"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Version != 1 || len(got.SignedBy) != 2 {
		t.Fatalf("trust push --json: %q %v", out, err)
	}
	if out := mustCLI(t, "trust", "show", "--admin", admin); !strings.Contains(out, "trust version 1") {
		t.Fatalf("trust show --admin: %q", out)
	}
	if _, errs, code := cli(t, "trust", "push", "--admin", admin, p("t1.cose")); code != 1 || !strings.Contains(errs, trust.ErrVersion.Error()) {
		t.Fatalf("replay: exit %d: %s", code, errs)
	}
	if _, errs, code := cli(t, "trust", "push", "--admin", admin, p("b.pub")); code != 1 || !strings.Contains(errs, "not a tagged COSE_Sign1") {
		t.Fatalf("a .pub file: exit %d: %s", code, errs)
	}
	if _, _, code := cli(t, "trust", "sign", "--manifest-key", p("b.pub")); code != 2 {
		t.Fatalf("trust sign without its required flags: exit %d, want 2", code)
	}
}
