package delta

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// randBytes returns n bytes from a seeded generator.
func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// edited returns a copy of b with some bytes nudged, a run inserted and a
// run deleted, as a retrained model differs from its base.
func edited(b []byte, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	out := slices.Clone(b)
	for i := 0; i < len(out)/50; i++ {
		out[r.IntN(len(out))] += byte(r.IntN(3) - 1)
	}
	if len(out) > 1000 {
		at := r.IntN(len(out) - 500)
		out = slices.Insert(out, at, randBytes(seed+7, 300)...)
		at = r.IntN(len(out) - 500)
		out = slices.Delete(out, at, at+200)
	}
	return out
}

type pair struct {
	name         string
	base, target []byte
}

func pairs() []pair {
	big := randBytes(1, 200<<10)
	return []pair{
		{"both empty", nil, nil},
		{"empty base", nil, randBytes(2, 5000)},
		{"empty target", randBytes(3, 5000), nil},
		{"identical", big, big},
		{"edited", big, edited(big, 4)},
		{"unrelated", randBytes(5, 70<<10), randBytes(6, 90<<10)},
		{"zeros", make([]byte, 100<<10), append(make([]byte, 50<<10), randBytes(7, 10)...)},
		{"one byte", []byte{1}, []byte{2}},
		{"grown", randBytes(8, 3000), append(randBytes(8, 3000), randBytes(9, 30000)...)},
	}
}

// patchInPieces applies patch through a Patcher fed in pieces of random
// sizes and returns what it emitted and the checkpoints it passed.
func patchInPieces(t testing.TB, base, patch []byte, cp Checkpoint, seed uint64, maxPiece int) ([]byte, []Checkpoint, error) {
	t.Helper()
	h, err := ParseHeader(patch)
	if err != nil {
		return nil, nil, err
	}
	var out []byte
	p, err := NewPatcher(h, bytes.NewReader(base), cp, func(b []byte) error {
		out = append(out, b...)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	r := rand.New(rand.NewPCG(seed, 3))
	cps := []Checkpoint{p.Last()}
	rest := patch[cp.Patch:]
	for len(rest) > 0 {
		k := min(len(rest), 1+r.IntN(maxPiece))
		if _, err := p.Write(rest[:k]); err != nil {
			return out, cps, err
		}
		rest = rest[k:]
		if l := p.Last(); l != cps[len(cps)-1] {
			cps = append(cps, l)
		}
	}
	return out, cps, p.Close()
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range pairs() {
		for _, opt := range []struct {
			name   string
			o      []Option
			packed int
		}{{"default", nil, DefaultChunkPacked}, {"small chunks", []Option{WithChunkSize(1000, 300)}, 300}} {
			t.Run(tc.name+"/"+opt.name, func(t *testing.T) {
				patch, err := Diff(tc.base, tc.target, opt.o...)
				if err != nil {
					t.Fatal(err)
				}
				got, err := Apply(tc.base, patch)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tc.target) {
					t.Fatalf("Apply rebuilt %d bytes that differ from the %d-byte target", len(got), len(tc.target))
				}
				got, _, err = patchInPieces(t, tc.base, patch, Checkpoint{}, 1, 700)
				if err != nil || !bytes.Equal(got, tc.target) {
					t.Fatalf("Patcher in pieces: err %v, equal %v", err, bytes.Equal(got, tc.target))
				}
				h, _ := ParseHeader(patch)
				if h.Base != sha256.Sum256(tc.base) || h.Target != sha256.Sum256(tc.target) ||
					h.BaseSize != int64(len(tc.base)) || h.TargetSize != int64(len(tc.target)) {
					t.Errorf("header %+v does not bind the pair", h)
				}
				// Never worse than the target stored, plus the header and
				// 16 bytes of chunk and record header per stored chunk
				// (whose records carry at most packed-30 bytes).
				if limit := len(tc.target) + HeaderSize + 16*(len(tc.target)/(opt.packed-30)+1); len(patch) > limit {
					t.Errorf("patch of %d bytes for a %d-byte target, over %d", len(patch), len(tc.target), limit)
				}
			})
		}
	}
}

func TestResumeFromEveryCheckpoint(t *testing.T) {
	base := randBytes(11, 120<<10)
	target := edited(base, 12)
	patch, err := Diff(base, target, WithChunkSize(8<<10, 2<<10))
	if err != nil {
		t.Fatal(err)
	}
	_, cps, err := patchInPieces(t, base, patch, Checkpoint{}, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Every chunk boundary: the header's end, each chunk's end.
	if want := countChunks(t, patch) + 2; len(cps) != want {
		t.Fatalf("%d checkpoints passed, want %d (start, header, chunks)", len(cps), want)
	}
	for _, cp := range cps {
		got, _, err := patchInPieces(t, base, patch, cp, uint64(cp.Patch), 700)
		if err != nil {
			t.Fatalf("resume at %+v: %v", cp, err)
		}
		if !bytes.Equal(got, target[cp.Out:]) {
			t.Fatalf("resume at %+v emitted %d bytes that differ from the target's last %d", cp, len(got), len(target)-int(cp.Out))
		}
	}
	// A checkpoint that is not a chunk boundary is refused.
	bad := cps[len(cps)/2]
	bad.Out++
	if _, _, err := patchInPieces(t, base, patch, bad, 1, 700); !errors.Is(err, ErrMalformed) {
		t.Fatalf("resume at a wrong output offset: %v, want ErrMalformed", err)
	}
}

// countChunks walks the chunk headers of patch.
func countChunks(t testing.TB, patch []byte) int {
	n := 0
	for off := HeaderSize; off < len(patch); n++ {
		h, k := mustChunkHead(t, patch[off:])
		off += k + h.packed
	}
	return n
}

func mustChunkHead(t testing.TB, b []byte) (chunkHead, int) {
	t.Helper()
	for k := 1; k <= min(len(b), maxChunkHeader); k++ {
		h, ok, err := parseChunkHead(b[:k])
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return h, k
		}
	}
	t.Fatal("no chunk header")
	return chunkHead{}, 0
}

func TestWrongBase(t *testing.T) {
	base := randBytes(21, 20<<10)
	target := edited(base, 22)
	patch, err := Diff(base, target)
	if err != nil {
		t.Fatal(err)
	}
	other := edited(base, 23)
	if _, err := Apply(other, patch); !errors.Is(err, ErrWrongBase) {
		t.Fatalf("Apply to another base: %v, want ErrWrongBase", err)
	}
	h, _ := ParseHeader(patch)
	if err := h.CheckBase(sha256.Sum256(other), int64(len(other))); !errors.Is(err, ErrWrongBase) {
		t.Fatalf("CheckBase of another base: %v", err)
	}
	if err := h.CheckBase(sha256.Sum256(base), int64(len(base))); err != nil {
		t.Fatalf("CheckBase of the base: %v", err)
	}
	// A base shorter than the header says fails when a copy reaches it.
	_, _, err = patchInPieces(t, base[:len(base)/2], patch, Checkpoint{}, 1, 700)
	if !errors.Is(err, ErrWrongBase) {
		t.Fatalf("Patcher on a short base: %v, want ErrWrongBase", err)
	}
}

func TestEmitError(t *testing.T) {
	base := randBytes(31, 10<<10)
	patch, _ := Diff(base, edited(base, 32))
	h, _ := ParseHeader(patch)
	boom := errors.New("flash full")
	p, _ := NewPatcher(h, bytes.NewReader(base), Checkpoint{}, func([]byte) error { return boom })
	if _, err := p.Write(patch); !errors.Is(err, boom) || errors.Is(err, ErrMalformed) {
		t.Fatalf("Write: %v, want the emit error unwrapped from ErrMalformed", err)
	}
	if err := p.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close after an error: %v", err)
	}
}

