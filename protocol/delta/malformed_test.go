package delta

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
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
		why   string // in the message
	}{
		{"bad magic", setByte(0, 'X'), ErrMalformed, "bad magic"},
		{"format 2", setByte(4, 2), ErrMalformed, "format 2"},
		{"flags", setByte(5, 1), ErrMalformed, "unknown flags"},
		{"short header", hdr[:HeaderSize-1], ErrTruncated, "header needs"},
		{"huge base size", setByte(6, 0x80), ErrMalformed, "image size"},
		{"huge target size", setByte(14, 1), ErrMalformed, "image size"},
		{"unknown chunk kind", handPatch(16, chunk(7, 16, 16, 0, 0, nil)), ErrMalformed, "unknown chunk kind"},
		{"raw length zero", handPatch(16, chunk(kindLZMA, 0, 5, 0, 0, nil)), ErrMalformed, "raw length 0"},
		{"raw length over the limit", handPatch(16, chunk(kindLZMA, MaxChunkRaw+1, 5, 0, 0, nil)), ErrMalformed, "raw length 65537"},
		{"packed length over the limit", handPatch(16, chunk(kindLZMA, 16, MaxChunkPacked+1, 0, 0, nil)), ErrMalformed, "packed length 8193"},
		{"stored lengths differ", handPatch(16, chunk(kindStored, 16, 15, 0, 0, nil)), ErrMalformed, "stored chunk"},
		{"chunk header varint never ends", handPatch(16, append([]byte{kindLZMA}, bytes.Repeat([]byte{0x80}, 40)...)), ErrMalformed, "chunk header"},
		{"chunk header varint not minimal", handPatch(16, []byte{kindStored, 0x81, 0x00}), ErrMalformed, "not minimal"},
		{"chunk base position past the base", handPatch(16, stored(101, 0, rec(1, 0, 0))), ErrMalformed, "base position 101"},
		{"chunk at the wrong target offset", handPatch(16, stored(0, 3, rec(1, 0, 0))), ErrMalformed, "target offset 3"},
		{"copy past the base", handPatch(16, stored(95, 0, rec(10, 0, 0))), ErrMalformed, "copy of 10 bytes at base offset 95"},
		{"record past the target", handPatch(16, stored(0, 0, rec(10, 7, 0))), ErrMalformed, "past the target size"},
		{"seek before the base", handPatch(16, stored(0, 0, rec(10, 0, -11), rec(6, 0, 0))), ErrMalformed, "seek -11"},
		{"seek past the base", handPatch(16, stored(0, 0, rec(10, 0, 91), rec(6, 0, 0))), ErrMalformed, "seek 91"},
		{"record crosses the chunk's end", handPatch(16, chunk(kindStored, 5, 5, 0, 0, rec(10, 0, 0)[:5])), ErrMalformed, "crosses the chunk's end"},
		{"record header crosses the chunk's end", handPatch(16, chunk(kindStored, 2, 2, 0, 0, []byte{10, 0})), ErrMalformed, "crosses the chunk's end"},
		{"chunk without output", handPatch(16, stored(0, 0, rec(0, 0, 3))), ErrMalformed, "produces no target bytes"},
		{"lzma garbage", handPatch(16, chunk(kindLZMA, 16, 8, 0, 0, []byte{0xff, 1, 2, 3, 4, 5, 6, 7})), ErrMalformed, "chunk at patch offset 86"},
		{"lzma shorter than its raw length", handPatch(16, chunk(kindLZMA, 20, len(good)-5, 0, 0, good[5:])), ErrMalformed, "chunk at patch offset 86"},
		{"lzma longer than its raw length", handPatch(16, chunk(kindLZMA, 14, len(good)-5, 0, 0, good[5:])), ErrMalformed, "chunk at patch offset 86"},
		{"lzma bytes unused", handPatch(16, withUnused), ErrMalformed, "packed bytes unused"},
		{"trailing bytes", handPatch(16, good, []byte{0}), ErrMalformed, "after the end"},
		{"trailing chunk", handPatch(16, good, stored(0, 16, rec(1, 0, 0))), ErrMalformed, "after the end"},
		{"missing chunk", handPatch(17, good), ErrTruncated, "16 of 17"},
		{"patch ends in a chunk", handPatch(16, good[:len(good)-1]), ErrTruncated, "inside the chunk"},
		{"patch ends in a chunk header", handPatch(16, good[:2]), ErrTruncated, "inside the chunk"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := applyAll(tc.patch)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("got %v, want %v saying %q", err, tc.want, tc.why)
			}
		})
	}
}

// TestRefusedRecordEmitsNothing: a record whose copy, length or seek is
// out of range is refused before any of its bytes is emitted
// (docs/deltas.md, "Refused input").
func TestRefusedRecordEmitsNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		patch []byte
	}{
		{"copy past the base", handPatch(16, stored(95, 0, rec(10, 0, 0)))},
		{"record past the target", handPatch(16, stored(0, 0, rec(10, 7, 0)))},
		{"seek before the base", handPatch(16, stored(0, 0, rec(10, 0, -11), rec(6, 0, 0)))},
		{"seek past the base", handPatch(16, stored(0, 0, rec(10, 0, 91), rec(6, 0, 0)))},
		{"seek wraps", handPatch(16, stored(0, 0, rec(10, 0, math.MaxInt64), rec(6, 0, 0)))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := applyAll(tc.patch)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
			if len(out) != 0 {
				t.Fatalf("the refused record emitted %d bytes", len(out))
			}
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

func TestApplyChecksTarget(t *testing.T) {
	base := randBytes(71, 8<<10)
	target := append(slices.Clone(base), randBytes(72, 6<<10)...)
	patch, err := Diff(base, target)
	if err != nil {
		t.Fatal(err)
	}
	// The last chunk holds the new random bytes, stored: changing one
	// keeps the patch well formed and the target wrong.
	bad := slices.Clone(patch)
	bad[len(bad)-1] ^= 1
	if _, err := Apply(base, bad); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "target digest") {
		t.Fatalf("Apply of a patch building another target: %v", err)
	}
}

func TestCheckBaseSize(t *testing.T) {
	h := Header{Format: Format1, Base: sha256.Sum256(handBase), BaseSize: 100}
	if err := h.CheckBase(h.Base, 99); !errors.Is(err, ErrWrongBase) {
		t.Fatalf("CheckBase with the digest but another size: %v", err)
	}
}
