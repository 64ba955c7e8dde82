package radio

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"edgeota/test/testutil"
)

// seed is the fixed seed of the statistical tests. A direction's decisions
// depend only on the seed and a datagram's place in it, and each test sends
// a fixed number from one client, so the figures they check are the same in
// every run: with this seed, 20.6% of 5000 lost up, 19.4% of 5000 (or of
// the 3970 of "both") lost down, 25.7% of 1000 duplicated, all within
// checkRate's 0.05. For another seed, 0.05 is 8.8 standard deviations of a
// 20% loss over 5000 datagrams (7.9 over 3970: P < 1e-14) and 3.6 of a 25%
// duplication over 1000 (P = 2.6e-4).
const seed = 20240611

func TestPerfectLinkDeliversInOrder(t *testing.T) {
	g := newRig(t, Config{Seed: seed}, 1)
	const n = 1000
	g.exchange(t, 0, n, 100)

	got := g.clients[0].seqs()
	if len(got) != n {
		t.Fatalf("received %d datagrams, want %d", len(got), n)
	}
	for i, s := range got {
		if s != uint64(i) {
			t.Fatalf("datagram %d is seq %d: out of order", i, s)
		}
	}
	st := g.r.Stats()
	want := DirStats{In: n, BytesIn: n * 100, Delivered: n, BytesDelivered: n * 100, Frames: n, AirBytes: n * 100}
	if st.Up != want || st.Down != want {
		t.Errorf("stats = %+v, want %+v both ways", st, want)
	}
}

func TestLossPerDirection(t *testing.T) {
	const n = 5000
	for _, tc := range []struct {
		name     string
		up, down float64
	}{
		{"up only", 0.2, 0},
		{"down only", 0, 0.2},
		{"both", 0.2, 0.2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newRig(t, Config{Up: Link{Loss: tc.up}, Down: Link{Loss: tc.down}, Seed: seed}, 1)
			g.exchange(t, 0, n, 16)
			st := g.r.Stats()
			checkRate(t, "up", st.Up.Dropped, st.Up.In, tc.up)
			checkRate(t, "down", st.Down.Dropped, st.Down.In, tc.down)
			if st.Up.In != n {
				t.Errorf("up in = %d, want %d", st.Up.In, n)
			}
			if st.Down.In != st.Up.Delivered {
				t.Errorf("down in = %d, want up delivered %d", st.Down.In, st.Up.Delivered)
			}
			if got := uint64(g.clients[0].count()); got != st.Down.Delivered {
				t.Errorf("client received %d, down delivered %d", got, st.Down.Delivered)
			}
		})
	}
}

// checkRate checks that dropped/in is within 0.05 of want, and exactly 0
// when want is 0.
func checkRate(tb testing.TB, dir string, dropped, in uint64, want float64) {
	tb.Helper()
	if in == 0 {
		tb.Fatalf("%s: nothing came in", dir)
	}
	rate := float64(dropped) / float64(in)
	if want == 0 && dropped != 0 || math.Abs(rate-want) > 0.05 {
		tb.Errorf("%s: dropped %d of %d (%.3f), want %.2f±0.05", dir, dropped, in, rate, want)
	}
}

func TestSameSeedSameDecisions(t *testing.T) {
	run := func(seed uint64) []uint64 {
		link := Link{Loss: 0.3, Duplicate: 0.2}
		g := newRig(t, Config{Up: link, Seed: seed}, 1)
		g.exchange(t, 0, 500, 16)
		s := g.clients[0].seqs()
		slices.Sort(s) // decisions are fixed, not delivery order
		return s
	}
	a, b, c := run(1), run(1), run(2)
	if !slices.Equal(a, b) {
		t.Errorf("seed 1 twice gave different deliveries:\n%v\n%v", a, b)
	}
	if slices.Equal(a, c) {
		t.Errorf("seeds 1 and 2 gave the same deliveries")
	}
}

