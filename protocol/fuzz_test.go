package protocol_test

import (
	"bytes"
	"encoding/hex"
	"testing"

	"edgeota/protocol"
)

// seedFuzz adds every committed vector as a seed.
func seedFuzz(f *testing.F) {
	for _, v := range loadVectors(f).Vectors {
		b, err := hex.DecodeString(v.Hex)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// fuzzRoundTrip checks a decoder never panics and that whatever it accepts
// re-encodes to bytes it accepts again, yielding the same encoding.
func fuzzRoundTrip(f *testing.F, dec func([]byte) (any, error)) {
	seedFuzz(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := dec(b)
		if err != nil {
			return
		}
		enc, err := protocol.Marshal(doc)
		if err != nil {
			t.Fatalf("accepted document does not re-encode: %v", err)
		}
		doc2, err := dec(enc)
		if err != nil {
			t.Fatalf("re-encoded document refused: %v\n%x", err, enc)
		}
		enc2, err := protocol.Marshal(doc2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable: %x vs %x (%v)", enc, enc2, err)
		}
	})
}

func FuzzDecodeManifest(f *testing.F) {
	fuzzRoundTrip(f, func(b []byte) (any, error) { return protocol.DecodeManifest(b) })
}

func FuzzDecodeHello(f *testing.F) {
	fuzzRoundTrip(f, func(b []byte) (any, error) { return protocol.DecodeHello(b) })
}

func FuzzDecodeHealthReport(f *testing.F) {
	fuzzRoundTrip(f, func(b []byte) (any, error) {
		var r protocol.HealthReport
		err := protocol.DecodeHealthReport(b, &r)
		return &r, err
	})
}

func FuzzDecodeStatusEvent(f *testing.F) {
	fuzzRoundTrip(f, func(b []byte) (any, error) { return protocol.DecodeStatusEvent(b) })
}

func FuzzDecodeDeployment(f *testing.F) {
	fuzzRoundTrip(f, func(b []byte) (any, error) { return protocol.DecodeDeployment(b) })
}

func FuzzDecodeHealthBatch(f *testing.F) {
	fuzzRoundTrip(f, func(b []byte) (any, error) { return protocol.DecodeHealthBatch(b) })
}

func FuzzDecodeEventBatch(f *testing.F) {
	fuzzRoundTrip(f, func(b []byte) (any, error) { return protocol.DecodeEventBatch(b) })
}

func FuzzDecodeDeltaOffer(f *testing.F) {
	fuzzRoundTrip(f, func(b []byte) (any, error) { return protocol.DecodeDeltaOffer(b) })
}
