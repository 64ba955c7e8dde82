package trust

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"

	"edgeota/protocol"
	"edgeota/protocol/sign"
)

// TestCheckRotation walks a holder through two rotations: each accepted
// update becomes the anchor of the next, a root the last update removed
// signs nothing any more, and every refusal names its reason.
func TestCheckRotation(t *testing.T) {
	r1, r2 := mustKey(pub(root1Seed)), mustKey(pub(root2Seed))
	m := mustKey(pub(manifestSeed))
	holder := Anchor{Roots: []Key{r1}, Threshold: 1}
	upd := func(version uint64, roots []Key, threshold uint64) *Update {
		return &Update{Format: Format, Version: version, ManifestKeys: []Key{m}, RootKeys: roots, Threshold: threshold}
	}
	steps := []struct {
		name    string
		u       *Update
		signers [][]byte
		want    error // nil: accepted, and the holder moves on
	}{
		{"first rotation to root 2 by root 1", upd(1, []Key{r2}, 1), [][]byte{root1Seed}, nil},
		{"removed root 1 signs", upd(2, []Key{r1}, 1), [][]byte{root1Seed}, sign.ErrUnknownKey},
		{"replay of version 1 by root 2", upd(1, []Key{r2}, 1), [][]byte{root2Seed}, ErrVersion},
		{"root 2 adds root 1, both must sign", upd(2, []Key{r1, r2}, 2), [][]byte{root2Seed}, nil},
		{"one of two roots", upd(3, []Key{r1, r2}, 1), [][]byte{root1Seed}, ErrThreshold},
		{"both roots", upd(3, []Key{r1, r2}, 1), [][]byte{root2Seed, root1Seed}, nil},
	}
	for _, st := range steps {
		var signers []*sign.Signer
		for _, s := range st.signers {
			signers = append(signers, signer(t, s))
		}
		b, err := Sign(st.u, signers...)
		if err != nil {
			t.Fatalf("%s: sign: %v", st.name, err)
		}
		got, _, err := holder.Check(b)
		if !errors.Is(err, st.want) || (st.want == nil && err != nil) {
			t.Fatalf("%s: got %v, want %v", st.name, err, st.want)
		}
		if err == nil {
			holder = got.Anchor()
		}
	}
	if holder.Version != 3 || holder.Threshold != 1 || len(holder.Roots) != 2 {
		t.Fatalf("holder ends at %+v", holder)
	}
}

func TestCheckNoRoot(t *testing.T) {
	b, err := Sign(sampleUpdate(), signer(t, root1Seed))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := (Anchor{}).Check(b); !errors.Is(err, ErrNoRoot) {
		t.Fatalf("got %v, want ErrNoRoot", err)
	}
}

func TestEncodeRefuses(t *testing.T) {
	tests := []struct {
		name string
		edit func(u *Update)
	}{
		{"no manifest key", func(u *Update) { u.ManifestKeys = nil }},
		{"no root", func(u *Update) { u.RootKeys, u.Threshold = nil, 0 }},
		{"threshold 0", func(u *Update) { u.Threshold = 0 }},
		{"five manifest keys", func(u *Update) {
			for i := range 4 {
				u.ManifestKeys = append(u.ManifestKeys, mustKey(pub(seedOf(byte(0x30+i)))))
			}
		}},
		{"short key", func(u *Update) { u.ManifestKeys[0].Public = u.ManifestKeys[0].Public[:31] }},
		{"unknown algorithm", func(u *Update) { u.DeploymentKeys[0].Alg = -35 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := sampleUpdate()
			tt.edit(u)
			if _, err := Encode(u); !errors.Is(err, protocol.ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
	}
}

func TestInspect(t *testing.T) {
	b, err := Sign(sampleUpdate(), signer(t, root1Seed), signer(t, root2Seed))
	if err != nil {
		t.Fatal(err)
	}
	u, kids, err := Inspect(b)
	if err != nil || u.Version != 2 || len(kids) != 2 || kids[0] != mustKey(pub(root1Seed)).ID() {
		t.Fatalf("Inspect: %+v %v %v", u, kids, err)
	}
}

// TestCheckES256Root: a P-256 root signs an update that installs a P-256
// manifest key; a trust store built from it verifies that key's ES256
// signatures and nothing under the replaced EdDSA key.
func TestCheckES256Root(t *testing.T) {
	rootPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	manPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	root, man := mustKey(&rootPriv.PublicKey), mustKey(&manPriv.PublicKey)
	rs, err := sign.NewSigner(rootPriv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Sign(&Update{Format: Format, Version: 1, ManifestKeys: []Key{man}, RootKeys: []Key{root}, Threshold: 1}, rs)
	if err != nil {
		t.Fatal(err)
	}
	u, kids, err := Anchor{Roots: []Key{root}}.Check(b)
	if err != nil || kids[0] != root.ID() || kids[0] != sign.KeyIDOf(&rootPriv.PublicKey) {
		t.Fatalf("Check: %v %v", kids, err)
	}
	store, err := Store(sign.RoleManifest, u.ManifestKeys)
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := sign.NewSigner(manPriv)
	m, _ := ms.Sign(protocol.ContentTypeManifest, []byte{0xa0})
	if _, err := store.Verify(m); err != nil {
		t.Fatalf("ES256 manifest key: %v", err)
	}
	old, _ := signer(t, manifestSeed).Sign(protocol.ContentTypeManifest, []byte{0xa0})
	if _, err := store.Verify(old); !errors.Is(err, sign.ErrUnknownKey) {
		t.Fatalf("replaced EdDSA key: %v, want ErrUnknownKey", err)
	}
}