func TestDuplicate(t *testing.T) {
	const n = 1000
	g := newRig(t, Config{Up: Link{Duplicate: 0.25}, Seed: seed}, 1)
	g.exchange(t, 0, n, 16)

	times := map[uint64]int{}
	for _, s := range g.clients[0].seqs() {
		times[s]++
	}
	twice := 0
	for s := range uint64(n) {
		switch times[s] {
		case 1:
		case 2:
			twice++
		default:
			t.Errorf("seq %d received %d times", s, times[s])
		}
	}
	st := g.r.Stats()
	if twice == 0 || uint64(twice) != st.Up.Duplicated {
		t.Errorf("%d datagrams came twice, up duplicated = %d, want equal and > 0", twice, st.Up.Duplicated)
	}
	if st.Down.Duplicated != 0 {
		t.Errorf("down duplicated = %d, want 0", st.Down.Duplicated)
	}
	checkRate(t, "up duplicated", st.Up.Duplicated, st.Up.In, 0.25)
}

func TestReorder(t *testing.T) {
	const n = 1000
	g := newRig(t, Config{Up: Link{Reorder: 0.2}, Seed: seed}, 1)
	g.exchange(t, 0, n, 16)

	got := g.clients[0].seqs()
	if len(got) != n {
		t.Fatalf("received %d datagrams, want %d", len(got), n)
	}
	late := 0 // datagrams that arrived after a later one
	var highest uint64
	for i, s := range got {
		if i > 0 && s < highest {
			late++
		}
		highest = max(highest, s)
	}
	sorted := slices.Clone(got)
	slices.Sort(sorted)
	for i, s := range sorted {
		if s != uint64(i) {
			t.Fatalf("seq %d missing or repeated", i)
		}
	}
	st := g.r.Stats()
	if late == 0 || st.Up.Reordered == 0 || uint64(late) > st.Up.Reordered {
		t.Errorf("%d arrived late, up reordered = %d: want 0 < late <= reordered", late, st.Up.Reordered)
	}
	if st.Down.Reordered != 0 {
		t.Errorf("down reordered = %d, want 0", st.Down.Reordered)
	}
}

func TestReorderDeliversHeldDatagramAfterTimeout(t *testing.T) {
	g := newRig(t, Config{Up: Link{Reorder: 1, ReorderDelay: 30 * time.Millisecond}}, 1)
	start := time.Now()
	g.exchange(t, 0, 1, 16) // nothing follows it: it waits ReorderDelay
	if got := g.clients[0].count(); got != 1 {
		t.Fatalf("received %d, want 1", got)
	}
	if rtt := g.clients[0].when[0].Sub(start); rtt < 30*time.Millisecond {
		t.Errorf("held datagram came back after %v, want at least 30ms", rtt)
	}
}

func TestLatency(t *testing.T) {
	const latency = 25 * time.Millisecond
	link := Link{Latency: latency, Jitter: 5 * time.Millisecond}
	g := newRig(t, Config{Up: link, Down: link, Seed: seed}, 1)
	c := g.clients[0]
	minRTT := time.Duration(math.MaxInt64)
	for i := range 10 {
		start := time.Now()
		c.send(t, packet(uint64(i), 16))
		testutil.Eventually(t, "the reply", func() bool { return c.count() == i+1 })
		c.mu.Lock()
		rtt := c.when[i].Sub(start)
		c.mu.Unlock()
		minRTT = min(minRTT, rtt)
	}
	if minRTT < 2*latency {
		t.Errorf("min RTT %v, want at least %v", minRTT, 2*latency)
	}
}

