package outbox

import (
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// appendReq is an accepted append waiting for its commit.
type appendReq struct {
	kind  Kind
	value []byte // encoded record, owned by the outbox
	done  func(error)
}

// ackReq is a request to delete items: an Ack, or the corrupted items a
// Peek skipped (corrupt set, result nil).
type ackReq struct {
	keys    []itemKey
	corrupt bool
	result  chan error // buffered; nil: nobody waits
}

type itemKey struct {
	kind Kind
	seq  uint64
}

// Append queues a copy of data, the document node sent, as an item of kind
// and returns at once; it does not retain data.
//
// When it returns nil, the item was accepted and done (which may be nil) is
// called exactly once, from the writer goroutine, after the commit that
// carried it: with nil once the item is durable (or, under the full
// policy, was dropped by that very commit), or with the commit's error, in
// which case nothing of the item is stored. Callbacks run one at a time, in
// append order, and the next commit waits for them: done must be short and
// must not block or call Ack or Close (they wait for the writer). Sending
// the CoAP answer from it is fine; Append and Peek may be called.
//
// It returns an error wrapping [ErrFull], and queues nothing, when the item
// cannot be admitted even after dropping every health report, when the
// item alone exceeds MaxBytes, or when more appends than eight commits
// carry wait for the writer; [ErrClosed] after Close began.
func (o *Outbox) Append(kind Kind, node string, data []byte, done func(err error)) error {
	if !kind.valid() {
		return fmt.Errorf("outbox: append: unknown kind %d", uint8(kind))
	}
	if len(node) == 0 || len(node) > MaxNodeLen {
		return fmt.Errorf("outbox: append: node id of %d bytes, want 1 to %d", len(node), MaxNodeLen)
	}
	size := recordSize(node, data)
	if size > o.maxBytes {
		o.mu.Lock()
		o.rejected++
		o.mu.Unlock()
		return errFullBig
	}
	value := encodeRecord(node, data, o.now())

	o.mu.Lock()
	ev := &o.kinds[KindStatus]
	var err error
	switch {
	case o.closing:
		err = ErrClosed
	case ev.items+ev.pendItems+1 > o.maxItems || ev.bytes+ev.pendBytes+size > o.maxBytes:
		// Even with every health report dropped, the item would not fit.
		err = errFullEvents
	case len(o.appendQ) >= o.maxBehind || o.appendQB+size > o.behindByte:
		err = errFullBehind
	}
	if err != nil {
		if err != ErrClosed {
			o.rejected++
		}
		o.mu.Unlock()
		return err
	}
	if len(o.appendQ) == 0 && len(o.ackQ) == 0 {
		o.firstAt = time.Now()
	}
	ks := &o.kinds[kind]
	ks.pendItems++
	ks.pendBytes += size
	o.appendQ = append(o.appendQ, appendReq{kind: kind, value: value, done: done})
	o.appendQB += size
	n := len(o.appendQ)
	wake := n == 1 || n == o.target // the writer lingers for target appends
	o.mu.Unlock()
	if wake {
		o.signal()
	}
	return nil
}

// Peek returns copies of the oldest committed items of kind, at most max,
// in order, that this handle has not handed out since Open or the last
// [Outbox.Nack] of kind; it removes nothing. Two Peeks in a row therefore
// return consecutive batches, so the next batch can be published while the
// previous one waits for its PUBACK. Only durable items are returned.
//
// A corrupted item is logged, skipped and deleted by the next commit.
func (o *Outbox) Peek(kind Kind, max int) ([]Item, error) {
	if !kind.valid() {
		return nil, fmt.Errorf("outbox: peek: unknown kind %d", uint8(kind))
	}
	if max <= 0 {
		return nil, fmt.Errorf("outbox: peek %s: max %d is not positive", kind, max)
	}
	p := &o.peek[kind]
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.after == math.MaxUint64 {
		return nil, nil
	}
	// Size the result by the items queued, some of which may have been
	// handed out already.
	o.mu.Lock()
	depth, size := o.kinds[kind].items, o.kinds[kind].bytes
	o.mu.Unlock()
	n := min(max, depth)
	var (
		items = make([]Item, 0, n)
		ends  = make([]int, 0, n) // end of each item's data in slab
		slab  []byte
		bad   []itemKey
		last  = p.after
	)
	if depth > 0 {
		slab = make([]byte, 0, int64(n)*(size/int64(depth)))
	}
	err := o.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(kindBuckets[kind]).Cursor()
		for k, v := c.Seek(seqKey(p.after + 1)); k != nil && len(items) < max; k, v = c.Next() {
			seq, ok := keySeq(k)
			if !ok { // Open deleted such keys; nothing writes them
				o.log.Error("outbox: skipping a key that is not a sequence number", "kind", kind, "key", fmt.Sprintf("%x", k))
				continue
			}
			last = seq
			node, data, added, err := decodeRecord(v)
			if err != nil {
				o.log.Error("outbox: skipping a corrupted item", "kind", kind, "seq", seq, "err", err)
				bad = append(bad, itemKey{kind, seq})
				continue
			}
			slab = append(slab, data...)
			ends = append(ends, len(slab))
			items = append(items, Item{Seq: seq, Kind: kind, Node: string(node), Added: added})
		}
		return nil
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return nil, ErrClosed
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: peek %s: %w", kind, err)
	}
	start := 0
	for i, end := range ends {
		items[i].Data = slab[start:end:end]
		start = end
	}
	p.after = last
	if len(bad) > 0 {
		o.enqueueAck(&ackReq{keys: bad, corrupt: true})
	}
	return items, nil
}

// Nack makes the next Peek of kind start again from the oldest item not
// acked: after a broker disconnect, everything unacknowledged is sent again,
// in order.
func (o *Outbox) Nack(kind Kind) {
	if !kind.valid() {
		return
	}
	p := &o.peek[kind]
	p.mu.Lock()
	p.after = 0
	p.mu.Unlock()
}

// Ack deletes items (any kinds, as Peek returned them: only Kind and Seq
// are read) once their publish was acknowledged, and returns after the
// commit that deleted them; an item already gone (acked before, or dropped)
// is skipped. Batches may be acked in any order.
func (o *Outbox) Ack(items []Item) error {
	if len(items) == 0 {
		return nil
	}
	req := &ackReq{keys: make([]itemKey, len(items)), result: make(chan error, 1)}
	for i, it := range items {
		if !it.Kind.valid() {
			return fmt.Errorf("outbox: ack: item %d has unknown kind %d", it.Seq, uint8(it.Kind))
		}
		req.keys[i] = itemKey{it.Kind, it.Seq}
	}
	if err := o.enqueueAck(req); err != nil {
		return err
	}
	return <-req.result
}

// enqueueAck hands req to the writer.
func (o *Outbox) enqueueAck(req *ackReq) error {
	o.mu.Lock()
	if o.closing {
		o.mu.Unlock()
		return ErrClosed
	}
	if len(o.appendQ) == 0 && len(o.ackQ) == 0 {
		o.firstAt = time.Now()
	}
	o.ackQ = append(o.ackQ, req)
	o.mu.Unlock()
	o.signal()
	return nil
}
