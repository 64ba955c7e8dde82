package gwlink

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestTickerShared: the clients that tick at one period share one runner;
// a check that returns false is not called again; the last release stops
// the runner and forgets it.
func TestTickerShared(t *testing.T) {
	const tick = time.Millisecond
	add1, release1 := acquireTicker(tick)
	add2, release2 := acquireTicker(tick)
	tickers.mu.Lock()
	shared, refs := tickers.byTick[tick], 0
	if shared != nil {
		refs = shared.refs
	}
	tickers.mu.Unlock()
	if shared == nil || refs != 2 {
		t.Fatalf("two clients of one period: runner %v with %d references, want one runner held twice", shared, refs)
	}

	var once atomic.Int32
	add1(func(time.Time) bool { once.Add(1); return false })
	ticks := make(chan int32, 1)
	add2(func(time.Time) bool {
		select {
		case ticks <- once.Load():
		default:
		}
		return true
	})
	// Three ticks after the one that called the finished check first.
	seen := 0
	for n := range ticks {
		if n > 0 {
			if seen++; seen == 3 {
				break
			}
		}
	}
	if got := once.Load(); got != 1 {
		t.Fatalf("a check that returned false was called %d times, want 1", got)
	}

	release1()
	release1() // a second release of the same client changes nothing
	tickers.mu.Lock()
	refs = shared.refs
	tickers.mu.Unlock()
	if refs != 1 {
		t.Fatalf("after one client released: %d references, want 1", refs)
	}
	release2()
	tickers.mu.Lock()
	_, still := tickers.byTick[tick]
	tickers.mu.Unlock()
	if still {
		t.Fatal("the runner outlived its last client")
	}
	select {
	case <-shared.stop:
	default:
		t.Fatal("the last release did not stop the runner")
	}
}