func TestBandwidth(t *testing.T) {
	// 100 datagrams of 1000 bytes at 800 kbit/s are 10 ms each on air.
	const n, size, rate = 100, 1000, 800_000
	g := newRig(t, Config{Up: Link{Bandwidth: rate}, Seed: seed}, 1)
	c := g.clients[0]
	start := time.Now()
	for i := range n {
		c.send(t, packet(uint64(i), size))
		if (i+1)%10 == 0 { // let the relay drain its socket
			testutil.Eventually(t, "the relay to read", func() bool { return g.r.Stats().Up.In == uint64(i+1) })
		}
	}
	g.settle(t)
	elapsed := time.Since(start)
	if got := c.count(); got != n {
		t.Fatalf("received %d, want %d", got, n)
	}
	if want := 990 * time.Millisecond; elapsed < want {
		t.Errorf("%d datagrams of %d bytes took %v at %d bit/s, want at least %v", n, size, elapsed, rate, want)
	}
	if !slices.IsSorted(c.seqs()) {
		t.Errorf("bandwidth reordered datagrams: %v", c.seqs())
	}
}

func TestOutage(t *testing.T) {
	var out atomic.Bool
	outage := func(time.Time) bool { return out.Load() }
	g := newRig(t, Config{Up: Link{Outage: outage}, Seed: seed}, 1)

	out.Store(true)
	g.exchange(t, 0, 100, 16)
	st := g.r.Stats()
	if st.Up.Dropped != 100 || st.Up.Outage != 100 || st.Up.Delivered != 0 || g.clients[0].count() != 0 {
		t.Fatalf("during the outage: up %+v, client got %d; want all 100 dropped", st.Up, g.clients[0].count())
	}

	out.Store(false)
	g.exchange(t, 100, 100, 16)
	if got := g.clients[0].count(); got != 100 {
		t.Errorf("after the outage: received %d, want 100", got)
	}
	if st := g.r.Stats(); st.Up.Dropped != 100 || st.Up.Outage != 100 {
		t.Errorf("after the outage: up dropped = %d, outage %d, want still 100", st.Up.Dropped, st.Up.Outage)
	}
}

func TestOutageDropsDatagramsInFlight(t *testing.T) {
	// A second of latency leaves ample time to start the outage while the
	// datagrams are in flight.
	slow := Link{Latency: time.Second}
	g := newRig(t, Config{Up: slow}, 1)
	c := g.clients[0]
	for i := range 10 {
		c.send(t, packet(uint64(i), 16))
	}
	testutil.Eventually(t, "the relay to read", func() bool { return g.r.Stats().Up.In == 10 })
	slow.Outage = func(time.Time) bool { return true }
	if err := g.r.SetLink(slow, Link{}); err != nil {
		t.Fatal(err)
	}
	g.settle(t)
	if st := g.r.Stats(); st.Up.Dropped != 10 || st.Up.Outage != 10 || g.echo.count() != 0 {
		t.Errorf("up %+v, server got %d: want all 10 dropped in flight", st.Up, g.echo.count())
	}
}

func TestSetLink(t *testing.T) {
	g := newRig(t, Config{Up: Link{Loss: 1}, Down: Link{Loss: 1}, Seed: seed}, 1)
	c := g.clients[0]
	g.exchange(t, 0, 20, 16)
	if got := c.count(); got != 0 {
		t.Fatalf("with loss 1: received %d, want 0", got)
	}

	if err := g.r.SetLink(Link{}, Link{}); err != nil {
		t.Fatal(err)
	}
	g.exchange(t, 20, 20, 16)
	if got := c.count(); got != 20 {
		t.Fatalf("after recovery: received %d, want 20", got)
	}

	// Only the server's replies are lost now.
	if err := g.r.SetLink(Link{}, Link{Loss: 1}); err != nil {
		t.Fatal(err)
	}
	g.exchange(t, 40, 20, 16)
	if got, echoed := c.count(), g.echo.count(); got != 20 || echoed != 40 {
		t.Errorf("down loss 1: client %d, server %d; want 20 and 40", got, echoed)
	}

	// An invalid link changes nothing.
	if err := g.r.SetLink(Link{Loss: 2}, Link{}); !errors.Is(err, ErrInvalidLink) {
		t.Errorf("SetLink(Loss 2) = %v, want ErrInvalidLink", err)
	}
	g.exchange(t, 60, 20, 16)
	if got := c.count(); got != 20 {
		t.Errorf("after a refused SetLink: received %d, want still 20", got)
	}
}

