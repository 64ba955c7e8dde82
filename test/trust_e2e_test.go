package test

import (
	"encoding/json"
	"strings"
	"testing"

	"edgeota/protocol"
	"edgeota/test/testutil"
)

// TestTrustRotationOverTheAir: a gateway and two real node processes
// trust manifest key A and root R. The nodes run v1, signed by A. While
// they are down, v2, signed by A, is assigned to them, then a trust update
// signed by R (version 1: manifest key B only) is pushed to the gateway,
// which takes it at once (it caches no more models signed by A). Started
// again, each node takes the trust update before its manifest, applies it
// (its flash says trust version 1), refuses v2 for its signature (a status
// event with reason code signature, "unknown kid") and keeps running v1,
// whose image it held before the rotation; then v3, signed by B, installs.
// A second rotation, to C, reaches the nodes while they run.
func TestTrustRotationOverTheAir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, k := range []string{"op", "opb", "opc", "root"} {
		mustRun(t, dir, "keygen", "--out", k)
	}
	signModel(t, dir, "op", "v1", goodModel, 40_000, 1, 0)
	signModel(t, dir, "op", "v2", goodModel, 50_000, 2, 0)
	signModel(t, dir, "opb", "v3", goodModel, 60_000, 3, 0)
	signModel(t, dir, "op", "v4", goodModel, 30_000, 4, 0)
	signModel(t, dir, "opc", "v5", goodModel, 45_000, 5, 0)
	gw := startAttackGateway(t, dir, "--trust", "op.pub", "--trust-root", "root.pub")
	ids := []string{"r1", "r2"}
	nodeArgs := func(id string) []string {
		return []string{"node", "--id", id, "--flash", id + ".flash", "--slot-size", attackSlotSize,
			"--class", class, "--component", "kws", "--trust", "op.pub", "--trust-root", "root.pub", "--labels", "hw=rev2",
			"--gateway", "coap://" + gw.coap, "--inference-rate", "100", "--health-interval", "500ms", "--poll-interval", "2s"}
	}
	f := &attackFleet{t: t, dir: dir, gw: gw, ids: ids, procs: map[string]*loggedProc{}}
	start := func(run string) {
		for _, id := range ids {
			f.procs[id] = startLogged(t, dir, "node "+id+" "+run, nodeArgs(id)...)
		}
	}
	start("(run 1)")
	f.push("v1", true)
	f.waitRunning(1)

	for _, id := range ids {
		f.procs[id].stop()
	}
	f.push("v2", true)
	mustRun(t, dir, "trust", "sign", "--version", "1", "--manifest-key", "opb.pub", "--root-key", "root.pub", "--root", "root.key", "-o", "t1.cose")
	if _, errs, code := run(t, dir, "trust", "push", "--admin", gw.admin, "op.pub"); code == 0 {
		t.Fatalf("the gateway took a public key file as a trust update: %s", errs)
	}
	mustRun(t, dir, "trust", "push", "--admin", gw.admin, "t1.cose")
	if _, errs, code := run(t, dir, "model", "push", "--admin", gw.admin, "--manifest", "v4.cose", "--image", "v4.bin"); code == 0 {
		t.Fatal("the gateway cached a model signed by the removed key A after the rotation")
	} else if !strings.Contains(errs, "unknown kid") {
		t.Fatalf("model signed by A refused for another reason: %s", errs)
	}

	start("(run 2)")
	f.expectRefused(protocol.ReasonSignature.String(), "unknown kid", 1)
	for _, id := range ids {
		if v := trustVersion(t, dir, id); v != 1 {
			t.Fatalf("node %s: trust version %d, want 1", id, v)
		}
	}
	f.push("v3", true)
	f.waitRunning(3)

	// A second rotation, B to C, while the nodes run: they get it from the
	// gateway's notification (or their poll) and apply it, and a model
	// signed by C installs.
	mustRun(t, dir, "trust", "sign", "--version", "2", "--manifest-key", "opc.pub", "--root-key", "root.pub", "--root", "root.key", "-o", "t2.cose")
	mustRun(t, dir, "trust", "push", "--admin", gw.admin, "t2.cose")
	testutil.Eventually(t, "every running node to apply trust version 2", func() bool {
		for _, id := range ids {
			if trustVersion(t, dir, id) != 2 {
				return false
			}
		}
		return true
	})
	f.push("v5", true)
	f.waitRunning(5)
}

// trustVersion reads the trust version a node's flash holds.
func trustVersion(t *testing.T, dir, id string) uint64 {
	t.Helper()
	out := mustRun(t, dir, "node", "status", "--flash", id+".flash", "--slot-size", attackSlotSize, "--json")
	var st struct {
		TrustVersion uint64 `json:"trust_version"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("node status of %s %q: %v", id, out, err)
	}
	return st.TrustVersion
}
