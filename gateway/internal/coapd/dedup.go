package coapd

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

type exchangeKey struct {
	from netip.AddrPort
	mid  uint16
}

type exchange struct {
	resp []byte
	at   time.Time
}

// dedup remembers recent non-idempotent exchanges: a bounded map with FIFO
// eviction, O(1) per message.
type dedup struct {
	mu       sync.Mutex
	m        map[exchangeKey]exchange
	ring     []exchangeKey
	next     int
	lifetime time.Duration
}

func newDedup(n int, lifetime time.Duration) *dedup {
	return &dedup{m: make(map[exchangeKey]exchange, n), ring: make([]exchangeKey, n), lifetime: lifetime}
}

// lookup reports whether the exchange was seen, and its stored response.
func (d *dedup) lookup(from netip.AddrPort, mid uint16) ([]byte, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.m[exchangeKey{from, mid}]
	if !ok || time.Since(e.at) > d.lifetime {
		return nil, false
	}
	return e.resp, true
}

func (d *dedup) store(from netip.AddrPort, mid uint16, resp []byte) {
	k := exchangeKey{from, mid}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.m[k]; ok { // in progress: now answered
		d.m[k] = exchange{resp: resp, at: time.Now()}
		return
	}
	if old := d.ring[d.next]; old.from.IsValid() {
		delete(d.m, old)
	}
	d.ring[d.next] = k
	d.next = (d.next + 1) % len(d.ring)
	d.m[k] = exchange{resp: resp, at: time.Now()}
}

// pendingMsg is a notification that may still be acknowledged or reset.
type pendingMsg struct {
	to       netip.AddrPort
	identity string // the secure session's identity, or ""
	data     []byte // set for confirmable messages, to retransmit
	tries    int
	timer    *time.Timer
	onFail   func()
	onAck    func()
}

// outstanding tracks sent notifications by message id.
type outstanding struct {
	mu   sync.Mutex
	m    map[uint16]*pendingMsg
	ring []uint16
	next int
}

func newOutstanding(n int) *outstanding {
	return &outstanding{m: make(map[uint16]*pendingMsg), ring: make([]uint16, n)}
}

func (o *outstanding) put(mid uint16, p *pendingMsg) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if old, ok := o.m[o.ring[o.next]]; ok && old.timer == nil {
		delete(o.m, o.ring[o.next])
	}
	o.ring[o.next] = mid
	o.next = (o.next + 1) % len(o.ring)
	o.m[mid] = p
}

func (o *outstanding) addNon(mid uint16, to netip.AddrPort, onFail func()) {
	o.put(mid, &pendingMsg{to: to, onFail: onFail})
}

func (o *outstanding) addConfirmable(s *Server, mid uint16, to netip.AddrPort, identity string, data []byte, onFail func()) {
	o.addConfirmableAck(s, mid, to, identity, data, nil, onFail)
}

// addConfirmableAck is addConfirmable that also tells onAck (may be nil)
// of the acknowledgement.
func (o *outstanding) addConfirmableAck(s *Server, mid uint16, to netip.AddrPort, identity string, data []byte, onAck, onFail func()) {
	p := &pendingMsg{to: to, identity: identity, data: data, onFail: onFail, onAck: onAck}
	timeout := s.ackTO
	var fire func()
	fire = func() {
		o.mu.Lock()
		cur, ok := o.m[mid]
		if !ok || cur != p {
			o.mu.Unlock()
			return
		}
		if p.tries >= s.maxRetry {
			delete(o.m, mid)
			o.mu.Unlock()
			s.stats.failed.Add(1)
			if p.onFail != nil {
				p.onFail()
			}
			return
		}
		p.tries++
		timeout *= 2
		p.timer = time.AfterFunc(timeout, fire)
		o.mu.Unlock()
		s.stats.retrans.Add(1)
		s.write(p.data, p.to, p.identity)
	}
	o.mu.Lock()
	p.timer = time.AfterFunc(timeout, fire)
	o.mu.Unlock()
	o.put(mid, p)
}

// resolve handles an ACK or RST for mid from an endpoint.
func (o *outstanding) resolve(mid uint16, from netip.AddrPort, reset bool, acked, failed *atomic.Uint64) {
	o.mu.Lock()
	p, ok := o.m[mid]
	if !ok || p.to != from {
		o.mu.Unlock()
		return
	}
	delete(o.m, mid)
	if p.timer != nil {
		p.timer.Stop()
	}
	o.mu.Unlock()
	if reset {
		failed.Add(1)
		if p.onFail != nil {
			p.onFail()
		}
		return
	}
	acked.Add(1)
	if p.onAck != nil {
		p.onAck()
	}
}

func (o *outstanding) stopAll() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for mid, p := range o.m {
		if p.timer != nil {
			p.timer.Stop()
		}
		delete(o.m, mid)
	}
}
