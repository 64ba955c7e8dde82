package store

import (
	"testing"

	"edgeota/protocol"
)

// TestHelloChanges: a Hello that repeats what the node's record holds
// changes nothing (no commit is needed); any stored field that differs, a
// node never seen, and a standing rule the node would be given do.
func TestHelloChanges(t *testing.T) {
	db, _ := openTest(t)
	if _, _, err := db.PutHello(testHello("n1"), "10.0.0.1:5683"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		edit func(h *protocol.Hello)
		want bool
	}{
		{"the same Hello", func(*protocol.Hello) {}, false},
		{"the same Hello, labels in another map", func(h *protocol.Hello) { h.Labels = map[string]string{"ring": "canary", "site": "lab-1"} }, false},
		{"a node never seen", func(h *protocol.Hello) { h.NodeID = "n2" }, true},
		{"class", func(h *protocol.Hello) { h.Class[0] ^= 1 }, true},
		{"a label value", func(h *protocol.Hello) { h.Labels["site"] = "lab-2" }, true},
		{"a label less", func(h *protocol.Hello) { delete(h.Labels, "site") }, true},
		{"component", func(h *protocol.Hello) { h.Component = "vad" }, true},
		{"agent version", func(h *protocol.Hello) { h.AgentVersion = "1.3.0" }, true},
		{"running seq", func(h *protocol.Hello) { h.RunningSeq++ }, true},
		{"running digest", func(h *protocol.Hello) { h.RunningDigest[0] ^= 1 }, true},
		{"active slot", func(h *protocol.Hello) { h.ActiveSlot = protocol.SlotA }, true},
		{"slot state", func(h *protocol.Hello) { h.ActiveState = protocol.SlotTrial }, true},
		{"epoch floor", func(h *protocol.Hello) { h.EpochFloor++ }, true},
		{"other slot gone", func(h *protocol.Hello) { h.Other = nil }, true},
		{"other slot's seq", func(h *protocol.Hello) { h.Other.Seq++ }, true},
		{"runtime", func(h *protocol.Hello) { h.Runtime = "tflm" }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := testHello("n1")
			c.edit(h)
			got, err := db.HelloChanges(h)
			if err != nil || got != c.want {
				t.Fatalf("HelloChanges = %v, %v; want %v", got, err, c.want)
			}
		})
	}

	// A standing rule for the node's class and component, and the node
	// unassigned since: its Hello would be given the rule.
	k := testKeys(t, 1)
	rule := k.sign(t, manifestFor([]byte("image"), 7))
	if _, err := db.SetStandingRule(rule); err != nil {
		t.Fatal(err)
	}
	if got, err := db.HelloChanges(testHello("n1")); err != nil || got {
		t.Fatalf("assigned by the rule: HelloChanges = %v, %v; want false", got, err)
	}
	if err := db.Unassign([]string{"n1"}); err != nil {
		t.Fatal(err)
	}
	if got, err := db.HelloChanges(testHello("n1")); err != nil || !got {
		t.Fatalf("unassigned under a standing rule: HelloChanges = %v, %v; want true", got, err)
	}
	if _, changed, err := db.PutHello(testHello("n1"), "10.0.0.1:5683"); err != nil || !changed {
		t.Fatalf("PutHello = %v, %v; want the rule assigned", changed, err)
	}
}
