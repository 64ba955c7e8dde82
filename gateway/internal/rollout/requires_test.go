package rollout

import (
	"fmt"
	"testing"

	"edgeota/gateway/internal/store"
	"edgeota/protocol"
)

// TestIneligibleNodes: nodes of the cohort whose Hello shows they do not
// meet the manifest's requires (runtime tflm, agent 0.2.0 or later) are
// ineligible: never assigned, counted apart (never failed), outside the
// wave rule's N and the gates, so the rollout completes over the others.
// A waiting node that stops meeting them becomes ineligible; an
// ineligible node that meets them later joins as a new node does.
func TestIneligibleNodes(t *testing.T) {
	unmet := map[string]func(n *NodeInfo){
		"n00": func(n *NodeInfo) { n.Runtime = "" }, // a v1 node, or one started without --runtime
		"n01": func(n *NodeInfo) { n.Runtime = "" },
		"n02": func(n *NodeInfo) { n.Runtime = "onnx" },
		"n03": func(n *NodeInfo) { n.AgentVersion = "0.1.9" },
	}
	meets := map[string]bool{}
	fx := setupWith(t, 20, options{
		edit: func(d *protocol.Deployment) {
			d.Waves = []protocol.Wave{{BasisPoints: 5000, BakeSeconds: 60}, {BasisPoints: 10000, BakeSeconds: 60}}
		},
		manifest: func(m *protocol.Manifest) {
			m.Requires = &protocol.Requires{MinAgentVersion: "0.2.0", Runtime: "tflm"}
		},
		node: func(n *NodeInfo) {
			if f := unmet[n.ID]; f != nil && !meets[n.ID] {
				f(n)
			}
		},
	})
	reasons := map[string]string{
		"n00": `requires runtime "tflm", this node names none`,
		"n02": `requires runtime "tflm", this node offers "onnx"`,
		"n03": "requires agent 0.2.0, this node runs 0.1.9",
	}
	st := fx.status()
	if st.Ineligible != 4 || st.Totals[string(NodeIneligible)] != 4 {
		t.Fatalf("%d ineligible, totals %v; want 4", st.Ineligible, st.Totals)
	}
	for _, n := range fx.nodes("dep") {
		if want, ok := reasons[n.ID]; ok && (n.State != NodeIneligible || n.Reason != want || n.Wave != 0) {
			t.Errorf("%s is %s in wave %d (%s), want ineligible outside the waves (%s)", n.ID, n.State, n.Wave, n.Reason, want)
		}
	}
	// Wave 1 is 50% of the 16 eligible nodes, not of the 20 of the cohort.
	if n := len(fx.assignedNew()); n != 8 {
		t.Fatalf("wave 1 assigned %d nodes, want 8 (50%% of 16 eligible)", n)
	}

	// A waiting node whose agent is started again without its runtime
	// becomes ineligible, and the wave rule counts 15.
	var waiting string
	for _, n := range fx.nodes("dep") {
		if n.State == NodeWaiting {
			waiting = n.ID
			break
		}
	}
	unmet[waiting] = func(n *NodeInfo) { n.Runtime = "" }
	if err := fx.e.Hello(fx.info(waiting, prevSeq, prevDigest, protocol.SlotConfirmed), fx.prevOf, fx.now).Wait(); err != nil {
		t.Fatal(err)
	}
	if s := fx.nodeState(waiting); s != NodeIneligible {
		t.Fatalf("%s is %s after a Hello naming no runtime, want ineligible", waiting, s)
	}

	fx.complete()
	st = fx.status()
	if st.Totals["succeeded"] != 15 || st.Ineligible != 5 || st.Totals["failed"]+st.Totals["timed-out"] != 0 {
		t.Fatalf("completed with totals %v, %d ineligible; want 15 succeeded, 5 ineligible, none failed", st.Totals, st.Ineligible)
	}
	for id := range unmet {
		if m := fx.fk().assigned[id]; m != nil {
			t.Errorf("ineligible %s was assigned %q", id, m)
		}
	}
	if r, err := restore(store.RolloutRecords{ID: "dep", Records: fx.fk().recs["dep"]}); err != nil || r.Nodes["n02"].State != NodeIneligible {
		t.Fatalf("saved state: %v; n02 not saved ineligible", err)
	}

	// A new node that names no runtime joins the completed rollout's
	// cohort ineligible, and is not assigned.
	unmet["late"] = func(n *NodeInfo) { n.Runtime = "" }
	if err := fx.e.Hello(fx.info("late", prevSeq, prevDigest, protocol.SlotConfirmed), fx.prevOf, fx.now).Wait(); err != nil {
		t.Fatal(err)
	}
	if s, m := fx.nodeState("late"), fx.fk().assigned["late"]; s != NodeIneligible || m != nil {
		t.Fatalf("a new node naming no runtime is %s, assigned %q; want ineligible, not assigned", s, m)
	}

	// n00 is started again with the runtime: it joins the completed
	// rollout and is assigned at once.
	meets["n00"] = true
	if err := fx.e.Hello(fx.info("n00", prevSeq, prevDigest, protocol.SlotConfirmed), fx.prevOf, fx.now).Wait(); err != nil {
		t.Fatal(err)
	}
	if s, m := fx.nodeState("n00"), string(fx.fk().assigned["n00"]); s != NodeAssigned || m != "NEW" {
		t.Fatalf("n00 meeting the requires is %s, assigned %q; want assigned NEW", s, m)
	}
	if st := fx.status(); st.Ineligible != 5 {
		t.Fatalf("%d ineligible, want 5", st.Ineligible)
	}
}

// TestIneligibleNodesLeftAloneInARollback: a rollback gives back what
// they ran to the nodes it touched, never to an ineligible node.
func TestIneligibleNodesLeftAloneInARollback(t *testing.T) {
	fx := setupWith(t, 10, options{
		manifest: func(m *protocol.Manifest) { m.Requires = &protocol.Requires{Runtime: "tflm"} },
		node: func(n *NodeInfo) {
			if n.ID < "n05" {
				n.Runtime = ""
			}
		},
	})
	w1 := fx.assignedNew()
	fx.revert(w1[0], protocol.ReasonProbationErrors)
	if st := fx.status(); st.Phase != RolledBack || st.Ineligible != 5 {
		t.Fatalf("phase %s, %d ineligible; want rolled-back, 5", st.Phase, st.Ineligible)
	}
	for i := range 5 {
		if id := fmt.Sprintf("n%02d", i); fx.fk().assigned[id] != nil {
			t.Errorf("ineligible %s was assigned %q in the rollback", id, fx.fk().assigned[id])
		}
	}
}

// TestNoRequiresEveryNodeEligible: without requires, a node that names
// no runtime and runs any agent is as eligible as any.
func TestNoRequiresEveryNodeEligible(t *testing.T) {
	fx := setupWith(t, 10, options{node: func(n *NodeInfo) { n.Runtime, n.AgentVersion = "", "0.0.1" }})
	if st := fx.status(); st.Ineligible != 0 || len(fx.assignedNew()) != 1 {
		t.Fatalf("%d ineligible, %d assigned without requires; want 0 and 1", st.Ineligible, len(fx.assignedNew()))
	}
}
