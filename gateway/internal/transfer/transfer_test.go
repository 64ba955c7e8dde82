package transfer

import (
	"net/netip"
	"testing"
	"time"

	"edgeota/protocol"
)

func TestAdmit(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	a := netip.MustParseAddrPort("192.0.2.1:5000")
	a2 := netip.MustParseAddrPort("192.0.2.1:5001")
	b := netip.MustParseAddrPort("192.0.2.2:5000")
	d1, d2, d3 := protocol.Digest{1}, protocol.Digest{2}, protocol.Digest{3}
	yes := func() bool { return true }
	no := func() bool { return false }
	type step struct {
		from     netip.AddrPort
		identity string
		d        protocol.Digest
		mayStart func() bool
		done     bool // Done instead of Admit
		ok       bool
		started  bool
		limited  bool
	}
	for _, tc := range []struct {
		name              string
		maxTotal, maxNode int
		steps             []step
		wantCount         int
	}{
		{"a started transfer's blocks pass, even when rates refuse", 10, 2, []step{
			{from: a, d: d1, mayStart: yes, ok: true, started: true},
			{from: a, d: d1, mayStart: no, ok: true},
		}, 1},
		{"a new transfer over the rates is limited", 10, 2, []step{
			{from: a, d: d1, mayStart: no, limited: true},
		}, 0},
		{"per node on plain UDP: per endpoint", 10, 1, []step{
			{from: a, d: d1, mayStart: yes, ok: true, started: true},
			{from: a, d: d2, mayStart: yes},
			{from: a2, d: d2, mayStart: yes, ok: true, started: true},
		}, 2},
		{"per node under DTLS: per identity", 10, 2, []step{
			{from: a, identity: "n1", d: d1, mayStart: yes, ok: true, started: true},
			{from: b, identity: "n1", d: d2, mayStart: yes, ok: true, started: true},
			{from: a2, identity: "n1", d: d3, mayStart: yes},
			{from: a2, identity: "n2", d: d3, mayStart: yes, ok: true, started: true},
		}, 3},
		{"total bound", 2, 2, []step{
			{from: a, d: d1, mayStart: yes, ok: true, started: true},
			{from: b, d: d1, mayStart: yes, ok: true, started: true},
			{from: a2, d: d1, mayStart: yes},
		}, 2},
		{"done frees the slot", 1, 1, []step{
			{from: a, d: d1, mayStart: yes, ok: true, started: true},
			{from: a, d: d1, done: true},
			{from: a, d: d2, mayStart: yes, ok: true, started: true},
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tt := New(tc.maxTotal, tc.maxNode, time.Minute)
			for i, s := range tc.steps {
				if s.done {
					tt.Done(s.from, s.d)
					continue
				}
				ok, started, limited := tt.Admit(s.from, s.identity, s.d, t0, s.mayStart)
				if ok != s.ok || started != s.started || limited != s.limited {
					t.Fatalf("step %d: ok %v started %v limited %v, want %v %v %v", i, ok, started, limited, s.ok, s.started, s.limited)
				}
			}
			if n := tt.Count(); n != tc.wantCount {
				t.Fatalf("%d transfers, want %d", n, tc.wantCount)
			}
		})
	}
}

// TestSweepEndsIdleTransfers: a transfer idle for longer than the idle
// time ends and frees its node's slot; one asked within it stays.
func TestSweepEndsIdleTransfers(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	a := netip.MustParseAddrPort("192.0.2.1:5000")
	b := netip.MustParseAddrPort("192.0.2.2:5000")
	yes := func() bool { return true }
	tt := New(10, 1, 30*time.Second)
	tt.Admit(a, "", protocol.Digest{1}, t0, yes)
	tt.Admit(b, "", protocol.Digest{1}, t0, yes)
	tt.Admit(b, "", protocol.Digest{1}, t0.Add(20*time.Second), yes) // b's next block
	if n := tt.Sweep(t0.Add(31 * time.Second)); n != 1 {
		t.Fatalf("%d transfers after the sweep, want 1 (b's)", n)
	}
	if ok, started, _ := tt.Admit(a, "", protocol.Digest{2}, t0.Add(32*time.Second), yes); !ok || !started {
		t.Fatal("a's slot was not freed by the sweep")
	}
}
