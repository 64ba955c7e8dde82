package testutil

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB whose Fatalf records the failure and returns,
// so that a helper's failure can be checked.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	if r.failed == "" {
		r.failed = fmt.Sprintf(format, args...)
	}
}

func TestEventually(t *testing.T) {
	cases := []struct {
		name     string
		holdsAt  int // the call of cond that first returns true; 0: never
		opts     []Option
		wantFail string
	}{
		{"holds at once", 1, nil, ""},
		{"holds later", 5, nil, ""},
		{"holds later polled at a fixed rate", 3, []Option{Every(time.Microsecond)}, ""},
		{"never holds", 0, []Option{Within(20 * time.Millisecond)}, "waiting for the answer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &recorder{TB: t}
			calls := 0
			Eventually(r, "the answer", func() bool { calls++; return calls == c.holdsAt }, c.opts...)
			if c.wantFail == "" {
				if r.failed != "" {
					t.Fatalf("failed: %s", r.failed)
				}
				if calls != c.holdsAt {
					t.Errorf("cond called %d times, want %d", calls, c.holdsAt)
				}
				return
			}
			if !strings.Contains(r.failed, c.wantFail) {
				t.Errorf("failure %q does not say %q", r.failed, c.wantFail)
			}
			if calls < 2 {
				t.Errorf("cond called %d times before giving up: it was not polled", calls)
			}
		})
	}
}

func TestReceive(t *testing.T) {
	ready := make(chan int, 1)
	ready <- 7
	closed := make(chan int)
	close(closed)
	cases := []struct {
		name     string
		ch       chan int
		want     int
		wantFail string
	}{
		{"a value", ready, 7, ""},
		{"closed", closed, 0, "waiting for the number: channel closed"},
		{"nothing", make(chan int), 0, "waiting for the number"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &recorder{TB: t}
			got := Receive(r, "the number", c.ch, Within(10*time.Millisecond))
			if !strings.Contains(r.failed, c.wantFail) || (c.wantFail == "") != (r.failed == "") {
				t.Errorf("failure %q, want one saying %q", r.failed, c.wantFail)
			}
			if got != c.want {
				t.Errorf("got %d, want %d", got, c.want)
			}
		})
	}
}

func TestClosed(t *testing.T) {
	done := make(chan struct{})
	close(done)
	sent := make(chan int, 2)
	sent <- 1
	sent <- 2
	close(sent)
	open := make(chan struct{})

	r := &recorder{TB: t}
	Closed(r, "done", done)
	Closed(r, "sent", sent)
	if r.failed != "" {
		t.Fatalf("failed on closed channels: %s", r.failed)
	}
	Closed(r, "the open one", open, Within(10*time.Millisecond))
	if !strings.Contains(r.failed, "waiting for the open one") {
		t.Errorf("failure %q does not name the open channel", r.failed)
	}
}

func TestFakeClockStartsAtEpoch(t *testing.T) {
	c := NewFakeClock()
	if !c.Now().Equal(Epoch) {
		t.Fatalf("Now = %v, want %v", c.Now(), Epoch)
	}
	c.Advance(time.Minute)
	if !c.Now().Equal(Epoch.Add(time.Minute)) {
		t.Errorf("after Advance, Now = %v", c.Now())
	}
}

func TestFreePortNeverRepeats(t *testing.T) {
	for _, network := range []string{"tcp", "udp"} {
		seen := map[int]bool{}
		for range 200 {
			p := FreePort(t, network)
			if seen[p] {
				t.Fatalf("%s port %d handed out twice", network, p)
			}
			seen[p] = true
		}
		p := FreePort(t, network)
		var err error
		if network == "udp" {
			var c net.PacketConn
			if c, err = net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
				c.Close()
			}
		} else {
			var l net.Listener
			if l, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
				l.Close()
			}
		}
		if err != nil {
			t.Errorf("%s port %d is not free: %v", network, p, err)
		}
	}
	r := &recorder{TB: t}
	FreePort(r, "sctp")
	if !strings.Contains(r.failed, `"sctp"`) {
		t.Errorf("an unknown network failed with %q", r.failed)
	}
}

// TestFreePortLooksAgainOnCollision hands FreePort a probe that repeats a
// port: the second call must skip it. Ports 1 and 2 are below the kernel's
// ephemeral range, so no real probe of this binary returned them.
func TestFreePortLooksAgainOnCollision(t *testing.T) {
	probes := []int{1, 1, 1, 2}
	defer func(p func(string) (int, error)) { probe = p }(probe)
	probe = func(string) (int, error) {
		p := probes[0]
		probes = probes[1:]
		return p, nil
	}
	if got := FreePort(t, "tcp"); got != 1 {
		t.Fatalf("first port %d, want 1", got)
	}
	if got := FreePort(t, "tcp"); got != 2 {
		t.Fatalf("second port %d, want 2 (1 was handed out)", got)
	}
	if len(probes) != 0 {
		t.Errorf("%d probes left, want 0", len(probes))
	}
}

func TestRetry(t *testing.T) {
	errTaken := errors.New("address already in use")
	cases := []struct {
		name     string
		failures int // start fails this many times first
		wantFail bool
	}{
		{"first port", 0, false},
		{"third port", 2, false},
		{"every port taken", portTries, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &recorder{TB: t}
			var tried []int
			got := Retry(r, "tcp", func(port int) error {
				tried = append(tried, port)
				if len(tried) <= c.failures {
					return errTaken
				}
				return nil
			})
			if c.wantFail {
				if !strings.Contains(r.failed, errTaken.Error()) {
					t.Errorf("failure %q does not give the last error", r.failed)
				}
				return
			}
			if r.failed != "" {
				t.Fatalf("failed: %s", r.failed)
			}
			if len(tried) != c.failures+1 || got != tried[len(tried)-1] {
				t.Errorf("tried %v, returned %d", tried, got)
			}
		})
	}
}
