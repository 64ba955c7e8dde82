package nodeagent_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"edgeota/firmware-sim/flash"
	"edgeota/nodeagent"
	"edgeota/nodeagent/simmodel"
	"edgeota/protocol"
	"edgeota/protocol/sign"
	"edgeota/protocol/trust"
)

var sweepSeed = flag.Uint64("sweep.seed", 0, "seed of the chained random power cuts (0: from the clock, printed)")

// virtualClock runs time forward as fast as the agent waits.
type virtualClock struct{ now time.Time }

func (c *virtualClock) Now() time.Time { return c.now }
func (c *virtualClock) After(d time.Duration) <-chan time.Time {
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

var testClass = protocol.Class{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}

const sweepSlot = 96 << 10

// release is a signed model: its manifest and image.
type release struct {
	signed []byte
	image  []byte
	m      *protocol.Manifest
	delta  []byte // the delta offered with signed (withDelta), nil for none
}

type testbed struct {
	signer *sign.Signer
	trust  *sign.TrustStore
	roots  []trust.Key // the node's roots (WithRoots), none by default
}

func newTestbed(t testing.TB) *testbed {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	s, err := sign.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := sign.NewTrustStore(sign.RoleManifest, priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return &testbed{signer: s, trust: ts}
}

// release makes a model image of size bytes whose behaviour is header, and
// signs it.
func (tb *testbed) release(t testing.TB, seq, epoch uint64, version, header string, size int) release {
	t.Helper()
	img := make([]byte, size)
	r := rand.New(rand.NewPCG(seq, 99))
	for i := range img {
		img[i] = byte(r.Uint32())
	}
	copy(img, header+"\n")
	m := &protocol.Manifest{Format: 1, Seq: seq, Component: "kws-model", Version: version, Digest: sha256.Sum256(img),
		Size: uint64(len(img)), Class: testClass, Epoch: epoch,
		Probation: &protocol.Probation{Seconds: 20, MinInferences: 200, MaxErrorPermille: ptr(50), MaxP99Micros: ptr(60000)}}
	signed, err := tb.signer.SignManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	return release{signed: signed, image: img, m: m}
}

func ptr(v uint64) *uint64 { return &v }

// The models of the sweeps. On the virtual clock at 50 inferences/s, a
// release's probation (20 s) judges 1000 inferences, drawn by the runtime's
// seed 0: the same in every run. For any seed, goodModel breaks 50
// per-mille only with 51 errors of 1000 (P = 6e-53 by the binomial) and
// the 60 ms p99 only with 11 latencies of 1000 over 59.4 ms, the edge of
// the histogram bucket that rounds up past 60 ms (each 1.3e-4: P = 5e-18);
// badModel passes 50 per-mille only with at most 50 errors of 1000 (P =
// 5e-89).
const (
	goodModel = "edgeota-sim-model error_permille=2 p50_us=9000 p99_us=30000 ram_bytes=100000 crash_on_boot=0"
	badModel  = "edgeota-sim-model error_permille=300 p50_us=9000 p99_us=30000 ram_bytes=100000 crash_on_boot=0"
)

// journalBlocks is the journal size the flash's geometry needs.
func journalBlocks(f nodeagent.Flash) int {
	if f.EraseSize() < 4096 {
		return 8
	}
	return 4
}

func (tb *testbed) agent(t testing.TB, f nodeagent.Flash) (*nodeagent.Agent, error) {
	return nodeagent.New(nodeagent.Config{NodeID: "node-1", Class: testClass, Flash: f, Trust: tb.trust, Models: simmodel.Runtime{}.ForAgent(),
		Roots: tb.roots, SlotSize: sweepSlot, JournalBlocks: journalBlocks(f), Checkpoint: 16 << 10, InferenceRate: 50,
		HealthInterval: 5 * time.Second, Clock: &virtualClock{now: time.Unix(1795000000, 0)}})
}

// lifecycle is one power-on of the node until its update is settled: boot,
// finish a trial left pending, then take the offered release (the gateway
// goes on offering it) unless the node runs it or refuses it.
func (tb *testbed) lifecycle(t testing.TB, f nodeagent.Flash, rel release) error {
	return tb.lifecycleFrom(t, f, rel, rel.source())
}

// lifecycleFrom is lifecycle with the release's bytes from src.
func (tb *testbed) lifecycleFrom(t testing.TB, f nodeagent.Flash, rel release, src nodeagent.ImageSource) error {
	ctx := context.Background()
	a, err := tb.agent(t, f)
	if err != nil {
		return err
	}
	if err := a.Boot(ctx); err != nil {
		return err
	}
	if err := a.Settle(ctx); err != nil {
		return err
	}
	if run := a.Device().Running(); run != nil && run.Manifest.Seq == rel.m.Seq {
		return nil
	}
	err = a.Install(ctx, rel.signed, src, nil)
	var ue *nodeagent.UpdateError
	if errors.As(err, &ue) && ue.Code == protocol.ReasonSeq {
		return nil // already tried and reverted: no update loop
	}
	if err != nil {
		return err
	}
	if err := a.Boot(ctx); err != nil {
		return err
	}
	return a.Settle(ctx)
}

// checkBootable boots a fresh agent (as the device would after power
// returns) and checks that it runs an image whose bytes match its signed
// manifest, judged independently of the agent.
func (tb *testbed) checkBootable(t testing.TB, f *flash.Sim, known map[protocol.Digest]bool) (*nodeagent.Status, error) {
	probe := f.Clone()
	a, err := tb.agent(t, probe)
	if err != nil {
		return nil, err
	}
	run, err := a.Device().Boot()
	if err != nil {
		return nil, fmt.Errorf("boot after power cut: %w", err)
	}
	l, _ := nodeagent.NewLayout(probe, sweepSlot, journalBlocks(probe))
	data := make([]byte, run.Manifest.Size)
	if _, err := probe.ReadAt(data, l.Slots[run.Slot].DataOff); err != nil {
		return nil, err
	}
	if sha256.Sum256(data) != run.Manifest.Digest || !known[run.Manifest.Digest] {
		return nil, fmt.Errorf("booted slot %s does not hold a verified known image", run.Slot)
	}
	return nodeagent.ReadStatus(f, sweepSlot, journalBlocks(f))
}

type geometry struct{ erase, write, journal int }

var sweepGeometries = []geometry{{4096, 8, 4}, {4096, 1, 4}, {1024, 16, 8}}

func newSim(t testing.TB, g geometry, seed int64) *flash.Sim {
	f, err := flash.New(nodeagent.FlashSize(sweepSlot, g.erase, g.journal), flash.WithEraseSize(g.erase), flash.WithWriteSize(g.write), flash.WithSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// finalCheck checks the ending of an update.
func finalCheck(st *nodeagent.Status, want release, old release, good bool) error {
	active := st.Slots[0]
	if st.Active == "B" {
		active = st.Slots[1]
	}
	if active.State != "confirmed" {
		return fmt.Errorf("active slot %s is %s", st.Active, active.State)
	}
	if good && active.Seq != want.m.Seq {
		return fmt.Errorf("ends on seq %d, want the new %d", active.Seq, want.m.Seq)
	}
	if !good {
		if active.Seq != old.m.Seq {
			return fmt.Errorf("ends on seq %d, want the old %d", active.Seq, old.m.Seq)
		}
		for _, s := range st.Slots {
			if s.Seq == want.m.Seq && s.State != "invalid" {
				return fmt.Errorf("reverted image left %s", s.State)
			}
		}
	}
	if st.Pending != "" {
		return fmt.Errorf("still pending %s", st.Pending)
	}
	return nil
}

// TestPowerCutSweep cuts power at every flash operation of a complete
// update, both before the operation and in its middle, for both endings and
// several geometries, and checks the node always boots a verified image and
// ends where the ending demands.
func TestPowerCutSweep(t *testing.T) {
	tb := newTestbed(t)
	v1 := tb.release(t, 10, 1, "1.0.0", goodModel, 70000)
	endings := []struct {
		name string
		rel  release
		good bool
	}{
		{"confirm", tb.release(t, 11, 2, "1.1.0", goodModel, 80000), true},
		{"revert", tb.release(t, 12, 2, "1.2.0-bad", badModel, 80000), false},
	}
	for _, g := range sweepGeometries {
		for _, end := range endings {
			name := fmt.Sprintf("erase%d-write%d-%s", g.erase, g.write, end.name)
			t.Run(name, func(t *testing.T) {
				sweep(t, tb, g, name, v1, end.rel, end.good, 1, tb.lifecycle)
			})
		}
	}
}

// sweep cuts the power at every stride-th flash operation (7 times fewer
// under -short) of the update to rel that life runs on a device holding
// v1, in both cut modes, and checks that the device boots an image that
// verifies and that running life again ends the update as good says.
func sweep(t *testing.T, tb *testbed, g geometry, name string, v1, rel release, good bool, stride uint64, life func(t testing.TB, f nodeagent.Flash, rel release) error) {
	base := newSim(t, g, 1)
	if err := tb.lifecycle(t, base, v1); err != nil {
		t.Fatalf("install v1: %v", err)
	}
	known := map[protocol.Digest]bool{v1.m.Digest: true, rel.m.Digest: true}
	// Count the operations of the whole update.
	count := base.Clone()
	before := count.Ops()
	if err := life(t, count, rel); err != nil {
		t.Fatal(err)
	}
	n := count.Ops() - before
	st, _ := nodeagent.ReadStatus(count, sweepSlot, g.journal)
	if err := finalCheck(st, rel, v1, good); err != nil {
		t.Fatalf("uncut update: %v", err)
	}
	unbootable, failures := 0, 0
	step := stride
	if testing.Short() {
		step = 7 * stride // go test -short samples; make test runs the whole sweep
	}
	cuts := 0
	for i := uint64(1); i <= n; i += step {
		cuts += 2
		for _, mode := range []flash.CutMode{flash.CutBefore, flash.CutMidway} {
			f := base.Clone()
			f.CutPowerAt(i, mode)
			err := life(t, f, rel)
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
			if err := life(t, f, rel); err != nil {
				failures++
				t.Errorf("cut %d %v: finishing: %v", i, mode, err)
				continue
			}
			st, err := nodeagent.ReadStatus(f, sweepSlot, g.journal)
			if err == nil {
				err = finalCheck(st, rel, v1, good)
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
	fmt.Printf("power-cut sweep: %d cut points, %d unbootable (%s, %d ops x 2 cut modes, %d wrong endings)\n",
		cuts, unbootable, name, n, failures)
}
