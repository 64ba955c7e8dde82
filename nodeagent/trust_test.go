package nodeagent_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"testing"

	"edgeota/nodeagent"
	"edgeota/nodeagent/simmodel"
	"edgeota/protocol"
	"edgeota/protocol/sign"
	"edgeota/protocol/trust"
)

// TestApplyTrustRefusals: each bad trust update is refused with reason
// trust and its cause, and leaves the node's keys, roots and version as
// they were: a manifest signed by the old key still verifies, one signed
// by the new key does not, and the good update still applies afterwards.
func TestApplyTrustRefusals(t *testing.T) {
	r := newRotation(t)
	root := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{10}, 32))
	signWith := func(priv ed25519.PrivateKey, version uint64) []byte {
		s, err := sign.NewSigner(priv)
		if err != nil {
			t.Fatal(err)
		}
		b, err := trust.Sign(&trust.Update{Format: trust.Format, Version: version,
			ManifestKeys: []trust.Key{mustKey(other.Public().(ed25519.PublicKey))},
			RootKeys:     []trust.Key{mustKey(root.Public().(ed25519.PublicKey))}, Threshold: 1}, s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// rawSign signs an update as it is, even one Encode would refuse.
	rawSign := func(u *trust.Update) []byte {
		s, _ := sign.NewSigner(root)
		payload, err := protocol.EncMode().Marshal(u)
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.Sign(trust.ContentType, payload)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rootKey := mustKey(root.Public().(ed25519.PublicKey))
	tests := []struct {
		name   string
		roots  bool // the node has the root
		signed []byte
		want   error
	}{
		{"node without roots", false, r.update, trust.ErrNoRoot},
		{"signed by a key that is no root", true, signWith(other, 5), sign.ErrUnknownKey},
		{"no manifest key", true, rawSign(&trust.Update{Format: 1, Version: 3, ManifestKeys: []trust.Key{}, DeploymentKeys: []trust.Key{},
			RootKeys: []trust.Key{rootKey}, Threshold: 1}), protocol.ErrInvalid},
		{"algorithm does not match the key", true, rawSign(&trust.Update{Format: 1, Version: 3, DeploymentKeys: []trust.Key{},
			ManifestKeys: []trust.Key{{Alg: -7, Public: rootKey.Public}}, RootKeys: []trust.Key{rootKey}, Threshold: 1}), protocol.ErrInvalid},
		{"not CBOR", true, []byte{0xd2, 0x84, 0xff}, sign.ErrMalformed},
		{"a manifest, not a trust update", true, r.oldByA.signed, sign.ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := *r.tb
			if !tt.roots {
				tb.roots = nil
			}
			f := newSim(t, sweepGeometries[0], 1)
			a, err := tb.agent(t, f)
			if err != nil {
				t.Fatal(err)
			}
			_, err = a.Device().ApplyTrust(tt.signed)
			if !errors.Is(err, tt.want) || !nodeagent.IsTrustRefusal(err) {
				t.Fatalf("got %v, want a trust refusal for %v", err, tt.want)
			}
			// Nothing changed, on flash either.
			a, err = tb.agent(t, f)
			if err != nil {
				t.Fatal(err)
			}
			d := a.Device()
			if _, err := d.Trust().VerifyManifest(r.oldByA.signed); err != nil || d.TrustVersion() != 0 {
				t.Fatalf("after the refusal: version %d, old key %v", d.TrustVersion(), err)
			}
			st, _ := nodeagent.ReadStatus(f, sweepSlot, sweepGeometries[0].journal)
			if st.LastCode != protocol.ReasonTrust.String() {
				t.Fatalf("last reason %q, want trust", st.LastCode)
			}
			if tt.roots {
				if _, err := d.ApplyTrust(r.update); err != nil {
					t.Fatalf("the good update after the refusal: %v", err)
				}
				if _, err := d.ApplyTrust(r.update); !errors.Is(err, trust.ErrVersion) {
					t.Fatalf("the good update again: %v, want ErrVersion", err)
				}
			}
		})
	}
}

// TestTrustSurvivesReboot: the trust set lives in the journal: a node
// that reboots with the keys it was started with still verifies with the
// rotated ones, boots the image signed by the removed key that it held
// then, and sends a status event of state trusted naming the root.
func TestTrustSurvivesReboot(t *testing.T) {
	r := newRotation(t)
	f := newSim(t, sweepGeometries[0], 1)
	if err := r.tb.lifecycle(t, f, r.oldByA); err != nil {
		t.Fatal(err)
	}
	var got []protocol.StatusEvent
	a, err := nodeagent.New(nodeagent.Config{NodeID: "node-1", Class: testClass, Flash: f, Trust: r.tb.trust, Roots: r.tb.roots,
		Models: simmodel.Runtime{}.ForAgent(), SlotSize: sweepSlot, JournalBlocks: 4, Reporter: statusRecorder{&got}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := a.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.ApplyTrust(ctx, r.update); err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || got[len(got)-1].State != protocol.StateTrusted || got[len(got)-1].Actor != r.tb.roots[0].ID().String() {
		t.Fatalf("status events %+v, want the last one trusted by the root", got)
	}
	b, err := r.tb.agent(t, f)
	if err != nil {
		t.Fatal(err)
	}
	run, err := b.Device().Boot()
	if err != nil || run.Manifest.Seq != r.oldByA.m.Seq {
		t.Fatalf("boot after the rotation: %+v %v, want the image signed by A", run, err)
	}
	if _, err := b.Device().Trust().VerifyManifest(r.newByB.signed); err != nil {
		t.Fatalf("after reboot, key B: %v", err)
	}
}

// statusRecorder is a Reporter that keeps the status events.
type statusRecorder struct{ got *[]protocol.StatusEvent }

func (statusRecorder) Hello(context.Context, *protocol.Hello) error { return nil }

func (r statusRecorder) Status(_ context.Context, e *protocol.StatusEvent) error {
	*r.got = append(*r.got, *e)
	return nil
}

func (statusRecorder) Health(context.Context, *protocol.HealthReport) error { return nil }
