package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"edgeota/protocol"
)

// checkSaved fails unless the records the engine committed load into the
// state it holds: every node's record, the phase, the wave and the
// decisions, and unless its tallies are what a recount gives. A node
// changed without being touched (so neither counted nor written) shows
// here.
func checkSaved(t *testing.T, fx *fixture) {
	t.Helper()
	f := fx.fk()
	e2 := NewEngine(f, f)
	if err := e2.Load(f.records(), func([]byte) (*protocol.Deployment, error) { return fx.d, nil }, fx.now); err != nil {
		t.Fatal(err)
	}
	fx.e.mu.Lock()
	defer fx.e.mu.Unlock()
	for id, r := range fx.e.rollouts {
		s := e2.rollouts[id]
		if s == nil || s.Phase != r.Phase || s.Wave != r.Wave || s.DecisionSeq != r.DecisionSeq || len(s.Nodes) != len(r.Nodes) {
			t.Fatalf("rollout %s reloads as %+v", id, s)
		}
		for i, d := range r.Decisions {
			if got := s.Decisions[i]; got.What != d.What || got.Node != d.Node || !got.At.Equal(d.At) {
				t.Fatalf("decision %d reloads as %+v, was %+v", i, got, d)
			}
		}
		for nid, n := range r.Nodes {
			a, _ := r.encodeNode(n)
			b, _ := s.encodeNode(s.Nodes[nid])
			if string(a) != string(b) {
				t.Fatalf("node %s: saved record differs from memory", nid)
			}
		}
		want := r.t
		want.states = maps.Clone(want.states)
		r.index()
		clear(r.dirty)
		maps.DeleteFunc(want.states, func(_ NodeState, n int) bool { return n == 0 })
		if fmt.Sprint(want) != fmt.Sprint(r.t) {
			t.Fatalf("rollout %s tally %v, a recount gives %v", id, want, r.t)
		}
	}
}

// TestRandomEventsSavedExactly drives a rollout with a seeded random mix
// of node events (trial, confirmation, health reports, reverts, refusals,
// ineligibility, late joiners, ticks) and checks after each round that
// what is saved reloads into exactly the state in memory and that the
// counts kept per change equal a recount.
func TestRandomEventsSavedExactly(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			fx := setup(t, 60, func(d *protocol.Deployment) {
				d.Gates.MaxFailed = u(12)
				d.MaxConcurrent = 7
			})
			rng := rand.New(rand.NewPCG(seed, 7))
			late := 0
			for round := 0; round < 40; round++ {
				for range 25 {
					id := fmt.Sprintf("n%02d", rng.IntN(60))
					switch k := rng.IntN(10); {
					case k < 2:
						fx.e.Hello(fx.info(id, newSeq, newDigest, protocol.SlotTrial), fx.prevOf, fx.now)
					case k < 4:
						fx.e.Hello(fx.info(id, newSeq, newDigest, protocol.SlotConfirmed), fx.prevOf, fx.now)
					case k < 7:
						fx.number++
						fx.e.Health(&protocol.HealthReport{NodeID: id, RunningSeq: newSeq, Inferences: 100, Errors: uint64(rng.IntN(2)),
							LatencyP99Micros: 1000, Number: fx.number}, fx.now)
					case k == 7:
						fx.number++
						fx.e.Status(&protocol.StatusEvent{NodeID: id, Seq: newSeq, State: protocol.StateReverted,
							Code: protocol.ReasonBootLoop, Number: fx.number}, fx.now)
					case k == 8:
						n := fx.info(id, prevSeq, prevDigest, protocol.SlotConfirmed)
						n.Runtime = "onnx"
						fx.e.Hello(n, fx.prevOf, fx.now)
					default:
						late++
						fx.e.Hello(fx.info(fmt.Sprintf("late%03d", late), prevSeq, prevDigest, protocol.SlotConfirmed), fx.prevOf, fx.now)
					}
				}
				fx.advance(time.Duration(rng.IntN(90)) * time.Second)
				checkSaved(t, fx)
			}
		})
	}
}

// TestStatusBoundedAtTenThousandNodes: the status of a rollout of 10,000
// nodes, the retained JSON on the rollout topic, stays within 16 KiB: it
// counts nodes per wave and state and lists the latest decisions, never
// the nodes.
func TestStatusBoundedAtTenThousandNodes(t *testing.T) {
	fx := setup(t, 0, func(d *protocol.Deployment) { d.MaxConcurrent = 500 })
	for i := range 10000 {
		fx.e.Hello(fx.info(fmt.Sprintf("node-%05d-with-a-long-name", i), prevSeq, prevDigest, protocol.SlotConfirmed), fx.prevOf, fx.now)
	}
	b, err := json.Marshal(fx.status())
	if err != nil {
		t.Fatal(err)
	}
	if st := fx.status(); st.Totals["assigned"]+st.Totals["waiting"] != 10000 {
		t.Fatalf("totals %v", st.Totals)
	}
	if len(b) > 16<<10 {
		t.Fatalf("status of 10,000 nodes is %d bytes, over 16 KiB", len(b))
	}
	t.Logf("status of 10,000 nodes: %d bytes", len(b))
}

