package store

import (
	"bytes"
	"encoding/hex"
	"errors"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"edgeota/protocol"
	"edgeota/test/testutil"
)

func testHello(id string) *protocol.Hello {
	return &protocol.Hello{
		NodeID: id, Class: testClass, Labels: map[string]string{"site": "lab-1", "ring": "canary"},
		RunningSeq: 3, RunningDigest: protocol.Digest{3}, ActiveSlot: protocol.SlotB, AgentVersion: "1.2.0",
		EpochFloor: 1, ActiveState: protocol.SlotConfirmed, Component: "kws-model",
		Other: &protocol.OtherSlot{Seq: 2, Digest: protocol.Digest{2}, State: protocol.SlotConfirmed, Epoch: 1},
	}
}

func testHealth(id string, boot, number uint64) *protocol.HealthReport {
	return &protocol.HealthReport{
		NodeID: id, UptimeSeconds: 60, RunningSeq: 3, ActiveSlot: protocol.SlotB, Inferences: 100, Errors: 1,
		LatencyP50Micros: 800, LatencyP99Micros: 2500, CPUPermille: 120, RAMBytes: 1 << 20, BootCount: boot,
		Time: 1_800_000_000, Number: number, Metrics: map[string]int64{"low_confidence_permille": 12},
	}
}

func testStatus(id string, state protocol.State, boot, number uint64) *protocol.StatusEvent {
	return &protocol.StatusEvent{NodeID: id, State: state, Seq: 4, Digest: protocol.Digest{4}, Reason: "probation latency",
		BytesReceived: 4096, Code: protocol.ReasonProbationLatency, BootCount: boot, Number: number}
}

func TestNodeRegistry(t *testing.T) {
	clock := testutil.NewFakeClock()
	db, path := openTest(t, WithClock(clock.Now))

	h := testHello("node-b")
	n, changed, err := db.PutHello(h, "10.0.0.2:5683")
	if err != nil || changed {
		t.Fatalf("PutHello = %v, %v, %v", n, changed, err)
	}
	want := &Node{
		ID: "node-b", Class: testClass, Labels: maps.Clone(h.Labels), Component: "kws-model", AgentVersion: "1.2.0",
		RunningSeq: 3, RunningDigest: protocol.Digest{3}, ActiveSlot: protocol.SlotB, ActiveState: protocol.SlotConfirmed,
		EpochFloor: 1, Other: &protocol.OtherSlot{Seq: 2, Digest: protocol.Digest{2}, State: protocol.SlotConfirmed, Epoch: 1}, LastSeen: clock.Now(), Addr: "10.0.0.2:5683",
	}
	checkNode(t, n, want)
	h.Labels["site"] = "changed after the call" // the store kept its own copy
	h.Other.Seq = 99
	h = testHello("node-b")

	if err := db.PutHealth(testHealth("node-x", 1, 1), "a"); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("PutHealth(unknown node) = %v, want ErrUnknownNode", err)
	}
	if err := db.PutStatus(testStatus("node-x", protocol.StateIdle, 1, 1), "a"); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("PutStatus(unknown node) = %v, want ErrUnknownNode", err)
	}
	if err := db.PutHealth(&protocol.HealthReport{NodeID: "node-b"}, "a"); err == nil {
		t.Error("invalid health report (number 0) accepted")
	}
	if _, _, err := db.PutHello(&protocol.Hello{NodeID: "bad id"}, "a"); err == nil {
		t.Error("invalid hello accepted")
	}

	clock.Advance(time.Minute)
	steps := []struct {
		name   string
		do     func() error
		health *protocol.HealthReport
	}{
		{"report 1", func() error { return db.PutHealth(testHealth("node-b", 7, 1), "10.0.0.2:5684") }, testHealth("node-b", 7, 1)},
		{"report 2", func() error { return db.PutHealth(testHealth("node-b", 7, 2), "10.0.0.2:5684") }, testHealth("node-b", 7, 2)},
		{"report 2 again", func() error { return db.PutHealth(testHealth("node-b", 7, 2), "10.0.0.2:5684") }, testHealth("node-b", 7, 2)},
		{"event 1", func() error {
			return db.PutStatus(testStatus("node-b", protocol.StateReverted, 7, 1), "10.0.0.2:5684")
		}, testHealth("node-b", 7, 2)},
		{"event 1 again", func() error {
			return db.PutStatus(testStatus("node-b", protocol.StateReverted, 7, 1), "10.0.0.2:5684")
		}, testHealth("node-b", 7, 2)},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	want.Health = testHealth("node-b", 7, 2)
	want.HealthReports, want.StatusEvents = 2, 1
	want.LastState, want.LastCode, want.LastReason = protocol.StateReverted, protocol.ReasonProbationLatency, "probation latency"
	want.LastSeen, want.Addr = clock.Now(), "10.0.0.2:5684"
	got, err := db.Node("node-b")
	if err != nil {
		t.Fatal(err)
	}
	checkNode(t, got, want)

	// A later Hello updates the Hello fields and keeps the rest.
	clock.Advance(time.Minute)
	h.RunningSeq, h.RunningDigest, h.ActiveSlot, h.Other, h.Runtime = 4, protocol.Digest{4}, protocol.SlotA, nil, "tflm"
	if _, _, err := db.PutHello(h, "10.0.0.2:5685"); err != nil {
		t.Fatal(err)
	}
	want.RunningSeq, want.RunningDigest, want.ActiveSlot, want.Other, want.Runtime = 4, protocol.Digest{4}, protocol.SlotA, nil, "tflm"
	want.LastSeen, want.Addr = clock.Now(), "10.0.0.2:5685"
	got, _ = db.Node("node-b")
	checkNode(t, got, want)

	for _, id := range []string{"node-c", "node-a"} {
		if _, _, err := db.PutHello(testHello(id), "x"); err != nil {
			t.Fatal(err)
		}
	}
	nodes, err := db.Nodes()
	if err != nil || len(nodes) != 3 || nodes[0].ID != "node-a" || nodes[1].ID != "node-b" || nodes[2].ID != "node-c" {
		t.Fatalf("Nodes = %v, %v; want node-a, node-b, node-c", nodes, err)
	}
	if _, err := db.Node("node-x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Node(unknown) = %v, want ErrNotFound", err)
	}

	// Everything survives a reopen.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openPath(t, path, WithClock(clock.Now))
	got, err = db.Node("node-b")
	if err != nil {
		t.Fatal(err)
	}
	checkNode(t, got, want)
}

