package coapserve

import (
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"edgeota/gateway/internal/activity"
	"edgeota/gateway/internal/coapd"
	"edgeota/gateway/internal/store"
	"edgeota/protocol"
)

// countingStore counts the Hellos stored.
type countingStore struct {
	*store.DB
	puts atomic.Int64
}

func (s *countingStore) PutHello(h *protocol.Hello, addr string) (*store.Node, bool, error) {
	s.puts.Add(1)
	return s.DB.PutHello(h, addr)
}

// postHello posts h from from and returns the answer and whether it was
// deferred (answered once the Hello was stored).
func postHello(t *testing.T, h *Handler, hello *protocol.Hello, from string) (*coapd.Response, bool) {
	t.Helper()
	body, err := protocol.Marshal(hello)
	if err != nil {
		t.Fatal(err)
	}
	r := coapd.Request{Msg: message.Message{Code: codes.POST, Type: message.Confirmable, Payload: body}, From: netip.MustParseAddrPort(from),
		Path: protocol.NodePath(hello.NodeID, protocol.ResHello)}
	r.Msg.Options, _, _ = message.Options{}.SetContentFormat(make([]byte, 4), message.AppCBOR)
	var w coapd.Response
	h.ServeCoAP(&w, &r)
	if d := w.Deferred(); d != nil {
		return d.Answer(), true
	}
	return &w, false
}

// TestRepeatedHelloWritesNothing: a Hello that changes the node's record
// is stored before its 2.04 (a deferred answer); one that repeats the
// record is answered at once with nothing stored, its LastSeen and Addr
// recorded with the node's activity.
func TestRepeatedHelloWritesNothing(t *testing.T) {
	h := newTestHandler(t)
	st := &countingStore{DB: h.cfg.Store.(*store.DB)}
	h.cfg.Store = st
	rec := h.cfg.Activity.(*activity.Recorder)
	hello := &protocol.Hello{NodeID: "n1", Class: protocol.Class{1}, AgentVersion: "1.0.0", Component: "kws", Labels: map[string]string{"hw": "rev2"}}

	for i, c := range []struct {
		name     string
		edit     func(h *protocol.Hello)
		from     string
		deferred bool
	}{
		{"a new node", func(*protocol.Hello) {}, "10.0.0.1:5683", true},
		{"the same Hello", func(*protocol.Hello) {}, "10.0.0.1:5683", false},
		{"the same Hello from another port", func(*protocol.Hello) {}, "10.0.0.1:6000", false},
		{"an activation", func(h *protocol.Hello) {
			h.RunningSeq, h.RunningDigest, h.ActiveState = 2, protocol.Digest{2}, protocol.SlotTrial
		}, "10.0.0.1:6000", true},
		{"the activation again", func(*protocol.Hello) {}, "10.0.0.1:6000", false},
		{"delta formats listed (v1.4)", func(h *protocol.Hello) { h.DeltaFormats = []uint64{1} }, "10.0.0.1:6000", true},
		{"the same formats", func(h *protocol.Hello) { h.DeltaFormats = []uint64{1} }, "10.0.0.1:6000", false},
		{"formats dropped", func(h *protocol.Hello) { h.DeltaFormats = nil }, "10.0.0.1:6000", true},
	} {
		before := st.puts.Load()
		c.edit(hello)
		w, deferred := postHello(t, h, hello, c.from)
		if w.Code != codes.Changed || deferred != c.deferred {
			t.Fatalf("%s: answered %v, deferred %v; want 2.04, deferred %v", c.name, w.Code, deferred, c.deferred)
		}
		if stored := st.puts.Load() - before; stored != map[bool]int64{true: 1}[c.deferred] {
			t.Fatalf("%s: %d Hellos stored", c.name, stored)
		}
		rec.Flush()
		n, err := st.Node("n1")
		if err != nil {
			t.Fatal(err)
		}
		if n.Addr != c.from || n.RunningSeq != hello.RunningSeq || n.ActiveState != hello.ActiveState ||
			!slices.Equal(n.DeltaFormats, hello.DeltaFormats) {
			t.Fatalf("%s (step %d): the registry holds %+v", c.name, i, n)
		}
	}
}
