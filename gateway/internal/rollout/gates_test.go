package rollout

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"edgeota/protocol"
)

// report sends a health report of node id on seq.
func (fx *fixture) report(id string, seq, inferences, errors, p99 uint64, metrics map[string]int64) {
	fx.t.Helper()
	fx.number++
	if err := fx.e.Health(&protocol.HealthReport{NodeID: id, RunningSeq: seq, Inferences: inferences, Errors: errors,
		LatencyP99Micros: p99, Metrics: metrics, Number: fx.number}, fx.now).Wait(); err != nil {
		fx.t.Fatal(err)
	}
}

// confirm has node id boot the new manifest on trial and confirm it.
func (fx *fixture) confirm(id string) {
	fx.t.Helper()
	for _, st := range []protocol.SlotState{protocol.SlotTrial, protocol.SlotConfirmed} {
		if err := fx.e.Hello(fx.info(id, newSeq, newDigest, st), fx.prevOf, fx.now).Wait(); err != nil {
			fx.t.Fatal(err)
		}
	}
}

// revert has node id boot the new manifest on trial and revert it with
// the reason code.
func (fx *fixture) revert(id string, code protocol.Reason) {
	fx.t.Helper()
	fx.number++
	fx.e.Hello(fx.info(id, newSeq, newDigest, protocol.SlotTrial), fx.prevOf, fx.now)
	if err := fx.e.Status(&protocol.StatusEvent{NodeID: id, State: protocol.StateReverted, Seq: newSeq, Code: code,
		Number: fx.number}, fx.now).Wait(); err != nil {
		fx.t.Fatal(err)
	}
}

// TestGates: each gate fails a node (per-node gates) or the deployment
// (max_boot_loops) on a breach of its bound, and lets it through at the
// bound itself. The node under test, n00, confirms the new manifest and
// sends two health reports of 100 inferences; its soak then ends.
func TestGates(t *testing.T) {
	const node = "n00"
	// soak confirms n00 with the two reports given and ends its soak.
	soak := func(errs [2]uint64, p99 uint64, metrics map[string]int64) func(fx *fixture) {
		return func(fx *fixture) {
			fx.confirm(node)
			for _, e := range errs {
				fx.report(node, newSeq, 100, e, p99, metrics)
			}
			fx.advance(61 * time.Second)
		}
	}
	// regress reports a p99 of 20 ms on the previous manifest, then soaks
	// n00 with p99.
	regress := func(p99 uint64) func(fx *fixture) {
		return func(fx *fixture) {
			fx.report(node, prevSeq, 100, 0, 20000, nil)
			soak([2]uint64{}, p99, nil)(fx)
		}
	}
	// bootLoops has k nodes revert the new manifest for a boot loop.
	bootLoops := func(k int) func(fx *fixture) {
		return func(fx *fixture) {
			for i := range k {
				fx.revert(fmt.Sprintf("n%02d", i+1), protocol.ReasonBootLoop)
			}
		}
	}
	low := func(v int64) map[string]int64 { return map[string]int64{"low_confidence_permille": v} }
	tests := []struct {
		name  string
		gates protocol.Gates
		drive func(fx *fixture)
		fires string // in the node's reason or the deployment's decision; "" for none
	}{
		{"max_latency_p99 at its bound", protocol.Gates{MaxLatencyP99Micros: u(50000)}, soak([2]uint64{}, 50000, nil), ""},
		{"max_latency_p99 breached", protocol.Gates{MaxLatencyP99Micros: u(50000)}, soak([2]uint64{}, 50001, nil), "over max_latency_p99"},
		{"max_latency_regression at its bound", protocol.Gates{MaxLatencyRegressionPermille: u(1200)}, regress(24000), ""},
		{"max_latency_regression breached", protocol.Gates{MaxLatencyRegressionPermille: u(1200)}, regress(24001), "over max_latency_regression 1.200"},
		{"max_latency_regression without a baseline", protocol.Gates{MaxLatencyRegressionPermille: u(1200)}, soak([2]uint64{}, 90000, nil), ""},
		{"max_error_rate at its bound", protocol.Gates{MaxErrorPermille: u(50)}, soak([2]uint64{5, 5}, 20000, nil), ""},
		{"max_error_rate breached", protocol.Gates{MaxErrorPermille: u(50)}, soak([2]uint64{5, 6}, 20000, nil), "11 errors in 200 inferences, over max_error_rate 0.050"},
		{"metric at its bound", protocol.Gates{Metrics: low(50)}, soak([2]uint64{}, 20000, low(50)), ""},
		{"metric breached", protocol.Gates{Metrics: low(50)}, soak([2]uint64{}, 20000, low(51)), "metric low_confidence_permille 51 over 50"},
		{"metric not reported", protocol.Gates{Metrics: low(50)}, soak([2]uint64{}, 20000, map[string]int64{"drift": 99}), ""},
		{"max_boot_loops at its bound", protocol.Gates{MaxBootLoops: u(1)}, bootLoops(1), ""},
		{"max_boot_loops breached", protocol.Gates{MaxBootLoops: u(1)}, bootLoops(2), "over max_boot_loops 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := setup(t, 10, func(d *protocol.Deployment) {
				d.Waves = []protocol.Wave{{BasisPoints: 10000, BakeSeconds: 60}}
				d.Gates = tt.gates
				d.Gates.MinReports = u(2)
			})
			tt.drive(fx)
			st := fx.status()
			var n NodeView
			for _, v := range fx.nodes("dep") {
				if v.ID == node {
					n = v
				}
			}
			bootLoop := tt.gates.MaxBootLoops != nil
			switch {
			case bootLoop && tt.fires == "":
				if st.Phase != Running {
					t.Fatalf("phase %s, want running", st.Phase)
				}
			case bootLoop:
				if st.Phase != RolledBack || !fx.decided("dep", tt.fires) {
					t.Fatalf("phase %s, decisions %+v; want rolled-back saying %q", st.Phase, st.Decisions, tt.fires)
				}
			case tt.fires == "":
				if n.State != NodeSucceeded {
					t.Fatalf("%s is %s (%s), want succeeded", node, n.State, n.Reason)
				}
			default:
				if n.State != NodeFailed || !strings.Contains(n.Reason, tt.fires) {
					t.Fatalf("%s is %s (%s), want failed saying %q", node, n.State, n.Reason, tt.fires)
				}
			}
		})
	}
}