// TestNodeRecordBeforeRuntime: a node record written before Hello key 64
// (testdata/node-before-runtime.hex, made by that code) still decodes,
// every field in place and no runtime.
func TestNodeRecordBeforeRuntime(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "node-before-runtime.hex"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	var r nodeRecord
	if err := decodeRecord(v, &r); err != nil {
		t.Fatal(err)
	}
	h := testHello("node-b")
	want := &Node{ID: "node-b", Class: testClass, Labels: h.Labels, Component: "kws-model", AgentVersion: "1.2.0",
		RunningSeq: 3, RunningDigest: protocol.Digest{3}, ActiveSlot: protocol.SlotB, ActiveState: protocol.SlotConfirmed,
		EpochFloor: 1, Other: h.Other, LastState: protocol.StateConfirmed, LastSeen: time.Unix(1800000000, 0),
		Addr: "10.0.0.2:5683", HealthReports: 2, StatusEvents: 1}
	checkNode(t, r.node("node-b"), want)
}

func checkNode(t *testing.T, got, want *Node) {
	t.Helper()
	if !got.LastSeen.Equal(want.LastSeen) {
		t.Errorf("LastSeen = %v, want %v", got.LastSeen, want.LastSeen)
	}
	g, w := *got, *want
	g.LastSeen, w.LastSeen = time.Time{}, time.Time{}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("node =\n%+v\nwant\n%+v", g, w)
	}
}

