package store

import (
	"bytes"
	"testing"
)

// FuzzDecodeRecord feeds arbitrary bytes, as a damaged database would hold
// them, to the decoder of every CBOR record kind: a record decodes or is
// refused with an error, never a panic, and one that decodes encodes to
// a record that decodes to the same encoding.
func FuzzDecodeRecord(f *testing.F) {
	for _, v := range []any{
		&assignmentRecord{Signed: []byte{0xd2, 0x84}, Seq: 3},
		&modelRecord{Signed: []byte{1, 2, 3}, Seq: 7, Size: 1024},
		&nodeRecord{Labels: map[string]string{"hw": "rev2"}, Component: "kws"},
	} {
		b, err := encodeRecord(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{recordFormat})
	f.Add([]byte{recordFormat + 1, 0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, fresh := range []func() any{
			func() any { return new(assignmentRecord) },
			func() any { return new(modelRecord) },
			func() any { return new(nodeRecord) },
		} {
			v := fresh()
			if decodeRecord(b, v) != nil {
				continue
			}
			enc, err := encodeRecord(v)
			if err != nil {
				t.Fatalf("%T decoded but does not encode: %v", v, err)
			}
			w := fresh()
			if err := decodeRecord(enc, w); err != nil {
				t.Fatalf("%T: its own encoding does not decode: %v", v, err)
			}
			if enc2, _ := encodeRecord(w); !bytes.Equal(enc, enc2) {
				t.Fatalf("%T: encoding not stable:\n%x\n%x", v, enc, enc2)
			}
		}
	})
}
