package journal

import (
	"math/rand/v2"
	"testing"

	"edgeota/firmware-sim/flash"
)

// flipSetup is a journal whose newest record sits at a chosen place.
type flipSetup struct {
	name string
	g    geometry
	// fill appends records until this returns true.
	done func(j *Journal) bool
}

var flipSetups = []flipSetup{
	{"middle of a segment", geo4096w8, func(j *Journal) bool { return j.stats.Appends == 5 }},
	{"first in a segment", geo4096w8, func(j *Journal) bool {
		return j.cur == 1 && j.pos == 2*copySize(len(j.payload), j.writeSize)
	}},
	{"write size 1", geo4096w1, func(j *Journal) bool { return j.stats.Appends == 7 }},
	{"write size 16, end of ring", geo4096w16, func(j *Journal) bool { return j.stats.Erases == 3 }},
	{"small blocks", geo256w8, func(j *Journal) bool { return j.stats.Appends == 9 }},
}

// prepare builds the journal of s and returns its flash and the last two
// payloads appended.
func (s flipSetup) prepare(t *testing.T) (f *flash.Sim, prev, last []byte) {
	t.Helper()
	f = newSim(t, s.g, 0)
	j := mustOpen(t, f, s.g.blocks)
	for i, p := range scenario(8, 1000) {
		if len(p) > 300 {
			p = p[:300]
		}
		mustAppend(t, j, p)
		prev, last = last, p
		if i > 0 && s.done(j) {
			return f, prev, last
		}
	}
	t.Fatal("setup never reached")
	return nil, nil, nil
}

// TestBitFlipOneCopy flips every bit of one copy of the newest record in
// turn: the journal must still report it, and carry on.
func TestBitFlipOneCopy(t *testing.T) {
	for _, s := range flipSetups {
		t.Run(s.name, func(t *testing.T) {
			base, _, last := s.prepare(t)
			j := mustOpen(t, base, s.g.blocks)
			_, seq, _ := j.Latest()
			first, second, size := newest(j)
			for c, at := range []int64{first, second} {
				for b := range size * 8 {
					f := base.Clone()
					f.FlipBit(at+int64(b/8), uint(b%8))
					r := mustOpen(t, f, s.g.blocks)
					if err := checkLatest(r, last, seq); err != nil {
						t.Fatalf("bit %d of copy %d flipped: %v", b, c+1, err)
					}
					if b%61 == 0 { // and the journal goes on
						mustAppend(t, r, []byte("after the flip"))
						wantLatest(t, mustOpen(t, f, s.g.blocks), []byte("after the flip"), seq+1)
					}
				}
			}
		})
	}
}

// TestBitFlipBothCopies flips one bit in each copy of the newest record: it
// is lost, and the journal falls back to the record before it. This is the
// documented limit of the two-copy scheme.
func TestBitFlipBothCopies(t *testing.T) {
	seed := testSeed(t)
	for i, s := range flipSetups {
		t.Run(s.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(seed), uint64(i)))
			base, prev, _ := s.prepare(t)
			j := mustOpen(t, base, s.g.blocks)
			_, seq, _ := j.Latest()
			first, second, _ := newest(j)
			covered := overhead + len(j.payload) // bits the CRC protects
			for range 100 {
				f := base.Clone()
				b1, b2 := r.IntN(covered*8), r.IntN(covered*8)
				f.FlipBit(first+int64(b1/8), uint(b1%8))
				f.FlipBit(second+int64(b2/8), uint(b2%8))
				j := mustOpen(t, f, s.g.blocks)
				if err := checkLatest(j, prev, seq-1); err != nil {
					t.Fatalf("bits %d and %d flipped: %v", b1, b2, err)
				}
				// The lost record's number is reused, safely.
				mustAppend(t, j, []byte("replacement"))
				wantLatest(t, mustOpen(t, f, s.g.blocks), []byte("replacement"), seq)
			}
		})
	}
}
