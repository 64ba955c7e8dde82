package rollout

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"edgeota/gateway/internal/store"
	"edgeota/protocol"
)

// fake is the engine's store and notifier: it keeps the records committed
// and the assignments, checking that every assignment is committed with,
// or after, records that announce it: the node assigned the rollout's
// manifest, or given back what it ran (persist, then act).
type fake struct {
	t        testing.TB
	saves    int
	recs     map[string]map[string][]byte // by rollout id, by key
	assigned map[string][]byte
	log      []string
	// fail, when set, fails the next commit.
	fail error
	// unchecked skips the announcement check, which reads the whole
	// rollout back for every assignment: benchmarks of large rollouts.
	unchecked bool
}

func (f *fake) CommitRollouts(b store.RolloutBatch) error {
	if f.fail != nil {
		err := f.fail
		f.fail = nil
		return err
	}
	f.saves++
	if f.recs == nil {
		f.recs = map[string]map[string][]byte{}
	}
	for _, w := range b.Rollouts {
		if f.recs[w.ID] == nil {
			f.recs[w.ID] = map[string][]byte{}
		}
		for k, v := range w.Records {
			if v == nil {
				delete(f.recs[w.ID], k)
			} else {
				f.recs[w.ID][k] = bytes.Clone(v)
			}
		}
	}
	if f.assigned == nil {
		f.assigned = map[string][]byte{}
	}
	for _, a := range b.Assign {
		for _, n := range a.Nodes {
			if !f.unchecked && !f.announced(n, a.Signed) {
				f.t.Errorf("%s assigned %q before a saved state announced it", n, a.Signed)
			}
			f.assigned[n] = a.Signed
			f.log = append(f.log, n)
		}
	}
	return nil
}

func (f *fake) Notify([]string) {}

// saved is rollout id as its records say.
func (f *fake) saved(id string) *Rollout {
	f.t.Helper()
	r, err := restore(store.RolloutRecords{ID: id, Records: f.recs[id]})
	if err != nil {
		f.t.Fatalf("rollout %s: %v", id, err)
	}
	return r
}

// records is what the store holds, as [Engine.Load] takes it.
func (f *fake) records() []store.RolloutRecords {
	var out []store.RolloutRecords
	for _, id := range slices.Sorted(maps.Keys(f.recs)) {
		out = append(out, store.RolloutRecords{ID: id, Records: maps.Clone(f.recs[id])})
	}
	return out
}

// announced reports whether a saved state has node assigned signed: as
// the rollout's manifest (it was assigned), or as what it is given back.
func (f *fake) announced(node string, signed []byte) bool {
	for id := range f.recs {
		r := f.saved(id)
		x := r.Nodes[node]
		switch {
		case x == nil:
		case bytes.Equal(signed, r.Manifest) && !x.AssignedAt.IsZero():
			// Assigned; the same commit may carry a later state.
			return true
		case !bytes.Equal(signed, r.Manifest) && x.Returned:
			return true
		}
	}
	return false
}

// phase is the phase of a rollout's saved state.
func (f *fake) phase(id string) Phase { return f.saved(id).Phase }

// flush waits until everything the engine staged is committed.
func flush(t testing.TB, e *Engine) {
	t.Helper()
	e.mu.Lock()
	c := Commit{e: e, seq: e.stagedSeq}
	e.mu.Unlock()
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
}

var class = protocol.Class{1}

func u(v uint64) *uint64 { return &v }

type fixture struct {
	t    *testing.T
	e    *Engine
	f    *fake
	now  time.Time
	d    *protocol.Deployment
	m    *protocol.Manifest
	prev map[string][]byte
	// number is the last report or status event number sent.
	number uint64
	node   func(n *NodeInfo)
}

const (
	newSeq  = 20
	prevSeq = 10
)

var newDigest = sha256.Sum256([]byte("new"))
var prevDigest = sha256.Sum256([]byte("prev"))

func setup(t *testing.T, nodes int, edit func(d *protocol.Deployment)) *fixture {
	return setupWith(t, nodes, options{edit: edit})
}

// options change the fixture setup makes.
type options struct {
	edit     func(d *protocol.Deployment)
	manifest func(m *protocol.Manifest)
	// prev says what each node runs (signed); absent nodes run "PREV".
	prev map[string][]byte
	// node changes what a node's Hello says, after the defaults (agent
	// 0.3.0, runtime tflm).
	node func(n *NodeInfo)
}

