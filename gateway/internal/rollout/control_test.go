package rollout

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"edgeota/protocol"
)

// decided reports whether the rollout's status explains a decision
// containing what.
func (fx *fixture) decided(id, what string) bool {
	fx.t.Helper()
	v, err := fx.e.Get(id, fx.now)
	if err != nil {
		fx.t.Fatal(err)
	}
	return slices.ContainsFunc(v.Decisions, func(d Decision) bool { return strings.Contains(d.What, what) })
}

// TestPauseHoldsAndResumeGoesOn: a paused rollout assigns no node (not
// even the next of its wave when a download slot frees), soaks no node to
// success and takes no joiner, however long it waits and whatever its
// nodes report; the pause is saved before anything else happens. Resumed,
// it takes up where it stood: the soaked node succeeds and the next node
// of the wave is assigned at once.
func TestPauseHoldsAndResumeGoesOn(t *testing.T) {
	fx := setup(t, 20, func(d *protocol.Deployment) { d.MaxConcurrent = 1 }) // wave 1: 2 nodes, one at a time
	first := fx.assignedNew()
	if len(first) != 1 {
		t.Fatalf("assigned %v, want 1 node (max_concurrent 1)", first)
	}
	if err := fx.e.Pause("dep", fx.now); err != nil {
		t.Fatal(err)
	}
	if st, saved := fx.status().Phase, fx.fk().phase("dep"); st != Paused || saved != Paused {
		t.Fatalf("phase %s, saved %s after Pause; want paused", st, saved)
	}
	if err := fx.e.Pause("dep", fx.now); !errors.Is(err, ErrState) {
		t.Fatalf("Pause of a paused rollout: %v, want ErrState", err)
	}
	fx.activate(first[0], 20000)
	if err := fx.e.Hello(fx.info("late", prevSeq, prevDigest, protocol.SlotConfirmed), fx.prevOf, fx.now).Wait(); err != nil {
		t.Fatal(err)
	}
	fx.advance(time.Hour)
	st := fx.status()
	if w := st.Waves[0]; st.Phase != Paused || st.Wave != 1 || w.Confirmed != 1 || w.Waiting != 1 || len(fx.fk().log) != 1 {
		t.Fatalf("while paused: phase %s, wave %d, wave 1 %+v, %d assignments; want paused in wave 1, 1 confirmed, 1 waiting, 1 assignment",
			st.Phase, st.Wave, w, len(fx.fk().log))
	}
	if s := fx.nodeState("late"); s != "" {
		t.Fatalf("a node joined a paused rollout (%s)", s)
	}

	if err := fx.e.Resume("dep", fx.now); err != nil {
		t.Fatal(err)
	}
	st = fx.status()
	if w := st.Waves[0]; st.Phase != Running || st.Wave != 1 || w.Succeeded != 1 || w.Downloading != 1 || len(fx.assignedNew()) != 2 {
		t.Fatalf("resumed: phase %s, wave %d, wave 1 %+v, %d assigned; want running, 1 succeeded, the next downloading",
			st.Phase, st.Wave, w, len(fx.assignedNew()))
	}
	if err := fx.e.Resume("dep", fx.now); !errors.Is(err, ErrState) {
		t.Fatalf("Resume of a running rollout: %v, want ErrState", err)
	}
	for _, what := range []string{"paused by the operator", "resumed by the operator"} {
		if !fx.decided("dep", what) {
			t.Errorf("no decision %q", what)
		}
	}
}

// TestAbortEndsWithoutRollingBack: an aborted rollout, running or
// paused, ends for good: nothing more is assigned, not the manifest to
// the rest of the cohort, nor the previous one to a node that reverts
// after the abort; nodes keep what they run. The abort is saved; no
// control applies to it afterwards.
func TestAbortEndsWithoutRollingBack(t *testing.T) {
	for _, paused := range []bool{false, true} {
		t.Run(map[bool]string{false: "running", true: "paused"}[paused], func(t *testing.T) {
			fx := setup(t, 20, nil)
			w1 := fx.assignedNew()
			fx.activate(w1[0], 20000)
			if paused {
				if err := fx.e.Pause("dep", fx.now); err != nil {
					t.Fatal(err)
				}
			}
			if err := fx.e.Abort("dep", fx.now); err != nil {
				t.Fatal(err)
			}
			if st, saved := fx.status().Phase, fx.fk().phase("dep"); st != Aborted || saved != Aborted {
				t.Fatalf("phase %s, saved %s after Abort; want aborted", st, saved)
			}
			assignments := len(fx.fk().log)
			fx.e.Hello(fx.info(w1[1], newSeq, newDigest, protocol.SlotTrial), fx.prevOf, fx.now)
			fx.e.Status(&protocol.StatusEvent{NodeID: w1[1], State: protocol.StateReverted, Seq: newSeq,
				Code: protocol.ReasonProbationErrors, Number: 4}, fx.now)
			fx.e.Hello(fx.info("late", prevSeq, prevDigest, protocol.SlotConfirmed), fx.prevOf, fx.now)
			fx.advance(time.Hour)
			if n := len(fx.fk().log); n != assignments {
				t.Fatalf("%d assignments after the abort", n-assignments)
			}
			if st := fx.status(); st.Phase != Aborted || st.Waves[0].Confirmed != 1 {
				t.Fatalf("phase %s, wave 1 %+v; want aborted with its confirmed node left as it is", st.Phase, st.Waves[0])
			}
			for name, control := range map[string]func(string, time.Time) error{"Pause": fx.e.Pause, "Resume": fx.e.Resume, "Abort": fx.e.Abort} {
				if err := control("dep", fx.now); !errors.Is(err, ErrState) {
					t.Errorf("%s of an aborted rollout: %v, want ErrState", name, err)
				}
				if err := control("nope", fx.now); !errors.Is(err, ErrUnknown) {
					t.Errorf("%s of an unknown rollout: %v, want ErrUnknown", name, err)
				}
			}
		})
	}
}