// TestRollbackTarget: in a rollback every touched node is given back the
// manifest it ran; when the gateway does not know it, the deployment's
// rollback_manifest; with neither, the node is left as it is and shown
// rollback-stuck, never assigned anything.
func TestRollbackTarget(t *testing.T) {
	tests := []struct {
		name     string
		prev     []byte // what the gateway knows each node ran; nil: unknown
		rollback []byte // the deployment's rollback_manifest
		want     string // assigned back; "" for none: rollback-stuck
	}{
		{name: "previous manifest known", prev: []byte("PREV"), rollback: []byte("RB"), want: "PREV"},
		{name: "rollback_manifest", rollback: []byte("RB"), want: "RB"},
		{name: "neither"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev := map[string][]byte{}
			for i := range 20 {
				prev[fmt.Sprintf("n%02d", i)] = tt.prev
			}
			fx := setupWith(t, 20, options{edit: func(d *protocol.Deployment) { d.RollbackManifest = tt.rollback }, prev: prev})
			w1 := fx.assignedNew()
			fx.revert(w1[0], protocol.ReasonProbationErrors)
			st := fx.status()
			if st.Phase != RolledBack {
				t.Fatalf("phase %s, want rolled-back", st.Phase)
			}
			for _, id := range w1 {
				got := ""
				if m := fx.fk().assigned[id]; string(m) != "NEW" {
					got = string(m)
				}
				if got != tt.want {
					t.Errorf("%s assigned back %q, want %q", id, got, tt.want)
				}
			}
			if tt.want == "" {
				if n := st.Totals[string(NodeStuck)]; n != len(w1) {
					t.Fatalf("%d nodes rollback-stuck, want %d: %v", n, len(w1), st.Totals)
				}
				for _, n := range fx.nodes("dep") {
					if n.State == NodeStuck && !strings.Contains(n.Reason, "no previous manifest known and no rollback_manifest") {
						t.Errorf("%s is rollback-stuck saying %q", n.ID, n.Reason)
					}
				}
			}
		})
	}
}
