package nodeagent_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"

	"edgeota/firmware-sim/flash"
	"edgeota/nodeagent"
	"edgeota/protocol"
	"edgeota/protocol/sign"
	"edgeota/protocol/trust"
)

// rotation is a node rotated from manifest key A (the testbed's) to key
// B by a trust update signed by its root.
type rotation struct {
	tb     *testbed // signs with A; the node starts trusting A, with the root
	b      *testbed // signs with B
	update []byte   // version 1: manifest keys {B}, the same root
	oldByA release  // installed before the rotation
	newByB release  // offered after it
	stale  release  // signed by A after the rotation: refused
}

func newRotation(t testing.TB) *rotation {
	rootPriv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	root := mustKey(rootPriv.Public().(ed25519.PublicKey))
	tb := newTestbed(t)
	tb.roots = []trust.Key{root}
	bPriv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32))
	bs, err := sign.NewSigner(bPriv)
	if err != nil {
		t.Fatal(err)
	}
	b := &testbed{signer: bs, trust: tb.trust, roots: tb.roots}
	rs, err := sign.NewSigner(rootPriv)
	if err != nil {
		t.Fatal(err)
	}
	upd, err := trust.Sign(&trust.Update{Format: trust.Format, Version: 1, Issued: 1795000000,
		ManifestKeys: []trust.Key{mustKey(bPriv.Public().(ed25519.PublicKey))},
		RootKeys:     []trust.Key{root}, Threshold: 1}, rs)
	if err != nil {
		t.Fatal(err)
	}
	return &rotation{tb: tb, b: b, update: upd,
		oldByA: tb.release(t, 10, 1, "1.0.0", goodModel, 70000),
		newByB: b.release(t, 11, 1, "1.1.0", goodModel, 80000),
		stale:  tb.release(t, 12, 1, "1.2.0", goodModel, 60000)}
}

// lifecycle is one power-on after the rotation was pushed: boot, settle a
// pending trial, apply the trust update unless the node holds it, then
// take the release signed by B unless it runs it.
func (r *rotation) lifecycle(t testing.TB, f nodeagent.Flash) error {
	ctx := context.Background()
	a, err := r.tb.agent(t, f)
	if err != nil {
		return err
	}
	if err := a.Boot(ctx); err != nil {
		return err
	}
	if err := a.Settle(ctx); err != nil {
		return err
	}
	if a.Device().TrustVersion() == 0 {
		if _, err := a.Device().ApplyTrust(r.update); err != nil {
			return err
		}
	}
	if run := a.Device().Running(); run != nil && run.Manifest.Seq == r.newByB.m.Seq {
		return nil
	}
	if err := a.Install(ctx, r.newByB.signed, nodeagent.ReaderAtSource{R: bytes.NewReader(r.newByB.image)}, nil); err != nil {
		return err
	}
	if err := a.Boot(ctx); err != nil {
		return err
	}
	return a.Settle(ctx)
}

// trustSet tells which trust set a (powered-on) flash holds, judged by
// what its device verifies: "old" (A, version 0) or "new" (B, version 1).
func (r *rotation) trustSet(t testing.TB, f *flash.Sim) (string, error) {
	a, err := r.tb.agent(t, f.Clone())
	if err != nil {
		return "", err
	}
	d := a.Device()
	_, errA := d.Trust().VerifyManifest(r.stale.signed)
	_, errB := d.Trust().VerifyManifest(r.newByB.signed)
	switch v := d.TrustVersion(); {
	case v == 0 && errA == nil && errors.Is(errB, sign.ErrUnknownKey):
		return "old", nil
	case v == 1 && errB == nil && errors.Is(errA, sign.ErrUnknownKey):
		return "new", nil
	default:
		return "", fmt.Errorf("trust version %d, key A: %v, key B: %v", v, errA, errB)
	}
}

