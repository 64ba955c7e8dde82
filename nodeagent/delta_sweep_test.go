package nodeagent_test

import (
	"errors"
	"fmt"
	"testing"

	"edgeota/firmware-sim/flash"
	"edgeota/nodeagent"
	"edgeota/protocol"
)

// TestPowerCutSweepDelta is TestPowerCutSweep for an update rebuilt from a
// delta: power is cut at every flash operation of the update, before the
// operation and in its middle, for both endings and every geometry. The
// node always boots a verified image, ends where the ending demands, and
// never writes again what its journal recorded as written: after each
// cut, the finishing run programs and erases nothing of the image below
// the bytes the last progress record covers (it fetches the delta again
// from that record's checkpoint instead). Uncut, every write unit of the
// new image is programmed once and every erase block erased once.
func TestPowerCutSweepDelta(t *testing.T) {
	tb := newTestbed(t)
	v1 := tb.release(t, 10, 1, "1.0.0", goodModel, 80000)
	endings := []struct {
		name string
		rel  release
		good bool
	}{
		{"confirm", withDelta(t, v1, tb.derive(t, v1, 11, 2, "1.1.0", goodModel, 0.10)), true},
		{"revert", withDelta(t, v1, tb.derive(t, v1, 12, 2, "1.2.0-bad", badModel, 0.10)), false},
	}
	for _, g := range sweepGeometries {
		for _, end := range endings {
			name := fmt.Sprintf("erase%d-write%d-%s", g.erase, g.write, end.name)
			t.Run(name, func(t *testing.T) {
				base := newSim(t, g, 1)
				if err := tb.lifecycle(t, base, v1); err != nil {
					t.Fatalf("install v1: %v", err)
				}
				l, err := nodeagent.NewLayout(base, sweepSlot, g.journal)
				if err != nil {
					t.Fatal(err)
				}
				slotB := l.Slots[protocol.SlotB]
				known := map[protocol.Digest]bool{v1.m.Digest: true, end.rel.m.Digest: true}
				// Count the operations of the whole update, and check that
				// it writes each unit of the new image once.
				count := base.Clone()
				before := count.Ops()
				rf := recording(count)
				src := &deltaSource{image: end.rel.image, delta: end.rel.delta}
				if err := tb.lifecycleFrom(t, rf, end.rel, src); err != nil {
					t.Fatal(err)
				}
				if src.imageRead != 0 {
					t.Fatalf("uncut update read %d bytes of the full image", src.imageRead)
				}
				if ops, most := rf.writesIn(slotB.DataOff, slotB.DataOff+slotB.DataSize); ops == 0 || most != 1 {
					t.Fatalf("uncut update: %d writes to slot B, a unit or block written %d times", ops, most)
				}
				n := count.Ops() - before
				st, _ := nodeagent.ReadStatus(count, sweepSlot, g.journal)
				if err := finalCheck(st, end.rel, v1, end.good); err != nil {
					t.Fatalf("uncut update: %v", err)
				}
				unbootable, failures, rewrites, resumed := 0, 0, 0, 0
				step := uint64(1)
				if testing.Short() {
					step = 7 // go test -short samples; make test runs the whole sweep
				}
				cuts := 0
				for i := uint64(1); i <= n; i += step {
					cuts += 2
					for _, mode := range []flash.CutMode{flash.CutBefore, flash.CutMidway} {
						f := base.Clone()
						f.CutPowerAt(i, mode)
						err := tb.lifecycle(t, f, end.rel)
						if !errors.Is(err, flash.ErrPowerCut) {
							t.Errorf("cut %d %v: lifecycle returned %v, want the power cut", i, mode, err)
							failures++
							continue
						}
						f.PowerOn()
						f.Disarm()
						mid, err := tb.checkBootable(t, f, known)
						if err != nil {
							unbootable++
							t.Errorf("cut %d %v: %v", i, mode, err)
							continue
						}
						var written int64
						if d := mid.Download; d != nil && d.Slot == "B" && !d.Verified {
							written = int64(d.WrittenBytes)
						}
						rf := recording(f)
						if err := tb.lifecycle(t, rf, end.rel); err != nil {
							failures++
							t.Errorf("cut %d %v: finishing: %v", i, mode, err)
							continue
						}
						if written > 0 {
							resumed++
							if ops, _ := rf.writesIn(slotB.DataOff, slotB.DataOff+written); ops > 0 {
								rewrites++
								t.Errorf("cut %d %v: the finishing run wrote %d times below the %d bytes the journal recorded", i, mode, ops, written)
							}
						}
						st, err := nodeagent.ReadStatus(f, sweepSlot, g.journal)
						if err == nil {
							err = finalCheck(st, end.rel, v1, end.good)
						}
						if err == nil && (st.EpochFloor < mid.EpochFloor || st.HighestSeq < mid.HighestSeq) {
							err = fmt.Errorf("floor %d→%d, highest seq %d→%d decreased", mid.EpochFloor, st.EpochFloor, mid.HighestSeq, st.HighestSeq)
						}
						if err != nil {
							failures++
							t.Errorf("cut %d %v: %v", i, mode, err)
						}
					}
				}
				if resumed == 0 {
					t.Fatal("no cut left a progress record to resume from: the sweep proves nothing about resuming")
				}
				fmt.Printf("power-cut sweep: %d cut points, %d unbootable (delta %s, %d ops x 2 cut modes, %d wrong endings, %d resumed from a progress record, %d rewrote recorded units)\n",
					cuts, unbootable, name, n, failures, resumed, rewrites)
			})
		}
	}
}
