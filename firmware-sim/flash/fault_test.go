package flash_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"edgeota/firmware-sim/flash"
)

// randomBytes returns n reproducible random bytes.
func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// mustCut checks that err is ErrPowerCut.
func mustCut(t testing.TB, err error) {
	t.Helper()
	if !errors.Is(err, flash.ErrPowerCut) {
		t.Fatalf("err = %v, want ErrPowerCut", err)
	}
}

func TestCutBefore(t *testing.T) {
	const es = 4096
	tests := []struct {
		name string
		op   func(s *flash.Sim) error
	}{
		{"program", func(s *flash.Sim) error { return s.Program(es+64, pattern(64)) }},
		{"erase", func(s *flash.Sim) error { return s.Erase(0, 2*es) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSim(t, 4*es)
			if err := s.Program(8, pattern(16)); err != nil {
				t.Fatal(err)
			}
			before := s.Snapshot()
			s.CutPowerAt(1, flash.CutBefore)
			mustCut(t, tt.op(s))
			if !bytes.Equal(s.Snapshot(), before) {
				t.Error("operation cut before it started changed the contents")
			}
			if got := s.Ops(); got != 2 {
				t.Errorf("Ops = %d, want 2 (the cut operation counts)", got)
			}
			if got := s.EraseCounts(); fmt.Sprint(got) != "[0 0 0 0]" {
				t.Errorf("EraseCounts = %v, want none", got)
			}
			if got := s.Stats().BytesProgrammed; got != 16 {
				t.Errorf("BytesProgrammed = %d, want 16", got)
			}
		})
	}
}

// TestCutMidwayProgram checks that an interrupted Program leaves whole units
// written, then one unit with only some of the intended bits cleared, then
// erased units.
func TestCutMidwayProgram(t *testing.T) {
	seed := testSeed(t)
	for _, ws := range []int{1, 8, 16} {
		t.Run(fmt.Sprintf("write=%d", ws), func(t *testing.T) {
			const units = 8
			r := rand.New(rand.NewPCG(uint64(seed), uint64(ws)))
			var prefixes [units]int
			strictlyPartial := 0
			for trial := range 200 {
				s := newSim(t, 4096, flash.WithWriteSize(ws), flash.WithSeed(seed+int64(trial)))
				off := int64(ws * r.IntN(4096/ws-units))
				want := randomBytes(r, units*ws)
				s.CutPowerAt(1, flash.CutMidway)
				mustCut(t, s.Program(off, want))

				got := s.Snapshot()
				done := int(s.Stats().BytesProgrammed)
				if done%ws != 0 || done >= len(want) {
					t.Fatalf("BytesProgrammed = %d, want whole units short of %d", done, len(want))
				}
				prefixes[done/ws]++
				if !bytes.Equal(got[off:off+int64(done)], want[:done]) {
					t.Fatalf("trial %d: prefix of %d bytes not programmed", trial, done)
				}
				partial, intended := got[off+int64(done):][:ws], want[done:][:ws]
				for i := range partial {
					if partial[i]&intended[i] != intended[i] {
						t.Fatalf("trial %d: partial byte %d = %08b, intended %08b: a bit was cleared that the value keeps",
							trial, i, partial[i], intended[i])
					}
				}
				if !bytes.Equal(partial, intended) && !isErased(partial) {
					strictlyPartial++
				}
				if !isErased(got[:off]) || !isErased(got[off+int64(done+ws):]) {
					t.Fatalf("trial %d: bytes outside the programmed prefix and partial unit changed", trial)
				}
			}
			for i, n := range prefixes {
				if n == 0 {
					t.Errorf("no trial stopped after %d whole units: %v", i, prefixes)
				}
			}
			if strictlyPartial == 0 {
				t.Error("no trial left a unit strictly between erased and programmed")
			}
		})
	}
}

