package journal

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"edgeota/firmware-sim/flash"
)

var seedFlag = flag.Int64("journal.seed", 0, "seed of the random power-cut and bit-flip tests (0: pick one from the clock)")

// testSeed returns the seed of a randomized test and logs it, so that a
// failure can be replayed with -journal.seed.
func testSeed(t *testing.T) int64 {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (replay with -journal.seed=%d)", seed, seed)
	return seed
}

var cutModes = []flash.CutMode{flash.CutBefore, flash.CutMidway}

// TestPowerCutSweep cuts power at every flash operation of a scenario, in
// both cut modes, and checks that the journal then holds exactly the last
// acknowledged record or the one being appended, and that it carries on
// correctly to the end of the scenario.
func TestPowerCutSweep(t *testing.T) {
	tests := []struct {
		g       geometry
		appends int
	}{
		{geometry{erase: 4096, write: 8, blocks: 3}, 300},
		{geometry{erase: 4096, write: 1, blocks: 2}, 300},
		{geometry{erase: 4096, write: 16, blocks: 4}, 300},
		{geometry{erase: 256, write: 8, blocks: 27}, 300},
	}
	if testing.Short() {
		t.Log("-short: sweeping every 7th cut point only")
	}
	for i, tt := range tests {
		t.Run(tt.g.String(), func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			sc := scenario(uint64(100+i), tt.appends)
			base := newSim(t, tt.g, int64(i+1))
			points, lost, wraps := sweep(t, base, tt.g, sc)
			if wraps < 2 {
				t.Errorf("scenario wraps the ring %d times, want at least 2", wraps)
			}
			t.Logf("journal power-cut sweep: erase=%d write=%d: %d cut points, %d lost", tt.g.erase, tt.g.write, points, lost)
			t.Logf("(%d blocks, %d appends, %d ring wraps, %v)", tt.g.blocks, tt.appends, wraps, time.Since(start).Round(time.Millisecond))
		})
	}
}

// sweep runs sc once on a clone of base to count its operations, then once
// per operation and cut mode with power cut at that operation. It returns the
// number of runs, the number that lost state, and how often the scenario
// wraps the ring.
func sweep(t *testing.T, base *flash.Sim, g geometry, sc [][]byte) (points, lost, wraps int) {
	dry := base.Clone()
	j := mustOpen(t, dry, g.blocks)
	for _, p := range sc {
		mustAppend(t, j, p)
	}
	ops := dry.Ops() - base.Ops()
	wraps = int(j.Stats().Erases) / j.nseg

	step := uint64(1)
	if testing.Short() {
		step = 7
	}
	for at := uint64(1); at <= ops; at += step {
		for _, mode := range cutModes {
			points++
			if err := cutRun(base.Clone(), g, sc, at, mode); err != nil {
				lost++
				if lost <= 5 {
					t.Errorf("cut at op %d/%d %v: %v", at, ops, mode, err)
				}
			}
		}
	}
	return points, lost, wraps
}

// cutRun runs sc on f with power cut at operation at, reboots, checks the
// recovered record, and finishes the scenario.
func cutRun(f *flash.Sim, g geometry, sc [][]byte, at uint64, mode flash.CutMode) error {
	j, err := Open(f, 0, g.blocks)
	if err != nil {
		return err
	}
	f.CutPowerAt(at, mode)
	k := 0 // records acknowledged
	for ; k < len(sc); k++ {
		if err = j.Append(sc[k]); err != nil {
			break
		}
	}
	if k == len(sc) {
		return errors.New("the power cut never happened")
	}
	if !errors.Is(err, flash.ErrPowerCut) {
		return fmt.Errorf("append %d: %w", k+1, err)
	}
	f.PowerOn()
	if j, err = Open(f, 0, g.blocks); err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	if err := recovered(j, sc, k); err != nil {
		return err
	}
	if _, seq, _ := j.Latest(); seq == uint64(k+1) {
		k++ // the interrupted record survived
	}
	for ; k < len(sc); k++ {
		if err := j.Append(sc[k]); err != nil {
			return fmt.Errorf("append %d after recovery: %w", k+1, err)
		}
	}
	if err := checkLatest(j, sc[len(sc)-1], uint64(len(sc))); err != nil {
		return fmt.Errorf("end of scenario: %w", err)
	}
	if j, err = Open(f, 0, g.blocks); err != nil {
		return fmt.Errorf("final reopen: %w", err)
	}
	if err := checkLatest(j, sc[len(sc)-1], uint64(len(sc))); err != nil {
		return fmt.Errorf("end of scenario, reopened: %w", err)
	}
	return nil
}

