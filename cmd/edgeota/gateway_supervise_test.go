package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"edgeota/test/testutil"
)

// fakeGateway is a supervised gateway whose readiness and housekeeping
// the test drives.
type fakeGateway struct {
	ready  chan struct{}
	rounds atomic.Uint64
}

func (f *fakeGateway) Ready() <-chan struct{}     { return f.ready }
func (f *fakeGateway) HousekeepingRounds() uint64 { return f.rounds.Load() }

// chanNotifier hands every sd_notify state to the test.
type chanNotifier chan string

func (c chanNotifier) Notify(state string) { c <- state }

// TestSupervise: READY=1 once the gateway serves; WATCHDOG=1 on a tick
// only while the housekeeping advanced; RELOADING=1 (with MONOTONIC_USEC),
// the reload, then READY=1 on SIGHUP; STOPPING=1 at the end. The
// notifications are sequential, so a tick that must not feed the
// watchdog is proven by the next notification being another one.
func TestSupervise(t *testing.T) {
	g := &fakeGateway{ready: make(chan struct{})}
	sd := make(chanNotifier, 16)
	ticks := make(chan time.Time)
	hup := make(chan os.Signal)
	var reloads atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	log := &syncBuffer{}
	go func() {
		defer close(done)
		supervise(ctx, g, sd, ticks, hup, func() { reloads.Add(1) }, slog.New(slog.NewTextHandler(log, nil)))
	}()
	next := func(want string) {
		t.Helper()
		if got := testutil.Receive(t, want, sd); !strings.HasPrefix(got, want) {
			t.Fatalf("notified %q, want %q", got, want)
		}
	}

	close(g.ready)
	next("READY=1")
	now := time.Unix(1e9, 0)
	tick := func(d time.Duration) { now = now.Add(d); ticks <- now }
	g.rounds.Add(3)
	tick(time.Second)
	next("WATCHDOG=1")
	tick(time.Second) // the housekeeping stood still: no WATCHDOG=1
	hup <- syscall.SIGHUP
	if got := testutil.Receive(t, "RELOADING=1", sd); !strings.HasPrefix(got, "RELOADING=1\n") || !strings.Contains(got, "MONOTONIC_USEC=") {
		t.Fatalf("notified %q, want RELOADING=1 with MONOTONIC_USEC (the tick without progress fed the watchdog?)", got)
	}
	next("READY=1")
	if n := reloads.Load(); n != 1 {
		t.Fatalf("%d reloads, want 1", n)
	}
	if strings.Contains(log.String(), "stopped") {
		t.Fatalf("one tick without progress logged a stall:\n%s", log)
	}
	g.rounds.Add(1)
	tick(time.Second)
	next("WATCHDOG=1")
	// A stall is logged once it lasts housekeepingStall, once.
	if strings.Contains(log.String(), "stopped") {
		t.Fatalf("a stall logged before it lasted %v:\n%s", housekeepingStall, log)
	}
	for range 5 {
		tick(time.Second)
	}
	hup <- syscall.SIGHUP // a sync point: the ticks before it were handled
	next("RELOADING=1")
	next("READY=1")
	if n := strings.Count(log.String(), "housekeeping loop has stopped"); n != 1 {
		t.Fatalf("the stall logged %d times, want once:\n%s", n, log)
	}
	cancel()
	next("STOPPING=1")
	testutil.Closed(t, "supervise to return", done)
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSuperviseStopsBeforeReady: a gateway that never serves is told
// STOPPING=1 when the context ends, never READY=1.
func TestSuperviseStopsBeforeReady(t *testing.T) {
	sd := make(chanNotifier, 4)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	supervise(ctx, &fakeGateway{ready: make(chan struct{})}, sd, nil, nil, func() {}, slog.New(slog.DiscardHandler))
	close(sd)
	var got []string
	for s := range sd {
		got = append(got, s)
	}
	if len(got) != 1 || got[0] != "STOPPING=1" {
		t.Fatalf("notified %q, want only STOPPING=1", got)
	}
}
