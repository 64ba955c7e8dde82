package coapd_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"

	"edgeota/gateway/internal/coapd"
	"edgeota/test/testutil"
)

// blockOf is block num of the image the test handler serves: 1024 bytes
// that differ from block to block and from byte to byte.
func blockOf(num int64) []byte {
	b := make([]byte, 1024)
	for i := range b {
		b[i] = byte(int64(i)*7 + num*13 + int64(i>>8))
	}
	return b
}

type fastHarness struct {
	srv    *coapd.Server
	addr   *net.UDPAddr
	posts  atomic.Int64
	cancel context.CancelFunc
	done   chan struct{}
}

// startFast serves blocks of blockOf on GET and counts POSTs, with two
// workers (a reader and a helper) whatever GOMAXPROCS is, and at least two
// Ps, so that the test's own clients run while the reader holds one in its
// fast wait.
func startFast(t *testing.T, network string) *fastHarness {
	t.Helper()
	if runtime.GOMAXPROCS(0) < 2 {
		prev := runtime.GOMAXPROCS(2)
		t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	}
	ip := net.IPv4(127, 0, 0, 1)
	if network == "udp6" {
		ip = net.IPv6loopback
	}
	conn, err := net.ListenUDP(network, &net.UDPAddr{IP: ip})
	if err != nil {
		t.Skipf("no %s loopback: %v", network, err)
	}
	h := &fastHarness{addr: conn.LocalAddr().(*net.UDPAddr), done: make(chan struct{})}
	h.srv = coapd.New(conn, coapd.HandlerFunc(func(w *coapd.Response, r *coapd.Request) {
		switch r.Msg.Code {
		case codes.POST:
			h.posts.Add(1)
			w.Code = codes.Changed
			w.Payload = []byte(r.Path)
		case codes.GET:
			num, _, _, err := r.Block2()
			if err != nil {
				w.Code = codes.BadOption
				return
			}
			opt, _ := blockwise.EncodeBlockOption(blockwise.SZX1024, num, true)
			w.Code = codes.Content
			w.SetUint32(message.Block2, opt)
			w.Payload = append(w.Buffer(0)[:0], blockOf(num)...)
		}
	}), coapd.WithWorkers(2))
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.srv.Serve(ctx); close(h.done) }()
	t.Cleanup(func() { cancel(); <-h.done })
	return h
}

// getBlock asks for block num and checks every byte of the answer.
func getBlock(t *testing.T, c *client, mid int32, num int64) {
	t.Helper()
	m := request(codes.GET, message.Confirmable, mid, "/m/img", fmt.Sprintf("g%d", mid))
	v, _ := blockwise.EncodeBlockOption(blockwise.SZX1024, num, false)
	buf := make([]byte, 4)
	m.Options, _, _ = m.Options.SetUint32(buf, message.Block2, v)
	c.send(m)
	checkBlock(t, c, mid, num)
}

func checkBlock(t *testing.T, c *client, mid int32, num int64) {
	t.Helper()
	r, ok := c.recv(testutil.DefaultCeiling)
	if !ok || r.MessageID != mid || r.Code != codes.Content || !bytes.Equal(r.Payload, blockOf(num)) {
		t.Fatalf("block %d (mid %d): answered mid %d %v, %d bytes, same bytes %v", num, mid, r.MessageID, r.Code,
			len(r.Payload), bytes.Equal(r.Payload, blockOf(num)))
	}
}

// postTwice sends a confirmable POST and its retransmission: both get the
// same answer, the handler runs once.
func postTwice(t *testing.T, h *fastHarness, c *client, mid int32) {
	t.Helper()
	before, dups := h.posts.Load(), h.srv.Stats().Duplicates
	for i := 0; i < 2; i++ {
		c.send(request(codes.POST, message.Confirmable, mid, "/n/x/status", "p"))
		r, ok := c.recv(testutil.DefaultCeiling)
		if !ok || r.MessageID != mid || r.Code != codes.Changed || string(r.Payload) != "/n/x/status" {
			t.Fatalf("POST %d, try %d: answered %+v", mid, i, r)
		}
	}
	if n := h.posts.Load() - before; n != 1 {
		t.Fatalf("a retransmitted POST reached the handler %d times", n)
	}
	if d := h.srv.Stats().Duplicates - dups; d != 1 {
		t.Fatalf("%d duplicates counted, want 1", d)
	}
}

// lockStepUntilFast runs a lock-step transfer until the reader has read
// a request in its fast wait (Stats.FastReads grows), every block
// checked. Each request is sent as soon as the answer to the previous one
// arrives, well within a clock tick; after a fast wait that found nothing
// the reader tries again within 1+2+...+1024 reads, so 5000 requests
// without one fast read mean the fast path is broken.
func lockStepUntilFast(t *testing.T, h *fastHarness, c *client, mid *int32) {
	t.Helper()
	start := h.srv.Stats().FastReads
	for i := int64(0); i < 5000; i++ {
		*mid++
		getBlock(t, c, *mid, i%256)
		if i >= 16 && h.srv.Stats().FastReads > start {
			return
		}
	}
	t.Fatalf("5000 lock-step requests, none read in the fast wait: %+v", h.srv.Stats())
}

