package sign_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"

	"edgeota/protocol"
	"edgeota/protocol/sign"
)

// TestWithUnprotected: an offer attached to a signed manifest is read back
// by Unprotected, the envelope still verifies under the same key, and only
// the unprotected header changed (v1.4, docs/protocol.md "Delta updates").
func TestWithUnprotected(t *testing.T) {
	edMan, edKeys := signedManifest(t)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecSigner, _ := sign.NewSigner(ec)
	ecMan, err := ecSigner.SignManifest(testManifest())
	if err != nil {
		t.Fatal(err)
	}
	ecKeys, _ := sign.NewTrustStore(sign.RoleManifest, &ec.PublicKey)
	offer := &protocol.DeltaOffer{Format: 1, Base: protocol.Digest{1}, Delta: protocol.Digest{2}, Size: 100}
	value, err := protocol.Marshal(offer)
	if err != nil {
		t.Fatal(err)
	}
	other := []byte{0x63, 'a', 'b', 'c'}
	for _, tt := range []struct {
		name string
		in   []byte
		keys *sign.TrustStore
	}{
		{"EdDSA", edMan, edKeys},
		{"ES256", ecMan, ecKeys},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := sign.WithUnprotected(tt.in, protocol.DeltaOfferLabel, value)
			if err != nil {
				t.Fatal(err)
			}
			m, err := tt.keys.VerifyManifest(out)
			if err != nil {
				t.Fatalf("envelope with an offer does not verify: %v", err)
			}
			if m.Seq != testManifest().Seq {
				t.Fatalf("seq %d", m.Seq)
			}
			// Only the header between the protected bytes and the
			// payload differs: a0 became the one-label map.
			i := bytes.Index(tt.in, []byte{0xa0})
			if i < 0 || !bytes.Equal(out[:i], tt.in[:i]) || !bytes.Equal(out[len(out)-(len(tt.in)-i-1):], tt.in[i+1:]) {
				t.Fatalf("protected header, payload or signature changed:\n in %x\nout %x", tt.in, out)
			}
			e, err := sign.Parse(out)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := e.Unprotected(protocol.DeltaOfferLabel)
			if !ok || !bytes.Equal(got, value) {
				t.Fatalf("Unprotected = %x, %v; want %x", got, ok, value)
			}
			if _, ok := e.Unprotected(-65536); ok {
				t.Fatal("a label that is not there is found")
			}
			// Replacing the header again keeps one label.
			again, err := sign.WithUnprotected(out, 7, other)
			if err != nil {
				t.Fatal(err)
			}
			e2, _ := sign.Parse(again)
			if _, ok := e2.Unprotected(protocol.DeltaOfferLabel); ok {
				t.Fatal("the previous unprotected label survived")
			}
			if v, ok := e2.Unprotected(7); !ok || !bytes.Equal(v, other) {
				t.Fatalf("label 7 = %x, %v", v, ok)
			}
			if _, err := tt.keys.VerifyManifest(again); err != nil {
				t.Fatal(err)
			}
			plain, _ := sign.Parse(tt.in)
			if _, ok := plain.Unprotected(protocol.DeltaOfferLabel); ok {
				t.Fatal("an empty unprotected header holds a label")
			}
		})
	}
}

func TestWithUnprotectedRefuses(t *testing.T) {
	man, _ := signedManifest(t)
	for _, tt := range []struct {
		name     string
		envelope []byte
		value    []byte
		want     error
	}{
		{"value not CBOR", man, []byte{0x58}, sign.ErrMalformed},
		{"value with trailing bytes", man, []byte{0x01, 0x02}, sign.ErrMalformed},
		{"value empty", man, nil, sign.ErrMalformed},
		{"untagged envelope", man[1:], []byte{0x01}, sign.ErrNotTagged},
		{"truncated envelope", man[:len(man)-1], []byte{0x01}, sign.ErrMalformed},
		{"too large", man, append([]byte{0x5a, 0x00, 0x04, 0x00, 0x00}, make([]byte, protocol.MaxDocSize)...), sign.ErrMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sign.WithUnprotected(tt.envelope, protocol.DeltaOfferLabel, tt.value)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// FuzzWithUnprotected: whatever value is attached, the envelope verifies as
// before and the value reads back unchanged, or it is refused.
func FuzzWithUnprotected(f *testing.F) {
	man, keys := signedManifest(f)
	f.Add([]byte{0xa0}, int64(-65537))
	f.Add([]byte{0x01}, int64(4))
	f.Fuzz(func(t *testing.T, value []byte, label int64) {
		out, err := sign.WithUnprotected(man, label, value)
		if err != nil {
			return
		}
		if _, err := keys.VerifyManifest(out); err != nil {
			t.Fatalf("attaching %x under %d broke verification: %v", value, label, err)
		}
		e, err := sign.Parse(out)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := e.Unprotected(label); !ok || !bytes.Equal(got, value) {
			t.Fatalf("label %d reads %x, %v; attached %x", label, got, ok, value)
		}
	})
}