func TestQueueLimit(t *testing.T) {
	// At 8 bit/s a datagram takes 16 s on air, so none leaves the queue.
	g := newRig(t, Config{Up: Link{Bandwidth: 8, Queue: 10}}, 1)
	c := g.clients[0]
	for i := range 50 {
		c.send(t, packet(uint64(i), 16))
	}
	testutil.Eventually(t, "the relay to read", func() bool { return g.r.Stats().Up.In == 50 })
	st := g.r.Stats()
	if st.Up.Overflow != 40 || st.Up.Dropped != 40 {
		t.Errorf("up %+v, want 40 dropped as overflow", st.Up)
	}
	// Closing drops the 10 still queued; the cleanup checks the balance.
}

// TestMTU: a datagram over the relay's MTU is dropped each way and
// counted as oversize; one of exactly the MTU goes through.
func TestMTU(t *testing.T) {
	g := newRig(t, Config{MTU: 100}, 1)
	c := g.clients[0]
	for i := range 10 {
		c.send(t, packet(uint64(i), 100+i%2)) // the odd ones are one byte over
	}
	g.settle(t)
	st := g.r.Stats()
	if st.Up.Oversize != 5 || st.Up.Dropped != 5 || st.Up.Delivered != 5 {
		t.Errorf("up %+v, want 5 delivered and 5 dropped as oversize", st.Up)
	}
	if got := c.count(); got != 5 {
		t.Errorf("the client got %d replies, want the 5 of the MTU", got)
	}

	g.echo.pad.Store(1) // the server's replies are now one byte over
	for i := range 4 {
		c.send(t, packet(uint64(20+i), 100))
	}
	g.settle(t)
	st = g.r.Stats()
	if st.Down.Oversize != 4 || st.Down.Delivered != 5 {
		t.Errorf("down %+v, want the 4 padded replies dropped as oversize", st.Down)
	}
	if _, err := New("127.0.0.1:0", g.echo.addr(), Config{MTU: maxDatagram + 1}); err == nil {
		t.Error("New accepted an MTU over 65535")
	}
}

func TestClientsGetDistinctUpstreamSockets(t *testing.T) {
	const clients = 4
	g := newRig(t, Config{Seed: seed}, clients)
	for i, c := range g.clients {
		for j := range 5 {
			c.send(t, packet(uint64(i*100+j), 16))
		}
	}
	g.settle(t)

	sources := g.echo.sourceList()
	if len(sources) != clients {
		t.Fatalf("server saw %d sources, want %d: %v", len(sources), clients, sources)
	}
	ports := map[uint16]bool{}
	for src, n := range sources {
		if n != 5 {
			t.Errorf("source %v sent %d datagrams, want 5", src, n)
		}
		ports[src.Port()] = true
	}
	relayPort := netip.MustParseAddrPort(g.r.Addr().String()).Port()
	if len(ports) != clients || ports[relayPort] {
		t.Errorf("source ports %v: want %d distinct, none the relay's %d", ports, clients, relayPort)
	}
	for i, c := range g.clients {
		for _, s := range c.seqs() {
			if s/100 != uint64(i) {
				t.Errorf("client %d received client %d's datagram %d", i, s/100, s)
			}
		}
		if got := c.count(); got != 5 {
			t.Errorf("client %d received %d, want 5", i, got)
		}
	}
}

