package coapd

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"
)

// The source gate drops, before anything decodes them, the datagrams of a
// source IP address sending far above its rate: a flood from one address
// costs the endpoint a table look-up per datagram, not a decode, a
// handler and an answer.
//
// It is a token bucket per source address kept in a fixed table:
// gateSets sets of gateWays entries, a set chosen by a keyed hash of the
// address (the key is random per process, so a sender cannot choose
// addresses that share a set). Each entry is the address and the bucket's
// theoretical arrival time (GCRA: the bucket is full when it lies in the
// past), 24 bytes; the table is gateSets*(gateWays*24+8) bytes, about
// 104 KiB, whatever the number of sources. A look-up locks one set, reads
// its four entries and allocates nothing. An address the table does not
// hold takes the entry of its set whose bucket is fullest: a flooding
// address, whose bucket is empty, is the last an entry is taken from,
// and a source that loses its entry comes back with a full bucket, so
// that many sources (spoofed or real) can make the gate forget a quiet
// node but never refuse one.
const (
	gateSets = 1024
	gateWays = 4
)

type gateEntry struct {
	hi, lo uint64 // the address, as 16 bytes (IPv4 mapped)
	tat    int64  // theoretical arrival time, ns since the gate's epoch; 0: empty
}

type gateSet struct {
	mu sync.Mutex
	e  [gateWays]gateEntry
}

// SourceGate is the table of per-source buckets: one may serve several
// sockets (the gateway's plain CoAP and DTLS ports), so that an address's
// datagrams count together. It is safe for concurrent use.
type SourceGate struct {
	k0, k1   uint64 // the hash's key
	epoch    time.Time
	interval int64 // ns per token
	limit    int64 // burst*interval: how far ahead of now a bucket may run
	sets     [gateSets]gateSet
}

// NewSourceGate returns a gate of perSecond datagrams a second and burst
// datagrams at most per source address, or nil (no gate) for a rate that
// is not positive. Set it far above what a legitimate address sends: a
// node fetching an image in lock-step over a fast link sends a request per
// round trip, and every node behind a NAT shares its address.
func NewSourceGate(perSecond float64, burst int) *SourceGate {
	if perSecond <= 0 {
		return nil
	}
	interval := int64(float64(time.Second) / perSecond)
	if interval < 1 {
		interval = 1
	}
	return &SourceGate{k0: rand.Uint64(), k1: rand.Uint64(), epoch: time.Now(), interval: interval,
		limit: int64(max(1, burst)) * interval}
}

// now returns the gate's clock: monotonic ns since its epoch, never 0.
func (g *SourceGate) now() int64 { return int64(time.Since(g.epoch)) + 1 }

// index returns the set of an address: a keyed mix of its 16 bytes.
func (g *SourceGate) index(hi, lo uint64) uint64 {
	h := (hi ^ g.k0) * 0x9e3779b97f4a7c15
	h ^= h >> 29
	h = (h ^ lo ^ g.k1) * 0xbf58476d1ce4e5b9
	h ^= h >> 32
	return h % gateSets
}

// Allow takes a token of a's bucket now and reports whether there was
// one: false means drop the datagram. A nil gate allows everything.
func (g *SourceGate) Allow(a netip.Addr) bool { return g == nil || g.allow(a, g.now()) }

// allow takes a token of a's bucket at now (the gate's clock) and
// reports whether there was one.
func (g *SourceGate) allow(a netip.Addr, now int64) bool {
	b := a.As16()
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	set := &g.sets[g.index(hi, lo)]
	set.mu.Lock()
	defer set.mu.Unlock()
	var e *gateEntry
	for i := range set.e {
		if c := &set.e[i]; c.tat != 0 && c.hi == hi && c.lo == lo {
			e = c
			break
		}
	}
	if e == nil {
		// Not held: take the fullest bucket's entry (an empty entry has
		// tat 0, the fullest of all).
		e = &set.e[0]
		for i := 1; i < gateWays; i++ {
			if set.e[i].tat < e.tat {
				e = &set.e[i]
			}
		}
		*e = gateEntry{hi: hi, lo: lo, tat: now}
	}
	t := max(e.tat, now) + g.interval
	if t-now > g.limit {
		return false
	}
	e.tat = t
	return true
}

// dropBatch is how many drops a worker counts before it adds them to the
// shared counter: the counter is touched once per batch of datagrams or
// per dropBatch drops, never once per drop.
const dropBatch = 64

// admitSource is the gate's single call at the top of the handling of a
// datagram from from: it reports whether the datagram may go on to be
// decoded, and counts it on the worker when it may not.
func (s *Server) admitSource(ws *workerState, from netip.AddrPort) bool {
	if s.gate.Allow(from.Addr()) {
		return true
	}
	if ws.dropped++; ws.dropped >= dropBatch {
		s.publishDrops(ws)
	}
	return false
}

// publishDrops adds the drops a worker counted to the server's counter
// and tells the drop hook.
func (s *Server) publishDrops(ws *workerState) {
	n := ws.dropped
	if n == 0 {
		return
	}
	ws.dropped = 0
	s.stats.sourceDropped.Add(n)
	if s.onDrop != nil {
		s.onDrop(n)
	}
}

// WithSourceGate drops, before decoding, the datagrams of a source IP
// address its bucket in g refuses (see Stats.SourceDropped); nil (the
// default) drops nothing.
func WithSourceGate(g *SourceGate) Option { return func(s *Server) { s.gate = g } }

// WithSourceDropHook sets a function told how many datagrams the source
// gate dropped, called at most once per batch a worker reads (for a
// metric: edgeota_refused_total{reason="source_rate"}).
func WithSourceDropHook(f func(n uint64)) Option { return func(s *Server) { s.onDrop = f } }
