// Package ratelimit holds the gateway's request rates: a token bucket
// (golang.org/x/time/rate) per source IP address and one per node, so that
// one noisy host or node cannot take the service from the others
// (docs/protocol.md section 5). A node is its PSK identity under DTLS and
// its source endpoint on plain UDP.
//
// Buckets are made on first use and dropped by [Limiter.Sweep] once they
// are full again; the number of keys tracked at once is bounded, and an
// unknown key is refused while the table is full.
package ratelimit

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// The limits a request can break, as [Limiter.Allow] names them (the
// reason label of edgeota_refused_total).
const (
	SourceRate = "source_rate"
	NodeRate   = "node_rate"
)

// Config sets the rates. A negative rate turns its limit off.
type Config struct {
	// SourceRate and SourceBurst bound the requests per second of one
	// source IP address.
	SourceRate  float64
	SourceBurst int
	// NodeRate and NodeBurst bound the requests per second of one node.
	NodeRate  float64
	NodeBurst int
	// MaxKeys bounds the sources and nodes each rate tracks at once.
	MaxKeys int
}

// Limiter applies a [Config]'s rates. It is safe for concurrent use.
type Limiter struct {
	bySource *rates[netip.Addr]
	byNode   *rates[nodeKey]
}

// New returns a Limiter of c's rates.
func New(c Config) *Limiter {
	return &Limiter{bySource: newRates[netip.Addr](c.SourceRate, c.SourceBurst, c.MaxKeys),
		byNode: newRates[nodeKey](c.NodeRate, c.NodeBurst, c.MaxKeys)}
}

// Allow takes a token for a request from the endpoint from, whose DTLS
// session proved identity ("" on plain UDP), at now. It reports whether
// the request is within its source's and its node's rates, and names the
// limit it broke otherwise ([SourceRate] or [NodeRate]).
func (l *Limiter) Allow(from netip.AddrPort, identity string, now time.Time) (bool, string) {
	if !l.bySource.allow(from.Addr(), now) {
		return false, SourceRate
	}
	if !l.byNode.allow(keyOf(from, identity), now) {
		return false, NodeRate
	}
	return true, ""
}

// AllowSource takes a token of the source rate alone: a DTLS handshake
// from a over its rate is refused before any cryptography.
func (l *Limiter) AllowSource(a netip.Addr, now time.Time) bool {
	return l.bySource.allow(a, now)
}

// Sweep drops the buckets of quiet keys.
func (l *Limiter) Sweep(now time.Time) {
	l.bySource.sweep(now)
	l.byNode.sweep(now)
}

// nodeKey names a node for its rate: its PSK identity under DTLS, its
// endpoint on plain UDP.
type nodeKey struct {
	id string
	ep netip.AddrPort
}

func keyOf(from netip.AddrPort, identity string) nodeKey {
	if identity != "" {
		return nodeKey{id: identity}
	}
	return nodeKey{ep: from}
}

// rates holds one token bucket per key, created on first use and dropped
// by sweep once it is full again (the key has been quiet).
type rates[K comparable] struct {
	mu    sync.Mutex
	m     map[K]*rate.Limiter
	limit rate.Limit
	burst int
	max   int
	off   bool
}

func newRates[K comparable](perSecond float64, burst, maxKeys int) *rates[K] {
	return &rates[K]{m: map[K]*rate.Limiter{}, limit: rate.Limit(perSecond), burst: burst, max: maxKeys, off: perSecond < 0}
}

// allow takes a token for k at now.
func (r *rates[K]) allow(k K, now time.Time) bool {
	if r.off {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.m[k]
	if !ok {
		if len(r.m) >= r.max {
			return false
		}
		l = rate.NewLimiter(r.limit, r.burst)
		r.m[k] = l
	}
	return l.AllowN(now, 1)
}

// sweep drops the buckets that are full again, and returns how many remain.
func (r *rates[K]) sweep(now time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, l := range r.m {
		if l.TokensAt(now) >= float64(r.burst) {
			delete(r.m, k)
		}
	}
	return len(r.m)
}
