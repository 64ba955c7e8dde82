package coapd

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
	"unsafe"
)

func TestSourceGate(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")
	v6 := netip.MustParseAddr("2001:db8::1")
	ms := int64(time.Millisecond)
	type dgram struct {
		from netip.Addr
		at   int64 // ns on the gate's clock
	}
	for _, tc := range []struct {
		name      string
		perSecond float64
		burst     int
		in        []dgram
		want      string // one letter a datagram: y allowed, n dropped
	}{
		{"a burst, then dropped", 1000, 3,
			[]dgram{{a, 1}, {a, 1}, {a, 1}, {a, 1}, {a, 1}}, "yyynn"},
		{"one token a millisecond comes back", 1000, 2,
			[]dgram{{a, 1}, {a, 1}, {a, 1}, {a, 1 + ms}, {a, 1 + ms}, {a, 1 + 3*ms}, {a, 1 + 3*ms}, {a, 1 + 3*ms}}, "yynynyyn"},
		{"at its rate a source is never dropped", 1000, 1,
			[]dgram{{a, 1}, {a, 1 + ms}, {a, 1 + 2*ms}, {a, 1 + 3*ms}, {a, 1 + 4*ms}}, "yyyyy"},
		{"each address has its own bucket", 1000, 1,
			[]dgram{{a, 1}, {b, 1}, {v6, 1}, {a, 1}, {b, 1}, {v6, 1}}, "yyynnn"},
		{"a refused datagram takes no token", 1000, 1,
			[]dgram{{a, 1}, {a, 1}, {a, 1}, {a, 1 + ms}}, "ynny"},
		{"a full bucket does not grow past the burst", 1000, 2,
			[]dgram{{a, 1}, {a, 1 + 10*ms}, {a, 1 + 10*ms}, {a, 1 + 10*ms}}, "yyyn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewSourceGate(tc.perSecond, tc.burst)
			got := make([]byte, len(tc.in))
			for i, d := range tc.in {
				got[i] = 'n'
				if g.allow(d.from, d.at) {
					got[i] = 'y'
				}
			}
			if string(got) != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
	if NewSourceGate(0, 10) != nil || NewSourceGate(-1, 10) != nil {
		t.Fatal("a rate that is not positive made a gate")
	}
}

// TestSourceGateBounded: a million sources, each seen once (a spoofed
// flood), leave the table its fixed size, and do not make the gate
// forget a source at its limit: the flooder among them stays dropped.
func TestSourceGateBounded(t *testing.T) {
	if size := unsafe.Sizeof(SourceGate{}); size > 110<<10 {
		t.Fatalf("the table is %d bytes, more than the 110 KiB its doc states", size)
	}
	g := NewSourceGate(1000, 10)
	flooder := netip.MustParseAddr("198.51.100.7")
	now := int64(1)
	for i := 0; i < 10; i++ {
		g.allow(flooder, now) // its burst
	}
	allowed := 0
	for i := 0; i < 1_000_000; i++ {
		now += 100 // 10 million datagrams a second in all
		spoofed := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if !g.allow(spoofed, now) {
			t.Fatalf("spoofed source %d (%v), seen once, was dropped", i, spoofed)
		}
		if i%10 == 0 && g.allow(flooder, now) { // 1 million a second
			allowed++
		}
	}
	// 100 ms at 1000 a second: at most 100 tokens came back.
	if limit := int(now/int64(time.Millisecond)) + 1; allowed > limit {
		t.Fatalf("the flooder got %d datagrams through in %v; at most %d came back to its bucket", allowed, time.Duration(now), limit)
	}
	if n := testing.AllocsPerRun(1000, func() { g.allow(flooder, now) }); n != 0 {
		t.Fatalf("allow allocates %v times a datagram", n)
	}
}

// TestSourceGateRandomFlooders: among sources each seen once and nodes
// at their rate, several flooders at ten times the rate from random
// addresses; every flooder gets through at most its burst and what its
// bucket refilled, and a node at its rate is never dropped.
//
// The addresses and the gate's hash key are random. A node is never
// dropped whatever the hashing (an entry it loses comes back full); a
// flooder gets more than its share only if it loses its entry, which takes
// a set of four entries all at least as indebted as it: gateWays other
// flooders in its set. With F = 12 flooders and 1024 sets the chance of
// any set holding 4 of them is at most sets * C(F,4) / sets^4 =
// 495 / 1024^3 = 4.6e-7, below 1e-6.
func TestSourceGateRandomFlooders(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	const (
		flooders  = 12
		nodes     = 200
		perSecond = 1000
		burst     = 50
		steps     = 20_000 // 10 µs each: 200 ms
		step      = int64(10 * time.Microsecond)
	)
	addr := func() netip.Addr {
		var b [16]byte
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return netip.AddrFrom16(b)
	}
	g := NewSourceGate(perSecond, burst)
	fl := make([]netip.Addr, flooders)
	got := make([]int, flooders)
	for i := range fl {
		fl[i] = addr()
	}
	nd := make([]netip.Addr, nodes)
	for i := range nd {
		nd[i] = addr()
	}
	for s := int64(1); s <= steps; s++ {
		now := s * step
		for i, f := range fl { // 100,000 a second each
			if g.allow(f, now) {
				got[i]++
			}
		}
		if !g.allow(addr(), now) {
			t.Fatalf("seed %d: a source seen once was dropped", seed)
		}
		// Each node sends at half its rate: one every 2 ms, staggered.
		if s%(2*int64(time.Millisecond)/step/int64(nodes)) == 0 {
			n := int(s/(2*int64(time.Millisecond)/step/int64(nodes))) % nodes
			if !g.allow(nd[n], now) {
				t.Fatalf("seed %d: node %d, at half its rate, was dropped at %v", seed, n, time.Duration(now))
			}
		}
	}
	limit := burst + perSecond*steps*int(step)/int(time.Second) + 1
	for i, n := range got {
		if n > limit {
			t.Errorf("seed %d: flooder %d (%v) got %d through; its bucket allowed %d", seed, i, fl[i], n, limit)
		}
	}
}

func BenchmarkSourceGate(b *testing.B) {
	g := NewSourceGate(1000, 10)
	addrs := make([]netip.Addr, 1024)
	for i := range addrs {
		addrs[i] = netip.MustParseAddr(fmt.Sprintf("10.0.%d.%d", i>>8, i&255))
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		g.allow(addrs[i&1023], g.now())
	}
}