func setupWith(t *testing.T, nodes int, o options) *fixture {
	if o.prev == nil {
		o.prev = map[string][]byte{}
	}
	fx := &fixture{t: t, f: &fake{t: t}, now: time.Unix(1795000000, 0), prev: o.prev, node: o.node}
	fx.e = NewEngine(fx.f, fx.f)
	fx.m = &protocol.Manifest{Format: 1, Seq: newSeq, Component: "kws", Version: "2.0", Digest: newDigest, Size: 1, Class: class}
	fx.d = &protocol.Deployment{ID: "dep", Seq: 1, Manifest: []byte("NEW"), Cohort: "hw:rev2",
		Waves:     []protocol.Wave{{BasisPoints: 1000, BakeSeconds: 60}, {BasisPoints: 5000, BakeSeconds: 60}, {BasisPoints: 10000}},
		Gates:     protocol.Gates{MaxFailed: u(0), MinReports: u(2), MaxLatencyP99Micros: u(50000)},
		OnFailure: protocol.FailureRollback, NodeTimeoutSeconds: 600, MaxConcurrent: 100}
	if o.edit != nil {
		o.edit(fx.d)
	}
	if o.manifest != nil {
		o.manifest(fx.m)
	}
	var infos []NodeInfo
	for i := 0; i < nodes; i++ {
		infos = append(infos, fx.info(fmt.Sprintf("n%02d", i), prevSeq, prevDigest, protocol.SlotConfirmed))
	}
	infos = append(infos, NodeInfo{ID: "other", Class: class, Component: "kws", Labels: map[string]string{"hw": "rev1"}})
	if err := fx.e.Start(fx.d, []byte("DEP"), fx.m, listOf(infos), fx.prevOf, fx.now); err != nil {
		t.Fatal(err)
	}
	return fx
}

// nodes is every node of rollout id, by id.
func (fx *fixture) nodes(id string) []NodeView {
	fx.t.Helper()
	var out []NodeView
	for q := (NodeQuery{Limit: MaxPageLimit}); ; {
		p, err := fx.e.Nodes(id, q, fx.now)
		if err != nil {
			fx.t.Fatal(err)
		}
		out = append(out, p.Nodes...)
		if q.After = p.Next; q.After == "" {
			return out
		}
	}
}

// fk is the fake store, once the engine committed what it staged.
func (fx *fixture) fk() *fake {
	flush(fx.t, fx.e)
	return fx.f
}

func (fx *fixture) info(id string, seq uint64, d protocol.Digest, st protocol.SlotState) NodeInfo {
	n := NodeInfo{ID: id, Class: class, Component: "kws", Labels: map[string]string{"hw": "rev2"}, RunningSeq: seq, Running: d,
		ActiveState: st, AgentVersion: "0.3.0", Runtime: "tflm"}
	if fx.node != nil {
		fx.node(&n)
	}
	return n
}

func (fx *fixture) prevOf(n NodeInfo) []byte {
	if b, ok := fx.prev[n.ID]; ok {
		return b
	}
	return []byte("PREV")
}

func (fx *fixture) status() StatusView {
	v, err := fx.e.Get("dep", fx.now)
	if err != nil {
		fx.t.Fatal(err)
	}
	return v
}

