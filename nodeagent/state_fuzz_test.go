package nodeagent

import (
	"bytes"
	"testing"

	"edgeota/protocol"
	"edgeota/protocol/trust"
)

// FuzzUnmarshalState feeds arbitrary bytes, as a damaged journal record
// would hold them, to the boot-state decoder: it decodes or refuses with
// an error, never panics, and a state it accepts has its slots in range
// and encodes to a record that decodes to the same encoding.
func FuzzUnmarshalState(f *testing.F) {
	key := trust.Key{Alg: trust.AlgEdDSA, Public: bytes.Repeat([]byte{0x11}, 32)}
	for _, s := range []bootState{{}, {Active: 1, Pending: 1, TrialBoots: 2, Component: "kws", LastText: "probation"},
		{Component: "kws", Trust: &trustRec{Version: 3, Manifest: []trust.Key{key}, Roots: []trust.Key{key}, Threshold: 1, Kept: []protocol.Digest{{1}}}}} {
		b, err := s.marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xa1, 0x02, 0x03})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := unmarshalState(b)
		if err != nil {
			return
		}
		if s.Active > 1 || s.Pending > 2 {
			t.Fatalf("accepted active %d pending %d", s.Active, s.Pending)
		}
		enc, err := s.marshal()
		if err != nil {
			t.Fatalf("accepted but does not encode: %v", err)
		}
		s2, err := unmarshalState(enc)
		if err != nil {
			t.Fatalf("its own encoding does not decode: %v", err)
		}
		if enc2, _ := s2.marshal(); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%x\n%x", enc, enc2)
		}
	})
}
