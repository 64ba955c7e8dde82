package main

import (
	"context"
	"log/slog"
	"os"
	"strings"
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
	go func() {
		defer close(done)
		supervise(ctx, g, sd, ticks, hup, func() { reloads.Add(1) }, slog.New(slog.DiscardHandler))
	}()
	next := func(want string) {
		t.Helper()
		if got := testutil.Receive(t, want, sd); !strings.HasPrefix(got, want) {
			t.Fatalf("notified %q, want %q", got, want)
		}
	}

	close(g.ready)
	next("READY=1")
	g.rounds.Add(3)
	ticks <- time.Time{}
	next("WATCHDOG=1")
	ticks <- time.Time{} // the housekeeping stood still: no WATCHDOG=1
	hup <- syscall.SIGHUP
	if got := testutil.Receive(t, "RELOADING=1", sd); !strings.HasPrefix(got, "RELOADING=1\n") || !strings.Contains(got, "MONOTONIC_USEC=") {
		t.Fatalf("notified %q, want RELOADING=1 with MONOTONIC_USEC (the tick without progress fed the watchdog?)", got)
	}
	next("READY=1")
	if n := reloads.Load(); n != 1 {
		t.Fatalf("%d reloads, want 1", n)
	}
	g.rounds.Add(1)
	ticks <- time.Time{}
	next("WATCHDOG=1")
	cancel()
	next("STOPPING=1")
	testutil.Closed(t, "supervise to return", done)
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
