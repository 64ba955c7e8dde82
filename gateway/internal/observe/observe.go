// Package observe is the gateway's registry of observations (RFC 7641 on
// /n/{node}/manifest and, in a registry of its own, /n/{node}/trust,
// docs/protocol.md section 5): go-coap keeps none for a server, so the
// gateway keeps its own, keyed by node.
//
// A node keeps at most [MaxPerNode] observations; a new registration from
// another endpoint replaces the oldest (a node that restarted comes back on
// a new port). Each observation carries the sequence number of its next
// notification and the time of its last confirmable one.
package observe

import (
	"crypto/sha256"
	"net/netip"
	"sync"
	"time"
)

// MaxPerNode is the most observations one node keeps.
const MaxPerNode = 2

// Observer is one registered observation of a node's manifest.
type Observer struct {
	Node string
	Addr netip.AddrPort
	// Identity is the PSK identity of the DTLS session the observation
	// came in by ("" on plain UDP): notifications leave by that session.
	Identity string
	Token    []byte
	// Seq is the Observe option value of the latest response.
	Seq     uint32
	lastCON time.Time
}

// Registry holds the observations. It is safe for concurrent use.
type Registry struct {
	mu     sync.Mutex
	byNode map[string][]*Observer
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{byNode: map[string][]*Observer{}} }

// Add registers (or refreshes) an observation and returns a copy of it,
// whether it is new or changed, and the observation it pushed out (nil
// when none).
func (o *Registry) Add(node string, addr netip.AddrPort, identity string, token []byte, now time.Time) (ob Observer, changed bool, evicted *Observer) {
	o.mu.Lock()
	defer o.mu.Unlock()
	list := o.byNode[node]
	for _, ob := range list {
		if ob.Addr == addr {
			changed = string(ob.Token) != string(token) || ob.Identity != identity
			if changed {
				// A new slice: a copy returned earlier shares the old one
				// (its caller may still be saving it).
				ob.Token = append([]byte(nil), token...)
			}
			ob.Identity = identity
			return *ob, changed, nil
		}
	}
	nob := &Observer{Node: node, Addr: addr, Identity: identity, Token: append([]byte(nil), token...), Seq: 1, lastCON: now}
	if len(list) >= MaxPerNode {
		evicted, list = list[0], list[1:]
	}
	o.byNode[node] = append(list, nob)
	return *nob, true, evicted
}

// Remove drops the observation of node from addr (and token, when given).
func (o *Registry) Remove(node string, addr netip.AddrPort, token []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	list := o.byNode[node]
	for i, ob := range list {
		if ob.Addr == addr && (token == nil || string(ob.Token) == string(token)) {
			o.byNode[node] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(o.byNode[node]) == 0 {
		delete(o.byNode, node)
	}
}

// Next returns the observations of a node, each with its next sequence
// number taken.
func (o *Registry) Next(node string) []Observer {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []Observer
	for _, ob := range o.byNode[node] {
		ob.Seq = (ob.Seq + 1) & 0xffffff
		out = append(out, *ob)
	}
	return out
}

// All returns every observation, each with its next sequence number
// taken: a change that concerns every node (a trust update).
func (o *Registry) All() []Observer {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []Observer
	for _, list := range o.byNode {
		for _, ob := range list {
			ob.Seq = (ob.Seq + 1) & 0xffffff
			out = append(out, *ob)
		}
	}
	return out
}

// Due returns the observations whose last confirmable notification is
// older than every, with their next sequence number taken, marking them
// as notified at now.
func (o *Registry) Due(now time.Time, every time.Duration) []Observer {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []Observer
	for _, list := range o.byNode {
		for _, ob := range list {
			if now.Sub(ob.lastCON) >= every {
				ob.lastCON = now
				ob.Seq = (ob.Seq + 1) & 0xffffff
				out = append(out, *ob)
			}
		}
	}
	return out
}

// Count returns the number of observations.
func (o *Registry) Count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, l := range o.byNode {
		n += len(l)
	}
	return n
}

// ETag is the ETag of a manifest representation: the first 8 bytes of
// SHA-256 of the payload (docs/protocol.md section 5).
func ETag(payload []byte) []byte {
	s := sha256.Sum256(payload)
	return s[:8]
}
