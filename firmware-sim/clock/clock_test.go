package clock

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"
)

var epoch = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// fired reports whether ch has a value ready, without waiting: a Fake
// sends under its lock, so a due channel is ready when Advance returns.
func fired(ch <-chan time.Time) (time.Time, bool) {
	select {
	case t := <-ch:
		return t, true
	default:
		return time.Time{}, false
	}
}

// recv receives from ch; the ceiling only keeps a broken clock from
// hanging the test.
func recv(t *testing.T, ch <-chan time.Time) time.Time {
	t.Helper()
	select {
	case tm := <-ch:
		return tm
	case <-time.After(time.Minute):
		t.Fatal("nothing received within a minute")
		return time.Time{}
	}
}

// bounded returns a context that ends after a minute, so that a broken
// BlockUntil fails the test instead of hanging it.
func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestScaled(t *testing.T) {
	cases := []struct {
		name    string
		scale   float64
		advance time.Duration // of the source
		elapsed time.Duration // of the scaled clock
	}{
		{"real speed", 1, 3 * time.Second, 3 * time.Second},
		{"sixty times", 60, time.Second, time.Minute},
		{"fractional", 2.5, 2 * time.Second, 5 * time.Second},
		{"slower", 0.5, 4 * time.Second, 2 * time.Second},
		{"not moved", 100, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := NewFake(epoch)
			s := NewScaled(src, c.scale)
			if !s.Start().Equal(epoch) || s.Scale() != c.scale {
				t.Fatalf("start %v scale %g, want %v %g", s.Start(), s.Scale(), epoch, c.scale)
			}
			src.Advance(c.advance)
			if got := s.Elapsed(); got != c.elapsed {
				t.Errorf("Elapsed = %v, want %v", got, c.elapsed)
			}
			if got, want := s.Now(), epoch.Add(c.elapsed); !got.Equal(want) {
				t.Errorf("Now = %v, want %v", got, want)
			}
			if got := s.Real(c.elapsed); got != c.advance {
				t.Errorf("Real(%v) = %v, want %v", c.elapsed, got, c.advance)
			}
		})
	}
}

func TestScaledAfterWaitsScaledTime(t *testing.T) {
	src := NewFake(epoch)
	s := NewScaled(src, 60)
	ch := s.After(time.Hour) // one minute of the source
	if err := src.BlockUntil(bounded(t), 1); err != nil {
		t.Fatal(err)
	}
	src.Advance(time.Minute - time.Nanosecond)
	if src.Waiters() != 1 {
		t.Fatalf("the wait fired %v early", time.Nanosecond)
	}
	src.Advance(time.Nanosecond)
	if got, want := recv(t, ch), epoch.Add(time.Hour); !got.Equal(want) {
		t.Errorf("After sent %v, want the scaled time %v", got, want)
	}
}

func TestScaledOnReal(t *testing.T) {
	s := NewScaled(Real{}, 1000)
	got := recv(t, s.After(time.Second)) // a millisecond of real time
	if e := got.Sub(s.Start()); e < time.Second {
		t.Errorf("After(1s) sent a time %v after the start, want at least 1s", e)
	}
}

func TestNewScaledRefusesBadScale(t *testing.T) {
	for _, scale := range []float64{0, -1, nan(), inf()} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewScaled(%g) did not panic", scale)
				}
			}()
			NewScaled(Real{}, scale)
		}()
	}
}

func TestFakeAfter(t *testing.T) {
	cases := []struct {
		name  string
		wait  time.Duration
		moves []time.Duration // Advance steps; the wait fires on the last
	}{
		{"exact", time.Second, []time.Duration{time.Second}},
		{"overshoot", time.Second, []time.Duration{time.Hour}},
		{"in steps", time.Minute, []time.Duration{20 * time.Second, 39 * time.Second, time.Second}},
		{"zero fires at once", 0, nil},
		{"negative fires at once", -time.Second, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := NewFake(epoch)
			ch := f.After(c.wait)
			for i, d := range c.moves {
				if _, ok := fired(ch); ok {
					t.Fatalf("fired before move %d", i)
				}
				f.Advance(d)
			}
			got, ok := fired(ch)
			if !ok {
				t.Fatal("did not fire")
			}
			if !got.Equal(f.Now()) {
				t.Errorf("sent %v, want the clock's time %v", got, f.Now())
			}
			if f.Waiters() != 0 {
				t.Errorf("%d waiters left", f.Waiters())
			}
		})
	}
}

func TestFakeSet(t *testing.T) {
	f := NewFake(epoch)
	early, late := f.After(time.Minute), f.After(time.Hour)
	f.Set(epoch.Add(-time.Hour))
	if _, ok := fired(early); ok {
		t.Fatal("moving back fired a wait")
	}
	f.Set(epoch.Add(time.Minute))
	if _, ok := fired(early); !ok {
		t.Fatal("the due wait did not fire")
	}
	if _, ok := fired(late); ok {
		t.Fatal("a wait fired early")
	}
	if f.Waiters() != 1 {
		t.Errorf("%d waiters, want 1", f.Waiters())
	}
}

func TestFakeBlockUntil(t *testing.T) {
	f := NewFake(epoch)
	got := make(chan time.Time)
	go func() { got <- <-f.After(time.Second) }()
	if err := f.BlockUntil(bounded(t), 1); err != nil {
		t.Fatal(err)
	}
	f.Advance(time.Second)
	if tm := recv(t, got); !tm.Equal(epoch.Add(time.Second)) {
		t.Errorf("woke with %v", tm)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.BlockUntil(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("BlockUntil with no waiter and a done ctx = %v, want context.Canceled", err)
	}
}

// TestFakeConcurrent moves the clock while goroutines wait on it; run it
// with -race.
func TestFakeConcurrent(t *testing.T) {
	const n = 50
	f := NewFake(epoch)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { <-f.After(time.Duration(i+1) * time.Millisecond); _ = f.Now() })
	}
	if err := f.BlockUntil(bounded(t), n); err != nil {
		t.Fatal(err)
	}
	for range n {
		f.Advance(time.Millisecond)
	}
	done := make(chan time.Time)
	go func() { wg.Wait(); close(done) }()
	recv(t, done)
}

func nan() float64 { return math.NaN() }
func inf() float64 { return math.Inf(1) }