// recovered checks that j, opened after an append of sc[k] failed, holds
// either sc[k-1] (or nothing when k is 0) or sc[k].
func recovered(j *Journal, sc [][]byte, k int) error {
	errNew := checkLatest(j, sc[k], uint64(k+1))
	if errNew == nil {
		return nil
	}
	var prev []byte
	if k > 0 {
		prev = sc[k-1]
	}
	if errOld := checkLatest(j, prev, uint64(k)); errOld != nil {
		return fmt.Errorf("after a cut in append %d: neither the previous record (%v) nor the new one (%v)", k+1, errOld, errNew)
	}
	return nil
}

// TestChainedPowerCuts cuts power many times during one long sequence, at
// random operations and in random modes, sometimes reopening the journal and
// sometimes going on with the same value, and checks every recovery.
func TestChainedPowerCuts(t *testing.T) {
	seed := testSeed(t)
	for i, g := range []geometry{
		{erase: 4096, write: 8, blocks: 2},
		{erase: 4096, write: 8, blocks: 4},
		{erase: 4096, write: 1, blocks: 3},
		{erase: 4096, write: 16, blocks: 3},
		{erase: 256, write: 8, blocks: 18},
		{erase: 1024, write: 4, blocks: 9},
	} {
		t.Run(g.String(), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(seed), uint64(i)))
			f := newSim(t, g, seed+int64(i))
			sc := scenario(uint64(seed)+uint64(i), 1500)
			j := mustOpen(t, f, g.blocks)
			cuts, k := 0, 0
			armed := false
			for k < len(sc) {
				if !armed && r.IntN(3) == 0 {
					f.CutPowerAt(1+uint64(r.IntN(12)), cutModes[r.IntN(2)])
					armed = true
				}
				err := j.Append(sc[k])
				if err == nil {
					wantLatest(t, j, sc[k], uint64(k+1))
					k++
					continue
				}
				if !errors.Is(err, flash.ErrPowerCut) {
					t.Fatalf("append %d: %v", k+1, err)
				}
				cuts++
				armed = false
				f.PowerOn()
				// The failed Journal still reports the acknowledged record.
				if k > 0 {
					wantLatest(t, j, sc[k-1], uint64(k))
				}
				fresh := mustOpen(t, f, g.blocks)
				if err := recovered(fresh, sc, k); err != nil {
					t.Fatalf("cut %d: %v", cuts, err)
				}
				if _, seq, _ := fresh.Latest(); seq == uint64(k+1) {
					k++
				}
				if r.IntN(2) == 0 {
					j = fresh
				}
				// Otherwise j scans the flash before its next append, which
				// may itself be cut.
			}
			f.Disarm()
			if !j.stale { // else it still reports the record before the cut
				wantLatest(t, j, sc[len(sc)-1], uint64(len(sc)))
			}
			wantLatest(t, mustOpen(t, f, g.blocks), sc[len(sc)-1], uint64(len(sc)))
			// About 300 cuts a run; fewer than 100 is a chance under
			// 1e-64 for any seed. An append that succeeds programs
			// two copies, so an armed cut (1 to 12 operations on)
			// falls within 6 appends, and a cycle from one cut to the
			// next takes at most 5 appends more than the tries (one
			// in 3) it waits to arm. Over 1500 appends, fewer than 100
			// cuts need fewer than 100 arming successes in 1000 tries
			// of 1/3: P <= exp(-1000*KL(0.1||1/3)) = exp(-149.7).
			if cuts < 100 {
				t.Errorf("only %d power cuts", cuts)
			}
			t.Logf("%d appends, %d power cuts, erase counts %v", len(sc), cuts, f.EraseCounts())
		})
	}
}