// TestSupersede: a deployment of the same component (a later seq, any
// cohort) supersedes a running rollout: the old one is saved superseded
// and stops acting (no timeout, no rollback, no joiner), and the new one
// takes every node of its cohort, the old one's included, by its own
// waves. A deployment of another component leaves it running.
func TestSupersede(t *testing.T) {
	tests := []struct {
		name       string
		edit       func(d *protocol.Deployment, m *protocol.Manifest)
		superseded bool
		nodes      int // of the new rollout
	}{
		{name: "same cohort", superseded: true, nodes: 20},
		{name: "another cohort of the component", edit: func(d *protocol.Deployment, _ *protocol.Manifest) { d.Cohort = "hw:rev1" },
			superseded: true, nodes: 1},
		{name: "another component", edit: func(_ *protocol.Deployment, m *protocol.Manifest) { m.Component = "vision" }, nodes: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := setup(t, 20, nil)
			w1 := fx.assignedNew()
			fx.now = fx.now.Add(time.Minute)
			m2 := *fx.m
			m2.Seq, m2.Digest, m2.Version = newSeq+1, sha256.Sum256([]byte("newer")), "2.1"
			d2 := *fx.d
			d2.ID, d2.Seq, d2.Manifest = "dep2", fx.d.Seq+1, []byte("NEWER")
			if tt.edit != nil {
				tt.edit(&d2, &m2)
			}
			var nodes []NodeInfo
			for i := range 20 {
				nodes = append(nodes, fx.info(fmt.Sprintf("n%02d", i), prevSeq, prevDigest, protocol.SlotConfirmed))
			}
			nodes = append(nodes, NodeInfo{ID: "other", Class: class, Component: "kws", Labels: map[string]string{"hw": "rev1"}})
			if err := fx.e.Start(&d2, []byte("DEP2"), &m2, listOf(nodes), fx.prevOf, fx.now); err != nil {
				t.Fatal(err)
			}
			st2, err := fx.e.Get("dep2", fx.now)
			if err != nil {
				t.Fatal(err)
			}
			if len(fx.nodes("dep2")) != tt.nodes || st2.Phase != Running {
				t.Fatalf("dep2: %d nodes, %s; want %d nodes, running", len(fx.nodes("dep2")), st2.Phase, tt.nodes)
			}
			if !tt.superseded {
				if st := fx.status(); st.Phase != Running {
					t.Fatalf("dep is %s after a deployment of another component, want running", st.Phase)
				}
				return
			}
			if st, saved := fx.status().Phase, fx.fk().phase("dep"); st != Superseded || saved != Superseded {
				t.Fatalf("dep is %s, saved %s; want superseded", st, saved)
			}
			if !fx.decided("dep", "superseded by deployment dep2 seq 2") {
				t.Error("the superseded rollout does not say by what")
			}
			var newer []string
			for n, m := range fx.fk().assigned {
				if string(m) == "NEWER" {
					newer = append(newer, n)
				}
			}
			if len(newer) == 0 {
				t.Fatal("the new rollout assigned no node")
			}
			// The old rollout no longer acts: a node reverting its
			// manifest is not rolled back by it, a new node does not join
			// it, and its nodes do not time
			// out (dep assigned them 10.5 minutes ago with a node_timeout
			// of 10, dep2 assigned its own 9.5 minutes ago).
			assignments := len(fx.fk().log)
			fx.e.Hello(fx.info(w1[0], newSeq, newDigest, protocol.SlotTrial), fx.prevOf, fx.now)
			fx.e.Status(&protocol.StatusEvent{NodeID: w1[0], State: protocol.StateReverted, Seq: newSeq,
				Code: protocol.ReasonProbationErrors, Number: 2}, fx.now)
			fx.e.Hello(fx.info("late", prevSeq, prevDigest, protocol.SlotConfirmed), fx.prevOf, fx.now)
			fx.advance(9*time.Minute + 30*time.Second)
			if s := fx.nodeState("late"); s != "" {
				t.Fatalf("a new node joined the superseded rollout (%s)", s)
			}
			st := fx.status()
			if st.Phase != Superseded || st.Totals["timed-out"] != 0 || st.Totals["failed"] != 0 {
				t.Fatalf("the superseded rollout acted: %s, %v", st.Phase, st.Totals)
			}
			for _, n := range fx.fk().log[assignments:] {
				if string(fx.fk().assigned[n]) != "NEWER" {
					t.Fatalf("%s assigned %q after dep was superseded", n, fx.fk().assigned[n])
				}
			}
			if err := fx.e.Resume("dep", fx.now); !errors.Is(err, ErrState) {
				t.Fatalf("Resume of a superseded rollout: %v, want ErrState", err)
			}
		})
	}
}
