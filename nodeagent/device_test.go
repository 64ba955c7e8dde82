package nodeagent_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"edgeota/firmware-sim/flash"
	"edgeota/nodeagent"
	"edgeota/protocol"
	"edgeota/protocol/sign"
)

// installed returns a simulated flash with v1 installed and confirmed.
func installed(t *testing.T, tb *testbed, v1 release) *flash.Sim {
	t.Helper()
	f := newSim(t, geometry{4096, 8, 4}, 1)
	if err := tb.lifecycle(t, f, v1); err != nil {
		t.Fatal(err)
	}
	return f
}

func status(t *testing.T, f nodeagent.Flash) *nodeagent.Status {
	t.Helper()
	st, err := nodeagent.ReadStatus(f, sweepSlot, journalBlocks(f))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func activeSlot(st *nodeagent.Status) nodeagent.SlotStatus {
	if st.Active == "B" {
		return st.Slots[1]
	}
	return st.Slots[0]
}

// TestBadUpdatesLeaveRunningSlot offers bad updates; each is refused or
// fails with its reason code, and the running slot's bytes never change.
func TestBadUpdatesLeaveRunningSlot(t *testing.T) {
	tb := newTestbed(t)
	v1 := tb.release(t, 10, 2, "1.0.0", goodModel, 70000)
	good := tb.release(t, 11, 2, "1.1.0", goodModel, 70000)
	otherKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	intruder, _ := sign.NewSigner(otherKey)
	resign := func(edit func(m *protocol.Manifest)) []byte {
		m := *good.m
		edit(&m)
		b, err := tb.signer.SignManifest(&m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	wrongSig, _ := intruder.SignManifest(good.m)
	tampered := append([]byte(nil), good.signed...)
	tampered[30] ^= 1
	corrupted := append([]byte(nil), good.image...)
	corrupted[5000] ^= 0x10
	big := tb.release(t, 13, 2, "1.3.0", goodModel, sweepSlot+4096)
	tests := []struct {
		name   string
		signed []byte
		image  []byte
		code   protocol.Reason
	}{
		{"wrong signer", wrongSig, good.image, protocol.ReasonSignature},
		{"tampered manifest", tampered, good.image, protocol.ReasonSignature},
		{"other class", resign(func(m *protocol.Manifest) { m.Class[3] ^= 1 }), good.image, protocol.ReasonClass},
		{"other component", resign(func(m *protocol.Manifest) { m.Component = "vision" }), good.image, protocol.ReasonOther},
		{"epoch below floor", resign(func(m *protocol.Manifest) { m.Epoch = 1 }), good.image, protocol.ReasonEpoch},
		{"old seq (rollback)", resign(func(m *protocol.Manifest) { m.Seq = 9 }), good.image, protocol.ReasonSeq},
		{"agent too old", resign(func(m *protocol.Manifest) { m.Requires = &protocol.Requires{MinAgentVersion: "9.0"} }), good.image, protocol.ReasonRequires},
		{"truncated image", good.signed, good.image[:50000], protocol.ReasonSize},
		{"corrupted image", good.signed, corrupted, protocol.ReasonDigest},
		{"image larger than a slot", big.signed, big.image, protocol.ReasonNoSpace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := installed(t, tb, v1)
			before := status(t, f)
			l, _ := nodeagent.NewLayout(f, sweepSlot, 4)
			act := l.Slots[0]
			if before.Active == "B" {
				act = l.Slots[1]
			}
			snap := f.Snapshot()
			a, err := tb.agent(t, f)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := a.Boot(ctx); err != nil {
				t.Fatal(err)
			}
			err = a.Install(ctx, tt.signed, nodeagent.ReaderAtSource{R: bytes.NewReader(tt.image)}, nil)
			var ue *nodeagent.UpdateError
			if !errors.As(err, &ue) || ue.Code != tt.code {
				t.Fatalf("Install = %v, want reason %v", err, tt.code)
			}
			after := f.Snapshot()
			if !bytes.Equal(snap[act.HeaderOff:act.DataOff+act.DataSize], after[act.HeaderOff:act.DataOff+act.DataSize]) {
				t.Fatal("the running slot changed")
			}
			st := status(t, f)
			if st.LastState != "failed" || st.LastCode != tt.code.String() || st.LastReason == "" {
				t.Fatalf("last state %s %s %q", st.LastState, st.LastCode, st.LastReason)
			}
			if activeSlot(st).Seq != v1.m.Seq || st.EpochFloor != before.EpochFloor || st.HighestSeq != before.HighestSeq {
				t.Fatalf("state changed: %+v", st)
			}
			// The node still boots v1.
			if err := a.Boot(ctx); err != nil || a.Device().Running().Manifest.Seq != v1.m.Seq {
				t.Fatalf("boot after refusal: %v", err)
			}
		})
	}
}

// TestBootLoopReverts: a model that crashes on boot is reverted after
// MaxTrialBoots trial boots, with reason boot loop.
func TestBootLoopReverts(t *testing.T) {
	tb := newTestbed(t)
	v1 := tb.release(t, 10, 1, "1.0.0", goodModel, 70000)
	crash := tb.release(t, 11, 1, "1.1.0", "edgeota-sim-model crash_on_boot=1", 70000)
	f := installed(t, tb, v1)
	if err := tb.lifecycle(t, f, crash); err != nil {
		t.Fatal(err)
	}
	st := status(t, f)
	if activeSlot(st).Seq != 10 || st.LastCode != "boot loop" || st.LastState != "reverted" {
		t.Fatalf("status %+v", st)
	}
	// 1 boot for v1's trial, 1 to run it, 1 before the update, then
	// MaxTrialBoots trial boots and the reverting boot.
	if st.BootCount < nodeagent.MaxTrialBoots+1 {
		t.Fatalf("boot count %d", st.BootCount)
	}
}

// TestCorruptedActiveSlotFallsBack: a bit flip in the running image makes
// the bootloader fall back to the other, still valid, slot; with both slots
// broken nothing runs.
func TestCorruptedActiveSlotFallsBack(t *testing.T) {
	tb := newTestbed(t)
	v1 := tb.release(t, 10, 1, "1.0.0", goodModel, 70000)
	v2 := tb.release(t, 11, 1, "1.1.0", goodModel, 70000)
	f := installed(t, tb, v1)
	if err := tb.lifecycle(t, f, v2); err != nil {
		t.Fatal(err)
	}
	st := status(t, f)
	l, _ := nodeagent.NewLayout(f, sweepSlot, 4)
	act := 0
	if st.Active == "B" {
		act = 1
	}
	f.FlipBit(l.Slots[act].DataOff+1234, 3)
	a, _ := tb.agent(t, f)
	run, err := a.Device().Boot()
	if err != nil || run.Manifest.Seq != v1.m.Seq {
		t.Fatalf("boot = %v, %v; want fallback to v1", run, err)
	}
	st = status(t, f)
	if st.Slots[act].State != "invalid" || st.LastCode != "digest" {
		t.Fatalf("status %+v", st)
	}
	f.FlipBit(l.Slots[1-act].DataOff+10, 0)
	a, _ = tb.agent(t, f)
	if _, err := a.Device().Boot(); !errors.Is(err, nodeagent.ErrNoRunnable) {
		t.Fatalf("boot with both slots broken = %v, want ErrNoRunnable", err)
	}
}

// TestEpochInvalidatesOldSlot: confirming an image of a higher epoch
// invalidates the older-epoch image in the other slot; it never runs again.
func TestEpochInvalidatesOldSlot(t *testing.T) {
	tb := newTestbed(t)
	v1 := tb.release(t, 10, 1, "1.0.0", goodModel, 70000)
	v2 := tb.release(t, 11, 2, "1.1.0", goodModel, 70000)
	f := installed(t, tb, v1)
	if err := tb.lifecycle(t, f, v2); err != nil {
		t.Fatal(err)
	}
	st := status(t, f)
	if st.EpochFloor != 2 {
		t.Fatalf("floor %d", st.EpochFloor)
	}
	for _, s := range st.Slots {
		if s.Seq == 10 && s.State != "invalid" {
			t.Fatalf("epoch-1 image is %s", s.State)
		}
	}
	// Even re-offered under its own manifest (the revert exception), it is
	// refused: its epoch is below the floor.
	a, _ := tb.agent(t, f)
	a.Boot(context.Background())
	err := a.Install(context.Background(), v1.signed, nodeagent.ReaderAtSource{R: bytes.NewReader(v1.image)}, nil)
	var ue *nodeagent.UpdateError
	if !errors.As(err, &ue) || ue.Code != protocol.ReasonEpoch {
		t.Fatalf("re-offer of v1 = %v", err)
	}
}

// TestRevertException: the image in the other slot can be re-activated
// under its own manifest without a download, and goes through probation.
func TestRevertException(t *testing.T) {
	tb := newTestbed(t)
	v1 := tb.release(t, 10, 1, "1.0.0", goodModel, 70000)
	v2 := tb.release(t, 11, 1, "1.1.0", goodModel, 70000)
	f := installed(t, tb, v1)
	if err := tb.lifecycle(t, f, v2); err != nil {
		t.Fatal(err)
	}
	ops := f.Ops()
	if err := tb.lifecycle(t, f, v1); err != nil {
		t.Fatal(err)
	}
	st := status(t, f)
	if activeSlot(st).Seq != 10 || activeSlot(st).State != "confirmed" {
		t.Fatalf("status %+v", st)
	}
	// No image bytes were written: only journal records.
	if used := f.Ops() - ops; used > 12 {
		t.Fatalf("revert used %d flash operations", used)
	}
}

// TestChainedRandomCuts cuts power several times during one update, at
// random operations (seed printed; -sweep.seed to replay), and checks the
// same invariants as the exhaustive sweep.
func TestChainedRandomCuts(t *testing.T) {
	seed := *sweepSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("chained power cuts: seed %d (replay with -sweep.seed=%d)", seed, seed)
	r := rand.New(rand.NewPCG(seed, 0))
	tb := newTestbed(t)
	v1 := tb.release(t, 10, 1, "1.0.0", goodModel, 70000)
	rels := []release{tb.release(t, 11, 2, "1.1.0", goodModel, 80000), tb.release(t, 12, 2, "1.2.0", badModel, 80000)}
	known := map[protocol.Digest]bool{v1.m.Digest: true, rels[0].m.Digest: true, rels[1].m.Digest: true}
	for round := 0; round < 40; round++ {
		end := round % 2
		g := sweepGeometries[r.IntN(len(sweepGeometries))]
		f := newSim(t, g, int64(r.Uint64()))
		if err := tb.lifecycle(t, f, v1); err != nil {
			t.Fatal(err)
		}
		var floor, highest uint64
		cuts := 1 + r.IntN(5)
		for c := 0; c < cuts; c++ {
			mode := flash.CutBefore
			if r.IntN(2) == 1 {
				mode = flash.CutMidway
			}
			f.CutPowerAt(uint64(1+r.IntN(150)), mode)
			err := tb.lifecycle(t, f, rels[end])
			f.PowerOn()
			f.Disarm()
			if err != nil && !errors.Is(err, flash.ErrPowerCut) {
				t.Fatalf("round %d cut %d: %v", round, c, err)
			}
			st, err := tb.checkBootable(t, f, known)
			if err != nil {
				t.Fatalf("round %d cut %d: %v", round, c, err)
			}
			if st.EpochFloor < floor || st.HighestSeq < highest {
				t.Fatalf("round %d: floor or highest seq decreased", round)
			}
			floor, highest = st.EpochFloor, st.HighestSeq
		}
		if err := tb.lifecycle(t, f, rels[end]); err != nil {
			t.Fatalf("round %d finish: %v", round, err)
		}
		st := status(t, f)
		if err := finalCheck(st, rels[end], v1, end == 0); err != nil {
			t.Fatalf("round %d (%d cuts, geometry %v): %v", round, cuts, g, err)
		}
	}
}

// TestJournalCorruptionRepaired: a bit flipped in the newest journal record
// is survived (each record is written twice).
func TestJournalCorruptionRepaired(t *testing.T) {
	tb := newTestbed(t)
	v1 := tb.release(t, 10, 1, "1.0.0", goodModel, 70000)
	f := installed(t, tb, v1)
	before := status(t, f)
	// Find the newest record: flip one bit in each journal byte position in
	// turn on a clone, and check the state never goes backwards.
	l, _ := nodeagent.NewLayout(f, sweepSlot, 4)
	for off := l.JournalOff; off < l.JournalOff+int64(4*4096); off += 37 {
		c := f.Clone()
		c.FlipBit(off, uint(off%8))
		st, err := nodeagent.ReadStatus(c, sweepSlot, 4)
		if err != nil {
			t.Fatalf("flip at %d: %v", off, err)
		}
		if st.BootCount != before.BootCount || st.HighestSeq != before.HighestSeq || activeSlot(st).Seq != activeSlot(before).Seq {
			t.Fatalf("flip at %d changed the state: %+v", off, st)
		}
	}
}

// wearRun performs n updates of a 64 KiB image on one simulated flash and
// returns journal block erases per update, bytes programmed per update
// beyond the image and its header, and the spread of the journal blocks'
// erase counts.
func wearRun(tb testing.TB, n int) (erases, extra, spread float64) {
	bed := newTestbed(tb)
	f := newSim(tb, geometry{4096, 8, 4}, 1)
	img := 64 << 10
	if err := bed.lifecycle(tb, f, bed.release(tb, 10, 1, "1.0", goodModel, img)); err != nil {
		tb.Fatal(err)
	}
	l, _ := nodeagent.NewLayout(f, sweepSlot, 4)
	jblocks := func() uint64 {
		var s uint64
		for i := 0; i < l.JournalBlocks; i++ {
			s += f.EraseCount(i)
		}
		return s
	}
	start, j0 := f.Stats(), jblocks()
	for i := 0; i < n; i++ {
		if err := bed.lifecycle(tb, f, bed.release(tb, uint64(11+i), 1, fmt.Sprintf("1.%d", i), goodModel, img)); err != nil {
			tb.Fatal(err)
		}
	}
	end := f.Stats()
	counts := f.EraseCounts()[:l.JournalBlocks]
	lo, hi := counts[0], counts[0]
	for _, c := range counts {
		lo, hi = min(lo, c), max(hi, c)
	}
	return float64(jblocks()-j0) / float64(n),
		float64(end.BytesProgrammed-start.BytesProgrammed-uint64(n*(img+2048))) / float64(n), float64(hi - lo)
}

// TestWearOver1000Updates: at most 2 journal block erases per update, and
// even wear across the journal's blocks after 1,000 updates.
func TestWearOver1000Updates(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 updates")
	}
	erases, extra, spread := wearRun(t, 1000)
	t.Logf("1,000 updates of 64 KiB: %.2f journal block erases and %.0f bytes programmed beyond the image per update; journal erase counts within %.0f", erases, extra, spread)
	if erases > 2 || spread > 1 {
		t.Fatalf("wear: %.2f erases per update, spread %.0f", erases, spread)
	}
}

// BenchmarkUpdateWear is one whole update (download, verify, activate,
// probation, confirm) per iteration, with its flash wear.
func BenchmarkUpdateWear(b *testing.B) {
	erases, extra, _ := wearRun(b, b.N)
	b.ReportMetric(erases, "journal-erases/update")
	b.ReportMetric(extra, "extra-bytes/update")
}
