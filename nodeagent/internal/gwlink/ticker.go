package gwlink

import (
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/pkg/runner/periodic"
)

// tickers holds the process's shared periodic runners, one per tick.
var tickers = struct {
	mu     sync.Mutex
	byTick map[time.Duration]*ticker
}{byTick: map[time.Duration]*ticker{}}

// ticker runs the periodic checks (retransmissions, expirations) of every
// go-coap connection of the process that ticks at the same period, on one
// goroutine and one timer. A node has one connection, so this changes
// nothing there; a simulator running thousands of nodes in one process
// would otherwise wake thousands of goroutines every tick (go-coap's
// periodic.New starts one per client).
type ticker struct {
	tick time.Duration
	refs int // clients holding it; guarded by tickers.mu
	stop chan struct{}

	mu  sync.Mutex
	fns []func(time.Time) bool // appended only; run removes those done
}

// acquireTicker returns the shared runner of period tick, as go-coap's
// option wants it, and the function that releases it: the last release
// stops its goroutine.
func acquireTicker(tick time.Duration) (periodic.Func, func()) {
	tickers.mu.Lock()
	defer tickers.mu.Unlock()
	t := tickers.byTick[tick]
	if t == nil {
		t = &ticker{tick: tick, stop: make(chan struct{})}
		tickers.byTick[tick] = t
		go t.run()
	}
	t.refs++
	var once sync.Once
	release := func() {
		once.Do(func() {
			tickers.mu.Lock()
			defer tickers.mu.Unlock()
			if t.refs--; t.refs == 0 {
				delete(tickers.byTick, tick)
				close(t.stop)
			}
		})
	}
	return t.add, release
}

// add registers f, called every tick until it returns false.
func (t *ticker) add(f func(time.Time) bool) {
	if f == nil {
		return
	}
	t.mu.Lock()
	t.fns = append(t.fns, f)
	t.mu.Unlock()
}

func (t *ticker) run() {
	tk := time.NewTicker(t.tick)
	defer tk.Stop()
	var batch []func(time.Time) bool
	var done []bool
	for {
		var now time.Time
		select {
		case now = <-tk.C:
		case <-t.stop:
			return
		}
		t.mu.Lock()
		batch = append(batch[:0], t.fns...)
		t.mu.Unlock()
		done = done[:0]
		ended := 0
		for _, f := range batch {
			ok := f(now)
			done = append(done, !ok)
			if !ok {
				ended++
			}
		}
		if ended > 0 {
			// Only appends happened meanwhile: the first len(batch)
			// functions are the batch, in order.
			t.mu.Lock()
			keep := t.fns[:0]
			for i, f := range t.fns {
				if i >= len(done) || !done[i] {
					keep = append(keep, f)
				}
			}
			clear(t.fns[len(keep):])
			t.fns = keep
			t.mu.Unlock()
		}
		clear(batch)
	}
}
