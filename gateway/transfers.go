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
// limit (per source endpoint on plain UDP). A transfer starts with the
// first block an endpoint asks for an image (block 0, or block N when it
// resumes) and ends after its last block or when idle; once admitted, its
// later blocks are never refused (PROTOCOL.md section 5).
type transfers struct {
	mu       sync.Mutex
	active   map[transferKey]time.Time
	perNode  map[netip.AddrPort]int
	maxTotal int
	maxNode  int
	idle     time.Duration
}

func newTransfers(maxTotal, maxNode int, idle time.Duration) *transfers {
	return &transfers{active: map[transferKey]time.Time{}, perNode: map[netip.AddrPort]int{},
		maxTotal: maxTotal, maxNode: maxNode, idle: idle}
}

// admit reports whether a block may be served now, registering a new
// transfer when the endpoint has none for this image; started is true when
// this block started one.
func (t *transfers) admit(k transferKey, now time.Time) (ok, started bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.active[k]; ok {
		t.active[k] = now
		return true, false
	}
	if len(t.active) >= t.maxTotal || t.perNode[k.from] >= t.maxNode {
		return false, false
	}
	t.active[k] = now
	t.perNode[k.from]++
	return true, true
}

// done ends a transfer after its last block.
func (t *transfers) done(k transferKey) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropLocked(k)
}

func (t *transfers) dropLocked(k transferKey) {
	if _, ok := t.active[k]; !ok {
		return
	}
	delete(t.active, k)
	if t.perNode[k.from]--; t.perNode[k.from] <= 0 {
		delete(t.perNode, k.from)
	}
}

// sweep ends transfers idle for longer than the idle time and returns how
// many remain.
func (t *transfers) sweep(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, last := range t.active {
		if now.Sub(last) > t.idle {
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
