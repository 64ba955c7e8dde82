package nodeagent_test

import (
	"bytes"
	"context"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"edgeota/nodeagent"
	"edgeota/nodeagent/simmodel"
	"edgeota/protocol"
)

// recorder is a Reporter that keeps what the agent sent.
type recorder struct {
	mu     sync.Mutex
	hellos []protocol.Hello
	health []protocol.HealthReport
}

func (r *recorder) Hello(_ context.Context, h *protocol.Hello) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hellos = append(r.hellos, *h)
	return nil
}

func (r *recorder) Status(context.Context, *protocol.StatusEvent) error { return nil }

func (r *recorder) Health(_ context.Context, h *protocol.HealthReport) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.health = append(r.health, *h)
	return nil
}

// TestHealthReportsCarryModelMetrics: a model of the simulated runtime
// whose header declares metric.low_confidence_permille=80 has every health
// report after its activation carry it (key 64), for a deployment's metric
// gate.
func TestHealthReportsCarryModelMetrics(t *testing.T) {
	tb := newTestbed(t)
	rel := tb.release(t, 5, 1, "1.0.0", goodModel+" metric.low_confidence_permille=80", 48<<10)
	rep := &recorder{}
	f := newSim(t, geometry{4096, 8, 4}, 1)
	a, err := nodeagent.New(nodeagent.Config{NodeID: "node-1", Class: testClass, Component: "kws-model", Flash: f, Trust: tb.trust, Models: simmodel.Runtime{}.ForAgent(),
		SlotSize: sweepSlot, JournalBlocks: 4, InferenceRate: 50, HealthInterval: 5 * time.Second, Reporter: rep,
		Clock: &virtualClock{now: time.Unix(1795000000, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := a.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Install(ctx, rel.signed, nodeagent.ReaderAtSource{R: bytes.NewReader(rel.image)}, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Settle(ctx); err != nil { // 20 s of probation: 4 reports at 5 s
		t.Fatal(err)
	}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if len(rep.health) == 0 {
		t.Fatal("no health report during probation")
	}
	want := map[string]int64{"low_confidence_permille": 80}
	for _, h := range rep.health {
		if !maps.Equal(h.Metrics, want) {
			t.Fatalf("health report %d carries metrics %v, want %v", h.Number, h.Metrics, want)
		}
	}
}

// TestHelloNamesTheRuntime: the runtime the agent is configured with goes
// in its Hello (key 64, v1.1), so that the gateway can tell which
// manifests' requires it meets; an agent configured with none names none;
// a runtime that is not a section 0 name is refused.
func TestHelloNamesTheRuntime(t *testing.T) {
	tb := newTestbed(t)
	for _, runtime := range []string{"tflm", ""} {
		rep := &recorder{}
		a, err := nodeagent.New(nodeagent.Config{NodeID: "node-1", Class: testClass, Component: "kws-model", Runtime: runtime,
			Flash: newSim(t, geometry{4096, 8, 4}, 1), Trust: tb.trust, Models: simmodel.Runtime{}.ForAgent(), SlotSize: sweepSlot, JournalBlocks: 4, Reporter: rep,
			Clock: &virtualClock{now: time.Unix(1795000000, 0)}})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Boot(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(rep.hellos) != 1 || rep.hellos[0].Runtime != runtime {
			t.Fatalf("runtime %q: hellos %+v, want one naming it", runtime, rep.hellos)
		}
		if err := rep.hellos[0].Validate(); err != nil {
			t.Fatal(err)
		}
	}
	_, err := nodeagent.New(nodeagent.Config{NodeID: "node-1", Class: testClass, Runtime: "tf lm",
		Flash: newSim(t, geometry{4096, 8, 4}, 1), Trust: tb.trust, Models: simmodel.Runtime{}.ForAgent(), SlotSize: sweepSlot, JournalBlocks: 4})
	if err == nil {
		t.Fatal("runtime \"tf lm\" accepted")
	}
}

// TestNewNeedsARuntime: the agent has no default model runtime; New says
// which field is missing.
func TestNewNeedsARuntime(t *testing.T) {
	tb := newTestbed(t)
	_, err := nodeagent.New(nodeagent.Config{NodeID: "node-1", Class: testClass,
		Flash: newSim(t, geometry{4096, 8, 4}, 1), Trust: tb.trust, SlotSize: sweepSlot, JournalBlocks: 4})
	if err == nil || !strings.Contains(err.Error(), "Models is required") {
		t.Fatalf("New without Models = %v, want an error naming Models", err)
	}
}
