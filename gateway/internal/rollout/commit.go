package rollout

import (
	"maps"
	"slices"
	"time"

	"edgeota/gateway/internal/store"
)

// Commit is what one engine call changed. It is durable once [Commit.Wait]
// returns nil; before that, nothing it decided is visible to a node.
type Commit struct {
	e   *Engine
	seq uint64
	err error // a failure before anything was staged
}

// failed is a Commit that failed before it staged anything.
func failed(err error) Commit { return Commit{err: err} }

type waiter struct {
	seq uint64
	f   func(error)
}

// Then calls f once the commit is durable (nil) or its transaction failed
// (the error; what it staged is written again with the next commit). f
// runs on the engine's committer goroutine, or at once when the commit is
// already durable: it must not call the engine.
func (c Commit) Then(f func(error)) {
	if c.e == nil {
		f(c.err)
		return
	}
	e := c.e
	e.mu.Lock()
	if c.seq <= e.committed {
		e.mu.Unlock()
		f(nil)
		return
	}
	e.waiters = append(e.waiters, waiter{c.seq, f})
	e.mu.Unlock()
}

// Durable reports whether the commit is durable already: nothing it
// changed waits to be written (often, a node's event changes no rollout).
func (c Commit) Durable() bool {
	if c.e == nil {
		return c.err == nil
	}
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	return c.seq <= c.e.committed
}

// Wait blocks until the commit is durable, or returns the error of its
// transaction.
func (c Commit) Wait() error {
	done := make(chan error, 1)
	c.Then(func(err error) { done <- err })
	return <-done
}

// stageLocked stages what every rollout changed and returns the caller's
// Commit: durable once everything staged up to now is. It starts the
// committer when it does not run. e.mu is held.
func (e *Engine) stageLocked() (Commit, error) {
	for id, r := range e.rollouts {
		recs, err := r.stage()
		if err != nil {
			return Commit{}, err
		}
		if recs == nil {
			continue
		}
		if e.staged[id] == nil {
			e.staged[id] = recs
		} else {
			maps.Copy(e.staged[id], recs)
		}
	}
	if len(e.staged) > 0 || len(e.assign) > 0 {
		e.stagedSeq++
		if !e.committing {
			e.committing = true
			go e.commitLoop()
		}
	}
	return Commit{e: e, seq: e.stagedSeq}, nil
}

// stageAssign stages an assignment, written with the next commit and
// notified after it. e.mu is held.
func (e *Engine) stageAssign(nodes []string, signed []byte) {
	if len(nodes) > 0 {
		e.assign = append(e.assign, store.Assignment{Nodes: nodes, Signed: signed})
	}
}

// commitLoop writes what is staged until nothing is, one transaction at a
// time: what calls stage while a transaction is written goes into the
// next one.
func (e *Engine) commitLoop() {
	for {
		e.mu.Lock()
		if len(e.staged) == 0 && len(e.assign) == 0 {
			e.committing = false
			e.committed = e.stagedSeq
			ws := e.release(e.committed)
			e.mu.Unlock()
			run(ws, nil)
			return
		}
		b := store.RolloutBatch{Assign: e.assign}
		for _, id := range slices.Sorted(maps.Keys(e.staged)) {
			b.Rollouts = append(b.Rollouts, store.RolloutWrite{ID: id, Records: e.staged[id]})
		}
		upto := e.stagedSeq
		e.staged, e.assign = map[string]map[string][]byte{}, nil
		e.mu.Unlock()

		err := e.st.CommitRollouts(b)

		e.mu.Lock()
		if err != nil {
			// Stage it again under what was staged since, which is newer.
			for _, w := range b.Rollouts {
				cur := e.staged[w.ID]
				if cur == nil {
					cur = map[string][]byte{}
					e.staged[w.ID] = cur
				}
				for k, v := range w.Records {
					if _, newer := cur[k]; !newer {
						cur[k] = v
					}
				}
			}
			e.assign = append(b.Assign, e.assign...)
			e.committing = false
			ws := e.release(upto)
			e.mu.Unlock()
			e.log.Error("rollout: commit failed; it is retried with the next change", "err", err)
			run(ws, err)
			return
		}
		e.committed = upto
		ws := e.release(upto)
		ids := make([]string, len(b.Rollouts))
		for i, w := range b.Rollouts {
			ids[i] = w.ID
		}
		e.mu.Unlock()
		if e.notify != nil {
			for _, a := range b.Assign {
				e.notify.Notify(a.Nodes)
			}
		}
		run(ws, nil)
		e.schedulePublish(ids)
	}
}

// release removes and returns the waiters of commits up to seq. e.mu is
// held.
func (e *Engine) release(seq uint64) []waiter {
	var out []waiter
	e.waiters = slices.DeleteFunc(e.waiters, func(w waiter) bool {
		if w.seq <= seq {
			out = append(out, w)
			return true
		}
		return false
	})
	return out
}

func run(ws []waiter, err error) {
	for _, w := range ws {
		w.f(err)
	}
}

// pacer paces the statuses told for one rollout.
type pacer struct {
	last  time.Time
	timer *time.Timer
}

// schedulePublish tells the status of each rollout of ids now, or at the
// end of its pace interval when one was told less than an interval ago.
// Pacing uses the real clock: it paces the uplink, not the rollout.
func (e *Engine) schedulePublish(ids []string) {
	if e.publish == nil {
		return
	}
	for _, id := range ids {
		e.mu.Lock()
		p := e.published[id]
		if p == nil {
			p = &pacer{}
			e.published[id] = p
		}
		if p.timer != nil {
			e.mu.Unlock()
			continue
		}
		wait := e.pace - time.Since(p.last)
		if wait > 0 {
			p.timer = time.AfterFunc(wait, func() { e.publishNow(id, true) })
			e.mu.Unlock()
			continue
		}
		e.mu.Unlock()
		e.publishNow(id, false)
	}
}

// publishNow tells the status of rollout id.
func (e *Engine) publishNow(id string, timer bool) {
	e.mu.Lock()
	p := e.published[id]
	if timer {
		p.timer = nil
	}
	p.last = time.Now()
	r, ok := e.rollouts[id]
	if !ok {
		e.mu.Unlock()
		return
	}
	v := r.view(r.Updated, e.offline)
	e.mu.Unlock()
	e.publish(id, v)
}