func TestCloseStopsEverything(t *testing.T) {
	e := newEcho(t)
	baseline := runtime.NumGoroutine()

	link := Link{Latency: 5 * time.Millisecond, Jitter: time.Millisecond, Reorder: 0.1, Bandwidth: 10_000_000}
	r, err := New("127.0.0.1:0", e.addr(), Config{Up: link, Down: link, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(context.Background()) }()
	g := &rig{r: r, echo: e}
	for range 3 {
		g.clients = append(g.clients, newClient(t, r))
	}
	for i, c := range g.clients {
		for j := range 20 {
			c.send(t, packet(uint64(i*100+j), 64))
		}
	}
	g.settle(t)
	// Leave some datagrams in flight.
	for _, c := range g.clients {
		c.send(t, packet(999, 64))
	}

	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-runErr; err != nil {
		t.Errorf("Run: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := r.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close = %v, want ErrClosed", err)
	}
	checkBalanced(t, r.Stats())

	// The clients' readers are ours: close them before counting.
	for _, c := range g.clients {
		c.conn.Close()
		<-c.done
	}
	waitGoroutines(t, baseline)
}

func TestRunStopsWithContext(t *testing.T) {
	e := newEcho(t)
	baseline := runtime.NumGoroutine()
	r, err := New("127.0.0.1:0", e.addr(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(ctx) }()
	c := newClient(t, r)
	g := &rig{r: r, echo: e, clients: []*client{c}}
	g.exchange(t, 0, 10, 16)

	if err := r.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Errorf("Run = %v, want nil after cancel", err)
	}
	if err := r.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after cancel = %v, want ErrClosed", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close after cancel: %v", err)
	}
	c.conn.Close()
	<-c.done
	waitGoroutines(t, baseline)
}

func TestCloseWithoutRun(t *testing.T) {
	r, err := New("127.0.0.1:0", "127.0.0.1:9", Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := r.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close = %v, want ErrClosed", err)
	}
}

func TestNewRefusesInvalidConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"loss above 1", Config{Up: Link{Loss: 1.5}}},
		{"negative loss", Config{Down: Link{Loss: -0.1}}},
		{"NaN duplicate", Config{Up: Link{Duplicate: math.NaN()}}},
		{"reorder above 1", Config{Down: Link{Reorder: 2}}},
		{"negative latency", Config{Up: Link{Latency: -time.Second}}},
		{"negative jitter", Config{Down: Link{Jitter: -1}}},
		{"negative reorder delay", Config{Up: Link{ReorderDelay: -1}}},
		{"negative bandwidth", Config{Up: Link{Bandwidth: -8}}},
		{"negative queue", Config{Down: Link{Queue: -1}}},
		{"frame loss above 1", Config{Up: Link{FrameLoss: 1.1}}},
		{"negative frame MTU", Config{Up: Link{FrameMTU: -1}}},
		{"negative frame overhead", Config{Down: Link{FrameOverhead: -1}}},
		{"negative frame gap", Config{Down: Link{FrameGap: -1}}},
		{"negative hops", Config{Up: Link{Hops: -1}}},
		{"too many hops", Config{Up: Link{Hops: 33}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New("127.0.0.1:0", "127.0.0.1:9", tc.cfg)
			if !errors.Is(err, ErrInvalidLink) {
				t.Errorf("New = %v, want ErrInvalidLink", err)
			}
			if r != nil {
				r.Close()
			}
		})
	}
	if _, err := New("127.0.0.1:0", "127.0.0.1", Config{}); err == nil {
		t.Errorf("New with a target without a port succeeded")
	}
}

func TestLinkAirtime(t *testing.T) {
	for _, tc := range []struct {
		bw, n int
		want  time.Duration
	}{
		{0, 1000, 0},
		{800_000, 1000, 10 * time.Millisecond},
		{9600, 12, 10 * time.Millisecond},
		{1, 65535, 65535 * 8 * time.Second},
	} {
		t.Run(fmt.Sprintf("%d bytes at %d bps", tc.n, tc.bw), func(t *testing.T) {
			if got := (Link{Bandwidth: tc.bw}).Airtime(tc.n); got != tc.want {
				t.Errorf("airtime = %v, want %v", got, tc.want)
			}
		})
	}
}
