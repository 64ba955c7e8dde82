package delta

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"
)

// rec encodes one record: copy length, extra length, seek, then the added
// differences (copy bytes of zero: the base unchanged) and extra bytes.
func rec(copyLen, extraLen, seek int) []byte {
	b := binary.AppendUvarint(nil, uint64(copyLen))
	b = binary.AppendUvarint(b, uint64(extraLen))
	b = binary.AppendVarint(b, int64(seek))
	b = append(b, make([]byte, copyLen)...)
	return append(b, bytes.Repeat([]byte{0xee}, extraLen)...)
}

// chunk encodes a chunk with a header of the given values.
func chunk(kind byte, raw, packed int, basePos, outPos int64, data []byte) []byte {
	b := []byte{kind}
	b = binary.AppendUvarint(b, uint64(raw))
	b = binary.AppendUvarint(b, uint64(packed))
	b = binary.AppendUvarint(b, uint64(basePos))
	b = binary.AppendUvarint(b, uint64(outPos))
	return append(b, data...)
}

func stored(basePos, outPos int64, records ...[]byte) []byte {
	data := bytes.Join(records, nil)
	return chunk(kindStored, len(data), len(data), basePos, outPos, data)
}

func lzmaChunk(t testing.TB, basePos, outPos int64, records ...[]byte) []byte {
	t.Helper()
	data := bytes.Join(records, nil)
	c, err := compressLZMA(data)
	if err != nil {
		t.Fatal(err)
	}
	return chunk(kindLZMA, len(data), len(c), basePos, outPos, c)
}

// handBase is the base of the hand-made patches: 100 bytes.
var handBase = bytes.Repeat([]byte("0123456789"), 10)

// handPatch returns a header for a target of size bytes from handBase,
// followed by chunks.
func handPatch(size int64, chunks ...[]byte) []byte {
	h := Header{Format: Format1, Base: sha256.Sum256(handBase), BaseSize: 100, TargetSize: size}
	return append(h.appendTo(nil), bytes.Join(chunks, nil)...)
}