// burstUntilHelped sends bursts of 64 confirmable GETs from 4 sockets
// without waiting, then reads and checks every answer, until a backlog
// woke a helper (Stats.HelpersWoken grows); a retransmitted POST goes
// in the middle of each burst. 64 datagrams written back to back queue up
// behind the one being answered, so the first burst nearly always does;
// 100 bursts without a helper woken mean the load path is broken.
func burstUntilHelped(t *testing.T, h *fastHarness, cs []*client, mid *int32) {
	t.Helper()
	start := h.srv.Stats().HelpersWoken
	for burst := 0; burst < 100; burst++ {
		first := *mid + 1
		for i := 0; i < 64; i++ {
			*mid++
			m := request(codes.GET, message.Confirmable, *mid, "/m/img", "b")
			v, _ := blockwise.EncodeBlockOption(blockwise.SZX1024, int64(*mid)%256, false)
			buf := make([]byte, 4)
			m.Options, _, _ = m.Options.SetUint32(buf, message.Block2, v)
			cs[i%len(cs)].send(m)
		}
		// Workers answer batches concurrently: the answers of a socket
		// may come back in another order than sent.
		answered := map[int32]bool{}
		for i := 0; i < 64; i++ {
			c := cs[i%len(cs)]
			r, ok := c.recv(testutil.DefaultCeiling)
			m := r.MessageID
			if !ok || m < first || m >= first+64 || int(m-first)%len(cs) != i%len(cs) || answered[m] ||
				r.Code != codes.Content || !bytes.Equal(r.Payload, blockOf(int64(m)%256)) {
				t.Fatalf("burst of mids %d-%d: answer %d of socket %d: mid %d (again: %v) %v, same bytes %v", first, first+63,
					i/len(cs), i%len(cs), m, answered[m], r.Code, bytes.Equal(r.Payload, blockOf(int64(m)%256)))
			}
			answered[m] = true
		}
		*mid++
		postTwice(t, h, cs[0], *mid)
		if h.srv.Stats().HelpersWoken > start {
			return
		}
	}
	t.Fatalf("100 bursts of 64 datagrams woke no helper: %+v", h.srv.Stats())
}

// TestFastPathAndLoad: a lone lock-step transfer is read in the fast wait,
// a burst switches to the batched path with helpers, and a lock-step
// transfer afterwards is fast again; every byte of every block is
// checked, and a retransmitted confirmable POST is acted on once in each
// mode; on IPv4 and IPv6.
func TestFastPathAndLoad(t *testing.T) {
	for _, network := range []string{"udp4", "udp6"} {
		t.Run(network, func(t *testing.T) {
			h := startFast(t, network)
			c := dial(t, &harness{addr: h.addr})
			cs := []*client{c, dial(t, &harness{addr: h.addr}), dial(t, &harness{addr: h.addr}), dial(t, &harness{addr: h.addr})}
			var mid int32
			lockStepUntilFast(t, h, c, &mid)
			mid++
			postTwice(t, h, c, mid)
			burstUntilHelped(t, h, cs, &mid)
			lockStepUntilFast(t, h, c, &mid)
			mid++
			postTwice(t, h, c, mid)
		})
	}
}

// TestShutdownInEachMode: Serve returns once its context ends, whether the
// reader is sleeping in its fast wait or the workers are busy with a
// load (a sender at a bounded 20,000 datagrams a second).
func TestShutdownInEachMode(t *testing.T) {
	t.Run("fast wait", func(t *testing.T) {
		h := startFast(t, "udp4")
		c := dial(t, &harness{addr: h.addr})
		var mid int32
		lockStepUntilFast(t, h, c, &mid)
		h.cancel()
		testutil.Closed(t, "Serve to return with the reader in its fast wait", h.done)
	})
	t.Run("load", func(t *testing.T) {
		h := startFast(t, "udp4")
		cs := []*client{dial(t, &harness{addr: h.addr}), dial(t, &harness{addr: h.addr})}
		var mid int32
		burstUntilHelped(t, h, cs, &mid)
		stop := make(chan struct{})
		sent := make(chan struct{})
		go func() { // 20 datagrams a millisecond at most
			defer close(sent)
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			b := []byte{0x50, 0x01, 0, 0, 0xb1, 'm'}
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				for i := 0; i < 20; i++ {
					cs[1].conn.Write(b)
				}
			}
		}()
		before := h.srv.Stats().Received
		testutil.Eventually(t, "the load to be read", func() bool { return h.srv.Stats().Received > before+100 })
		h.cancel()
		testutil.Closed(t, "Serve to return under load", h.done)
		close(stop)
		<-sent
	})
}
