package journal

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"edgeota/firmware-sim/flash"
)

var (
	geo4096w8  = geometry{erase: 4096, write: 8, blocks: 4}
	geo4096w1  = geometry{erase: 4096, write: 1, blocks: 3}
	geo4096w16 = geometry{erase: 4096, write: 16, blocks: 2}
	geo256w8   = geometry{erase: 256, write: 8, blocks: 27}
)

var geometries = []geometry{geo4096w8, geo4096w1, geo4096w16, geo256w8}

func TestOpenEmpty(t *testing.T) {
	for _, g := range geometries {
		t.Run(g.String(), func(t *testing.T) {
			f := newSim(t, g, 0)
			j := mustOpen(t, f, g.blocks)
			wantLatest(t, j, nil, 0)
			if p, seq, ok := j.Latest(); p != nil || seq != 0 || ok {
				t.Errorf("Latest = %v, %d, %v, want nil, 0, false", p, seq, ok)
			}
			if s := j.Stats(); s != (Stats{}) {
				t.Errorf("Stats = %+v, want zero", s)
			}
			if f.Ops() != 0 {
				t.Errorf("Open performed %d flash operations, want 0", f.Ops())
			}
		})
	}
}

func TestAppendReopen(t *testing.T) {
	big := bytes.Repeat([]byte{0xA5}, MaxPayload)
	ffs := bytes.Repeat([]byte{0xFF}, 100)
	tests := []struct {
		name     string
		payloads [][]byte
	}{
		{"one record", [][]byte{[]byte("active=a")}},
		{"empty payload", [][]byte{{}}},
		{"nil payload after data", [][]byte{[]byte("x"), nil}},
		{"max payload", [][]byte{big, big}},
		{"payload of 0xFF bytes", [][]byte{ffs, ffs[:1], ffs}},
		{"payload of zeros", [][]byte{make([]byte, 64), make([]byte, 1)}},
		{"growing", [][]byte{[]byte("a"), []byte("bb"), bytes.Repeat([]byte("c"), 500), big}},
		{"scenario", scenario(1, 40)},
	}
	for _, g := range geometries {
		for _, tt := range tests {
			t.Run(g.String()+"/"+tt.name, func(t *testing.T) {
				f := newSim(t, g, 0)
				j := mustOpen(t, f, g.blocks)
				for i, p := range tt.payloads {
					mustAppend(t, j, p)
					r := mustOpen(t, f, g.blocks)
					wantLatest(t, r, p, uint64(i+1))
				}
				s := j.Stats()
				if s.Appends != uint64(len(tt.payloads)) || s.Programs != 2*s.Appends {
					t.Errorf("Stats = %+v after %d appends", s, len(tt.payloads))
				}
				if got := f.Stats().BytesProgrammed; got != s.BytesProgrammed {
					t.Errorf("Stats.BytesProgrammed = %d, flash counted %d", s.BytesProgrammed, got)
				}
			})
		}
	}
}

func TestAppendTooLarge(t *testing.T) {
	f := newSim(t, geo4096w8, 0)
	j := mustOpen(t, f, geo4096w8.blocks)
	mustAppend(t, j, []byte("keep"))
	ops := f.Ops()
	err := j.Append(make([]byte, MaxPayload+1))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append(%d bytes) = %v, want ErrTooLarge", MaxPayload+1, err)
	}
	if f.Ops() != ops {
		t.Errorf("a refused append performed %d flash operations", f.Ops()-ops)
	}
	wantLatest(t, j, []byte("keep"), 1)
	mustAppend(t, j, []byte("next"))
}

// failingFlash is a Flash whose reads fail or come up short.
type failingFlash struct {
	Flash
	err   error
	short bool
}

func (f failingFlash) ReadAt(p []byte, off int64) (int, error) {
	if f.short {
		n, _ := f.Flash.ReadAt(p[:len(p)/2], off)
		return n, nil
	}
	return 0, f.err
}