// applyAll runs a Patcher over the whole patch and returns the first error.
func applyAll(patch []byte) ([]byte, error) {
	h, err := ParseHeader(patch)
	if err != nil {
		return nil, err
	}
	var out []byte
	p, err := NewPatcher(h, bytes.NewReader(handBase), Checkpoint{}, func(b []byte) error {
		out = append(out, b...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := p.Write(patch); err != nil {
		return out, err
	}
	return out, p.Close()
}

func TestHandMadePatch(t *testing.T) {
	// 10 bytes copied from offset 0, 2 extra, seek 5: then 4 bytes from 15.
	patch := handPatch(16, stored(0, 0, rec(10, 2, 5), rec(4, 0, 0)))
	out, err := applyAll(patch)
	if err != nil {
		t.Fatal(err)
	}
	if want := "0123456789\xee\xee5678"; string(out) != want {
		t.Fatalf("got %q, want %q", out, want)
	}
	out, err = applyAll(handPatch(16, lzmaChunk(t, 0, 0, rec(10, 2, 5), rec(4, 0, 0))))
	if err != nil || string(out) != "0123456789\xee\xee5678" {
		t.Fatalf("lzma chunk: %q, %v", out, err)
	}
}

func TestMalformed(t *testing.T) {
	good := lzmaChunk(t, 0, 0, rec(10, 2, 5), rec(4, 0, 0))
	withUnused := append(bytes.Clone(good), 0)
	withUnused[2]++ // packed length
	hdr := handPatch(16)
	setByte := func(i int, v byte) []byte { b := bytes.Clone(hdr); b[i] = v; return b }

	tests := []struct {
		name  string
		patch []byte
		want  error
	}{
		{"bad magic", setByte(0, 'X'), ErrMalformed},
		{"format 2", setByte(4, 2), ErrMalformed},
		{"flags", setByte(5, 1), ErrMalformed},
		{"short header", hdr[:HeaderSize-1], ErrTruncated},
		{"huge base size", setByte(6, 0x80), ErrMalformed},
		{"huge target size", setByte(14, 1), ErrMalformed},
		{"unknown chunk kind", handPatch(16, chunk(7, 16, 16, 0, 0, nil)), ErrMalformed},
		{"raw length zero", handPatch(16, chunk(kindLZMA, 0, 5, 0, 0, nil)), ErrMalformed},
		{"raw length over the limit", handPatch(16, chunk(kindLZMA, MaxChunkRaw+1, 5, 0, 0, nil)), ErrMalformed},
		{"packed length over the limit", handPatch(16, chunk(kindLZMA, 16, MaxChunkPacked+1, 0, 0, nil)), ErrMalformed},
		{"stored lengths differ", handPatch(16, chunk(kindStored, 16, 15, 0, 0, nil)), ErrMalformed},
		{"chunk header varint never ends", handPatch(16, append([]byte{kindLZMA}, bytes.Repeat([]byte{0x80}, 40)...)), ErrMalformed},
		{"chunk header varint not minimal", handPatch(16, []byte{kindStored, 0x81, 0x00}), ErrMalformed},
		{"chunk base position past the base", handPatch(16, stored(101, 0, rec(1, 0, 0))), ErrMalformed},
		{"chunk at the wrong target offset", handPatch(16, stored(0, 3, rec(1, 0, 0))), ErrMalformed},
		{"copy past the base", handPatch(16, stored(95, 0, rec(10, 0, 0))), ErrMalformed},
		{"record past the target", handPatch(16, stored(0, 0, rec(10, 7, 0))), ErrMalformed},
		{"seek before the base", handPatch(16, stored(0, 0, rec(10, 0, -11), rec(6, 0, 0))), ErrMalformed},
		{"seek past the base", handPatch(16, stored(0, 0, rec(10, 0, 91), rec(6, 0, 0))), ErrMalformed},
		{"record crosses the chunk's end", handPatch(16, chunk(kindStored, 5, 5, 0, 0, rec(10, 0, 0)[:5])), ErrMalformed},
		{"record header crosses the chunk's end", handPatch(16, chunk(kindStored, 2, 2, 0, 0, []byte{10, 0})), ErrMalformed},
		{"chunk without output", handPatch(16, stored(0, 0, rec(0, 0, 3))), ErrMalformed},
		{"lzma garbage", handPatch(16, chunk(kindLZMA, 16, 8, 0, 0, []byte{0xff, 1, 2, 3, 4, 5, 6, 7})), ErrMalformed},
		{"lzma shorter than its raw length", handPatch(16, chunk(kindLZMA, 20, len(good)-5, 0, 0, good[5:])), ErrMalformed},
		{"lzma longer than its raw length", handPatch(16, chunk(kindLZMA, 14, len(good)-5, 0, 0, good[5:])), ErrMalformed},
		{"lzma bytes unused", handPatch(16, withUnused), ErrMalformed},
		{"trailing bytes", handPatch(16, good, []byte{0}), ErrMalformed},
		{"trailing chunk", handPatch(16, good, stored(0, 16, rec(1, 0, 0))), ErrMalformed},
		{"missing chunk", handPatch(17, good), ErrTruncated},
		{"patch ends in a chunk", handPatch(16, good[:len(good)-1]), ErrTruncated},
		{"patch ends in a chunk header", handPatch(16, good[:2]), ErrTruncated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := applyAll(tc.patch)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			t.Log(err)
		})
	}
}

func TestEveryPrefixTruncated(t *testing.T) {
	base := randBytes(51, 30<<10)
	target := edited(base, 52)
	patch, err := Diff(base, target, WithChunkSize(4<<10, 1<<10))
	if err != nil {
		t.Fatal(err)
	}
	h, _ := ParseHeader(patch)
	for n := 0; n < len(patch); n++ {
		p, _ := NewPatcher(h, bytes.NewReader(base), Checkpoint{}, func([]byte) error { return nil })
		if _, err := p.Write(patch[:n]); err != nil {
			t.Fatalf("prefix of %d bytes: Write: %v", n, err)
		}
		if err := p.Close(); !errors.Is(err, ErrTruncated) {
			t.Fatalf("prefix of %d bytes: Close: %v, want ErrTruncated", n, err)
		}
	}
}

func TestHeaderGivenDiffers(t *testing.T) {
	patch := handPatch(16, stored(0, 0, rec(10, 2, 5), rec(4, 0, 0)))
	h, _ := ParseHeader(patch)
	h.Target[0] ^= 1
	p, _ := NewPatcher(h, bytes.NewReader(handBase), Checkpoint{}, func([]byte) error { return nil })
	if _, err := p.Write(patch); !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v, want ErrMalformed", err)
	}
	if _, err := NewPatcher(h, bytes.NewReader(handBase), Checkpoint{Patch: 3}, func([]byte) error { return nil }); !errors.Is(err, ErrMalformed) {
		t.Fatalf("checkpoint inside the header: %v", err)
	}
}
