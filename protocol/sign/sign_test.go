package sign_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"

	"edgeota/protocol"
	"edgeota/protocol/sign"
)

var seed = bytes.Repeat([]byte{0x01}, ed25519.SeedSize)

func testKey() (ed25519.PrivateKey, ed25519.PublicKey) {
	priv := ed25519.NewKeyFromSeed(seed)
	return priv, priv.Public().(ed25519.PublicKey)
}

func testManifest() *protocol.Manifest {
	m := &protocol.Manifest{Format: 1, Seq: 42, Component: "kws-model", Version: "1.4.0", Size: 65536, Epoch: 3,
		Probation: &protocol.Probation{Seconds: 600, MinInferences: 1000}}
	for i := range m.Digest {
		m.Digest[i] = byte(i)
	}
	m.Class[0] = 0x6b
	return m
}

func signedManifest(t testing.TB) ([]byte, *sign.TrustStore) {
	t.Helper()
	priv, pub := testKey()
	s, err := sign.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.SignManifest(testManifest())
	if err != nil {
		t.Fatal(err)
	}
	ts, err := sign.NewTrustStore(sign.RoleManifest, pub)
	if err != nil {
		t.Fatal(err)
	}
	return b, ts
}

// TestEverySingleByteChangeRefused: a manifest with any single byte changed
// never verifies (issue 2, bad input).
func TestEverySingleByteChangeRefused(t *testing.T) {
	b, ts := signedManifest(t)
	if _, err := ts.VerifyManifest(b); err != nil {
		t.Fatalf("original refused: %v", err)
	}
	for i := range b {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			c := append([]byte(nil), b...)
			c[i] ^= x
			if _, err := ts.VerifyManifest(c); err == nil {
				t.Fatalf("byte %d ^ %#x still verifies", i, x)
			}
		}
	}
	for n := 0; n < len(b); n++ {
		if _, err := ts.VerifyManifest(b[:n]); err == nil {
			t.Fatalf("truncation to %d bytes verifies", n)
		}
	}
}

