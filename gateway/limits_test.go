package gateway

import (
	"net/netip"
	"testing"
	"time"

	"edgeota/gateway/internal/coapd"
)

func TestLimiter(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	a := netip.MustParseAddrPort("192.0.2.1:5000")
	a2 := netip.MustParseAddrPort("192.0.2.1:5001") // same address, other endpoint
	b := netip.MustParseAddrPort("192.0.2.2:5000")
	for _, tc := range []struct {
		name   string
		limits Limits
		reqs   []coapd.Request
		at     []time.Duration
		want   []string // "" allowed, else the limit broken
	}{
		{"node burst then refill", Limits{SourceRate: -1, NodeRate: 1, NodeBurst: 2},
			[]coapd.Request{{From: a}, {From: a}, {From: a}, {From: a}},
			[]time.Duration{0, 0, 0, time.Second},
			[]string{"", "", "node_rate", ""}},
		{"plain UDP: per endpoint", Limits{SourceRate: -1, NodeRate: 1, NodeBurst: 1},
			[]coapd.Request{{From: a}, {From: a2}, {From: a}},
			[]time.Duration{0, 0, 0},
			[]string{"", "", "node_rate"}},
		{"DTLS: per identity, whatever the endpoint", Limits{SourceRate: -1, NodeRate: 1, NodeBurst: 1},
			[]coapd.Request{{From: a, Identity: "n1"}, {From: b, Identity: "n1"}, {From: b, Identity: "n2"}},
			[]time.Duration{0, 0, 0},
			[]string{"", "node_rate", ""}},
		{"source: per address, all endpoints", Limits{SourceRate: 1, SourceBurst: 2, NodeRate: -1},
			[]coapd.Request{{From: a}, {From: a2}, {From: a}, {From: b}},
			[]time.Duration{0, 0, 0, 0},
			[]string{"", "", "source_rate", ""}},
		{"both off", Limits{SourceRate: -1, NodeRate: -1},
			[]coapd.Request{{From: a}, {From: a}, {From: a}},
			[]time.Duration{0, 0, 0},
			[]string{"", "", ""}},
		{"key table full refuses new keys", Limits{SourceRate: -1, NodeRate: 1, NodeBurst: 5, MaxKeys: 1},
			[]coapd.Request{{From: a}, {From: b}, {From: a}},
			[]time.Duration{0, 0, 0},
			[]string{"", "node_rate", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLimiter(tc.limits.withDefaults())
			for i := range tc.reqs {
				ok, which := l.allow(&tc.reqs[i], t0.Add(tc.at[i]))
				if ok != (tc.want[i] == "") || which != tc.want[i] {
					t.Fatalf("request %d: allowed %v (%q), want %q", i, ok, which, tc.want[i])
				}
			}
		})
	}
}

func TestRatesSweepDropsQuietKeys(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	r := newRates[string](10, 10, 100)
	r.allow("busy", t0)
	r.allow("quiet", t0.Add(-time.Hour))
	if n := r.sweep(t0); n != 1 {
		t.Fatalf("%d keys left, want 1 (the busy one)", n)
	}
}
