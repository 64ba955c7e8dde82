package keyring

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"edgeota/protocol/sign"
	"edgeota/protocol/trust"
)

func key(b byte) ed25519.PrivateKey { return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, 32)) }

// TestApplySavesFirst: a refused update writes nothing; an accepted one
// is in the data directory when Apply returns and is what Open takes on
// the next start, whatever the configuration says; a damaged file is an
// error, never a silent fall back to the configured keys.
func TestApplySavesFirst(t *testing.T) {
	dir := t.TempDir()
	root, a, b := key(9), key(1), key(2)
	cfg := Config{Manifest: []crypto.PublicKey{a.Public()}, Roots: []crypto.PublicKey{root.Public()}}
	k, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rk, _ := trust.KeyOf(root.Public())
	bk, _ := trust.KeyOf(b.Public())
	signWith := func(priv ed25519.PrivateKey) []byte {
		s, _ := sign.NewSigner(priv)
		u, err := trust.Sign(&trust.Update{Format: trust.Format, Version: 1, ManifestKeys: []trust.Key{bk}, RootKeys: []trust.Key{rk}, Threshold: 1}, s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	path := filepath.Join(dir, FileName)
	if _, _, err := k.Apply(signWith(a)); !errors.Is(err, sign.ErrUnknownKey) {
		t.Fatalf("an update by a manifest key: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused update was saved: %v", err)
	}
	signed := signWith(root)
	if _, _, err := k.Apply(signed); err != nil {
		t.Fatal(err)
	}
	if saved, err := os.ReadFile(path); err != nil || !bytes.Equal(saved, signed) {
		t.Fatalf("saved %d bytes (%v), want the update", len(saved), err)
	}
	k2, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if k2.Update() == nil || !k2.Manifest().Has(sign.KeyIDOf(b.Public())) || k2.Manifest().Has(sign.KeyIDOf(a.Public())) {
		t.Fatal("reopened keyring does not hold the update's keys")
	}
	if _, err := k2.VerifyDeployment([]byte{0xd2}); !errors.Is(err, ErrNoDeploymentKeys) {
		t.Fatalf("no deployment keys: %v", err)
	}
	if err := os.WriteFile(path, signed[:len(signed)-5], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, cfg); err == nil {
		t.Fatal("a damaged trust.cose was taken")
	}
	if _, err := Open(t.TempDir(), Config{Manifest: cfg.Manifest, Roots: cfg.Roots, Threshold: 2}); err == nil {
		t.Fatal("threshold 2 of one root accepted")
	}
}
