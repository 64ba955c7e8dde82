package journal

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"edgeota/firmware-sim/flash"
)

// craft returns one copy of a record as encodeCopy writes it, for a write
// size of 1.
func craft(tag byte, seq uint64, payload []byte) []byte {
	b := make([]byte, copySize(len(payload), 1))
	encodeCopy(b, tag, seq, payload)
	return b
}

// TestGarbage opens journals over contents no journal wrote: the scan must
// not panic or fail, must ignore what is not a valid record, and the journal
// must go on appending.
func TestGarbage(t *testing.T) {
	g := geometry{erase: 4096, write: 8, blocks: 3}
	r := rand.New(rand.NewPCG(9, 9))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	region := int(g.size())
	tests := []struct {
		name string
		// mess changes f, on which j has appended sc; it returns the
		// record Latest must report then, nil for an empty journal.
		mess func(t *testing.T, f *flash.Sim, j *Journal, sc [][]byte) (want []byte, seq uint64)
	}{
		{"random bytes everywhere", func(t *testing.T, f *flash.Sim, _ *Journal, _ [][]byte) ([]byte, uint64) {
			overwrite(t, f, 0, random(region))
			return nil, 0
		}},
		{"zeros everywhere", func(t *testing.T, f *flash.Sim, _ *Journal, _ [][]byte) ([]byte, uint64) {
			overwrite(t, f, 0, make([]byte, region))
			return nil, 0
		}},
		{"random bytes in the other segments", func(t *testing.T, f *flash.Sim, j *Journal, sc [][]byte) ([]byte, uint64) {
			for s := range j.nseg {
				if s != j.cur {
					overwrite(t, f, j.segOff(s), random(j.segSize))
				}
			}
			return sc[len(sc)-1], uint64(len(sc))
		}},
		{"old records half erased", func(t *testing.T, f *flash.Sim, j *Journal, sc [][]byte) ([]byte, uint64) {
			s := (j.cur + 1) % j.nseg
			old := f.Snapshot()[j.segOff(s):][:j.segSize]
			for i := range old {
				switch r.IntN(3) {
				case 0:
					old[i] = 0xFF
				case 1:
					old[i] |= byte(r.Uint32())
				}
			}
			overwrite(t, f, j.segOff(s), old)
			return sc[len(sc)-1], uint64(len(sc))
		}},
		{"headers with impossible lengths at every unit", func(t *testing.T, f *flash.Sim, _ *Journal, _ [][]byte) ([]byte, uint64) {
			b := bytes.Repeat([]byte{0xFF}, region)
			for i := 0; i+8 <= region; i += 8 {
				n := []uint16{0xFFFF, MaxPayload + 1, MaxPayload, 4096, uint16(r.Uint32())}[i/8%5]
				copy(b[i:], []byte{'J', 'N', 'L', byte(1 + i/8%2)})
				binary.LittleEndian.PutUint16(b[i+4:], n)
				binary.LittleEndian.PutUint16(b[i+6:], ^n)
			}
			overwrite(t, f, 0, b)
			return nil, 0
		}},
		{"valid record cut short by the segment end", func(t *testing.T, f *flash.Sim, _ *Journal, _ [][]byte) ([]byte, uint64) {
			b := bytes.Repeat([]byte{0xFF}, region)
			rec := craft(copyFirst, 5, bytes.Repeat([]byte{1}, 100))
			copy(b[4096-64:], rec) // spills into the next segment
			overwrite(t, f, 0, b)
			return nil, 0
		}},
		{"valid records inside random bytes", func(t *testing.T, f *flash.Sim, _ *Journal, _ [][]byte) ([]byte, uint64) {
			b := random(region)
			copy(b[4096+800:], craft(copySecond, 77, []byte("buried")))
			copy(b[200:], craft(copyFirst, 76, []byte("older")))
			overwrite(t, f, 0, b)
			return []byte("buried"), 77
		}},
		{"largest sequence number", func(t *testing.T, f *flash.Sim, _ *Journal, _ [][]byte) ([]byte, uint64) {
			b := bytes.Repeat([]byte{0xFF}, region)
			copy(b[8192:], craft(copyFirst, math.MaxUint64, []byte("end")))
			overwrite(t, f, 0, b)
			return []byte("end"), math.MaxUint64
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newSim(t, g, 0)
			j := mustOpen(t, f, g.blocks)
			sc := scenario(10, 40)
			for _, p := range sc {
				mustAppend(t, j, p)
			}
			want, seq := tt.mess(t, f, j, sc)
			j = mustOpen(t, f, g.blocks)
			wantLatest(t, j, want, seq)
			if seq == math.MaxUint64 {
				if err := j.Append([]byte("more")); err == nil {
					t.Fatal("Append after the largest sequence number succeeded")
				}
				return
			}
			for i, p := range scenario(11, 100) {
				mustAppend(t, j, p)
				if i%10 == 0 {
					wantLatest(t, mustOpen(t, f, g.blocks), p, seq+uint64(i)+1)
				}
			}
		})
	}
}
