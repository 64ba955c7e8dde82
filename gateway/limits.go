package gateway

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"edgeota/gateway/internal/coapd"
)

// Limits keep the gateway serving under abuse. The zero value of each
// field takes its default; a negative rate turns that limit off.
//
// Rates are token buckets (golang.org/x/time/rate). They count every CoAP
// request except the blocks of an image transfer already admitted: once
// block 0 is served, a transfer is never refused by a limit (docs/protocol.md
// section 5). A request over a rate is answered 4.29 Too Many Requests
// (RFC 8516) with Max-Age 1.
type Limits struct {
	// SourceRate and SourceBurst bound the requests per second of one
	// source IP address (defaults 2000 and 4000).
	SourceRate  float64
	SourceBurst int
	// NodeRate and NodeBurst bound the requests per second of one node:
	// its PSK identity under DTLS, its source endpoint on plain UDP
	// (defaults 50 and 100).
	NodeRate  float64
	NodeBurst int
	// MaxBody is the largest node document accepted, in bytes (default
	// and at most 1024, docs/protocol.md section 5); larger ones get 4.13.
	MaxBody int
	// MaxSessions and MaxHandshakes bound the DTLS sessions established
	// and in progress (defaults 10000 and 256); MaxHandshakesPerSource
	// bounds the handshakes in progress from one IP address (default 4),
	// so that ClientHellos from one address cannot hold every slot.
	MaxSessions, MaxHandshakes, MaxHandshakesPerSource int
	// MaxKeys bounds the sources and nodes each rate tracks at once
	// (default 100000); when full, an unknown source is refused until
	// idle entries are swept.
	MaxKeys int
}

func (l Limits) withDefaults() Limits {
	if l.SourceRate == 0 {
		l.SourceRate = 2000
	}
	if l.SourceBurst <= 0 {
		l.SourceBurst = max(1, int(2*l.SourceRate))
	}
	if l.NodeRate == 0 {
		l.NodeRate = 50
	}
	if l.NodeBurst <= 0 {
		l.NodeBurst = max(1, int(2*l.NodeRate))
	}
	if l.MaxBody <= 0 || l.MaxBody > 1024 {
		l.MaxBody = 1024
	}
	if l.MaxSessions <= 0 {
		l.MaxSessions = 10000
	}
	if l.MaxHandshakes <= 0 {
		l.MaxHandshakes = 256
	}
	if l.MaxHandshakesPerSource <= 0 {
		l.MaxHandshakesPerSource = 4
	}
	if l.MaxKeys <= 0 {
		l.MaxKeys = 100000
	}
	return l
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

// nodeKey names a node for its rate: its PSK identity under DTLS, its
// endpoint on plain UDP.
type nodeKey struct {
	id string
	ep netip.AddrPort
}

func nodeKeyOf(r *coapd.Request) nodeKey {
	if r.Identity != "" {
		return nodeKey{id: r.Identity}
	}
	return nodeKey{ep: r.From}
}

// limiter applies Limits' request rates.
type limiter struct {
	bySource *rates[netip.Addr]
	byNode   *rates[nodeKey]
}

func newLimiter(l Limits) *limiter {
	return &limiter{bySource: newRates[netip.Addr](l.SourceRate, l.SourceBurst, l.MaxKeys),
		byNode: newRates[nodeKey](l.NodeRate, l.NodeBurst, l.MaxKeys)}
}

// allow reports whether r is within its source's and its node's rates, and
// names the limit it broke otherwise.
func (l *limiter) allow(r *coapd.Request, now time.Time) (bool, string) {
	if !l.bySource.allow(r.From.Addr(), now) {
		return false, "source_rate"
	}
	if !l.byNode.allow(nodeKeyOf(r), now) {
		return false, "node_rate"
	}
	return true, ""
}

func (l *limiter) sweep(now time.Time) {
	l.bySource.sweep(now)
	l.byNode.sweep(now)
}
