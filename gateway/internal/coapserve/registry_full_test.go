package coapserve

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"edgeota/gateway/internal/coapd"
	"edgeota/gateway/internal/store"
	"edgeota/protocol"
)

// post answers a POST of doc to node's resource res from plain UDP (the
// answer of a deferred response once it is complete).
func post(tb testing.TB, h *Handler, node string, res protocol.NodeResource, doc any) *coapd.Response {
	tb.Helper()
	body, err := protocol.Marshal(doc)
	if err != nil {
		tb.Fatal(err)
	}
	r := coapd.Request{Msg: message.Message{Code: codes.POST, Payload: body}, Path: protocol.NodePath(node, res),
		From: netip.MustParseAddrPort("127.0.0.1:9")}
	r.Msg.Options = r.Msg.Options.Add(message.Option{ID: message.ContentFormat, Value: []byte{byte(cfCBOR)}})
	var w coapd.Response
	h.ServeCoAP(&w, &r)
	if d := w.Deferred(); d != nil {
		return d.Answer()
	}
	return &w
}

// refusedCount is edgeota_refused_total{reason} of h's metrics.
func refusedCount(tb testing.TB, h *Handler, reason string) float64 {
	tb.Helper()
	mfs, err := h.cfg.Metrics.Registry.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "edgeota_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestHelloRegistryFull: with the registry at its bound, a new node's
// Hello gets 5.03 with Max-Age 60, is counted as registry_full, and leaves
// the node unknown (its health report still gets 4.04); a known node's
// Hello and reports are served as before.
func TestHelloRegistryFull(t *testing.T) {
	h := newTestHandler(t, store.WithMaxNodes(1))
	class := protocol.Class{1, 2, 3}
	hello := func(id string) *protocol.Hello {
		return &protocol.Hello{NodeID: id, Class: class, AgentVersion: "1", Component: "kws"}
	}
	health := func(id string) *protocol.HealthReport {
		return &protocol.HealthReport{NodeID: id, BootCount: 1, Number: 1}
	}
	refused := func() float64 { return refusedCount(t, h, "registry_full") }

	if w := post(t, h, "known", protocol.ResHello, hello("known")); w.Code != codes.Changed {
		t.Fatalf("first hello: %v", w.Code)
	}
	w := post(t, h, "new", protocol.ResHello, hello("new"))
	if ma, _ := w.Options.GetUint32(message.MaxAge); w.Code != codes.ServiceUnavailable || ma != registryFullMaxAge {
		t.Fatalf("hello over the bound: %v with Max-Age %d, want 5.03 with Max-Age %d", w.Code, ma, registryFullMaxAge)
	}
	if !bytes.Equal(w.Payload, []byte("node registry full")) {
		t.Errorf("payload %q", w.Payload)
	}
	if got := refused(); got != 1 {
		t.Errorf("registry_full refusals: %v, want 1", got)
	}
	if w := post(t, h, "new", protocol.ResHealth, health("new")); w.Code != codes.NotFound {
		t.Errorf("health report of the refused node: %v, want 4.04 (say hello first)", w.Code)
	}
	if w := post(t, h, "known", protocol.ResHello, hello("known")); w.Code != codes.Changed {
		t.Errorf("known node's hello at the bound: %v", w.Code)
	}
	if w := post(t, h, "known", protocol.ResHealth, health("known")); w.Code != codes.Changed {
		t.Errorf("known node's health report at the bound: %v", w.Code)
	}
	if got := refused(); got != 1 {
		t.Errorf("registry_full refusals: %v, want still 1", got)
	}
}

// TestQuietLog: the first refusal is logged, then at most one summary a
// period, covering every refusal since the last one.
func TestQuietLog(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	steps := []struct {
		name string
		at   time.Duration
		warn bool
		n    int
	}{
		{"first", 0, true, 1},
		{"within the period", time.Second, false, 0},
		{"still within", registryFullLogEvery - time.Nanosecond, false, 0},
		{"period over: a summary of three", registryFullLogEvery, true, 3},
		{"the next period begins", registryFullLogEvery + time.Second, false, 0},
		{"long after", 10 * registryFullLogEvery, true, 2},
	}
	var q quietLog
	for _, s := range steps {
		warn, n := q.refused(t0.Add(s.at))
		if warn != s.warn || n != s.n {
			t.Errorf("%s: warn %v covering %d, want %v covering %d", s.name, warn, n, s.warn, s.n)
		}
	}
}
