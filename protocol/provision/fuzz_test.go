package provision

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
		doc, err := Decode(b)
		if err != nil {
			return
		}
		enc, err := Encode(doc)
		if err != nil {
			t.Fatalf("accepted bundle does not re-encode: %v", err)
		}
		doc2, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded bundle refused: %v", err)
		}
		enc2, err := Encode(doc2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable: %x vs %x (%v)", enc, enc2, err)
		}
	})
}

// FuzzVerify checks the verifier never panics and accepts nothing but the
// bundles the operator key signed.
func FuzzVerify(f *testing.F) {
	seedFuzz(f)
	ts := operatorStore(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		got, _, err := Verify(b, ts)
		if err != nil {
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("verified bundle does not validate: %v", err)
		}
	})
}

// FuzzWire checks the chunk and status parsers never panic and keep their
// bounds.
func FuzzWire(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0xaa})
	f.Add([]byte{3, 5, 'r', 'e', 'p'})
	f.Fuzz(func(t *testing.T, b []byte) {
		if idx, total, data, err := ParseChunk(b); err == nil && (idx >= total || len(data) == 0) {
			t.Fatalf("ParseChunk accepted %d/%d with %d bytes", idx, total, len(data))
		}
		if s, err := ParseStatus(b); err == nil {
			out, _ := s.MarshalBinary()
			if len(out) > MaxValueLen {
				t.Fatalf("status re-encodes to %d bytes", len(out))
			}
		}
	})
}
