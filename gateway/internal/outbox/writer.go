package outbox

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// run is the writer goroutine: it takes the queued requests, commits them
// in one transaction, calls back, and starts over, until Close and the
// queues are empty.
func (o *Outbox) run() {
	defer close(o.stopped)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var (
		apps []appendReq
		acks []*ackReq
	)
	for {
		o.mu.Lock()
		for !o.closing && len(o.appendQ) == 0 && len(o.ackQ) == 0 {
			o.mu.Unlock()
			<-o.wake
			o.mu.Lock()
		}
		if len(o.appendQ) == 0 && len(o.ackQ) == 0 { // closing, and all done
			o.mu.Unlock()
			return
		}
		// Linger until as many appends wait as the last commit carried, for
		// at most the commit interval since the first request arrived; not
		// when an Ack waits.
		for !o.closing && len(o.ackQ) == 0 && len(o.appendQ) < o.target {
			wait := o.linger - time.Since(o.firstAt)
			if wait <= 0 {
				break
			}
			o.mu.Unlock()
			timer.Reset(wait)
			select {
			case <-o.wake:
			case <-timer.C:
			}
			timer.Stop()
			o.mu.Lock()
		}
		n := min(len(o.appendQ), o.batchMax)
		apps = append(apps[:0], o.appendQ[:n]...)
		rest := copy(o.appendQ, o.appendQ[n:])
		clear(o.appendQ[rest:])
		o.appendQ = o.appendQ[:rest]
		for _, a := range apps {
			o.appendQB -= int64(len(a.value))
		}
		acks = append(acks[:0], o.ackQ...)
		clear(o.ackQ)
		o.ackQ = o.ackQ[:0]
		o.mu.Unlock()

		o.commit(apps, acks)
		clear(apps)
		clear(acks)
	}
}

// kindDelta is what one commit changes in a kind.
type kindDelta struct {
	added, addedBytes     int // appends stored
	failed                int // appends refused inside the commit
	acked, ackedBytes     int
	dropped, droppedBytes int
	corrupt, corruptBytes int
	touched               bool // oldest must be read again
	oldest                time.Time
}

// commit runs one transaction for apps and acks, updates the accounting
// and calls back.
func (o *Outbox) commit(apps []appendReq, acks []*ackReq) {
	var (
		d      [numKinds]kindDelta
		seq    uint64
		failed []bool // per append: refused inside the commit
	)
	err := o.db.Update(func(tx *bolt.Tx) error {
		d, seq, failed = [numKinds]kindDelta{}, o.seq, nil
		var (
			buckets [numKinds]*bolt.Bucket
			cursors [numKinds]*bolt.Cursor
		)
		for k := range Kind(numKinds) {
			buckets[k] = tx.Bucket(kindBuckets[k])
			buckets[k].FillPercent = 1.0 // keys only grow
			cursors[k] = buckets[k].Cursor()
		}
		// Acks first: they make room.
		var kb [8]byte
		for _, r := range acks {
			for _, key := range r.keys {
				c, kd := cursors[key.kind], &d[key.kind]
				binary.BigEndian.PutUint64(kb[:], key.seq)
				k, v := c.Seek(kb[:])
				if seq, _ := keySeq(k); k == nil || seq != key.seq {
					continue
				}
				if r.corrupt {
					kd.corrupt++
					kd.corruptBytes += len(v)
				} else {
					kd.acked++
					kd.ackedBytes += len(v)
				}
				kd.touched = true
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		items, bytes := 0, int64(0) // committed totals as of now in this tx
		for k := range Kind(numKinds) {
			kd := &d[k]
			items += o.kinds[k].items - kd.acked - kd.corrupt
			bytes += o.kinds[k].bytes - int64(kd.ackedBytes+kd.corruptBytes)
		}
		health := cursors[KindHealth]
		keys := make([]byte, 8*len(apps)) // bbolt keeps the keys until the commit
		for i, a := range apps {
			size := int64(len(a.value))
			// The full policy: drop the oldest health reports until a fits.
			// Admission made sure that dropping them all is enough.
			for items+1 > o.maxItems || bytes+size > o.maxBytes {
				k, v := health.First()
				if k == nil {
					break
				}
				kd := &d[KindHealth]
				kd.dropped++
				kd.droppedBytes += len(v)
				kd.touched = true
				items--
				bytes -= int64(len(v))
				if err := health.Delete(); err != nil {
					return err
				}
			}
			kd := &d[a.kind]
			if items+1 > o.maxItems || bytes+size > o.maxBytes {
				if failed == nil {
					failed = make([]bool, len(apps))
				}
				failed[i] = true
				kd.failed++
				continue
			}
			seq++
			key := binary.BigEndian.AppendUint64(keys[8*i:8*i], seq)
			if err := buckets[a.kind].Put(key, a.value); err != nil {
				return err
			}
			if o.kinds[a.kind].items == 0 {
				kd.touched = true
			}
			kd.added++
			kd.addedBytes += len(a.value)
			items++
			bytes += size
		}
		for k := range Kind(numKinds) {
			if d[k].touched {
				if _, v := cursors[k].First(); v != nil {
					d[k].oldest = addedOf(v)
				}
			}
		}
		return tx.Bucket(bucketMeta).SetSequence(seq)
	})

	var dropped int
	o.mu.Lock()
	for k := range Kind(numKinds) {
		ks, kd := &o.kinds[k], &d[k]
		for _, a := range apps {
			if a.kind == k {
				ks.pendItems--
				ks.pendBytes -= int64(len(a.value))
			}
		}
		if err != nil {
			continue
		}
		ks.items += kd.added - kd.acked - kd.dropped - kd.corrupt
		ks.bytes += int64(kd.addedBytes - kd.ackedBytes - kd.droppedBytes - kd.corruptBytes)
		if kd.touched {
			ks.oldest = kd.oldest
		}
		ks.appended += uint64(kd.added)
		ks.acked += uint64(kd.acked)
		o.corrupt += uint64(kd.corrupt)
		o.rejected += uint64(kd.failed)
		dropped += kd.dropped
	}
	if err == nil {
		o.seq = seq
		o.commits++
		o.dropped += uint64(dropped)
		if len(apps) > 0 {
			o.appCommit++
			o.target = len(apps)
		}
	}
	o.mu.Unlock()

	if err != nil {
		o.log.Error("outbox: commit failed", "appends", len(apps), "acks", len(acks), "err", err)
		err = fmt.Errorf("outbox: commit: %w", err)
	}
	switch {
	case dropped > 0 && !o.dropping:
		o.log.Warn("outbox: full, dropping the oldest health reports", "dropped", dropped)
		o.dropping = true
	case err == nil && dropped == 0 && len(apps) > 0:
		o.dropping = false
	}
	if dropped > 0 && o.onDrop != nil {
		o.onDrop(dropped)
	}
	for i, a := range apps {
		if a.done == nil {
			continue
		}
		switch {
		case err != nil:
			a.done(err)
		case failed != nil && failed[i]:
			a.done(errFullEvents)
		default:
			a.done(nil)
		}
	}
	for _, r := range acks {
		if r.result != nil {
			r.result <- err
		}
	}
}