// TestCutMidwayErase checks that an interrupted Erase only sets bits, only in
// its own blocks, and leaves a mix of erased, old and half-erased bytes.
func TestCutMidwayErase(t *testing.T) {
	const es = 256
	s := newSim(t, 4*es, flash.WithEraseSize(es), flash.WithWriteSize(16), flash.WithSeed(testSeed(t)))
	old := randomBytes(rand.New(rand.NewPCG(1, 2)), 4*es)
	for i := range old {
		if old[i] == 0xFF { // so that erased and unchanged bytes can be told apart
			old[i] = 0x7F
		}
	}
	if err := s.Program(0, old); err != nil {
		t.Fatal(err)
	}
	s.CutPowerAt(1, flash.CutMidway)
	mustCut(t, s.Erase(es, 2*es))

	got := s.Snapshot()
	if !bytes.Equal(got[:es], old[:es]) || !bytes.Equal(got[3*es:], old[3*es:]) {
		t.Error("interrupted erase changed blocks outside its range")
	}
	var erased, unchanged, mixed int
	for i := es; i < 3*es; i++ {
		switch {
		case got[i]&old[i] != old[i]:
			t.Fatalf("byte %#x = %08b from %08b: an erase cleared a bit", i, got[i], old[i])
		case got[i] == 0xFF:
			erased++
		case got[i] == old[i]:
			unchanged++
		default:
			mixed++
		}
	}
	if erased == 0 || unchanged == 0 || mixed == 0 {
		t.Errorf("erased %d, unchanged %d, half-erased %d bytes: want some of each", erased, unchanged, mixed)
	}
	if got := s.EraseCounts(); fmt.Sprint(got) != "[0 1 1 0]" {
		t.Errorf("EraseCounts = %v, want [0 1 1 0]: an interrupted erase wears the blocks", got)
	}
}

func TestPowerOffUntilPowerOn(t *testing.T) {
	for _, mode := range []flash.CutMode{flash.CutBefore, flash.CutMidway} {
		t.Run(mode.String(), func(t *testing.T) {
			s := newSim(t, 8192)
			s.CutPowerAt(1, mode)
			mustCut(t, s.Program(0, pattern(64)))
			after := s.Snapshot()

			buf := make([]byte, 8)
			_, err := s.ReadAt(buf, 0)
			mustCut(t, err)
			mustCut(t, s.Program(4096, pattern(8)))
			mustCut(t, s.Erase(4096, 4096))
			mustCut(t, s.Program(3, nil)) // even a refusable call: the device is off
			if got := s.Ops(); got != 1 {
				t.Errorf("Ops = %d while off, want 1", got)
			}

			s.PowerOn()
			if n, err := s.ReadAt(buf, 0); err != nil || !bytes.Equal(buf[:n], after[:8]) {
				t.Errorf("ReadAt after PowerOn = %x, %v; want %x", buf[:n], err, after[:8])
			}
			if err := s.Program(4096, pattern(8)); err != nil {
				t.Errorf("Program after PowerOn: %v", err)
			}
			if err := s.Erase(0, 4096); err != nil {
				t.Errorf("Erase after PowerOn: %v", err)
			}
			if got := s.Ops(); got != 3 {
				t.Errorf("Ops = %d, want 3", got)
			}
			s.PowerOn() // no effect while on
		})
	}
}

func TestCutPowerAtCounting(t *testing.T) {
	s := newSim(t, 8192)
	s.CutPowerAt(3, flash.CutBefore)
	if err := s.Program(0, pattern(8)); err != nil {
		t.Fatal(err)
	}
	if err := s.Program(0, pattern(8)); !errors.Is(err, flash.ErrNotErased) {
		t.Fatalf("err = %v, want ErrNotErased", err)
	}
	if err := s.Erase(1, 4096); !errors.Is(err, flash.ErrAlignment) {
		t.Fatalf("err = %v, want ErrAlignment", err)
	}
	if err := s.Program(8, pattern(8)); err != nil {
		t.Fatalf("second counted operation: %v", err)
	}
	mustCut(t, s.Erase(0, 4096))
	if got := s.Ops(); got != 3 {
		t.Errorf("Ops = %d, want 3", got)
	}

	// The cut disarmed itself.
	s.PowerOn()
	for i := range 4 {
		if err := s.Erase(0, 4096); err != nil {
			t.Fatalf("erase %d after the cut: %v", i, err)
		}
	}

	// Arming counts from the arming; re-arming replaces; 0 and Disarm cancel.
	s.CutPowerAt(1, flash.CutBefore)
	s.CutPowerAt(2, flash.CutMidway)
	if err := s.Erase(0, 4096); err != nil {
		t.Fatalf("re-armed cut happened at the first operation: %v", err)
	}
	mustCut(t, s.Erase(0, 4096))
	s.PowerOn()
	s.CutPowerAt(1, flash.CutBefore)
	s.CutPowerAt(0, flash.CutBefore)
	if err := s.Erase(0, 4096); err != nil {
		t.Errorf("CutPowerAt(0) did not disarm: %v", err)
	}
	s.CutPowerAt(1, flash.CutBefore)
	s.Disarm()
	if err := s.Erase(0, 4096); err != nil {
		t.Errorf("Disarm did not disarm: %v", err)
	}
}

