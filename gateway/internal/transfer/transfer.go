// Package transfer admits the gateway's block-wise image transfers
// (RFC 7959) under a total and a per-node bound (docs/protocol.md
// section 5).
//
// A transfer starts with the first block an endpoint asks of an image
// (block 0, or block N when it resumes) and ends after its last block or
// when idle. Once admitted, its later blocks are never refused. A node is
// its PSK identity under DTLS and its source endpoint on plain UDP.
package transfer

import (
	"net/netip"
	"sync"
	"time"

	"edgeota/protocol"
)

// key is one transfer: an endpoint fetching an image.
type key struct {
	from   netip.AddrPort
	digest protocol.Digest
}

// node names a node for its bound.
type node struct {
	id string
	ep netip.AddrPort
}

type active struct {
	last time.Time
	node node
}

// Table holds the transfers in progress. It is safe for concurrent use.
type Table struct {
	mu       sync.Mutex
	active   map[key]active
	perNode  map[node]int
	maxTotal int
	maxNode  int
	idle     time.Duration
}

// New returns a table admitting at most maxTotal transfers, maxPerNode of
// one node, each ended when idle for longer than idle.
func New(maxTotal, maxPerNode int, idle time.Duration) *Table {
	return &Table{active: map[key]active{}, perNode: map[node]int{},
		maxTotal: maxTotal, maxNode: maxPerNode, idle: idle}
}

// Admit reports whether a block of image d may be served now to the
// endpoint from (whose DTLS session proved identity, "" on plain UDP),
// registering a new transfer when the endpoint has none for d; started is
// true when this block started one. A new transfer must also pass
// mayStart (the request rates), asked only then: blocks of an admitted
// transfer are never limited. limited tells which of the two refused.
func (t *Table) Admit(from netip.AddrPort, identity string, d protocol.Digest, now time.Time, mayStart func() bool) (ok, started, limited bool) {
	k := key{from, d}
	t.mu.Lock()
	defer t.mu.Unlock()
	if a, ok := t.active[k]; ok {
		a.last = now
		t.active[k] = a
		return true, false, false
	}
	n := node{ep: from}
	if identity != "" {
		n = node{id: identity}
	}
	if len(t.active) >= t.maxTotal || t.perNode[n] >= t.maxNode {
		return false, false, false
	}
	if !mayStart() {
		return false, false, true
	}
	t.active[k] = active{last: now, node: n}
	t.perNode[n]++
	return true, true, false
}

// Done ends the transfer of d to from after its last block.
func (t *Table) Done(from netip.AddrPort, d protocol.Digest) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropLocked(key{from, d})
}

func (t *Table) dropLocked(k key) {
	a, ok := t.active[k]
	if !ok {
		return
	}
	delete(t.active, k)
	if t.perNode[a.node]--; t.perNode[a.node] <= 0 {
		delete(t.perNode, a.node)
	}
}

// Sweep ends transfers idle for longer than the idle time and returns how
// many remain.
func (t *Table) Sweep(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, a := range t.active {
		if now.Sub(a.last) > t.idle {
			t.dropLocked(k)
		}
	}
	return len(t.active)
}

// Count returns the number of transfers in progress.
func (t *Table) Count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.active)
}