// TestPowerCutSweepTrust cuts power at every flash operation of a trust
// update and of the install that follows it (signed by the new key), in
// both cut modes and every geometry. After each cut the node holds either
// the old trust set or the new one, whole, boots a verified image (the one
// signed by the removed key included), and finishing the lifecycle ends on
// the new key's release; a manifest signed by the removed key is then
// refused.
func TestPowerCutSweepTrust(t *testing.T) {
	r := newRotation(t)
	for _, g := range sweepGeometries {
		name := fmt.Sprintf("erase%d-write%d", g.erase, g.write)
		t.Run(name, func(t *testing.T) {
			base := newSim(t, g, 1)
			if err := r.tb.lifecycle(t, base, r.oldByA); err != nil {
				t.Fatalf("install the release signed by A: %v", err)
			}
			known := map[protocol.Digest]bool{r.oldByA.m.Digest: true, r.newByB.m.Digest: true}
			count := base.Clone()
			before := count.Ops()
			if err := r.lifecycle(t, count); err != nil {
				t.Fatal(err)
			}
			n := count.Ops() - before
			if err := r.finalCheck(t, count, g); err != nil {
				t.Fatalf("uncut rotation: %v", err)
			}
			seen := map[string]int{}
			failures := 0
			step := uint64(1)
			if testing.Short() {
				step = 7 // go test -short samples; make test runs the whole sweep
			}
			cuts := 0
			for i := uint64(1); i <= n; i += step {
				for _, mode := range []flash.CutMode{flash.CutBefore, flash.CutMidway} {
					cuts++
					f := base.Clone()
					f.CutPowerAt(i, mode)
					if err := r.lifecycle(t, f); !errors.Is(err, flash.ErrPowerCut) {
						t.Errorf("cut %d %v: lifecycle returned %v, want the power cut", i, mode, err)
						failures++
						continue
					}
					f.PowerOn()
					f.Disarm()
					set, err := r.trustSet(t, f)
					if err == nil {
						seen[set]++
						_, err = r.tb.checkBootable(t, f, known)
					}
					if err == nil {
						err = r.lifecycle(t, f)
					}
					if err == nil {
						err = r.finalCheck(t, f, g)
					}
					if err != nil {
						failures++
						t.Errorf("cut %d %v: %v", i, mode, err)
					}
				}
			}
			if seen["old"] == 0 || seen["new"] == 0 {
				t.Errorf("cuts left the old trust set %d times and the new one %d times: the sweep does not straddle the trust update", seen["old"], seen["new"])
			}
			fmt.Printf("power-cut sweep: %d cut points, %d old and %d new trust sets (trust-%s, %d ops x 2 cut modes, %d wrong endings)\n",
				cuts, seen["old"], seen["new"], name, n, failures)
		})
	}
}

// finalCheck: the node runs the release signed by B, confirmed, holds
// trust version 1 and refuses a manifest signed by A (reason signature).
func (r *rotation) finalCheck(t testing.TB, f nodeagent.Flash, g geometry) error {
	st, err := nodeagent.ReadStatus(f, sweepSlot, g.journal)
	if err != nil {
		return err
	}
	if err := finalCheck(st, r.newByB, r.oldByA, true); err != nil {
		return err
	}
	a, err := r.tb.agent(t, f)
	if err != nil {
		return err
	}
	if v := a.Device().TrustVersion(); v != 1 {
		return fmt.Errorf("trust version %d, want 1", v)
	}
	if err := a.Boot(context.Background()); err != nil {
		return err
	}
	_, err = a.Device().Begin(r.stale.signed)
	var ue *nodeagent.UpdateError
	if !errors.As(err, &ue) || ue.Code != protocol.ReasonSignature || !errors.Is(err, sign.ErrUnknownKey) {
		return fmt.Errorf("a manifest signed by the removed key: %v, want refused for its signature", err)
	}
	return nil
}

func mustKey(pub crypto.PublicKey) trust.Key {
	k, err := trust.KeyOf(pub)
	if err != nil {
		panic(err)
	}
	return k
}