// TestCommitFailureRetried: a commit that fails fails the calls it
// carried, notifies no one, and is written again, whole, with the next
// change: nothing staged is lost.
func TestCommitFailureRetried(t *testing.T) {
	fx := setup(t, 10, nil)
	before := len(fx.fk().log)
	fx.f.fail = errors.New("disk full")
	if err := fx.e.Hello(fx.info("late", prevSeq, prevDigest, protocol.SlotConfirmed), fx.prevOf, fx.now).Wait(); err == nil {
		t.Fatal("the failed commit was reported durable")
	}
	if _, ok := fx.f.saved("dep").Nodes["late"]; ok {
		t.Fatal("the failed commit was written")
	}
	if err := fx.e.Tick(fx.now).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, ok := fx.fk().saved("dep").Nodes["late"]; !ok {
		t.Fatal("the node of the failed commit was never written")
	}
	if len(fx.fk().log) < before {
		t.Fatal("assignments lost")
	}
	checkSaved(t, fx)
}

// BenchmarkEngineEvents measures the engine's cost per node event (a
// health report of a node on trial, then its confirmation) in rollouts of
// 100, 1,000 and 10,000 nodes: flat when no per-event path grows with the
// rollout. The store is the in-memory fake: this is the engine's CPU, the
// gateway's benchmarks add CoAP and bbolt.
func BenchmarkEngineEvents(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprint(n, " nodes"), func(b *testing.B) {
			t := &testing.T{}
			fx := setup(t, 0, func(d *protocol.Deployment) {
				d.Waves = []protocol.Wave{{BasisPoints: 10000}}
				d.MaxConcurrent = uint64(n)
			})
			fx.f.t, fx.f.unchecked = b, true
			for i := range n {
				fx.e.Hello(fx.info(fmt.Sprintf("n%05d", i), prevSeq, prevDigest, protocol.SlotConfirmed), fx.prevOf, fx.now)
			}
			flush(b, fx.e)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				id := fmt.Sprintf("n%05d", i%n)
				fx.e.Health(&protocol.HealthReport{NodeID: id, RunningSeq: prevSeq, Inferences: 10, LatencyP99Micros: 100, Number: uint64(i)}, fx.now)
				fx.e.Status(&protocol.StatusEvent{NodeID: id, Seq: newSeq, State: protocol.StateTrial, Number: uint64(i)}, fx.now)
			}
			flush(b, fx.e)
			b.ReportMetric(float64(2*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// TestPublishPaced: changes that come faster than the pace are told once
// at the first, then once more with the latest status when the pace's
// interval ends (the timer is fired by hand here: the pace is an hour).
func TestPublishPaced(t *testing.T) {
	var mu sync.Mutex
	var told []StatusView
	f := &fake{t: t}
	e := NewEngine(f, f, WithPublishPace(time.Hour), WithPublish(func(_ string, st StatusView) {
		mu.Lock()
		defer mu.Unlock()
		told = append(told, st)
	}))
	fx := &fixture{t: t, e: e, f: f, now: time.Unix(1795000000, 0), prev: map[string][]byte{}}
	fx.m = &protocol.Manifest{Format: 1, Seq: newSeq, Component: "kws", Version: "2.0", Digest: newDigest, Size: 1, Class: class}
	fx.d = &protocol.Deployment{ID: "dep", Seq: 1, Manifest: []byte("NEW"), Cohort: "hw:rev2",
		Waves: []protocol.Wave{{BasisPoints: 10000}}, NodeTimeoutSeconds: 600, MaxConcurrent: 1000}
	if err := e.Start(fx.d, []byte("DEP"), fx.m, listOf(nil), fx.prevOf, fx.now); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := e.Hello(fx.info(fmt.Sprintf("n%03d", i), prevSeq, prevDigest, protocol.SlotConfirmed), fx.prevOf, fx.now).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	n := len(told)
	mu.Unlock()
	if n != 1 {
		t.Fatalf("told %d statuses for 101 changes within the pace, want 1", n)
	}
	e.publishNow("dep", true) // the interval ends
	mu.Lock()
	defer mu.Unlock()
	if len(told) != 2 || told[1].Totals["assigned"] != 100 {
		t.Fatalf("told %d statuses, the last with totals %v; want 2, the last with 100 assigned", len(told), told[len(told)-1].Totals)
	}
}
