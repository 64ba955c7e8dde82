package gateway

import (
	"crypto/sha256"
	"net/netip"
	"sync"
	"time"
)

// observer is one registered observation of /n/{node}/manifest.
type observer struct {
	node string
	addr netip.AddrPort
	// identity is the PSK identity of the DTLS session the observation
	// came in by ("" on plain UDP): notifications leave by that session.
	identity string
	token    []byte
	seq      uint32
	lastCON  time.Time
}

// observers is the gateway's own registry of manifest observers (go-coap
// keeps none for a server), keyed by node. A node keeps at most
// maxPerNode observations; a new registration from another endpoint
// replaces the oldest (a node that restarted comes back on a new port).
type observers struct {
	mu     sync.Mutex
	byNode map[string][]*observer
}

const maxObserversPerNode = 2

func newObservers() *observers { return &observers{byNode: map[string][]*observer{}} }

// add registers (or refreshes) an observation and returns it, whether it
// is new or changed, and the observation it pushed out (nil when none).
func (o *observers) add(node string, addr netip.AddrPort, identity string, token []byte, now time.Time) (ob *observer, changed bool, evicted *observer) {
	o.mu.Lock()
	defer o.mu.Unlock()
	list := o.byNode[node]
	for _, ob := range list {
		if ob.addr == addr {
			changed = string(ob.token) != string(token) || ob.identity != identity
			ob.token = append(ob.token[:0], token...)
			ob.identity = identity
			return ob, changed, nil
		}
	}
	ob = &observer{node: node, addr: addr, identity: identity, token: append([]byte(nil), token...), seq: 1, lastCON: now}
	if len(list) >= maxObserversPerNode {
		evicted, list = list[0], list[1:]
	}
	o.byNode[node] = append(list, ob)
	return ob, true, evicted
}

// remove drops the observation of node from addr (and token, when given).
func (o *observers) remove(node string, addr netip.AddrPort, token []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	list := o.byNode[node]
	for i, ob := range list {
		if ob.addr == addr && (token == nil || string(ob.token) == string(token)) {
			o.byNode[node] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(o.byNode[node]) == 0 {
		delete(o.byNode, node)
	}
}

// snapshot returns the observations of a node, each with its next sequence
// number taken.
func (o *observers) next(node string) []observer {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []observer
	for _, ob := range o.byNode[node] {
		ob.seq = (ob.seq + 1) & 0xffffff
		out = append(out, *ob)
	}
	return out
}

// due returns the observations whose last confirmable notification is
// older than every, marking them as notified now.
func (o *observers) due(now time.Time, every time.Duration) []observer {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []observer
	for _, list := range o.byNode {
		for _, ob := range list {
			if now.Sub(ob.lastCON) >= every {
				ob.lastCON = now
				ob.seq = (ob.seq + 1) & 0xffffff
				out = append(out, *ob)
			}
		}
	}
	return out
}

// count returns the number of observations.
func (o *observers) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, l := range o.byNode {
		n += len(l)
	}
	return n
}

// manifestETag is the ETag of a manifest representation: the first 8 bytes
// of SHA-256 of the payload (docs/protocol.md section 5).
func manifestETag(payload []byte) []byte {
	s := sha256.Sum256(payload)
	return s[:8]
}