func TestCutPowerAtInvalidMode(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("CutPowerAt with an invalid mode did not panic")
		}
	}()
	newSim(t, 4096).CutPowerAt(1, flash.CutMode(7))
}

// cutScenario programs two units and erases a block on s, with a midway cut
// armed at the given operation, and returns the contents after the cut.
func cutScenario(t *testing.T, s *flash.Sim, at uint64) []byte {
	t.Helper()
	s.CutPowerAt(at, flash.CutMidway)
	ops := []func() error{
		func() error { return s.Program(0, randomBytes(rand.New(rand.NewPCG(3, 4)), 4096)) },
		func() error { return s.Program(4096, randomBytes(rand.New(rand.NewPCG(5, 6)), 4096)) },
		func() error { return s.Erase(0, 4096) },
	}
	for _, op := range ops {
		if err := op(); err != nil {
			mustCut(t, err)
			return s.Snapshot()
		}
	}
	t.Fatalf("no cut at operation %d", at)
	return nil
}

func TestDeterministic(t *testing.T) {
	seed := testSeed(t)
	for at := uint64(1); at <= 3; at++ {
		t.Run(fmt.Sprintf("cut at %d", at), func(t *testing.T) {
			a := cutScenario(t, newSim(t, 8192, flash.WithSeed(seed)), at)
			b := cutScenario(t, newSim(t, 8192, flash.WithSeed(seed)), at)
			if !bytes.Equal(a, b) {
				t.Error("same seed, different contents")
			}
			c := cutScenario(t, newSim(t, 8192, flash.WithSeed(seed+1)), at)
			if bytes.Equal(a, c) {
				t.Error("different seeds, same contents")
			}
		})
	}

	// A clone cuts like its original, also after an earlier cut.
	s := newSim(t, 8192, flash.WithSeed(seed))
	s.CutPowerAt(1, flash.CutMidway)
	mustCut(t, s.Erase(0, 8192))
	s.PowerOn()
	c := s.Clone()
	if !bytes.Equal(cutScenario(t, s, 2), cutScenario(t, c, 2)) {
		t.Error("clone cut differently from its original")
	}
}

// TestSweep cuts power at every operation of a small commit protocol, as the
// node agent's sweeps do, and checks that a committed record is intact.
func TestSweep(t *testing.T) {
	seed := testSeed(t)
	base := newSim(t, 8192, flash.WithWriteSize(16), flash.WithSeed(seed))
	record := pattern(64)
	commit := bytes.Repeat([]byte{0xA5}, 16)
	write := func(s *flash.Sim) error {
		if err := s.Erase(0, 4096); err != nil {
			return err
		}
		if err := s.Program(16, record); err != nil {
			return err
		}
		return s.Program(0, commit)
	}
	for _, mode := range []flash.CutMode{flash.CutBefore, flash.CutMidway} {
		t.Run(mode.String(), func(t *testing.T) {
			cuts := uint64(0)
			for n := uint64(1); ; n++ {
				s := base.Clone()
				s.CutPowerAt(n, mode)
				err := write(s)
				if err == nil {
					break
				}
				mustCut(t, err)
				cuts++
				s.PowerOn()
				got := make([]byte, 16+len(record))
				if _, err := s.ReadAt(got, 0); err != nil {
					t.Fatal(err)
				}
				if bytes.Equal(got[:16], commit) && !bytes.Equal(got[16:], record) {
					t.Errorf("cut at %d: committed record is corrupt", n)
				}
			}
			if cuts != 3 {
				t.Errorf("swept %d cut points, want 3", cuts)
			}
		})
	}
}

