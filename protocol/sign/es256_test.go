package sign_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"

	"edgeota/protocol"
	"edgeota/protocol/sign"
)

// p256Scalar is the private scalar of the ES256 test key (all 0x03, below
// the group order n).
var p256Scalar = bytes.Repeat([]byte{0x03}, 32)

func testP256Key(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), p256Scalar)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// opaqueSigner hides the concrete key type behind crypto.Signer, the way a
// PKCS#11 key does: go-cose must take its generic path (ECDSA answers
// DER, which it turns into r||s).
type opaqueSigner struct{ s crypto.Signer }

func (o opaqueSigner) Public() crypto.PublicKey { return o.s.Public() }
func (o opaqueSigner) Sign(r io.Reader, d []byte, opts crypto.SignerOpts) ([]byte, error) {
	return o.s.Sign(r, d, opts)
}

// bothKeys returns a manifest store trusting the Ed25519 and the P-256
// test keys: a node may trust keys of both kinds.
func bothKeys(t testing.TB) *sign.TrustStore {
	t.Helper()
	_, ed := testKey()
	ts, err := sign.NewTrustStore(sign.RoleManifest, crypto.PublicKey(ed), testP256Key(t).Public())
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// TestSignersOfBothKinds: in-memory keys and opaque crypto.Signers (what
// an HSM gives) of either algorithm sign manifests that one store holding
// both keys verifies, that go-cose verifies too, and whose protected alg
// is the key's.
func TestSignersOfBothKinds(t *testing.T) {
	edPriv, _ := testKey()
	ec := testP256Key(t)
	ts := bothKeys(t)
	tests := []struct {
		name string
		key  crypto.Signer
		alg  sign.Algorithm
	}{
		{"ed25519 in memory", edPriv, sign.EdDSA},
		{"ed25519 crypto.Signer", opaqueSigner{edPriv}, sign.EdDSA},
		{"p256 in memory", ec, sign.ES256},
		{"p256 crypto.Signer", opaqueSigner{ec}, sign.ES256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := sign.NewSigner(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if s.Algorithm() != tt.alg || s.KeyID() != sign.KeyIDOf(tt.key.Public()) {
				t.Fatalf("signer alg %v kid %s", s.Algorithm(), s.KeyID())
			}
			b, err := s.SignManifest(testManifest())
			if err != nil {
				t.Fatal(err)
			}
			e, err := ts.Verify(b)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if e.Algorithm != tt.alg {
				t.Fatalf("envelope alg %v, want %v", e.Algorithm, tt.alg)
			}
			var msg cose.Sign1Message
			if err := msg.UnmarshalCBOR(b); err != nil {
				t.Fatal(err)
			}
			gv, err := cose.NewVerifier(cose.Algorithm(tt.alg), tt.key.Public())
			if err != nil {
				t.Fatal(err)
			}
			if err := msg.Verify(nil, gv); err != nil {
				t.Fatalf("go-cose refuses our envelope: %v", err)
			}
		})
	}
}

// TestES256EverySingleByteChangeRefused is TestEverySingleByteChangeRefused
// for an ES256 envelope, verified by a store holding both kinds of key.
func TestES256EverySingleByteChangeRefused(t *testing.T) {
	s, err := sign.NewSigner(testP256Key(t))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.SignManifest(testManifest())
	ts := bothKeys(t)
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
}

// TestGoCoseES256Accepted: an ES256 envelope go-cose signs, our verifier
// accepts.
func TestGoCoseES256Accepted(t *testing.T) {
	ec := testP256Key(t)
	payload, _ := protocol.Marshal(testManifest())
	kid := sign.KeyIDOf(ec.Public())
	gs, _ := cose.NewSigner(cose.AlgorithmES256, ec)
	hdr := cose.Headers{Protected: cose.ProtectedHeader{
		cose.HeaderLabelAlgorithm: cose.AlgorithmES256, cose.HeaderLabelKeyID: kid[:],
		cose.HeaderLabelContentType: protocol.ContentTypeManifest}}
	b, err := cose.Sign1(rand.Reader, gs, hdr, payload, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bothKeys(t).VerifyManifest(b); err != nil {
		t.Fatalf("go-cose envelope refused: %v", err)
	}
}

// p256N is the order of P-256.
var p256N = elliptic.P256().Params().N

// es256Envelope builds a tagged COSE_Sign1 over the manifest with the
// given protected header and signature bytes from sig, which receives the
// Sig_structure.
func envelope(t testing.TB, prot map[int64]any, sig func(tbs []byte) []byte) []byte {
	t.Helper()
	em, _ := cbor.CoreDetEncOptions().EncMode()
	payload, _ := protocol.Marshal(testManifest())
	pb, err := em.Marshal(prot)
	if err != nil {
		t.Fatal(err)
	}
	tbs, _ := em.Marshal([]any{"Signature1", pb, []byte{}, payload})
	out, err := em.Marshal(cbor.Tag{Number: 18, Content: []any{pb, map[int64]any{}, payload, sig(tbs)}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// p256Sig signs tbs with k and returns r and s.
func p256Sig(t testing.TB, k *ecdsa.PrivateKey, tbs []byte) (r, s *big.Int) {
	t.Helper()
	h := sha256.Sum256(tbs)
	der, err := ecdsa.SignASN1(rand.Reader, k, h[:])
	if err != nil {
		t.Fatal(err)
	}
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &rs); err != nil {
		t.Fatal(err)
	}
	return rs.R, rs.S
}

func rawRS(r, s *big.Int) []byte {
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out
}

// badEnvelopes are the refusals of the ES256 bad-input list, each with the
// sentinel it must wrap; the golden vectors carry the same cases.
func badEnvelopes(t testing.TB) []struct {
	name, note string
	in         []byte
	want       error
} {
	edPriv, edPub := testKey()
	ec := testP256Key(t)
	ecKid, edKid := sign.KeyIDOf(ec.Public()), sign.KeyIDOf(edPub)
	es := map[int64]any{1: int64(-7), 3: protocol.ContentTypeManifest, 4: ecKid[:]}
	p256 := func(f func(r, s *big.Int) []byte) []byte {
		return envelope(t, es, func(tbs []byte) []byte { r, s := p256Sig(t, ec, tbs); return f(r, s) })
	}
	return []struct {
		name, note string
		in         []byte
		want       error
	}{
		{"es256-der-signature", "the signature as ASN.1 DER instead of r||s", p256(func(r, s *big.Int) []byte {
			der, _ := asn1.Marshal(struct{ R, S *big.Int }{r, s})
			return der
		}), sign.ErrMalformed},
		{"es256-signature-63-bytes", "r||s with its last byte cut", p256(func(r, s *big.Int) []byte { return rawRS(r, s)[:63] }), sign.ErrMalformed},
		{"es256-signature-65-bytes", "r||s with a byte appended", p256(func(r, s *big.Int) []byte { return append(rawRS(r, s), 0) }), sign.ErrMalformed},
		{"es256-r-zero", "r = 0", p256(func(_, s *big.Int) []byte { return rawRS(new(big.Int), s) }), sign.ErrSignature},
		{"es256-s-is-n", "s = n, out of range", p256(func(r, _ *big.Int) []byte { return rawRS(r, p256N) }), sign.ErrSignature},
		{"es256-signature-flipped", "one bit of s flipped", p256(func(r, s *big.Int) []byte { b := rawRS(r, s); b[63] ^= 1; return b }), sign.ErrSignature},
		{"es256-alg-on-ed25519-kid", "protected alg -7 (ES256) naming the Ed25519 key's kid: the kid binds EdDSA",
			envelope(t, map[int64]any{1: int64(-7), 3: protocol.ContentTypeManifest, 4: edKid[:]}, func(tbs []byte) []byte { return ed25519.Sign(edPriv, tbs) }), sign.ErrAlgorithm},
		{"eddsa-alg-on-p256-kid", "protected alg -8 (EdDSA) naming the P-256 key's kid: the kid binds ES256",
			envelope(t, map[int64]any{1: int64(-8), 3: protocol.ContentTypeManifest, 4: ecKid[:]}, func(tbs []byte) []byte { return ed25519.Sign(edPriv, tbs) }), sign.ErrAlgorithm},
		{"es384-alg", "protected alg -35 (ES384), not in the contract",
			envelope(t, map[int64]any{1: int64(-35), 3: protocol.ContentTypeManifest, 4: ecKid[:]}, func(tbs []byte) []byte { r, s := p256Sig(t, ec, tbs); return rawRS(r, s) }), sign.ErrAlgorithm},
	}
}

// TestES256BadInput: the wrong encoding or length of a signature, an
// out-of-range r or s, and an algorithm that is not its kid's, each
// refused with its reason.
func TestES256BadInput(t *testing.T) {
	ts := bothKeys(t)
	for _, tt := range badEnvelopes(t) {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ts.Verify(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestES256HighS: COSE does not require a low s, so (r, n-s) verifies as
// (r, s) does; HSMs and secure elements give either.
func TestES256HighS(t *testing.T) {
	ec := testP256Key(t)
	kid := sign.KeyIDOf(ec.Public())
	prot := map[int64]any{1: int64(-7), 3: protocol.ContentTypeManifest, 4: kid[:]}
	ts := bothKeys(t)
	for _, high := range []bool{false, true} {
		b := envelope(t, prot, func(tbs []byte) []byte {
			r, s := p256Sig(t, ec, tbs)
			half := new(big.Int).Rsh(p256N, 1)
			if (s.Cmp(half) > 0) != high {
				s = new(big.Int).Sub(p256N, s)
			}
			return rawRS(r, s)
		})
		if _, err := ts.VerifyManifest(b); err != nil {
			t.Fatalf("high s %v refused: %v", high, err)
		}
	}
}

// offCurve is 0x04 || X || Y+1 for the test key's point: 65 bytes of the
// right shape, not on P-256.
func offCurve(t testing.TB) []byte {
	raw, err := testP256Key(t).PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	raw[64] ^= 1
	return raw
}

// TestKeyLoadRefusals: a point not on the curve, a compressed point, a
// P-384 key and a raw key of a wrong length are refused when a key is
// loaded (raw form, PEM file, or trust store), with ErrKey.
func TestKeyLoadRefusals(t *testing.T) {
	bad := offCurve(t)
	x, y := new(big.Int).SetBytes(bad[1:33]), new(big.Int).SetBytes(bad[33:])
	//lint:ignore SA1019 the coordinates are the only way to build the off-curve key the store must refuse
	offKey := &ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	good, _ := testP256Key(t).PublicKey.Bytes()
	compressed := append([]byte{0x02 | good[64]&1}, good[1:33]...)
	// A PKIX PEM of the off-curve point, built by hand (x509 will not
	// marshal it).
	spki, _ := asn1.Marshal(struct {
		Alg struct{ Alg, Curve asn1.ObjectIdentifier }
		Key asn1.BitString
	}{struct{ Alg, Curve asn1.ObjectIdentifier }{asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}, asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}},
		asn1.BitString{Bytes: bad, BitLength: 8 * len(bad)}})
	offPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})
	p384DER, _ := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	p384PEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: p384DER})

	for name, raw := range map[string][]byte{"off curve": bad, "compressed": compressed,
		"64 bytes": make([]byte, 64), "65 bytes not 0x04": append([]byte{0x05}, bad[1:]...), "infinity": append([]byte{0x04}, make([]byte, 64)...)} {
		if _, err := sign.ParseRawPublicKey(raw); !errors.Is(err, sign.ErrKey) {
			t.Errorf("raw %s: err = %v, want ErrKey", name, err)
		}
	}
	for name, p := range map[string][]byte{"off curve": offPEM, "P-384": p384PEM} {
		if _, err := sign.ParsePublicKey(p); !errors.Is(err, sign.ErrKey) {
			t.Errorf("PEM %s: err = %v, want ErrKey", name, err)
		}
	}
	for name, k := range map[string]crypto.PublicKey{"off curve": offKey, "P-384": &p384.PublicKey, "nil": (*ecdsa.PublicKey)(nil), "short ed25519": ed25519.PublicKey(make([]byte, 31))} {
		if _, err := sign.NewTrustStore(sign.RoleManifest, k); !errors.Is(err, sign.ErrKey) {
			t.Errorf("trust store %s: err = %v, want ErrKey", name, err)
		}
	}
	if _, err := sign.NewSigner(p384); !errors.Is(err, sign.ErrKey) {
		t.Errorf("P-384 signer: err = %v, want ErrKey", err)
	}
}

// TestP256KeysRoundTrip: PEM and raw forms of a P-256 key round-trip, and
// its kid is over the 65-byte uncompressed point.
func TestP256KeysRoundTrip(t *testing.T) {
	ec := testP256Key(t)
	kp, err := sign.MarshalPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	pp, _ := sign.MarshalPublicKey(ec.Public())
	priv, err := sign.ParsePrivateKey(kp)
	if err != nil || !ec.Equal(priv) {
		t.Fatalf("private round trip: %v", err)
	}
	pub, err := sign.ParsePublicKey(pp)
	if err != nil || !ec.PublicKey.Equal(pub) {
		t.Fatalf("public round trip: %v", err)
	}
	raw, alg, err := sign.RawPublicKey(pub)
	if err != nil || alg != sign.ES256 || len(raw) != 65 || raw[0] != 0x04 {
		t.Fatalf("raw %x alg %v: %v", raw, alg, err)
	}
	sum := sha256.Sum256(raw)
	if kid := sign.KeyIDOf(pub); !bytes.Equal(kid[:], sum[:8]) {
		t.Fatalf("kid %s, want first 8 bytes of %x", kid, sum)
	}
	back, err := sign.ParseRawPublicKey(raw)
	if err != nil || !ec.PublicKey.Equal(back) {
		t.Fatalf("raw round trip: %v", err)
	}
}

// FuzzParseRawPublicKey: whatever raw form is accepted is a valid key that
// gives back the same bytes and has a kid.
func FuzzParseRawPublicKey(f *testing.F) {
	raw, _ := testP256Key(f).PublicKey.Bytes()
	_, ed := testKey()
	for _, s := range [][]byte{raw, ed, offCurve(f), raw[:33], append([]byte{0x04}, make([]byte, 64)...)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		k, err := sign.ParseRawPublicKey(in)
		if err != nil {
			if !errors.Is(err, sign.ErrKey) {
				t.Fatalf("error %v does not wrap ErrKey", err)
			}
			return
		}
		back, _, err := sign.RawPublicKey(k)
		if err != nil || !bytes.Equal(back, in) {
			t.Fatalf("accepted %x, gives back %x: %v", in, back, err)
		}
		if _, err := sign.NewTrustStore(sign.RoleManifest, k); err != nil {
			t.Fatalf("accepted %x, trust store refuses: %v", in, err)
		}
	})
}

