// Package testutil holds what edgeota's tests share: waiting for a
// condition or a value with a message that says what was awaited
// ([Eventually], [Receive]), loopback ports for the servers a test starts
// ([FreePort], [Retry]), and a fake clock ([NewFakeClock]). [Poll] is the
// polling under [Eventually], for a caller that writes its own message.
//
// A wait here has a ceiling, [DefaultCeiling], but the ceiling is a safety
// net against a test that would otherwise hang, never the assertion: a
// test waits for an event or a metric the code exposes, and fails when the
// code is broken, not when the machine is slow.
package testutil

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"edgeota/firmware-sim/clock"
)

// DefaultCeiling is how long [Eventually] and [Receive] wait before they
// fail the test, unless told otherwise with [Within]. It is generous on
// purpose (a loaded two-core machine running the race detector is slow)
// and stays below go test's own timeout of ten minutes.
const DefaultCeiling = 2 * time.Minute

// maxPoll is the longest pause between two checks of a condition.
const maxPoll = 20 * time.Millisecond

// Option changes how a wait polls or how long it may take.
type Option func(*waitConfig)

type waitConfig struct {
	ceiling time.Duration
	poll    time.Duration // 0: back off from 1ms to maxPoll
}

// Within sets the ceiling of a wait. Use it only where the test runs
// with a known bound that a working system keeps far within; never make
// the ceiling the assertion.
func Within(d time.Duration) Option { return func(c *waitConfig) { c.ceiling = d } }

// Every polls the condition at a fixed interval instead of backing off from
// a millisecond to 20ms: for a condition that is costly to check.
func Every(d time.Duration) Option { return func(c *waitConfig) { c.poll = d } }

func configure(opts []Option) waitConfig {
	c := waitConfig{ceiling: DefaultCeiling}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// Eventually polls cond until it returns true. If it does not within the
// ceiling it fails the test with t.Fatalf, naming what: "waiting for
// <what>".
func Eventually(tb testing.TB, what string, cond func() bool, opts ...Option) {
	tb.Helper()
	c := configure(opts)
	if !poll(c, cond) {
		tb.Fatalf("gave up after %v waiting for %s", c.ceiling, what)
	}
}

// Poll checks cond until it holds or the ceiling passes, and reports
// whether it held: for a caller that writes its own failure message.
func Poll(cond func() bool, opts ...Option) bool { return poll(configure(opts), cond) }

// poll checks cond until it holds or c.ceiling passes, and reports
// whether it held.
func poll(c waitConfig, cond func() bool) bool {
	deadline := time.Now().Add(c.ceiling)
	pause := c.poll
	if pause == 0 {
		pause = time.Millisecond
	}
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
		if c.poll == 0 {
			pause = min(2*pause, maxPoll)
		}
	}
	return true
}

// Receive waits for a value on ch and returns it. If none comes within the
// ceiling, or ch is closed, it fails the test with t.Fatalf, naming what.
func Receive[T any](tb testing.TB, what string, ch <-chan T, opts ...Option) T {
	tb.Helper()
	c := configure(opts)
	timer := time.NewTimer(c.ceiling)
	defer timer.Stop()
	select {
	case v, ok := <-ch:
		if !ok {
			tb.Fatalf("waiting for %s: channel closed", what)
		}
		return v
	case <-timer.C:
		tb.Fatalf("gave up after %v waiting for %s", c.ceiling, what)
	}
	var zero T
	return zero
}

// Closed waits until ch is closed (a done channel). If it is not within
// the ceiling it fails the test with t.Fatalf, naming what. Values sent on
// ch are drained.
func Closed[T any](tb testing.TB, what string, ch <-chan T, opts ...Option) {
	tb.Helper()
	c := configure(opts)
	timer := time.NewTimer(c.ceiling)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timer.C:
			tb.Fatalf("gave up after %v waiting for %s", c.ceiling, what)
			return
		}
	}
}

// Epoch is where [NewFakeClock] starts: a fixed moment, so that times in
// test output and goldens do not change from run to run.
var Epoch = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// NewFakeClock returns a [clock.Fake] standing at [Epoch]; the test moves
// it with Advance or Set.
func NewFakeClock() *clock.Fake { return clock.NewFake(Epoch) }

// portTries is how many ports FreePort and Listen try before they give up.
const portTries = 10

var (
	portsMu sync.Mutex
	// handedOut holds every port FreePort returned in this process, by
	// network, so that two servers of one test never get the same port.
	handedOut = map[string]map[int]bool{}
)

// FreePort returns a port of network ("tcp" or "udp") on 127.0.0.1 that was
// free when it looked, for a server the test starts in another process or
// behind an API that takes an address. It never returns the same port
// twice in one test binary: on such a collision it looks again. Another
// process can still take the port before the server binds it; a server
// that fails to bind should be started again on a new port: [Retry] does
// that.
func FreePort(tb testing.TB, network string) int {
	tb.Helper()
	for range portTries {
		port, err := probe(network)
		if err != nil {
			tb.Fatalf("free %s port: %v", network, err)
			return 0
		}
		portsMu.Lock()
		taken := handedOut[network][port]
		if !taken {
			if handedOut[network] == nil {
				handedOut[network] = map[int]bool{}
			}
			handedOut[network][port] = true
		}
		portsMu.Unlock()
		if !taken {
			return port
		}
	}
	tb.Fatalf("free %s port: %d ports probed were all handed out already", network, portTries)
	return 0
}

// probe is probeKernel; tests replace it.
var probe = probeKernel

// probeKernel asks the kernel for a free port of network on 127.0.0.1.
func probeKernel(network string) (int, error) {
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	case "tcp":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port, nil
	default:
		return 0, fmt.Errorf("network %q: want tcp or udp", network)
	}
}

// Retry starts a server on a fresh [FreePort] of network, and on an error
// (the port taken between the probe and the bind) on another, up to ten
// ports; it returns the port start succeeded on, or fails the test with
// the last error.
func Retry(tb testing.TB, network string, start func(port int) error) int {
	tb.Helper()
	var err error
	for range portTries {
		port := FreePort(tb, network)
		if err = start(port); err == nil {
			return port
		}
	}
	tb.Fatalf("start on a free %s port: %d tries, last: %v", network, portTries, err)
	return 0
}