func TestFlipBit(t *testing.T) {
	s := newSim(t, 4096)
	s.FlipBit(9, 3)
	b := make([]byte, 2)
	if _, err := s.ReadAt(b, 8); err != nil || b[0] != 0xFF || b[1] != 0xF7 {
		t.Fatalf("ReadAt = %x, %v; want fff7", b, err)
	}
	if err := s.Program(8, pattern(8)); !errors.Is(err, flash.ErrNotErased) {
		t.Errorf("program over a flipped bit: err = %v, want ErrNotErased", err)
	}
	s.FlipBit(9, 3)
	if err := s.Program(8, pattern(8)); err != nil {
		t.Errorf("program after flipping back: %v", err)
	}
	if s.Ops() != 1 {
		t.Errorf("Ops = %d, want 1: FlipBit is not an operation", s.Ops())
	}
	for _, tt := range []struct {
		off int64
		bit uint
	}{{-1, 0}, {4096, 0}, {0, 8}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("FlipBit(%d, %d) did not panic", tt.off, tt.bit)
				}
			}()
			s.FlipBit(tt.off, tt.bit)
		}()
	}
}

func TestSnapshotAndClone(t *testing.T) {
	s := newSim(t, 8192, flash.WithEraseSize(1024), flash.WithWriteSize(16))
	if err := s.Program(0, pattern(32)); err != nil {
		t.Fatal(err)
	}
	if err := s.Erase(1024, 1024); err != nil {
		t.Fatal(err)
	}
	snap := s.Snapshot()
	snap[0] ^= 0xFF
	if bytes.Equal(snap, s.Snapshot()) {
		t.Error("Snapshot shares memory with the device")
	}

	s.CutPowerAt(1, flash.CutBefore)
	c := s.Clone()
	if c.Size() != 8192 || c.EraseSize() != 1024 || c.WriteSize() != 16 {
		t.Errorf("clone geometry %d/%d/%d", c.Size(), c.EraseSize(), c.WriteSize())
	}
	if c.Ops() != 2 || c.Stats() != s.Stats() || fmt.Sprint(c.EraseCounts()) != fmt.Sprint(s.EraseCounts()) {
		t.Error("clone counters differ")
	}
	if err := c.Program(32, pattern(16)); err != nil {
		t.Errorf("clone inherited the armed cut: %v", err)
	}
	if bytes.Equal(c.Snapshot(), s.Snapshot()) {
		t.Error("clone shares memory with its original")
	}
	mustCut(t, s.Program(32, pattern(16)))
	if err := s.Clone().Program(48, pattern(16)); err != nil {
		t.Errorf("clone of a device without power is off: %v", err)
	}
}

func TestConcurrent(t *testing.T) {
	s := newSim(t, 16*4096)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			off := int64(g) * 8192
			for i := range 64 {
				if err := s.Program(off+int64(i)*8, pattern(8)); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.ReadAt(make([]byte, 8), off); err != nil {
					t.Error(err)
					return
				}
			}
			if err := s.Erase(off, 8192); err != nil {
				t.Error(err)
			}
			_ = s.Stats()
		})
	}
	wg.Wait()
	if got := s.Ops(); got != 8*65 {
		t.Errorf("Ops = %d, want %d", got, 8*65)
	}
}

func TestNoAllocs(t *testing.T) {
	s := newSim(t, 1<<20)
	data, buf := pattern(1024), make([]byte, 1024)
	off := int64(0)
	allocs := testing.AllocsPerRun(100, func() {
		if err := s.Program(off, data); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
		if err := s.Erase(off, 4096); err != nil {
			t.Fatal(err)
		}
		off = (off + 4096) % s.Size()
	})
	if allocs != 0 {
		t.Errorf("Program+ReadAt+Erase: %v allocations, want 0", allocs)
	}
}

func TestCutModeString(t *testing.T) {
	for m, want := range map[flash.CutMode]string{
		flash.CutBefore: "before", flash.CutMidway: "midway", 9: "CutMode(9)",
	} {
		if got := m.String(); got != want {
			t.Errorf("CutMode(%d).String() = %q, want %q", int(m), got, want)
		}
	}
}

func isErased(b []byte) bool {
	return bytes.Count(b, []byte{0xFF}) == len(b)
}
