package radio

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"edgeota/test/testutil"
)

// waitGoroutines waits until no more than baseline goroutines are left.
func waitGoroutines(tb testing.TB, baseline int) {
	tb.Helper()
	if !testutil.Poll(func() bool { return runtime.NumGoroutine() <= baseline }) {
		buf := make([]byte, 1<<20)
		tb.Fatalf("%d goroutines, want at most %d:\n%s",
			runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
	}
}

func listenLoopback(tb testing.TB) *net.UDPConn {
	tb.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	_ = conn.SetReadBuffer(1 << 20)
	return conn
}

// echo is a UDP echo server that records who sent to it.
type echo struct {
	conn *net.UDPConn
	done chan struct{}
	pad  atomic.Int32 // bytes added to each reply

	mu      sync.Mutex
	n       int
	sources map[netip.AddrPort]int
}

func newEcho(tb testing.TB) *echo {
	tb.Helper()
	e := &echo{conn: listenLoopback(tb), done: make(chan struct{}), sources: map[netip.AddrPort]int{}}
	go func() {
		defer close(e.done)
		buf := make([]byte, maxDatagram)
		for {
			n, from, err := e.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			reply := buf[:n]
			if pad := int(e.pad.Load()); pad > 0 {
				reply = append(append([]byte(nil), reply...), make([]byte, pad)...)
			}
			_, _ = e.conn.WriteToUDPAddrPort(reply, from)
			e.mu.Lock()
			e.n++
			e.sources[from]++
			e.mu.Unlock()
		}
	}()
	tb.Cleanup(func() { e.conn.Close(); <-e.done })
	return e
}

func (e *echo) addr() string { return e.conn.LocalAddr().String() }

func (e *echo) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n
}

func (e *echo) sourceList() map[netip.AddrPort]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := make(map[netip.AddrPort]int, len(e.sources))
	for k, v := range e.sources {
		m[k] = v
	}
	return m
}

// client is a UDP socket talking to the relay that keeps what it receives.
type client struct {
	conn *net.UDPConn
	done chan struct{}
	sent int

	mu   sync.Mutex
	got  [][]byte
	when []time.Time
}

func newClient(tb testing.TB, r *Relay) *client {
	tb.Helper()
	conn, err := net.DialUDP("udp", nil, r.Addr().(*net.UDPAddr))
	if err != nil {
		tb.Fatal(err)
	}
	_ = conn.SetReadBuffer(1 << 20)
	c := &client{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		buf := make([]byte, maxDatagram)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			now := time.Now()
			c.mu.Lock()
			c.got = append(c.got, append([]byte(nil), buf[:n]...))
			c.when = append(c.when, now)
			c.mu.Unlock()
		}
	}()
	tb.Cleanup(func() { conn.Close(); <-c.done })
	return c
}

func (c *client) send(tb testing.TB, p []byte) {
	tb.Helper()
	if _, err := c.conn.Write(p); err != nil {
		tb.Fatal(err)
	}
	c.sent++
}

func (c *client) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// seqs returns the sequence numbers received, in order of arrival.
func (c *client) seqs() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := make([]uint64, len(c.got))
	for i, p := range c.got {
		s[i] = binary.BigEndian.Uint64(p)
	}
	return s
}

// packet is a datagram of size bytes (at least 8) carrying seq.
func packet(seq uint64, size int) []byte {
	p := make([]byte, max(size, 8))
	binary.BigEndian.PutUint64(p, seq)
	return p
}

// rig is a relay between clients and an echo server.
type rig struct {
	r       *Relay
	echo    *echo
	clients []*client
}

// newRig starts a relay to a new echo server. Its cleanup closes the relay,
// checks that Run returned nil and that the counters balance.
func newRig(tb testing.TB, cfg Config, clients int) *rig {
	tb.Helper()
	e := newEcho(tb)
	r, err := New("127.0.0.1:0", e.addr(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(context.Background()) }()
	tb.Cleanup(func() {
		if err := r.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
		if err := <-runErr; err != nil {
			tb.Errorf("Run: %v", err)
		}
		checkBalanced(tb, r.Stats())
	})
	g := &rig{r: r, echo: e}
	for range clients {
		g.clients = append(g.clients, newClient(tb, r))
	}
	return g
}

// checkBalanced checks that every datagram in each direction is accounted
// for; it holds once the relay is closed.
func checkBalanced(tb testing.TB, st Stats) {
	tb.Helper()
	for _, d := range []struct {
		name string
		s    DirStats
	}{{"up", st.Up}, {"down", st.Down}} {
		if !balanced(d.s) {
			tb.Errorf("%s: in %d + duplicated %d != delivered %d + dropped %d",
				d.name, d.s.In, d.s.Duplicated, d.s.Delivered, d.s.Dropped)
		}
	}
}

func balanced(s DirStats) bool { return s.In+s.Duplicated == s.Delivered+s.Dropped }

// settle waits until everything the clients sent has been through the
// relay, the echo server and back, or was dropped.
func (g *rig) settle(tb testing.TB) {
	tb.Helper()
	testutil.Eventually(tb, "the link to settle", func() bool {
		st := g.r.Stats()
		sent, got := 0, 0
		for _, c := range g.clients {
			sent += c.sent
			got += c.count()
		}
		echoed := uint64(g.echo.count())
		return st.Up.In == uint64(sent) && balanced(st.Up) &&
			echoed == st.Up.Delivered && st.Down.In == echoed && balanced(st.Down) &&
			uint64(got) == st.Down.Delivered
	})
}

// exchange sends n numbered datagrams of size bytes from client 0, in
// batches that are each let settle so that no socket buffer overflows.
func (g *rig) exchange(tb testing.TB, first uint64, n, size int) {
	tb.Helper()
	const batch = 50
	c := g.clients[0]
	for i := 0; i < n; i++ {
		c.send(tb, packet(first+uint64(i), size))
		if (i+1)%batch == 0 || i == n-1 {
			g.settle(tb)
		}
	}
}
