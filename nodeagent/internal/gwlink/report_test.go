package gwlink

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"edgeota/protocol"
	"edgeota/test/testutil"
)

func TestPosts(t *testing.T) {
	g := newGateway(t, "127.0.0.1:0", false)
	c := dial(t, g.addr, fastOpts()...)
	ctx := context.Background()
	h := testHello(testNode)
	hr := &protocol.HealthReport{NodeID: testNode, UptimeSeconds: 60, Inferences: 100, Errors: 2, LatencyP99Micros: 900,
		BootCount: 3, Number: 1, Metrics: map[string]int64{"low_confidence_permille": 12}}
	ev := &protocol.StatusEvent{NodeID: testNode, State: protocol.StateDownloading, Seq: 7, BytesReceived: 4096,
		Reason: "resumed", BootCount: 3, Number: 1}
	must(t, c.Hello(ctx, h))
	must(t, c.Health(ctx, hr))
	must(t, c.Status(ctx, ev))

	g.with(func(g *testGateway) {
		if len(g.posts["hello"]) != 1 || len(g.posts["health"]) != 1 || len(g.posts["status"]) != 1 {
			t.Fatalf("gateway got %d hellos, %d health reports, %d status events; want 1 each",
				len(g.posts["hello"]), len(g.posts["health"]), len(g.posts["status"]))
		}
		gh, err := protocol.DecodeHello(g.posts["hello"][0])
		must(t, err)
		if gh.NodeID != h.NodeID || gh.Labels["site"] != "lab" || gh.Component != h.Component {
			t.Errorf("hello decoded as %+v", gh)
		}
		var ghr protocol.HealthReport
		must(t, protocol.DecodeHealthReport(g.posts["health"][0], &ghr))
		if ghr.Inferences != 100 || ghr.Metrics["low_confidence_permille"] != 12 || ghr.Number != 1 {
			t.Errorf("health report decoded as %+v", ghr)
		}
		gev, err := protocol.DecodeStatusEvent(g.posts["status"][0])
		must(t, err)
		if *gev != *ev {
			t.Errorf("status event decoded as %+v, want %+v", gev, ev)
		}
	})
}

func TestPostRefused(t *testing.T) {
	g := newGateway(t, "127.0.0.1:0", false)
	c := dial(t, g.addr, fastOpts()...)
	for _, code := range []codes.Code{codes.BadRequest, codes.Forbidden, codes.RequestEntityTooLarge} {
		g.with(func(g *testGateway) { g.postCode["hello"] = code; g.postTries["hello"] = 0 })
		err := c.Hello(context.Background(), testHello(testNode))
		var se *StatusError
		if !errors.As(err, &se) || se.Code != code || !errors.Is(err, ErrRefused) {
			t.Fatalf("err = %v, want a StatusError %v", err, code)
		}
		if se.Diagnostic != "forced by the test" {
			t.Errorf("diagnostic %q", se.Diagnostic)
		}
		g.with(func(g *testGateway) {
			if g.postTries["hello"] != 1 {
				t.Errorf("%v: gateway saw %d tries, want 1 (4.xx is not retried)", code, g.postTries["hello"])
			}
		})
	}
}

func TestPostBusy(t *testing.T) {
	g := newGateway(t, "127.0.0.1:0", false)
	g.with(func(g *testGateway) { g.postBusy["status"] = 1 }) // 5.03, Max-Age 1
	c := dial(t, g.addr, fastOpts()...)
	start := time.Now()
	ev := &protocol.StatusEvent{NodeID: testNode, State: protocol.StateIdle, Number: 1}
	must(t, c.Status(context.Background(), ev))
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("post took %v; the 5.03 asked to wait 1 s", d)
	}
	g.with(func(g *testGateway) {
		if g.postTries["status"] != 2 || len(g.posts["status"]) != 1 {
			t.Errorf("gateway saw %d tries and %d events, want 2 and 1", g.postTries["status"], len(g.posts["status"]))
		}
	})
}