func (fx *fixture) assignedNew() []string {
	var out []string
	for n, m := range fx.fk().assigned {
		if string(m) == "NEW" {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// succeed drives a node through trial, confirmation, reports and soak.
func (fx *fixture) activate(id string, p99 uint64) {
	fx.e.Hello(fx.info(id, newSeq, newDigest, protocol.SlotTrial), fx.prevOf, fx.now)
	fx.e.Hello(fx.info(id, newSeq, newDigest, protocol.SlotConfirmed), fx.prevOf, fx.now)
	for i := 0; i < 2; i++ {
		fx.e.Health(&protocol.HealthReport{NodeID: id, RunningSeq: newSeq, Inferences: 100, LatencyP99Micros: p99, Number: uint64(i + 1)}, fx.now)
	}
}

func (fx *fixture) advance(d time.Duration) {
	fx.now = fx.now.Add(d)
	if err := fx.e.Tick(fx.now).Wait(); err != nil {
		fx.t.Fatal(err)
	}
}

func TestGoodModelWaveByWave(t *testing.T) {
	fx := setup(t, 20, nil)
	// Wave 1: 10% of 20 = 2 nodes; the node outside the cohort is not
	// touched.
	w1 := fx.assignedNew()
	if len(w1) != 2 || fx.fk().assigned["other"] != nil {
		t.Fatalf("wave 1 assigned %v", w1)
	}
	// Nothing advances while no node of the wave was activated, whatever
	// the time.
	fx.advance(5 * time.Minute)
	if st := fx.status(); st.Wave != 1 || len(fx.assignedNew()) != 2 {
		t.Fatalf("advanced without an activated node: wave %d", st.Wave)
	}
	for _, id := range w1 {
		fx.activate(id, 20000)
	}
	fx.advance(30 * time.Second)
	if st := fx.status(); st.Wave != 1 {
		t.Fatalf("advanced before the bake: wave %d", st.Wave)
	}
	fx.advance(31 * time.Second) // soak passed: succeeded, wave 2
	if st := fx.status(); st.Wave != 2 || len(fx.assignedNew()) != 10 {
		t.Fatalf("wave 2: %d, assigned %d", st.Wave, len(fx.assignedNew()))
	}
	for _, id := range fx.assignedNew() {
		fx.activate(id, 20000)
	}
	fx.advance(61 * time.Second)
	fx.advance(time.Second)
	if len(fx.assignedNew()) != 20 {
		t.Fatalf("wave 3 assigned %d", len(fx.assignedNew()))
	}
	for _, id := range fx.assignedNew() {
		fx.activate(id, 20000)
	}
	fx.advance(time.Second)
	st := fx.status()
	if st.Phase != Completed || st.Totals["succeeded"] != 20 {
		t.Fatalf("status %+v", st.Totals)
	}
	if fx.fk().saves == 0 {
		t.Fatal("nothing was saved")
	}
}

func TestBadModelStoppedInWave1AndRolledBack(t *testing.T) {
	fx := setup(t, 20, nil)
	w1 := fx.assignedNew()
	// One node reverts in probation: max_failed 0 is breached.
	fx.e.Hello(fx.info(w1[0], newSeq, newDigest, protocol.SlotTrial), fx.prevOf, fx.now)
	fx.e.Status(&protocol.StatusEvent{NodeID: w1[0], State: protocol.StateReverted, Seq: newSeq, Code: protocol.ReasonProbationErrors,
		Reason: "probation errors: 300 of 1000", Number: 5}, fx.now)
	st := fx.status()
	if st.Phase != RolledBack {
		t.Fatalf("phase %s after a revert with max_failed 0", st.Phase)
	}
	// Every touched node is assigned its previous manifest; no other node
	// was ever offered the bad one.
	for _, id := range w1 {
		if string(fx.fk().assigned[id]) != "PREV" {
			t.Fatalf("%s assigned %q", id, fx.fk().assigned[id])
		}
	}
	if n := len(fx.fk().log); n > 4 {
		t.Fatalf("%d assignments: the bad model spread beyond wave 1", n)
	}
	fx.e.Hello(fx.info(w1[1], prevSeq, prevDigest, protocol.SlotConfirmed), fx.prevOf, fx.now)
	st = fx.status()
	if st.Waves[0].RolledBack != 1 || st.Waves[0].Reverted != 1 {
		t.Fatalf("wave 1: %+v", st.Waves[0])
	}
	found := false
	for _, d := range st.Decisions {
		found = found || strings.Contains(d.What, "gate red")
	}
	if !found {
		t.Fatalf("no explained decision: %+v", st.Decisions)
	}
}

// TestRollbackOfANodeThatNeverActivated: in a rollback, a node that was
// assigned the bad manifest but never activated it gets its previous one
// back and, running it all along, sends no Hello; its health reports, on
// its previous seq, tell the rollout it is rolled back. A report on
// another seq does not.
func TestRollbackOfANodeThatNeverActivated(t *testing.T) {
	fx := setup(t, 20, nil)
	w1 := fx.assignedNew()
	quiet := w1[1]
	fx.e.Hello(fx.info(w1[0], newSeq, newDigest, protocol.SlotTrial), fx.prevOf, fx.now)
	fx.e.Status(&protocol.StatusEvent{NodeID: w1[0], State: protocol.StateReverted, Seq: newSeq, Code: protocol.ReasonProbationErrors,
		Reason: "probation errors", Number: 5}, fx.now)
	if st := fx.status(); st.Phase != RolledBack || string(fx.fk().assigned[quiet]) != "PREV" {
		t.Fatalf("phase %s, %s assigned %q", st.Phase, quiet, fx.fk().assigned[quiet])
	}
	state := func() NodeState {
		for _, n := range fx.nodes("dep") {
			if n.ID == quiet {
				return n.State
			}
		}
		t.Fatalf("%s not in the rollout", quiet)
		return ""
	}
	fx.advance(time.Minute)
	fx.e.Health(&protocol.HealthReport{NodeID: quiet, RunningSeq: newSeq + 1, Number: 1}, fx.now)
	if s := state(); s != NodeAssigned {
		t.Fatalf("%s is %s after a report on another seq", quiet, s)
	}
	fx.e.Health(&protocol.HealthReport{NodeID: quiet, RunningSeq: prevSeq, Number: 2}, fx.now)
	if s := state(); s != NodeRolledBack {
		t.Fatalf("%s is %s after a report on its previous seq, want %s", quiet, s, NodeRolledBack)
	}
	if st := fx.status(); st.Waves[0].RolledBack != 1 || st.Waves[0].Reverted != 1 {
		t.Fatalf("wave 1: %+v", st.Waves[0])
	}
}

func TestLatencyGatePauses(t *testing.T) {
	fx := setup(t, 10, func(d *protocol.Deployment) { d.OnFailure = protocol.FailurePause })
	w1 := fx.assignedNew()
	fx.activate(w1[0], 90000) // p99 over 50 ms
	st := fx.status()
	if st.Phase != Paused || st.Waves[0].Failed != 1 {
		t.Fatalf("phase %s, wave 1 %+v", st.Phase, st.Waves[0])
	}
	if err := fx.e.Resume("dep", fx.now); err != nil {
		t.Fatal(err)
	}
	if st := fx.status(); st.Phase != Paused {
		t.Fatalf("a red gate let it resume: %s", st.Phase)
	}
}

func TestNodeTimeoutAndMaxConcurrent(t *testing.T) {
	fx := setup(t, 20, func(d *protocol.Deployment) {
		d.MaxConcurrent = 3
		d.Waves = []protocol.Wave{{BasisPoints: 10000}}
		d.Gates.MaxFailed = u(20)
		d.NodeTimeoutSeconds = 60
	})
	if n := len(fx.assignedNew()); n != 3 {
		t.Fatalf("%d assigned at once, max_concurrent 3", n)
	}
	fx.advance(61 * time.Second) // nobody progresses: timed out, the next 3
	st := fx.status()
	if st.Totals["timed-out"] != 3 || len(fx.assignedNew()) != 3 {
		t.Fatalf("totals %v, assigned new %d", st.Totals, len(fx.assignedNew()))
	}
	for n, m := range fx.fk().assigned {
		if string(m) == "PREV" && !strings.HasPrefix(n, "n") {
			t.Fatal("odd assignment")
		}
	}
}

func TestLateJoinerPlacedAndReload(t *testing.T) {
	fx := setup(t, 9, nil)
	// A node that says Hello later joins by the same rule.
	if err := fx.e.Hello(fx.info("late", prevSeq, prevDigest, protocol.SlotConfirmed), fx.prevOf, fx.now).Wait(); err != nil {
		t.Fatal(err)
	}
	if st := fx.status(); st.Totals["waiting"]+st.Totals["assigned"] != 10 {
		t.Fatalf("late node not in the cohort: %v", st.Totals)
	}
	// Saved state reloads into an equivalent engine.
	e2 := NewEngine(fx.f, fx.f)
	if err := e2.Load(fx.fk().records(), func([]byte) (*protocol.Deployment, error) { return fx.d, nil }, fx.now); err != nil {
		t.Fatal(err)
	}
	a, _ := fx.e.Get("dep", fx.now)
	c, _ := e2.Get("dep", fx.now)
	if fmt.Sprint(a.Totals, a.Wave) != fmt.Sprint(c.Totals, c.Wave) {
		t.Fatalf("reloaded %v, was %v", c.Totals, a.Totals)
	}
}

// TestLoadStateFormats: a rollout saved as one JSON document (format 1,
// or before formats were recorded) loads and is written again as records,
// its legacy record deleted in the same commit; a summary of a newer
// format is refused with ErrFormatTooNew, naming both formats.
func TestLoadStateFormats(t *testing.T) {
	fx := setup(t, 3, nil)
	verify := func([]byte) (*protocol.Deployment, error) { return fx.d, nil }
	saved := fx.fk().saved("dep")
	nodes := map[string]*Node{}
	for id, n := range saved.Nodes {
		nodes[id] = n
	}
	for _, tc := range []struct {
		name   string
		format any // nil: no key
	}{{"unversioned", nil}, {"format 1", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(legacyState{Rollout: saved, Nodes: nodes, Decisions: saved.Decisions})
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			if err := json.Unmarshal(b, &doc); err != nil {
				t.Fatal(err)
			}
			delete(doc, "format")
			if tc.format != nil {
				doc["format"] = tc.format
			}
			legacy, _ := json.Marshal(doc)
			f := &fake{t: t}
			e := NewEngine(f, f)
			if err := e.Load([]store.RolloutRecords{{ID: "dep", Legacy: legacy}}, verify, fx.now); err != nil {
				t.Fatal(err)
			}
			got := f.saved("dep")
			if len(got.Nodes) != 3 || got.Phase != saved.Phase || len(got.Decisions) != len(saved.Decisions) {
				t.Fatalf("rewritten: %d nodes, phase %s, %d decisions; want 3, %s, %d", len(got.Nodes), got.Phase,
					len(got.Decisions), saved.Phase, len(saved.Decisions))
			}
			if _, ok := f.recs["dep"][store.LegacyRolloutKey]; ok {
				t.Fatal("the legacy record was kept")
			}
		})
	}
	t.Run("newer", func(t *testing.T) {
		recs := fx.fk().records()
		var doc map[string]any
		if err := json.Unmarshal(recs[0].Records[keySummary], &doc); err != nil || doc["format"] != float64(StateFormat) {
			t.Fatalf("summary has format %v (%v), want %d", doc["format"], err, StateFormat)
		}
		doc["format"] = StateFormat + 1
		recs[0].Records[keySummary], _ = json.Marshal(doc)
		err := NewEngine(fx.f, fx.f).Load(recs, verify, fx.now)
		if !errors.Is(err, ErrFormatTooNew) {
			t.Fatalf("Load = %v, want ErrFormatTooNew", err)
		}
		if want := fmt.Sprintf("format %d, this edgeota reads formats up to %d", StateFormat+1, StateFormat); !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not name both formats", err)
		}
	})
}

// TestLateJoinersDoNotWidenAWave: wave k has taken enough once
// Target(bp_k, N) nodes of the current cohort were targeted; nodes joining
// later never make a wave take more than that.
func TestLateJoinersDoNotWidenAWave(t *testing.T) {
	fx := setup(t, 2, nil) // wave 1 is 10%: 1 node of 2
	for i := 0; i < 18; i++ {
		if err := fx.e.Hello(fx.info(fmt.Sprintf("late%02d", i), prevSeq, prevDigest, protocol.SlotConfirmed), fx.prevOf, fx.now).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	// 20 nodes now: 10% is 2 nodes, whatever their order.
	if n := len(fx.assignedNew()); n != 2 {
		t.Fatalf("wave 1 took %d nodes of 20, want 2", n)
	}
}

// complete drives the fixture's rollout through its waves to completion.
func (fx *fixture) complete() {
	fx.t.Helper()
	for range 10 {
		for _, id := range fx.assignedNew() {
			fx.activate(id, 20000)
		}
		fx.advance(61 * time.Second)
		if fx.status().Phase == Completed {
			return
		}
	}
	fx.t.Fatalf("the rollout did not complete: %+v", fx.status().Totals)
}

// nodeState is a node's state in the fixture's rollout, "" when absent.
func (fx *fixture) nodeState(id string) NodeState {
	for _, n := range fx.nodes("dep") {
		if n.ID == id {
			return n.State
		}
	}
	return ""
}

// TestJoinAfterCompletion: a node that joins a completed rollout's cohort
// (a new node, or one re-provisioned with new labels) is assigned its
// manifest at once and followed to success, and the rollout stays
// completed; one that reverts gets what it ran back; one that already
// runs a newer seq, or is outside the cohort, is left alone.
func TestJoinAfterCompletion(t *testing.T) {
	fx := setup(t, 10, nil)
	fx.complete()
	hello := func(id string, seq uint64, d protocol.Digest, labels map[string]string) {
		t.Helper()
		n := fx.info(id, seq, d, protocol.SlotConfirmed)
		if labels != nil {
			n.Labels = labels
		}
		if err := fx.e.Hello(n, fx.prevOf, fx.now).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	hello("late-good", prevSeq, prevDigest, nil)
	hello("late-bad", prevSeq, prevDigest, nil)
	hello("late-newer", newSeq+5, sha256.Sum256([]byte("newer")), nil)
	hello("late-rev1", prevSeq, prevDigest, map[string]string{"hw": "rev1"})
	for id, want := range map[string]string{"late-good": "NEW", "late-bad": "NEW", "late-newer": "", "late-rev1": ""} {
		if got := string(fx.fk().assigned[id]); got != want {
			t.Errorf("%s assigned %q, want %q", id, got, want)
		}
	}
	if s := fx.nodeState("late-good"); s != NodeAssigned {
		t.Fatalf("late-good is %q, want %s", s, NodeAssigned)
	}

	fx.activate("late-good", 20000)
	fx.e.Hello(fx.info("late-bad", newSeq, newDigest, protocol.SlotTrial), fx.prevOf, fx.now)
	fx.e.Status(&protocol.StatusEvent{NodeID: "late-bad", State: protocol.StateReverted, Seq: newSeq,
		Code: protocol.ReasonProbationErrors, Number: 3}, fx.now)
	fx.advance(61 * time.Second)
	st := fx.status()
	if s := fx.nodeState("late-good"); s != NodeSucceeded {
		t.Errorf("late-good is %q after its soak, want %s", s, NodeSucceeded)
	}
	if s := fx.nodeState("late-bad"); s != NodeFailed || string(fx.fk().assigned["late-bad"]) != "PREV" {
		t.Errorf("late-bad is %q, assigned %q; want failed and given PREV back", s, fx.fk().assigned["late-bad"])
	}
	if st.Phase != Completed {
		t.Errorf("phase %s after late joiners, want completed", st.Phase)
	}
}

// TestJoinGoesToTheNewestProvenRollout: with a completed rollout and a
// newer one of the same cohort rolled back, a new node gets the manifest
// last proven (the completed one's), not the rolled-back one.
func TestJoinGoesToTheNewestProvenRollout(t *testing.T) {
	fx := setup(t, 10, nil)
	fx.complete()
	fx.now = fx.now.Add(time.Hour)
	m2 := *fx.m
	m2.Seq, m2.Digest = newSeq+1, sha256.Sum256([]byte("newer"))
	d2 := *fx.d
	d2.ID, d2.Seq, d2.Manifest = "dep2", 2, []byte("NEWER")
	var nodes []NodeInfo
	for i := range 10 {
		nodes = append(nodes, fx.info(fmt.Sprintf("n%02d", i), newSeq, newDigest, protocol.SlotConfirmed))
	}
	if err := fx.e.Start(&d2, []byte("DEP2"), &m2, listOf(nodes), func(NodeInfo) []byte { return []byte("NEW") }, fx.now); err != nil {
		t.Fatal(err)
	}
	var first string
	for n, m := range fx.fk().assigned {
		if string(m) == "NEWER" {
			first = n
		}
	}
	fx.e.Hello(fx.info(first, m2.Seq, m2.Digest, protocol.SlotTrial), fx.prevOf, fx.now)
	fx.e.Status(&protocol.StatusEvent{NodeID: first, State: protocol.StateReverted, Seq: m2.Seq, Code: protocol.ReasonProbationErrors, Number: 9}, fx.now)
	if v, _ := fx.e.Get("dep2", fx.now); v.Phase != RolledBack {
		t.Fatalf("dep2 is %s, want rolled-back", v.Phase)
	}
	if err := fx.e.Hello(fx.info("newcomer", prevSeq, prevDigest, protocol.SlotConfirmed), fx.prevOf, fx.now).Wait(); err != nil {
		t.Fatal(err)
	}
	if got := string(fx.fk().assigned["newcomer"]); got != "NEW" {
		t.Fatalf("the newcomer was assigned %q, want the last proven manifest NEW", got)
	}
}
