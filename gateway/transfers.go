package gateway

import (
	"net/netip"
	"sync"
	"time"

	"edgeota/protocol"
)

type transferKey struct {
	from   netip.AddrPort
	digest protocol.Digest
}

// transfers admits block-wise image transfers under a total and a per-node
// limit (per PSK identity under DTLS, per source endpoint on plain UDP). A transfer starts with the
// first block an endpoint asks for an image (block 0, or block N when it
// resumes) and ends after its last block or when idle; once admitted, its
// later blocks are never refused (docs/protocol.md section 5).
type transfers struct {
	mu       sync.Mutex
	active   map[transferKey]activeTransfer
	perNode  map[nodeKey]int
	maxTotal int
	maxNode  int
	idle     time.Duration
}

type activeTransfer struct {
	last time.Time
	node nodeKey
}

func newTransfers(maxTotal, maxNode int, idle time.Duration) *transfers {
	return &transfers{active: map[transferKey]activeTransfer{}, perNode: map[nodeKey]int{},
		maxTotal: maxTotal, maxNode: maxNode, idle: idle}
}

// admit reports whether a block may be served now, registering a new
// transfer when the endpoint has none for this image; started is true when
// this block started one. A new transfer must also pass mayStart (the
// request rates), asked only then: blocks of an admitted transfer are
// never limited. limited tells which of the two refused.
func (t *transfers) admit(k transferKey, node nodeKey, now time.Time, mayStart func() bool) (ok, started, limited bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if a, ok := t.active[k]; ok {
		a.last = now
		t.active[k] = a
		return true, false, false
	}
	if len(t.active) >= t.maxTotal || t.perNode[node] >= t.maxNode {
		return false, false, false
	}
	if !mayStart() {
		return false, false, true
	}
	t.active[k] = activeTransfer{last: now, node: node}
	t.perNode[node]++
	return true, true, false
}

// done ends a transfer after its last block.
func (t *transfers) done(k transferKey) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropLocked(k)
}

func (t *transfers) dropLocked(k transferKey) {
	a, ok := t.active[k]
	if !ok {
		return
	}
	delete(t.active, k)
	if t.perNode[a.node]--; t.perNode[a.node] <= 0 {
		delete(t.perNode, a.node)
	}
}

// sweep ends transfers idle for longer than the idle time and returns how
// many remain.
func (t *transfers) sweep(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, a := range t.active {
		if now.Sub(a.last) > t.idle {
			t.dropLocked(k)
		}
	}
	return len(t.active)
}

func (t *transfers) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.active)
}
