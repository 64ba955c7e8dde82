package journal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"edgeota/firmware-sim/flash"
)

// geometry describes a simulated flash region for tests: blocks erase blocks
// of erase bytes with write units of write bytes.
type geometry struct {
	erase, write, blocks int
}

func (g geometry) String() string {
	return fmt.Sprintf("erase=%d/write=%d/blocks=%d", g.erase, g.write, g.blocks)
}

// size returns the size of a device that is exactly the journal region.
func (g geometry) size() int64 { return int64(g.erase) * int64(g.blocks) }

// newSim returns an erased simulated flash of geometry g.
func newSim(tb testing.TB, g geometry, seed int64) *flash.Sim {
	tb.Helper()
	f, err := flash.New(g.size(), flash.WithEraseSize(g.erase), flash.WithWriteSize(g.write), flash.WithSeed(seed))
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// mustOpen opens the journal over the first blocks blocks of f.
func mustOpen(tb testing.TB, f Flash, blocks int) *Journal {
	tb.Helper()
	j, err := Open(f, 0, blocks)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return j
}

// mustAppend appends p and checks that Latest reports it with the next
// sequence number.
func mustAppend(tb testing.TB, j *Journal, p []byte) {
	tb.Helper()
	_, before, _ := j.Latest()
	if err := j.Append(p); err != nil {
		tb.Fatalf("Append(%d bytes) after seq %d: %v", len(p), before, err)
	}
	wantLatest(tb, j, p, before+1)
}

// wantLatest checks that the newest record is (want, seq); seq 0 means an
// empty journal.
func wantLatest(tb testing.TB, j *Journal, want []byte, seq uint64) {
	tb.Helper()
	if err := checkLatest(j, want, seq); err != nil {
		tb.Fatal(err)
	}
}

// checkLatest is wantLatest returning an error.
func checkLatest(j *Journal, want []byte, seq uint64) error {
	got, gotSeq, ok := j.Latest()
	switch {
	case seq == 0 && ok:
		return fmt.Errorf("Latest = seq %d (%d bytes), want an empty journal", gotSeq, len(got))
	case seq == 0:
		return nil
	case !ok:
		return fmt.Errorf("Latest: empty journal, want seq %d", seq)
	case gotSeq != seq || !bytes.Equal(got, want):
		return fmt.Errorf("Latest = seq %d %s, want seq %d %s", gotSeq, describe(got), seq, describe(want))
	}
	return nil
}

// describe names a test payload by its length and leading tag.
func describe(p []byte) string {
	if len(p) >= 4 {
		return fmt.Sprintf("(%d bytes, tag %d)", len(p), binary.LittleEndian.Uint32(p))
	}
	return fmt.Sprintf("(%d bytes %x)", len(p), p)
}

// scenario returns n payloads drawn from seed, of the sizes the agent
// writes: mostly 60 to 200 bytes, some tiny ones and some up to MaxPayload.
// Payloads of 4 bytes or more start with their index, so that neighbours
// differ.
func scenario(seed uint64, n int) [][]byte {
	r := rand.New(rand.NewPCG(seed, 0x6a6e6c))
	out := make([][]byte, n)
	for i := range out {
		var size int
		switch x := r.IntN(10); {
		case x < 6:
			size = 60 + r.IntN(141)
		case x < 8:
			size = 1 + r.IntN(59)
		default:
			size = 201 + r.IntN(MaxPayload-200)
		}
		out[i] = payload(r, i, size)
	}
	return out
}

// payload returns size random bytes tagged with i.
func payload(r *rand.Rand, i, size int) []byte {
	p := make([]byte, size)
	for k := range p {
		p[k] = byte(r.Uint32())
	}
	if size >= 4 {
		binary.LittleEndian.PutUint32(p, uint32(i))
	}
	return p
}

// spread returns the largest minus the smallest of counts.
func spread(counts []uint64) uint64 {
	lo, hi := counts[0], counts[0]
	for _, c := range counts {
		lo, hi = min(lo, c), max(hi, c)
	}
	return hi - lo
}

// overwrite erases the blocks under [off, off+len(data)) of f, which must be
// whole blocks, and programs data there: a way to put arbitrary contents on
// the flash.
func overwrite(tb testing.TB, f *flash.Sim, off int64, data []byte) {
	tb.Helper()
	if err := f.Erase(off, int64(len(data))); err != nil {
		tb.Fatal(err)
	}
	if err := f.Program(off, data); err != nil {
		tb.Fatal(err)
	}
}

// newest returns the flash offsets of the two copies of the newest record
// and the size of one copy. It is valid after an Append by j succeeded.
func newest(j *Journal) (first, second int64, size int) {
	size = copySize(len(j.payload), j.writeSize)
	second = j.segOff(j.cur) + int64(j.pos-size)
	return second - int64(size), second, size
}