// FuzzParsePublicKey: a PEM public key is accepted only as a valid key of
// one of the two kinds.
func FuzzParsePublicKey(f *testing.F) {
	_, ed := testKey()
	for _, k := range []crypto.PublicKey{ed, testP256Key(f).Public()} {
		p, _ := sign.MarshalPublicKey(k)
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		k, err := sign.ParsePublicKey(in)
		if err != nil {
			return
		}
		if _, _, err := sign.RawPublicKey(k); err != nil {
			t.Fatalf("accepted a key RawPublicKey refuses: %v", err)
		}
	})
}

// FuzzVerifyES256: against a store holding both keys, whatever verifies
// carries exactly the manifest the keys signed, under one of their kids
// with that kid's algorithm. (ES256 signatures are randomized and high-S
// is allowed, so the signature bytes of a verified envelope need not be a
// seed's.)
func FuzzVerifyES256(f *testing.F) {
	ts := bothKeys(f)
	ec := testP256Key(f)
	s, _ := sign.NewSigner(ec)
	b, _ := s.SignManifest(testManifest())
	f.Add(b)
	for _, v := range badEnvelopes(f) {
		f.Add(v.in)
	}
	for _, v := range readSignVectors(f).Vectors {
		f.Add(mustHex(f, v.Hex))
	}
	want, _ := protocol.Marshal(testManifest())
	_, edPub := testKey()
	algOf := map[sign.KeyID]sign.Algorithm{sign.KeyIDOf(ec.Public()): sign.ES256, sign.KeyIDOf(edPub): sign.EdDSA}
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := ts.Verify(in)
		if err != nil {
			return
		}
		if !bytes.Equal(e.Payload, want) || algOf[e.KeyID] != e.Algorithm {
			t.Fatalf("verified %x: payload %x kid %s alg %v", in, e.Payload, e.KeyID, e.Algorithm)
		}
	})
}

// BenchmarkVerifyByAlgorithm times a node's verification of a signed
// manifest (envelope, signature, strict decoding) for each algorithm, side
// by side; the bound is 150 µs for both.
func BenchmarkVerifyByAlgorithm(b *testing.B) {
	edPriv, _ := testKey()
	ts := bothKeys(b)
	for _, k := range []struct {
		name string
		key  crypto.Signer
	}{{"alg=EdDSA", edPriv}, {"alg=ES256", testP256Key(b)}} {
		s, _ := sign.NewSigner(k.key)
		in, _ := s.SignManifest(testManifest())
		b.Run(k.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ts.VerifyManifest(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