func TestVerifyReasons(t *testing.T) {
	b, ts := signedManifest(t)
	priv, _ := testKey()
	s, _ := sign.NewSigner(priv)
	dep, err := sign.NewTrustStore(sign.RoleDeployment, priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	empty, _ := sign.NewTrustStore[ed25519.PublicKey](sign.RoleManifest)
	other, _ := s.Sign("application/cbor", []byte{0xa0})
	tests := []struct {
		name string
		ts   *sign.TrustStore
		in   []byte
		want error
	}{
		{"content type for another role", dep, b, sign.ErrContentType},
		{"unknown kid", empty, b, sign.ErrUnknownKey},
		{"untagged", ts, b[1:], sign.ErrNotTagged},
		{"empty", ts, nil, sign.ErrNotTagged},
		{"garbage after tag", ts, []byte{0xd2, 0x84, 0xff}, sign.ErrMalformed},
		{"unexpected content type", ts, other, sign.ErrContentType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.ts.Verify(tt.in); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestKeysPEMRoundTrip(t *testing.T) {
	priv, pub := testKey()
	kp, err := sign.MarshalPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pp, _ := sign.MarshalPublicKey(pub)
	priv2, err := sign.ParsePrivateKey(kp)
	if err != nil || !priv.Equal(priv2) {
		t.Fatalf("private round trip: %v", err)
	}
	pub2, err := sign.ParsePublicKey(pp)
	if err != nil || !pub.Equal(pub2) {
		t.Fatalf("public round trip: %v", err)
	}
	if _, err := sign.ParsePublicKey(kp); !errors.Is(err, sign.ErrKey) {
		t.Fatalf("private key accepted as public: %v", err)
	}
	if _, err := sign.ParsePrivateKey([]byte("nonsense")); !errors.Is(err, sign.ErrKey) {
		t.Fatalf("nonsense accepted: %v", err)
	}
}

// TestVectorKeyID pins the kid of the vector key, which other
// implementations use to check their KeyID function.
func TestVectorKeyID(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		PublicKey string `json:"public_key"`
		KID       string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	_, pub := testKey()
	if hex.EncodeToString(pub) != f.PublicKey || sign.KeyIDOf(pub).String() != f.KID {
		t.Fatalf("kid %s, vectors say %s", sign.KeyIDOf(pub), f.KID)
	}
}

func FuzzVerify(f *testing.F) {
	b, ts := signedManifest(f)
	f.Add(b)
	f.Add(b[1:])
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "vectors.json"))
	if err != nil {
		f.Fatal(err)
	}
	var vf struct {
		Vectors []struct{ Hex string } `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &vf); err != nil {
		f.Fatal(err)
	}
	// The unprotected header is not signed (a delta offer travels there,
	// v1.4): bytes verify when their signed parts are those of a signed
	// seed, whatever their unprotected header holds.
	good := map[string]bool{signedParts(f, b): true}
	for _, v := range vf.Vectors {
		x, err := hex.DecodeString(v.Hex)
		if err != nil {
			continue
		}
		f.Add(x)
		if _, err := ts.VerifyManifest(x); err == nil {
			good[signedParts(f, x)] = true
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ts.VerifyManifest(in)
		if err != nil {
			return
		}
		// Only bytes the key really signed verify: no mutation of a
		// seed may.
		if !good[signedParts(t, in)] {
			t.Fatalf("unsigned bytes verified: %x (%+v)", in, m)
		}
	})
}

// signedParts returns a verified envelope's protected header, payload and
// signature, the bytes its signature covers or is.
func signedParts(t testing.TB, b []byte) string {
	t.Helper()
	var items []cbor.RawMessage
	if err := cbor.Unmarshal(b[1:], &items); err != nil || len(items) != 4 {
		t.Fatalf("verified envelope does not split into 4 items: %v", err)
	}
	return string(items[0]) + "|" + string(items[2]) + "|" + string(items[3])
}

func BenchmarkVerifyManifest(b *testing.B) {
	in, ts := signedManifest(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ts.VerifyManifest(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyEnvelopeOnly(b *testing.B) {
	in, ts := signedManifest(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ts.Verify(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEd25519VerifyBaseline(b *testing.B) {
	priv, pub := testKey()
	msg := make([]byte, 160)
	sig := ed25519.Sign(priv, msg)
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("bad")
		}
	}
}

// TestCrossImplementation checks both directions against go-cose: what
// go-cose signs, Verify accepts; what Signer signs, go-cose verifies.
func TestCrossImplementation(t *testing.T) {
	priv, pub := testKey()
	payload, err := protocol.Marshal(testManifest())
	if err != nil {
		t.Fatal(err)
	}
	kid := sign.KeyIDOf(pub)
	gs, _ := cose.NewSigner(cose.AlgorithmEdDSA, priv)
	hdr := cose.Headers{Protected: cose.ProtectedHeader{
		cose.HeaderLabelAlgorithm: cose.AlgorithmEdDSA, cose.HeaderLabelKeyID: kid[:],
		cose.HeaderLabelContentType: protocol.ContentTypeManifest}}
	byGoCose, err := cose.Sign1(rand.Reader, gs, hdr, payload, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := sign.NewTrustStore(sign.RoleManifest, pub)
	if _, err := ts.VerifyManifest(byGoCose); err != nil {
		t.Fatalf("go-cose envelope refused: %v", err)
	}
	s, _ := sign.NewSigner(priv)
	ours, _ := s.SignManifest(testManifest())
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(ours); err != nil {
		t.Fatal(err)
	}
	gv, _ := cose.NewVerifier(cose.AlgorithmEdDSA, pub)
	if err := msg.Verify(nil, gv); err != nil {
		t.Fatalf("go-cose refuses our envelope: %v", err)
	}
}

// BenchmarkVerifyGoCose is the same verification through go-cose's
// Sign1Message, side by side with BenchmarkVerifyEnvelopeOnly: the reason
// verification has its own path (README, "Performance").
func BenchmarkVerifyGoCose(b *testing.B) {
	in, _ := signedManifest(b)
	_, pub := testKey()
	v, _ := cose.NewVerifier(cose.AlgorithmEdDSA, pub)
	b.ReportAllocs()
	for b.Loop() {
		var msg cose.Sign1Message
		if err := msg.UnmarshalCBOR(in); err != nil {
			b.Fatal(err)
		}
		if err := msg.Verify(nil, v); err != nil {
			b.Fatal(err)
		}
	}
}
