package delta

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzPatch feeds arbitrary patch bytes, after a valid header for the
// golden base, to a Patcher: it must never panic, never emit past the
// target size, and fail only with a wrapped sentinel.
func FuzzPatch(f *testing.F) {
	base, err := os.ReadFile(filepath.Join("testdata", "golden.base"))
	if err != nil {
		f.Fatal(err)
	}
	patch, err := os.ReadFile(filepath.Join("testdata", "golden.patch"))
	if err != nil {
		f.Fatal(err)
	}
	h, err := ParseHeader(patch)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(patch[HeaderSize:], uint16(0))
	f.Add(patch[HeaderSize:len(patch)/2], uint16(7))
	f.Add(stored(0, 0, rec(10, 2, 5), rec(4, 0, 0)), uint16(1))
	f.Add(append(patch[HeaderSize:], 0), uint16(3))
	f.Fuzz(func(t *testing.T, chunks []byte, piece uint16) {
		out := 0
		p, err := NewPatcher(h, bytes.NewReader(base), Checkpoint{Patch: HeaderSize}, func(b []byte) error {
			out += len(b)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		n := int(piece%512) + 1
		for rest := chunks; len(rest) > 0 && err == nil; {
			k := min(n, len(rest))
			_, err = p.Write(rest[:k])
			rest = rest[k:]
		}
		if err == nil {
			err = p.Close()
		}
		if int64(out) > h.TargetSize {
			t.Fatalf("emitted %d bytes, target size %d", out, h.TargetSize)
		}
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTruncated) {
			t.Fatalf("error %v wraps no sentinel", err)
		}
		if cap(p.pack) > MaxChunkPacked {
			t.Fatalf("chunk buffer grew to %d bytes", cap(p.pack))
		}
	})
}

// FuzzParseHeader checks that ParseHeader never panics, and that what it
// accepts marshals back to the same bytes.
func FuzzParseHeader(f *testing.F) {
	patch, err := os.ReadFile(filepath.Join("testdata", "golden.patch"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(patch[:HeaderSize])
	f.Add(patch[:10])
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTruncated) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		m, err := h.MarshalBinary()
		if err != nil || !bytes.Equal(m, b[:HeaderSize]) {
			t.Fatalf("header %+v marshals to %x, parsed from %x (%v)", h, m, b[:HeaderSize], err)
		}
	})
}
