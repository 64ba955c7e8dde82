package gwlink

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"edgeota/test/testutil"
)

func TestManifest(t *testing.T) {
	g := newGateway(t, "127.0.0.1:0", false)
	c := dial(t, g.addr, fastOpts()...)
	ctx := context.Background()

	// Never said Hello, and nothing to send again: 4.04.
	_, _, err := c.Manifest(ctx)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != codes.NotFound {
		t.Fatalf("Manifest before Hello: %v, want a 4.04 StatusError", err)
	}

	must(t, c.Hello(ctx, testHello(testNode)))
	signed, etag, err := c.Manifest(ctx)
	must(t, err)
	if signed != nil || !bytes.Equal(etag, etagOf(nil)) {
		t.Errorf("nothing assigned: Manifest = %s, %x", describe(signed), etag)
	}

	g.setManifest(testNode, []byte("manifest A"))
	signed, etag, err = c.Manifest(ctx)
	must(t, err)
	if string(signed) != "manifest A" || !bytes.Equal(etag, etagOf(signed)) {
		t.Errorf("Manifest = %s, %x", describe(signed), etag)
	}

	// The gateway forgets the node: the last Hello goes again.
	g.setKnown(testNode, false)
	signed, _, err = c.Manifest(ctx)
	must(t, err)
	if string(signed) != "manifest A" {
		t.Errorf("Manifest after the gateway forgot the node = %s", describe(signed))
	}
	g.with(func(g *testGateway) {
		if len(g.posts["hello"]) != 2 {
			t.Errorf("gateway got %d hellos, want 2", len(g.posts["hello"]))
		}
	})
}

// watchRecorder collects what Watch delivers.
type watchRecorder struct {
	got  chan []byte
	done chan error
}

func startWatch(t *testing.T, c *Client) (*watchRecorder, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watchRecorder{got: make(chan []byte, 64), done: make(chan error, 1)}
	go func() {
		w.done <- c.Watch(ctx, func(signed []byte) { w.got <- signed })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-w.done; !errors.Is(err, context.Canceled) {
			t.Errorf("Watch returned %v, want context.Canceled", err)
		}
	})
	return w, cancel
}

// next waits for the next delivery, up to testutil's ceiling, and checks
// it.
func (w *watchRecorder) next(t *testing.T, want string) {
	t.Helper()
	got := testutil.Receive(t, "onChange("+strconv.Quote(want)+")", w.got)
	if (want == "" && got != nil) || (want != "" && string(got) != want) {
		t.Fatalf("onChange(%s), want %q", describe(got), want)
	}
}

// none checks that nothing else was delivered.
func (w *watchRecorder) none(t *testing.T) {
	t.Helper()
	select {
	case got := <-w.got:
		t.Fatalf("unexpected onChange(%s)", describe(got))
	default:
	}
}

func TestWatch(t *testing.T) {
	g := newGateway(t, "127.0.0.1:0", false)
	c := dial(t, g.addr, fastOpts(WithPollInterval(50*time.Millisecond))...)
	must(t, c.Hello(context.Background(), testHello(testNode)))
	w, _ := startWatch(t, c)

	w.next(t, "") // nothing assigned
	testutil.Eventually(t, "an observer", func() bool { return g.observerCount(testNode) == 1 })
	g.setManifest(testNode, []byte("manifest A"))
	w.next(t, "manifest A")
	g.setManifest(testNode, []byte("manifest A")) // same ETag: no call
	g.setManifest(testNode, []byte("manifest B"))
	w.next(t, "manifest B")
	// Let several polls answer 2.03: still no call.
	gets := func() int { var n int; g.with(func(g *testGateway) { n = g.manifestGets }); return n }
	before := gets()
	testutil.Eventually(t, "three polls", func() bool { return gets() >= before+3 })
	w.none(t)
	g.setManifest(testNode, nil)
	w.next(t, "")
	g.with(func(g *testGateway) {
		if g.registered != 1 {
			t.Errorf("%d observe registrations, want 1", g.registered)
		}
	})
}