func TestPostInvalid(t *testing.T) {
	g := newGateway(t, "127.0.0.1:0", false)
	c := dial(t, g.addr, fastOpts()...)
	ctx := context.Background()
	if err := c.Hello(ctx, testHello("other-node")); err == nil {
		t.Error("hello of another node: no error")
	}
	if err := c.Status(ctx, &protocol.StatusEvent{NodeID: testNode}); !errors.Is(err, protocol.ErrInvalid) {
		t.Errorf("status event numbered 0: err = %v, want protocol.ErrInvalid", err)
	}
	g.with(func(g *testGateway) {
		if n := g.postTries["hello"] + g.postTries["status"]; n != 0 {
			t.Errorf("%d invalid documents reached the gateway", n)
		}
	})
}

// TestPostUnreachable posts to a port nobody serves: retries end after the
// maximum elapsed time.
func TestPostUnreachable(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	must(t, err)
	addr := pc.LocalAddr().String()
	must(t, pc.Close())
	c := dial(t, addr, fastOpts(WithMaxElapsed(500*time.Millisecond), WithRequestTimeout(200*time.Millisecond))...)
	// Only testutil's ceiling bounds how long the retries take: a loaded
	// machine stretches them, a bug makes them go on forever.
	done := make(chan error, 1)
	go func() { done <- c.Health(context.Background(), &protocol.HealthReport{NodeID: testNode, Number: 1}) }()
	if err := testutil.Receive(t, "the post to give up", done); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}

	// The context ends first.
	c2 := dial(t, addr, fastOpts(WithMaxElapsed(0))...)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := c2.Hello(ctx, testHello(testNode)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
}

// TestPostLossy posts through a lossy relay: every document arrives.
func TestPostLossy(t *testing.T) {
	g := newGateway(t, "127.0.0.1:0", false)
	relay := newRelay(t, g.addr, 0.20, *seedFlag+1)
	c := dial(t, relay.addr(), fastOpts(WithRequestTimeout(time.Second))...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 50 {
		ev := &protocol.StatusEvent{NodeID: testNode, State: protocol.StateDownloading, BytesReceived: uint64(i), Number: uint64(i + 1)}
		must(t, c.Status(ctx, ev))
	}
	// A retried exchange may deliver a document twice; consumers drop
	// duplicates by (node, boot, number).
	seen := map[uint64]bool{}
	g.with(func(g *testGateway) {
		for _, b := range g.posts["status"] {
			e, err := protocol.DecodeStatusEvent(b)
			must(t, err)
			seen[e.Number] = true
		}
	})
	if len(seen) != 50 {
		t.Fatalf("gateway got %d distinct events, want 50", len(seen))
	}
}

func TestDialOptions(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		node string
		opts []Option
	}{
		{"bad node id", "no spaces", nil},
		{"block size 2000", testNode, []Option{WithBlockSize(2000)}},
		{"block size 100", testNode, []Option{WithBlockSize(100)}},
		{"block size 8", testNode, []Option{WithBlockSize(8)}},
		{"zero timeout", testNode, []Option{WithRequestTimeout(0)}},
		{"negative keepalive", testNode, []Option{WithKeepAlive(-time.Second)}},
	} {
		if c, err := Dial(ctx, "127.0.0.1:5683", tc.node, tc.opts...); err == nil {
			_ = c.Close()
			t.Errorf("%s: no error", tc.name)
		}
	}
	c, err := Dial(ctx, "127.0.0.1:5683", testNode, WithBlockSize(16))
	must(t, err)
	if c.NodeID() != testNode {
		t.Errorf("NodeID() = %q", c.NodeID())
	}
	must(t, c.Close())
	must(t, c.Close())
	if err := c.Hello(ctx, testHello(testNode)); !errors.Is(err, ErrClosed) {
		t.Errorf("Hello after Close: %v, want ErrClosed", err)
	}
	if !bytes.Equal(etagOf(nil), (&response{}).tag()) {
		t.Error("ETag of an empty payload")
	}
}
