package rollout

import (
	"testing"
	"time"

	"edgeota/protocol"
)

// listOf is a node list for Start that lists nodes.
func listOf(nodes []NodeInfo) func() ([]NodeInfo, error) {
	return func() ([]NodeInfo, error) { return nodes, nil }
}

// TestHelloDuringStartJoins: a node whose Hello reaches the engine while
// Start lists the nodes, too late to be in the list, joins the rollout.
// The gateway once read the list before Start: a Hello taken between the
// two found no rollout to join, and the node, on its old model with no
// reason to say Hello again, was never assigned (the external DTLS
// simulator test saw a rollout complete with 3 of its 4 nodes, the fourth
// left on v1). Start lists the nodes while it takes no Hello; the check
// that the engine's lock is held makes the test fail at once when it does
// not, whatever the goroutines' timing.
func TestHelloDuringStartJoins(t *testing.T) {
	f := &fake{t: t}
	e := NewEngine(f, f)
	now := time.Unix(1795000000, 0)
	m := &protocol.Manifest{Format: 1, Seq: newSeq, Component: "kws", Version: "2.0", Digest: newDigest, Size: 1, Class: class}
	d := &protocol.Deployment{ID: "dep", Seq: 1, Manifest: []byte("NEW"), Cohort: "hw:rev2",
		Waves: []protocol.Wave{{BasisPoints: 10000}}, NodeTimeoutSeconds: 600, MaxConcurrent: 100}
	info := func(id string) NodeInfo {
		return NodeInfo{ID: id, Class: class, Component: "kws", Labels: map[string]string{"hw": "rev2"}, RunningSeq: prevSeq,
			Running: prevDigest, ActiveState: protocol.SlotConfirmed, AgentVersion: "0.3.0", Runtime: "tflm"}
	}
	prev := func(NodeInfo) []byte { return []byte("PREV") }
	helloDone := make(chan error, 1)
	list := func() ([]NodeInfo, error) {
		if e.mu.TryLock() {
			e.mu.Unlock()
			t.Error("Start lists the nodes while the engine takes Hellos")
		}
		// The node's Hello is stored after this list was read, and
		// reaches the engine now.
		go func() { helloDone <- e.Hello(info("late"), prev, now).Wait() }()
		return []NodeInfo{info("n0"), info("n1"), info("n2")}, nil
	}
	if err := e.Start(d, []byte("DEP"), m, list, prev, now); err != nil {
		t.Fatal(err)
	}
	if err := <-helloDone; err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"n0", "n1", "n2", "late"} {
		if got := string(f.assigned[id]); got != "NEW" {
			t.Errorf("%s is assigned %q, want NEW", id, got)
		}
	}
}