func TestSuffixArray(t *testing.T) {
	for _, b := range [][]byte{nil, {7}, []byte("banana"), make([]byte, 3000), randBytes(41, 5000), bytes.Repeat([]byte("abcab"), 999)} {
		sa, err := suffixArray(b)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]int32, len(b))
		for i := range want {
			want[i] = int32(i)
		}
		slices.SortFunc(want, func(x, y int32) int { return bytes.Compare(b[x:], b[y:]) })
		if !slices.Equal(sa, want) {
			t.Fatalf("suffix array of %d bytes differs from a sort", len(b))
		}
	}
}

// TestSearchWorkBounded checks that matching periodic data stays linear:
// with bsdiff's own search (comparing only the common length, no bound on
// a match) every search on "abcdefgh..." shifted by 3 bytes compared up to
// the whole base and a 1 MiB diff took 19 s of CPU.
func TestSearchWorkBounded(t *testing.T) {
	const n = 256 << 10
	period := bytes.Repeat([]byte("abcdefgh"), n/8)
	shifted := append([]byte("xyz"), period[:n-3]...)
	ix, err := newIndex(period)
	if err != nil {
		t.Fatal(err)
	}
	ops := matches(ix, shifted)
	t.Logf("%d ops, %d bytes compared for %d target bytes", len(ops), ix.work, n)
	if ix.work > 64*n {
		t.Errorf("searches compared %d bytes for a %d-byte target, over 64 a byte", ix.work, n)
	}
}
