package ratelimit

import (
	"net/netip"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	a := netip.MustParseAddrPort("192.0.2.1:5000")
	a2 := netip.MustParseAddrPort("192.0.2.1:5001") // same address, other endpoint
	b := netip.MustParseAddrPort("192.0.2.2:5000")
	type req struct {
		from     netip.AddrPort
		identity string
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		reqs []req
		at   []time.Duration
		want []string // "" allowed, else the limit broken
	}{
		{"node burst then refill", Config{SourceRate: -1, NodeRate: 1, NodeBurst: 2, MaxKeys: 100},
			[]req{{from: a}, {from: a}, {from: a}, {from: a}},
			[]time.Duration{0, 0, 0, time.Second},
			[]string{"", "", NodeRate, ""}},
		{"plain UDP: per endpoint", Config{SourceRate: -1, NodeRate: 1, NodeBurst: 1, MaxKeys: 100},
			[]req{{from: a}, {from: a2}, {from: a}},
			[]time.Duration{0, 0, 0},
			[]string{"", "", NodeRate}},
		{"DTLS: per identity, whatever the endpoint", Config{SourceRate: -1, NodeRate: 1, NodeBurst: 1, MaxKeys: 100},
			[]req{{a, "n1"}, {b, "n1"}, {b, "n2"}},
			[]time.Duration{0, 0, 0},
			[]string{"", NodeRate, ""}},
		{"source: per address, all endpoints", Config{SourceRate: 1, SourceBurst: 2, NodeRate: -1, MaxKeys: 100},
			[]req{{from: a}, {from: a2}, {from: a}, {from: b}},
			[]time.Duration{0, 0, 0, 0},
			[]string{"", "", SourceRate, ""}},
		{"both off", Config{SourceRate: -1, NodeRate: -1},
			[]req{{from: a}, {from: a}, {from: a}},
			[]time.Duration{0, 0, 0},
			[]string{"", "", ""}},
		{"key table full refuses new keys", Config{SourceRate: -1, NodeRate: 1, NodeBurst: 5, MaxKeys: 1},
			[]req{{from: a}, {from: b}, {from: a}},
			[]time.Duration{0, 0, 0},
			[]string{"", NodeRate, ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := New(tc.cfg)
			for i, r := range tc.reqs {
				ok, which := l.Allow(r.from, r.identity, t0.Add(tc.at[i]))
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
