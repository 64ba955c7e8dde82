package trust

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func seedFuzz(f *testing.F) {
	for _, v := range loadVectors(f).Vectors {
		b, err := hex.DecodeString(v.Hex)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzDecode checks the decoder never panics and that what it accepts
// re-encodes to bytes it accepts again, with a stable encoding.
func FuzzDecode(f *testing.F) {
	seedFuzz(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := Decode(b)
		if err != nil {
			return
		}
		enc, err := Encode(u)
		if err != nil {
			t.Fatalf("accepted update does not re-encode: %v", err)
		}
		u2, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded update refused: %v", err)
		}
		enc2, err := Encode(u2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable: %x vs %x (%v)", enc, enc2, err)
		}
	})
}

// FuzzCheck checks the checker never panics and accepts nothing but
// updates both roots signed, above the anchor's version.
func FuzzCheck(f *testing.F) {
	seedFuzz(f)
	a := testAnchor()
	f.Fuzz(func(t *testing.T, b []byte) {
		u, kids, err := a.Check(b)
		if err != nil {
			return
		}
		if err := u.Validate(); err != nil {
			t.Fatalf("accepted update does not validate: %v", err)
		}
		if u.Version <= a.Version || len(kids) < 2 || kids[0] == kids[1] {
			t.Fatalf("accepted version %d signed by %v", u.Version, kids)
		}
	})
}
