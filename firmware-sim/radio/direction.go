package radio

import (
	"container/heap"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Stream numbers of the two PCG generators seeded from [Config.Seed], so that
// each direction's decisions depend only on its own arrivals.
const (
	upStream   = 0x7570_6c69_6e6b // "uplink"
	downStream = 0x646f_776e_6c6b // "downlk"
)

// item is one datagram scheduled for delivery.
type item struct {
	data   []byte
	sess   *session
	copies int       // 1, or 2 when duplicated
	at     time.Time // when it is due
	seq    uint64    // tie-break: equal times deliver in seq order
	index  int       // position in the heap
}

// itemHeap orders items by due time, then seq.
type itemHeap []*item

func (h itemHeap) Len() int { return len(h) }
func (h itemHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h itemHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *itemHeap) Push(x any) {
	it := x.(*item)
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *itemHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	it.index = -1
	return it
}

// direction is one way through the relay: its link, random stream, queue,
// counters and the scheduler goroutine that delivers due datagrams.
type direction struct {
	name string
	log  *slog.Logger
	// send writes one copy of a datagram to the receiving side.
	send func(it *item) error
	wake chan struct{} // capacity 1: the head of the queue may have changed

	mu        sync.Mutex
	link      Link
	rng       *rand.Rand
	queue     itemHeap
	seq       uint64
	held      *item     // the datagram held back for reordering, if any
	busyUntil time.Time // end of the transmission in progress
	lastAt    time.Time // due time of the latest datagram, for FIFO order
	stats     DirStats
}

func newDirection(name string, link Link, seed, stream uint64, log *slog.Logger, send func(*item) error) *direction {
	return &direction{
		name: name,
		log:  log,
		send: send,
		wake: make(chan struct{}, 1),
		link: link,
		rng:  rand.New(rand.NewPCG(seed, stream)),
	}
}

func (d *direction) setLink(l Link) {
	d.mu.Lock()
	d.link = l
	d.mu.Unlock()
	d.poke()
}

func (d *direction) snapshot() DirStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

func (d *direction) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// arrive takes one datagram that came in at now and decides its fate. It
// draws the same four numbers from the random stream for every datagram,
// whatever becomes of it, so the n-th datagram's decisions depend only on
// the seed and n.
func (d *direction) arrive(now time.Time, data []byte, s *session) {
	d.mu.Lock()
	l := d.link
	uLoss, uDup, uReorder, uJitter := d.draw()
	d.stats.In++
	d.stats.BytesIn += uint64(len(data))
	d.mu.Unlock()

	// Outage is the caller's code: call it without the lock.
	if l.Outage != nil && l.Outage(now) {
		d.mu.Lock()
		d.stats.Dropped++
		d.stats.Outage++
		d.mu.Unlock()
		return
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	var head *item
	var headAt time.Time
	if len(d.queue) > 0 {
		head, headAt = d.queue[0], d.queue[0].at
	}
	if len(d.queue) >= l.queue() {
		d.stats.Dropped++
		d.stats.Overflow++
		return
	}
	sent := now
	air := l.Airtime(len(data))
	if l.Bandwidth > 0 {
		if d.busyUntil.After(sent) {
			sent = d.busyUntil
		}
		sent = sent.Add(air)
		d.busyUntil = sent
	}
	d.stats.Frames += uint64(l.Frames(len(data)) * l.hops())
	d.stats.AirBytes += uint64(l.AirBytes(len(data)))
	d.stats.Airtime += air
	if uLoss < l.LossOf(len(data)) {
		d.stats.Dropped++
		return
	}
	hops := time.Duration(l.hops())
	at := sent.Add(hops*l.Latency + time.Duration(uJitter*float64(hops*l.Jitter)))
	if at.Before(d.lastAt) {
		at = d.lastAt
	}
	d.lastAt = at

	it := &item{data: data, sess: s, copies: 1, at: at}
	if uDup < l.Duplicate {
		it.copies = 2
		d.stats.Duplicated++
	}
	d.seq++
	it.seq = d.seq
	if h := d.held; h != nil {
		// The held datagram goes right after this one.
		d.held = nil
		d.seq++
		h.at, h.seq = at, d.seq
		heap.Fix(&d.queue, h.index)
	} else if uReorder < l.Reorder {
		it.at = at.Add(l.reorderDelay())
		d.held = it
		d.stats.Reordered++
	}
	heap.Push(&d.queue, it)
	if d.queue[0] != head || !headAt.Equal(head.at) {
		d.poke() // the scheduler may be waiting for a later time
	}
}

// refuse counts a datagram of n bytes that cannot be relayed at all, and
// draws its random numbers all the same.
func (d *direction) refuse(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.draw()
	d.stats.In++
	d.stats.BytesIn += uint64(n)
	d.stats.Dropped++
}

// oversize counts a datagram over the MTU, read cut short (n is at least
// the MTU + 1), and draws its random numbers all the same.
func (d *direction) oversize(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.draw()
	d.stats.In++
	d.stats.BytesIn += uint64(n)
	d.stats.Dropped++
	d.stats.Oversize++
}

// draw takes the four random numbers every datagram uses.
func (d *direction) draw() (loss, dup, reorder, jitter float64) {
	return d.rng.Float64(), d.rng.Float64(), d.rng.Float64(), d.rng.Float64()
}

// due removes and returns the datagrams due at now, and how long until the
// next one is due (negative if none is queued).
func (d *direction) due(now time.Time, buf []*item) ([]*item, time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.queue) > 0 && !d.queue[0].at.After(now) {
		it := heap.Pop(&d.queue).(*item)
		if it == d.held {
			d.held = nil
		}
		buf = append(buf, it)
	}
	if len(d.queue) == 0 {
		return buf, -1
	}
	return buf, d.queue[0].at.Sub(now)
}

// run delivers datagrams as they fall due until done is closed. Time is
// clk's, or the wall clock's when clk is nil.
func (d *direction) run(done <-chan struct{}, clk Clock) {
	var timer *time.Timer
	if clk == nil {
		timer = time.NewTimer(time.Hour)
		defer timer.Stop()
	}
	var batch []*item
	for {
		now := nowOf(clk)
		var wait time.Duration
		batch, wait = d.due(now, batch[:0])
		if len(batch) > 0 {
			d.deliver(now, batch)
			clear(batch)
			continue // delivering took time: look again before sleeping
		}
		var fire <-chan time.Time
		switch {
		case wait >= 0 && clk == nil:
			timer.Reset(wait)
			fire = timer.C
		case wait >= 0:
			fire = clk.After(wait)
		case timer != nil:
			timer.Stop()
		}
		select {
		case <-done:
			return
		case <-d.wake:
		case <-fire:
		}
	}
}

// nowOf returns clk's time, or the wall clock's when clk is nil.
func nowOf(clk Clock) time.Time {
	if clk == nil {
		return time.Now()
	}
	return clk.Now()
}

// deliver writes a batch of due datagrams, unless the link is out.
func (d *direction) deliver(now time.Time, batch []*item) {
	d.mu.Lock()
	outage := d.link.Outage
	d.mu.Unlock()
	out := outage != nil && outage(now)

	var delivered, dropped, outDropped, bytes uint64
	for _, it := range batch {
		for range it.copies {
			if out {
				dropped++
				outDropped++
				continue
			}
			if err := d.send(it); err != nil {
				d.log.Debug("radio: write failed", "dir", d.name, "client", it.sess.client, "err", err)
				dropped++
				continue
			}
			delivered++
			bytes += uint64(len(it.data))
		}
	}
	d.mu.Lock()
	d.stats.Delivered += delivered
	d.stats.BytesDelivered += bytes
	d.stats.Dropped += dropped
	d.stats.Outage += outDropped
	d.mu.Unlock()
}

// discard drops everything still queued; the scheduler must have stopped.
func (d *direction) discard() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, it := range d.queue {
		d.stats.Dropped += uint64(it.copies)
	}
	clear(d.queue)
	d.queue = d.queue[:0]
	d.held = nil
}