// TestWatchRestart restarts the gateway on the same port. While it is down
// the client's keepalive ping meets the closed port (ICMP port unreachable)
// and go-coap closes the connection; Watch dials again and registers on the
// new gateway (polling is off: one hour). A restart quicker than a ping is
// caught by polling: TestWatchRestartForgotten.
func TestWatchRestart(t *testing.T) {
	g1 := newGateway(t, "127.0.0.1:0", false)
	addr := g1.addr
	c := dial(t, addr, fastOpts(WithPollInterval(time.Hour), WithKeepAlive(50*time.Millisecond))...)
	must(t, c.Hello(context.Background(), testHello(testNode)))
	g1.setManifest(testNode, []byte("manifest A"))
	w, _ := startWatch(t, c)
	w.next(t, "manifest A")

	g1.stop()
	testutil.Eventually(t, "the client to see the gateway down", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.gen > 1
	})
	g2 := newGateway(t, addr, false)
	g2.setKnown(testNode, true)
	g2.setManifest(testNode, []byte("manifest B"))
	w.next(t, "manifest B")
	testutil.Eventually(t, "an observer at the new gateway", func() bool { return g2.observerCount(testNode) == 1 })
	g2.setManifest(testNode, []byte("manifest C"))
	w.next(t, "manifest C")
}

// TestWatchRestartForgotten restarts the gateway quicker than the client
// notices (no keepalive); the new gateway does not know the node. A poll
// meets 4.04, the client says Hello again and registers again.
func TestWatchRestartForgotten(t *testing.T) {
	g1 := newGateway(t, "127.0.0.1:0", false)
	addr := g1.addr
	c := dial(t, addr, fastOpts(WithPollInterval(100*time.Millisecond), WithKeepAlive(0))...)
	must(t, c.Hello(context.Background(), testHello(testNode)))
	g1.setManifest(testNode, []byte("manifest A"))
	w, _ := startWatch(t, c)
	w.next(t, "manifest A")

	g1.stop()
	g2 := newGateway(t, addr, false)
	g2.setManifest(testNode, []byte("manifest B"))
	w.next(t, "manifest B")
	testutil.Eventually(t, "an observer at the new gateway", func() bool { return g2.observerCount(testNode) == 1 })
	g2.with(func(g *testGateway) {
		if len(g.posts["hello"]) != 1 {
			t.Errorf("new gateway got %d hellos, want 1", len(g.posts["hello"]))
		}
	})
	g2.setManifest(testNode, []byte("manifest C"))
	w.next(t, "manifest C")
}

// TestWatchRefresh: a gateway that silently drops its observers is
// registered with again once Max-Age and the margin pass.
func TestWatchRefresh(t *testing.T) {
	g := newGateway(t, "127.0.0.1:0", false)
	g.with(func(g *testGateway) { g.maxAge = 1 })
	c := dial(t, g.addr, fastOpts(WithPollInterval(time.Hour), WithKeepAlive(0))...)
	must(t, c.Hello(context.Background(), testHello(testNode)))
	w, _ := startWatch(t, c)
	w.next(t, "")
	testutil.Eventually(t, "an observer", func() bool { return g.observerCount(testNode) == 1 })
	g.forgetObservers()
	testutil.Eventually(t, "a new registration", func() bool { return g.observerCount(testNode) == 1 })
	g.setManifest(testNode, []byte("manifest A"))
	w.next(t, "manifest A")
}

// TestWatchUnknownNode: Watch before the node said Hello keeps trying
// until it has.
func TestWatchUnknownNode(t *testing.T) {
	g := newGateway(t, "127.0.0.1:0", false)
	c := dial(t, g.addr, fastOpts(WithPollInterval(time.Hour))...)
	g.setManifest(testNode, []byte("manifest A"))
	w, _ := startWatch(t, c)
	testutil.Eventually(t, "a refused registration", func() bool {
		var n int
		g.with(func(g *testGateway) { n = g.manifestGets })
		return n > 0
	})
	w.none(t)
	must(t, c.Hello(context.Background(), testHello(testNode)))
	w.next(t, "manifest A")
}

func TestWatchClosed(t *testing.T) {
	g := newGateway(t, "127.0.0.1:0", false)
	c, err := Dial(context.Background(), g.addr, testNode, fastOpts()...)
	must(t, err)
	must(t, c.Close())
	if err := c.Watch(context.Background(), func([]byte) {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Watch on a closed client: %v, want ErrClosed", err)
	}
}

// TestManifestBlocks: a manifest over one block, split by go-coap's
// block-wise server, arrives whole.
func TestManifestBlocks(t *testing.T) {
	g := newGateway(t, "127.0.0.1:0", true)
	big := bytes.Repeat([]byte("0123456789abcdef"), 200) // 3200 bytes
	g.setKnown(testNode, true)
	g.setManifest(testNode, big)
	c := dial(t, g.addr, fastOpts()...)
	signed, etag, err := c.Manifest(context.Background())
	must(t, err)
	if !bytes.Equal(signed, big) || !bytes.Equal(etag, etagOf(big)) {
		t.Fatalf("Manifest = %d bytes, ETag %x; want %d bytes", len(signed), etag, len(big))
	}
}