func TestAssignments(t *testing.T) {
	k := testKeys(t, 1)
	db, path := openTest(t)
	rng := rand.New(rand.NewPCG(8, 8))
	m1 := k.sign(t, manifestFor(randomImage(rng, 100), 1))
	m2 := k.sign(t, manifestFor(randomImage(rng, 100), 2))

	if got, err := db.Assignment("n1"); got != nil || err != nil {
		t.Fatalf("Assignment before any = %x, %v", got, err)
	}
	if err := db.Assign([]string{"n1", "n2"}, m1); err != nil {
		t.Fatal(err)
	}
	if err := db.Assign([]string{"n2"}, m2); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string][]byte{"n1": m1, "n2": m2, "n3": nil} {
		if got, err := db.Assignment(id); !bytes.Equal(got, want) || err != nil {
			t.Errorf("Assignment(%s) = %d bytes, %v; want %d bytes", id, len(got), err, len(want))
		}
	}
	bad := []struct {
		name   string
		ids    []string
		signed []byte
	}{
		{"bad node id", []string{"n 1"}, m1},
		{"empty manifest", []string{"n1"}, nil},
		{"not a manifest", []string{"n1"}, []byte{0xd2, 0x84, 0x40}},
	}
	for _, c := range bad {
		if err := db.Assign(c.ids, c.signed); err == nil {
			t.Errorf("Assign(%s) accepted", c.name)
		}
	}
	if got, _ := db.Assignment("n1"); !bytes.Equal(got, m1) {
		t.Error("a refused Assign changed an assignment")
	}
	if err := db.Unassign([]string{"n1", "n9"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Assignment("n1"); got != nil {
		t.Error("Unassign left the assignment")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openPath(t, path)
	if got, _ := db.Assignment("n2"); !bytes.Equal(got, m2) {
		t.Error("assignment lost across a reopen")
	}
}

func TestStandingRule(t *testing.T) {
	k := testKeys(t, 1)
	db, path := openTest(t)
	rng := rand.New(rand.NewPCG(9, 9))
	rule := k.sign(t, manifestFor(randomImage(rng, 100), 5))
	other := k.sign(t, manifestFor(randomImage(rng, 100), 6))

	hello := func(id string, edit func(*protocol.Hello)) bool {
		t.Helper()
		h := testHello(id)
		if edit != nil {
			edit(h)
		}
		_, changed, err := db.PutHello(h, "addr")
		if err != nil {
			t.Fatal(err)
		}
		return changed
	}
	// Nodes known before the rule.
	hello("old-1", nil)
	hello("old-2", nil)
	hello("old-other-class", func(h *protocol.Hello) { h.Class[0] ^= 1 })
	hello("old-other-component", func(h *protocol.Hello) { h.Component = "vad-model" })

	if got, err := db.StandingRule(); got != nil || err != nil {
		t.Fatalf("StandingRule before any = %x, %v", got, err)
	}
	changed, err := db.SetStandingRule(rule)
	if err != nil || !reflect.DeepEqual(changed, []string{"old-1", "old-2"}) {
		t.Fatalf("SetStandingRule = %v, %v; want [old-1 old-2]", changed, err)
	}
	if changed, _ := db.SetStandingRule(rule); len(changed) != 0 {
		t.Errorf("setting the same rule again changed %v", changed)
	}
	if got, _ := db.StandingRule(); !bytes.Equal(got, rule) {
		t.Error("StandingRule differs from what was set")
	}

	if err := db.Assign([]string{"pre-assigned"}, other); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		id      string
		edit    func(*protocol.Hello)
		changed bool
		want    []byte
	}{
		{"new-1", nil, true, rule},
		{"new-1", nil, false, rule}, // second Hello: already assigned
		{"pre-assigned", nil, false, other},
		{"new-other-class", func(h *protocol.Hello) { h.Class[1] ^= 1 }, false, nil},
		{"new-other-component", func(h *protocol.Hello) { h.Component = "vad-model" }, false, nil},
		{"old-1", nil, false, rule},
	}
	for _, c := range cases {
		if got := hello(c.id, c.edit); got != c.changed {
			t.Errorf("Hello(%s) changed = %v, want %v", c.id, got, c.changed)
		}
		if got, _ := db.Assignment(c.id); !bytes.Equal(got, c.want) {
			t.Errorf("Assignment(%s) = %d bytes, want %d", c.id, len(got), len(c.want))
		}
	}
	// A node that had no assignment and now matches (re-provisioned to the
	// rule's class) gets the rule at its next Hello.
	if !hello("old-other-class", nil) {
		t.Error("Hello of a node without an assignment that now matches the rule: not assigned")
	}
	// Unassigned nodes get the rule back at their next Hello.
	if err := db.Unassign([]string{"new-1"}); err != nil {
		t.Fatal(err)
	}
	if !hello("new-1", nil) {
		t.Error("Hello after Unassign did not apply the rule")
	}

	// Clearing the rule keeps the assignments and stops applying it.
	if changed, err := db.SetStandingRule(nil); changed != nil || err != nil {
		t.Fatalf("SetStandingRule(nil) = %v, %v", changed, err)
	}
	if got, _ := db.Assignment("old-1"); !bytes.Equal(got, rule) {
		t.Error("clearing the rule dropped an assignment")
	}
	if hello("new-2", nil) {
		t.Error("a cleared rule was applied")
	}
	if _, err := db.SetStandingRule([]byte("junk")); err == nil {
		t.Error("SetStandingRule(junk) accepted")
	}

	// The rule survives a reopen.
	if _, err := db.SetStandingRule(rule); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openPath(t, path)
	if !hello("new-3", nil) {
		t.Error("standing rule lost across a reopen")
	}
}

// TestStandingRuleRequires: the standing rule is not assigned to a node
// whose last Hello shows it does not meet the manifest's requires (here
// runtime tflm): not when the rule is set, not at its Hello; a node that
// names the runtime later gets the rule at that Hello.
func TestStandingRuleRequires(t *testing.T) {
	k := testKeys(t, 1)
	db, _ := openTest(t)
	m := manifestFor(randomImage(rand.New(rand.NewPCG(10, 10)), 100), 5)
	m.Requires = &protocol.Requires{Runtime: "tflm"}
	rule := k.sign(t, m)
	hello := func(id, runtime string) bool {
		t.Helper()
		h := testHello(id)
		h.Runtime = runtime
		_, changed, err := db.PutHello(h, "addr")
		if err != nil {
			t.Fatal(err)
		}
		return changed
	}
	hello("known-tflm", "tflm")
	hello("known-none", "")
	changed, err := db.SetStandingRule(rule)
	if err != nil || !reflect.DeepEqual(changed, []string{"known-tflm"}) {
		t.Fatalf("SetStandingRule = %v, %v; want [known-tflm]", changed, err)
	}
	if hello("new-onnx", "onnx") || hello("known-none", "") {
		t.Fatal("the rule was assigned to a node offering another runtime or none")
	}
	if !hello("new-onnx", "tflm") {
		t.Fatal("a node naming the runtime at its next Hello did not get the rule")
	}
	for id, want := range map[string][]byte{"known-tflm": rule, "known-none": nil, "new-onnx": rule} {
		if got, _ := db.Assignment(id); !bytes.Equal(got, want) {
			t.Errorf("Assignment(%s) = %d bytes, want %d", id, len(got), len(want))
		}
	}
}
