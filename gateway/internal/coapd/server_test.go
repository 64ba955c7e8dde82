package coapd_test

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"edgeota/gateway/internal/coapd"
	"edgeota/test/testutil"
)

type harness struct {
	srv   *coapd.Server
	posts atomic.Int64
	gets  atomic.Int64
	addr  *net.UDPAddr
}

func start(t *testing.T, opts ...coapd.Option) *harness {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{addr: conn.LocalAddr().(*net.UDPAddr)}
	h.srv = coapd.New(conn, coapd.HandlerFunc(func(w *coapd.Response, r *coapd.Request) {
		switch r.Msg.Code {
		case codes.POST:
			h.posts.Add(1)
			w.Code = codes.Changed
		case codes.GET:
			h.gets.Add(1)
			w.Code = codes.Content
			w.SetContentFormat(message.TextPlain)
			w.Payload = []byte("hello " + r.Path)
		default:
			w.Code = codes.MethodNotAllowed
		}
	}), opts...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.srv.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

// client is a raw UDP peer speaking go-coap's codec.
type client struct {
	t    *testing.T
	conn *net.UDPConn
}

func dial(t *testing.T, h *harness) *client {
	c, err := net.DialUDP("udp", nil, h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, conn: c}
}

func (c *client) send(m message.Message) {
	c.t.Helper()
	buf := make([]byte, 8192)
	n, err := coder.DefaultCoder.Encode(m, buf)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.Write(buf[:n]); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) sendRaw(b []byte) {
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) recv(timeout time.Duration) (message.Message, bool) {
	c.t.Helper()
	buf := make([]byte, 4096)
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	n, err := c.conn.Read(buf)
	if err != nil {
		return message.Message{}, false
	}
	m := message.Message{Options: make(message.Options, 0, 16)}
	if _, err := coder.DefaultCoder.Decode(buf[:n], &m); err != nil {
		c.t.Fatalf("undecodable answer: %v", err)
	}
	return m, true
}

func request(code codes.Code, typ message.Type, mid int32, path string, token string) message.Message {
	buf := make([]byte, 256)
	opts, _, _ := message.Options{}.SetPath(buf, path)
	return message.Message{Code: code, Type: typ, MessageID: mid, Token: []byte(token), Options: opts}
}

func TestPiggybackedAndNonResponses(t *testing.T) {
	h := start(t)
	c := dial(t, h)
	c.send(request(codes.GET, message.Confirmable, 100, "/a/b", "t1"))
	m, ok := c.recv(2 * time.Second)
	if !ok || m.Type != message.Acknowledgement || m.MessageID != 100 || string(m.Token) != "t1" || m.Code != codes.Content || string(m.Payload) != "hello /a/b" {
		t.Fatalf("CON GET answered %+v", m)
	}
	c.send(request(codes.GET, message.NonConfirmable, 101, "/x", "t2"))
	m, ok = c.recv(2 * time.Second)
	if !ok || m.Type != message.NonConfirmable || string(m.Token) != "t2" || m.Code != codes.Content {
		t.Fatalf("NON GET answered %+v", m)
	}
}

// TestDuplicatePostActedOnOnce: a retransmitted confirmable POST (same
// message id) gets the same answer and reaches the handler once.
func TestDuplicatePostActedOnOnce(t *testing.T) {
	h := start(t)
	c := dial(t, h)
	for i := 0; i < 3; i++ {
		c.send(request(codes.POST, message.Confirmable, 7, "/x/post", "tok"))
		m, ok := c.recv(2 * time.Second)
		if !ok || m.Code != codes.Changed || m.MessageID != 7 {
			t.Fatalf("try %d: %+v", i, m)
		}
	}
	if n := h.posts.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
	c.send(request(codes.POST, message.Confirmable, 8, "/x/post", "tok"))
	c.recv(2 * time.Second)
	if n := h.posts.Load(); n != 2 {
		t.Fatalf("a new message id ran %d times in all, want 2", n)
	}
	if h.srv.Stats().Duplicates != 2 {
		t.Fatalf("stats %+v", h.srv.Stats())
	}
}

func TestBadInput(t *testing.T) {
	h := start(t)
	c := dial(t, h)
	// Unknown critical option 9 (odd): 4.02.
	m := request(codes.GET, message.Confirmable, 20, "/a", "k")
	m.Options = m.Options.Add(message.Option{ID: 9, Value: []byte{1}})
	c.send(m)
	if r, ok := c.recv(2 * time.Second); !ok || r.Code != codes.BadOption {
		t.Fatalf("unknown critical option answered %+v", r)
	}
	// Unknown elective option 10 (even): served.
	m = request(codes.GET, message.Confirmable, 21, "/a", "k")
	m.Options = m.Options.Add(message.Option{ID: 10, Value: []byte{1}})
	c.send(m)
	if r, ok := c.recv(2 * time.Second); !ok || r.Code != codes.Content {
		t.Fatalf("elective option answered %+v", r)
	}
	// Malformed confirmable (token length 9): Reset with its message id.
	c.sendRaw([]byte{0x49, 0x01, 0x12, 0x34, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	if r, ok := c.recv(2 * time.Second); !ok || r.Type != message.Reset || r.MessageID != 0x1234 {
		t.Fatalf("malformed CON answered %+v", r)
	}
	// Garbage: nothing, and the server keeps serving.
	c.sendRaw([]byte{0xff, 0x00})
	c.sendRaw(nil)
	// Oversized request: 4.13 with Size1.
	big := request(codes.POST, message.Confirmable, 22, "/x/post", "k")
	big.Payload = make([]byte, 3000)
	c.send(big)
	r, ok := c.recv(2 * time.Second)
	if !ok || r.Code != codes.RequestEntityTooLarge || r.MessageID != 22 {
		t.Fatalf("oversized answered %+v", r)
	}
	if v, err := r.Options.GetUint32(message.Size1); err != nil || v != 1152 {
		t.Fatalf("Size1 %d %v", v, err)
	}
	// A CoAP ping gets a Reset.
	c.send(message.Message{Type: message.Confirmable, Code: codes.Empty, MessageID: 23})
	if r, ok := c.recv(2 * time.Second); !ok || r.Type != message.Reset || r.MessageID != 23 {
		t.Fatalf("ping answered %+v", r)
	}
	c.send(request(codes.GET, message.Confirmable, 24, "/still", "k"))
	if r, ok := c.recv(2 * time.Second); !ok || string(r.Payload) != "hello /still" {
		t.Fatalf("server stopped serving: %+v", r)
	}
	if h.posts.Load() != 0 {
		t.Fatal("a rejected request reached the handler")
	}
}

func TestConfirmableNotifyRetransmitsThenFails(t *testing.T) {
	h := start(t, coapd.WithTransmission(20*time.Millisecond, 3))
	c := dial(t, h)
	to := netip.MustParseAddrPort(c.conn.LocalAddr().String())
	failed := make(chan struct{})
	if err := h.srv.Notify(to, "", []byte("obs"), true, func(w *coapd.Response) {
		w.Code = codes.Content
		w.SetUint32(message.Observe, 5)
		w.Payload = []byte("v2")
	}, func() { close(failed) }); err != nil {
		t.Fatal(err)
	}
	var mids []int32
	for i := 0; i < 4; i++ {
		m, ok := c.recv(5 * time.Second)
		if !ok {
			t.Fatalf("got %d transmissions, want 4", i)
		}
		if m.Type != message.Confirmable || string(m.Payload) != "v2" || string(m.Token) != "obs" {
			t.Fatalf("notification %+v", m)
		}
		mids = append(mids, m.MessageID)
	}
	select {
	case <-failed:
	case <-time.After(testutil.DefaultCeiling):
		t.Fatal("onFail not called after MAX_RETRANSMIT")
	}
	if mids[0] != mids[3] {
		t.Fatal("retransmissions changed the message id")
	}
}

func TestNotifyAckAndReset(t *testing.T) {
	h := start(t, coapd.WithTransmission(50*time.Millisecond, 4))
	c := dial(t, h)
	to := netip.MustParseAddrPort(c.conn.LocalAddr().String())
	var fails atomic.Int32
	build := func(w *coapd.Response) { w.Code = codes.Content }
	// Acknowledged confirmable: no retransmission, no failure.
	h.srv.Notify(to, "", []byte("a"), true, build, func() { fails.Add(1) })
	m, _ := c.recv(2 * time.Second)
	c.send(message.Message{Type: message.Acknowledgement, Code: codes.Empty, MessageID: m.MessageID})
	if _, ok := c.recv(400 * time.Millisecond); ok {
		t.Fatal("retransmitted after the ACK")
	}
	// Reset to a non-confirmable notification: failure.
	var wg sync.WaitGroup
	wg.Add(1)
	h.srv.Notify(to, "", []byte("b"), false, build, func() { fails.Add(1); wg.Done() })
	m, _ = c.recv(2 * time.Second)
	c.send(message.Message{Type: message.Reset, Code: codes.Empty, MessageID: m.MessageID})
	wg.Wait()
	if fails.Load() != 1 {
		t.Fatalf("%d failures, want 1", fails.Load())
	}
}

// TestDeferredResponse: a deferred answer is sent later, piggybacked, and
// retransmissions while it is pending are ignored.
func TestDeferredResponse(t *testing.T) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	pending := make(chan *coapd.Deferred, 4)
	var calls atomic.Int32
	srv := coapd.New(conn, coapd.HandlerFunc(func(w *coapd.Response, r *coapd.Request) {
		calls.Add(1)
		pending <- w.Defer()
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	c := dial(t, &harness{addr: conn.LocalAddr().(*net.UDPAddr)})
	c.send(request(codes.POST, message.Confirmable, 300, "/x/post", "d"))
	d := <-pending
	if _, ok := c.recv(200 * time.Millisecond); ok {
		t.Fatal("answered before Complete")
	}
	c.send(request(codes.POST, message.Confirmable, 300, "/x/post", "d")) // retransmission
	if _, ok := c.recv(200 * time.Millisecond); ok {
		t.Fatal("a pending retransmission was answered")
	}
	d.Complete(func(w *coapd.Response) { w.Code = codes.Changed })
	m, ok := c.recv(2 * time.Second)
	if !ok || m.Type != message.Acknowledgement || m.MessageID != 300 || m.Code != codes.Changed || string(m.Token) != "d" {
		t.Fatalf("deferred answer %+v", m)
	}
	c.send(request(codes.POST, message.Confirmable, 300, "/x/post", "d")) // late retransmission: stored answer
	if m, ok := c.recv(2 * time.Second); !ok || m.Code != codes.Changed {
		t.Fatalf("late retransmission answered %+v", m)
	}
	if calls.Load() != 1 {
		t.Fatalf("handler ran %d times", calls.Load())
	}
}
