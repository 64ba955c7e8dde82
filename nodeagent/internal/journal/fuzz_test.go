package journal

import (
	"bytes"
	"math"
	"testing"

	"edgeota/firmware-sim/flash"
)

// fuzzGeometry is the device FuzzOpen copies its input into.
var fuzzGeometry = geometry{erase: 4096, write: 8, blocks: 2}

// FuzzOpen opens a journal over arbitrary flash contents. It must not panic
// or fail; a record it reports must be a valid copy on the flash; and the
// journal must append after it without programming a unit that is not erased.
func FuzzOpen(f *testing.F) {
	g := fuzzGeometry
	trim := func(b []byte) []byte { return bytes.TrimRight(b, "\xff") }
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0}, 64))
	f.Add(craft(copyFirst, 1, []byte("hello")))
	f.Add(craft(copySecond, math.MaxUint64, nil))
	{
		sim := newSim(f, g, 0)
		j := mustOpen(f, sim, g.blocks)
		for _, p := range scenario(12, 30) {
			mustAppend(f, j, p)
		}
		f.Add(trim(sim.Snapshot()))
		sim.CutPowerAt(1, flash.CutMidway)
		_ = j.Append(bytes.Repeat([]byte{3}, 500))
		f.Add(trim(sim.Snapshot()))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sim := newSim(t, g, 0)
		n := min(len(data), int(g.size()))
		img := bytes.Repeat([]byte{0xFF}, roundUp(n, g.write))
		copy(img, data)
		if err := sim.Program(0, img); err != nil {
			t.Fatal(err)
		}
		j, err := Open(sim, 0, g.blocks)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		p, seq, ok := j.Latest()
		if ok {
			if !onFlash(sim.Snapshot(), g.write, seq, p) {
				t.Fatalf("Latest seq %d (%d bytes) is not a valid copy on the flash", seq, len(p))
			}
		}
		err = j.Append([]byte("next"))
		if seq == math.MaxUint64 {
			if err == nil {
				t.Fatal("Append after the largest sequence number succeeded")
			}
			return
		}
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		wantLatest(t, mustOpen(t, sim, g.blocks), []byte("next"), seq+1)
	})
}

// onFlash reports whether img holds a copy of the record (seq, payload), CRC
// included, at a multiple of the write size w.
func onFlash(img []byte, w int, seq uint64, payload []byte) bool {
	for _, tag := range []byte{copyFirst, copySecond} {
		rec := craft(tag, seq, payload)[:overhead+len(payload)]
		for at := 0; at+len(rec) <= len(img); at += w {
			if bytes.Equal(img[at:at+len(rec)], rec) {
				return true
			}
		}
	}
	return false
}