func TestOpenErrors(t *testing.T) {
	sim := func(erase, write, blocks int) *flash.Sim {
		return newSim(t, geometry{erase, write, blocks}, 0)
	}
	off := sim(4096, 8, 4)
	off.CutPowerAt(1, flash.CutBefore)
	if err := off.Erase(0, 4096); !errors.Is(err, flash.ErrPowerCut) {
		t.Fatal(err)
	}
	errRead := errors.New("read failed")
	tests := []struct {
		name   string
		f      Flash
		off    int64
		blocks int
		want   error
	}{
		{"nil flash", nil, 0, 2, ErrRegion},
		{"one block", sim(4096, 8, 4), 0, 1, ErrRegion},
		{"no blocks", sim(4096, 8, 4), 0, 0, ErrRegion},
		{"negative blocks", sim(4096, 8, 4), 0, -3, ErrRegion},
		{"misaligned offset", sim(4096, 8, 4), 512, 2, ErrRegion},
		{"negative offset", sim(4096, 8, 4), -4096, 2, ErrRegion},
		{"small blocks, one segment", sim(256, 8, 32), 0, 17, ErrRegion},
		{"huge block count", sim(4096, 8, 4), 4096, 1 << 62, ErrRegion},
		{"region past the end", sim(4096, 8, 4), 4096, 4, io.EOF},
		{"power cut", off, 0, 4, flash.ErrPowerCut},
		{"read error", failingFlash{Flash: sim(4096, 8, 4), err: errRead}, 0, 2, errRead},
		{"short read", failingFlash{Flash: sim(4096, 8, 4), short: true}, 0, 2, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := Open(tt.f, tt.off, tt.blocks)
			if !errors.Is(err, tt.want) || j != nil {
				t.Fatalf("Open = %v, %v, want nil, %v", j, err, tt.want)
			}
			if msg := err.Error(); len(msg) < 9 || msg[:9] != "journal: " {
				t.Errorf("error %q lacks the journal: prefix", msg)
			}
		})
	}
}

// TestRegionBounds checks that a journal in the middle of a device never
// touches the blocks around it.
func TestRegionBounds(t *testing.T) {
	const blocks, first = 3, 2
	g := geometry{erase: 4096, write: 8, blocks: 8}
	f := newSim(t, g, 0)
	pattern := bytes.Repeat([]byte("outside!"), int(g.size())/8)
	overwrite(t, f, 0, pattern)
	before := f.EraseCounts()
	off := int64(first * g.erase)
	// The region itself must start erased, or the first append erases it.
	if err := f.Erase(off, blocks*int64(g.erase)); err != nil {
		t.Fatal(err)
	}
	j, err := Open(f, off, blocks)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range scenario(2, 200) {
		mustAppend(t, j, p)
	}
	snap := f.Snapshot()
	after := f.EraseCounts()
	for b := range g.blocks {
		if b >= first && b < first+blocks {
			continue
		}
		lo, hi := b*g.erase, (b+1)*g.erase
		if !bytes.Equal(snap[lo:hi], pattern[lo:hi]) {
			t.Errorf("block %d outside the journal was modified", b)
		}
		if after[b] != before[b] {
			t.Errorf("block %d outside the journal was erased", b)
		}
	}
}

// TestRingWrap appends payloads of every size from 1 to MaxPayload, many
// times around the ring, reopening as it goes.
func TestRingWrap(t *testing.T) {
	for _, g := range append(geometries, geometry{erase: 4096, write: 8, blocks: 2}, geometry{erase: 256, write: 8, blocks: 18}) {
		t.Run(g.String(), func(t *testing.T) {
			f := newSim(t, g, 0)
			j := mustOpen(t, f, g.blocks)
			var seq uint64
			for i := range 3 * MaxPayload {
				size := 1 + (i*389)%MaxPayload
				p := bytes.Repeat([]byte{byte(i), byte(i >> 8)}, size)[:size]
				mustAppend(t, j, p)
				seq++
				if i%97 == 0 {
					j = mustOpen(t, f, g.blocks)
					wantLatest(t, j, p, seq)
				}
			}
			s := j.Stats()
			wraps := s.Erases / uint64(j.nseg)
			if wraps < 2 {
				t.Errorf("only %d erases over %d segments: the ring did not wrap", s.Erases, j.nseg)
			}
			if d := spread(f.EraseCounts()[:j.nseg*j.segBlocks]); d > 1 {
				t.Errorf("erase counts %v differ by %d", f.EraseCounts(), d)
			}
		})
	}
}

func TestEraseEvenness(t *testing.T) {
	tests := []struct {
		name    string
		g       geometry
		appends int
	}{
		{"4 blocks of 4096", geo4096w8, 2000},
		{"2 blocks of 4096", geometry{erase: 4096, write: 8, blocks: 2}, 2000},
		{"7 blocks, write 1", geometry{erase: 4096, write: 1, blocks: 7}, 2000},
		{"3 segments of 9 blocks of 256", geo256w8, 2000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newSim(t, tt.g, 0)
			j := mustOpen(t, f, tt.g.blocks)
			for _, p := range scenario(3, tt.appends) {
				mustAppend(t, j, p)
			}
			counts := f.EraseCounts()
			if d := spread(counts); d > 1 {
				t.Errorf("erase counts %v differ by %d", counts, d)
			}
			if got, want := j.Stats().BlocksErased, sum(counts); got != want {
				t.Errorf("Stats.BlocksErased = %d, flash counted %d", got, want)
			}
			t.Logf("%d appends: erase counts %v", tt.appends, counts)
		})
	}
}

func sum(counts []uint64) uint64 {
	var s uint64
	for _, c := range counts {
		s += c
	}
	return s
}

// TestLeftoverBlocks checks that blocks after the last whole segment are
// never touched.
func TestLeftoverBlocks(t *testing.T) {
	g := geometry{erase: 256, write: 8, blocks: 20} // two segments of 9 blocks, 2 left over
	f := newSim(t, g, 0)
	j := mustOpen(t, f, g.blocks)
	if j.nseg != 2 || j.segBlocks != 9 {
		t.Fatalf("%d segments of %d blocks, want 2 of 9", j.nseg, j.segBlocks)
	}
	for _, p := range scenario(4, 300) {
		mustAppend(t, j, p)
	}
	counts := f.EraseCounts()
	if counts[18] != 0 || counts[19] != 0 || spread(counts[:18]) > 1 {
		t.Errorf("erase counts %v", counts)
	}
	if !isErased(f.Snapshot()[18*256:]) {
		t.Error("leftover blocks were programmed")
	}
}

// TestDirtyTail checks what the next append does when the space after the
// newest record is not erased, as a torn append leaves it.
func TestDirtyTail(t *testing.T) {
	g := geo4096w8
	tests := []struct {
		name string
		at   int  // offset of the garbage after the newest record
		move bool // whether the next append must go to the next segment
	}{
		{"garbage right after", 0, true},
		{"garbage in the second copy's place", 120, true},
		{"garbage far after", 1024, false},
		{"garbage in the last unit", -8, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newSim(t, g, 0)
			j := mustOpen(t, f, g.blocks)
			for _, p := range scenario(5, 3) {
				mustAppend(t, j, p)
			}
			seg, pos := j.cur, j.pos
			at := j.segOff(seg) + int64(pos+tt.at)
			if tt.at < 0 {
				at = j.segOff(seg+1) + int64(tt.at)
			}
			if err := f.Program(at, []byte{0xFF, 0x00, 0xFF, 0xFF, 0x4A, 0x4E, 0x4C, 0x01}); err != nil {
				t.Fatal(err)
			}
			j = mustOpen(t, f, g.blocks)
			if j.cur != seg || j.pos != pos {
				t.Fatalf("reopened at segment %d offset %d, want %d %d", j.cur, j.pos, seg, pos)
			}
			erases := f.EraseCounts()[seg+1]
			p := bytes.Repeat([]byte{7}, 100) // 2 copies of 120 bytes
			mustAppend(t, j, p)
			moved := j.cur != seg
			if moved != tt.move {
				t.Errorf("append moved to the next segment: %v, want %v", moved, tt.move)
			}
			if moved && f.EraseCounts()[seg+1] != erases+1 {
				t.Errorf("next segment was not erased before use")
			}
			wantLatest(t, mustOpen(t, f, g.blocks), p, 4)
		})
	}
}

// TestReuseAfterFailure uses the same Journal after an append failed,
// without reopening it.
func TestReuseAfterFailure(t *testing.T) {
	g := geometry{erase: 4096, write: 8, blocks: 2}
	sc := scenario(6, 60)
	for _, mode := range []flash.CutMode{flash.CutBefore, flash.CutMidway} {
		for cut := uint64(1); cut <= 6; cut++ {
			f := newSim(t, g, int64(cut))
			j := mustOpen(t, f, g.blocks)
			// Fill the first segment so that the cuts hit the move to the
			// next one as well as plain appends.
			k := 0
			for ; j.pos+2*copySize(len(sc[k]), g.write) <= j.segSize-300; k++ {
				mustAppend(t, j, sc[k])
			}
			f.CutPowerAt(cut, mode)
			var err error
			for ; err == nil; k++ {
				err = j.Append(sc[k])
			}
			k--
			prev := sc[k-1]
			if !errors.Is(err, flash.ErrPowerCut) {
				t.Fatalf("cut %d %v: Append = %v, want a power cut", cut, mode, err)
			}
			wantLatest(t, j, prev, uint64(k))
			if err := j.Append(sc[k]); !errors.Is(err, flash.ErrPowerCut) {
				t.Fatalf("Append with the power off = %v", err)
			}
			wantLatest(t, j, prev, uint64(k))
			f.PowerOn()
			survived := mustOpen(t, f, g.blocks)
			_, seq, _ := survived.Latest()
			if err := j.Append(sc[k]); err != nil {
				t.Fatalf("cut %d %v: Append after power on: %v", cut, mode, err)
			}
			wantLatest(t, j, sc[k], seq+1)
			wantLatest(t, mustOpen(t, f, g.blocks), sc[k], seq+1)
			for _, p := range sc[k+1:] {
				mustAppend(t, j, p)
			}
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	f := newSim(t, geo4096w8, 0)
	j := mustOpen(t, f, geo4096w8.blocks)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			j.Latest()
			j.Stats()
		}
	}()
	for _, p := range scenario(7, 200) {
		if err := j.Append(p); err != nil {
			t.Error(err)
		}
	}
	<-done
	wantLatest(t, mustOpen(t, f, geo4096w8.blocks), scenario(7, 200)[199], 200)
}
