package radio

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// maxDatagram is the largest UDP payload, the relay's MTU by default.
const maxDatagram = 65535

// Config configures a [Relay]. Its zero value is a perfect link both ways
// with seed 0 and no logging.
type Config struct {
	// Up is the behaviour from client to server.
	Up Link
	// Down is the behaviour from server to client.
	Down Link
	// Seed seeds the random decisions of both directions.
	Seed uint64
	// Logger receives debug messages about clients and failed writes;
	// nil discards them.
	Logger *slog.Logger
	// MTU is the largest datagram the relay carries, in bytes; a larger
	// one is dropped, as a radio drops a frame over its MTU, and counted
	// in [DirStats.Oversize]. Zero means 65535: any UDP datagram. Each of
	// the relay's reading goroutines holds a buffer of this size (one
	// for the clients, one per client), so a relay per node in a large
	// fleet wants a radio's MTU, not UDP's.
	MTU int
	// Clock is the time both links run on: their latencies, jitter and
	// airtime, and the time Outage is asked with. A scaled clock
	// (firmware-sim/clock) makes a long link take little real time; the
	// endpoints' own timers (CoAP retransmission) must then be scaled
	// alike. Nil means the wall clock.
	Clock Clock
}

// Clock is the time a [Relay]'s links run on. The clocks of package
// firmware-sim/clock (Real, Scaled, Fake) satisfy it.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After sends the time on the returned channel once d has passed.
	After(d time.Duration) <-chan time.Time
}

// Relay is a UDP relay that puts a simulated lossy radio link between
// clients and one server. Create it with [New], run it with [Relay.Run] and
// stop it with [Relay.Close] or by cancelling Run's context. Its methods are
// safe for concurrent use.
type Relay struct {
	ln     *net.UDPConn
	target *net.UDPAddr
	log    *slog.Logger
	mtu    int
	clk    Clock // nil: the wall clock
	up     *direction
	down   *direction

	mu       sync.Mutex
	sessions map[netip.AddrPort]*session
	closed   bool
	running  bool
	done     chan struct{} // closed by shutdown
	wg       sync.WaitGroup
	loops    sync.WaitGroup // goroutines started by Run
}

// session is one client: its address and the socket that stands for it
// towards the server.
type session struct {
	client netip.AddrPort
	conn   *net.UDPConn // connected to the server
}

// New listens on listenAddr, such as "127.0.0.1:0", and returns a relay to
// the server at target. Each client, told apart by its source address, gets
// its own socket towards the server, so the server sees one endpoint per
// client. New does not start relaying: call [Relay.Run].
func New(listenAddr, target string, cfg Config) (*Relay, error) {
	if err := cfg.Up.validate(); err != nil {
		return nil, fmt.Errorf("radio: up: %w", err)
	}
	if err := cfg.Down.validate(); err != nil {
		return nil, fmt.Errorf("radio: down: %w", err)
	}
	taddr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return nil, fmt.Errorf("radio: target: %w", err)
	}
	laddr, err := net.ResolveUDPAddr("udp", listenAddr)
	if err != nil {
		return nil, fmt.Errorf("radio: listen: %w", err)
	}
	ln, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("radio: %w", err)
	}
	if cfg.MTU < 0 || cfg.MTU > maxDatagram {
		return nil, fmt.Errorf("radio: MTU %d not in 0 to %d", cfg.MTU, maxDatagram)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Relay{
		ln:       ln,
		target:   taddr,
		log:      log,
		mtu:      cmp.Or(cfg.MTU, maxDatagram),
		clk:      cfg.Clock,
		sessions: make(map[netip.AddrPort]*session),
		done:     make(chan struct{}),
	}
	r.up = newDirection("up", cfg.Up, cfg.Seed, upStream, log, func(it *item) error {
		_, err := it.sess.conn.Write(it.data)
		return err
	})
	r.down = newDirection("down", cfg.Down, cfg.Seed, downStream, log, func(it *item) error {
		_, err := r.ln.WriteToUDPAddrPort(it.data, it.sess.client)
		return err
	})
	return r, nil
}

// Addr returns the address clients send to.
func (r *Relay) Addr() net.Addr { return r.ln.LocalAddr() }

// Run relays datagrams until ctx is done or [Relay.Close] is called, then
// closes the relay and returns once every goroutine it started has exited.
// It returns nil after such a stop, an error if reading from the listening
// socket fails, [ErrClosed] if the relay was already closed, and
// [ErrRunning] if Run is already running. Datagrams still queued when Run
// returns are counted as dropped.
func (r *Relay) Run(ctx context.Context) error {
	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		return ErrClosed
	case r.running:
		r.mu.Unlock()
		return ErrRunning
	}
	r.running = true
	r.wg.Add(1)
	r.mu.Unlock()
	defer r.wg.Done()

	r.loops.Add(3)
	go func() { defer r.loops.Done(); r.up.run(r.done, r.clk) }()
	go func() { defer r.loops.Done(); r.down.run(r.done, r.clk) }()
	readErr := make(chan error, 1)
	go func() { defer r.loops.Done(); readErr <- r.readClients() }()

	var err error
	select {
	case <-ctx.Done():
	case <-r.done:
	case err = <-readErr:
	}
	r.shutdown()
	r.loops.Wait()
	r.up.discard()
	r.down.discard()
	return err
}

// Close stops the relay, closes its sockets and waits until every goroutine
// it started has exited. Closing a closed relay does nothing.
func (r *Relay) Close() error {
	err := r.shutdown()
	r.wg.Wait()
	return err
}

// shutdown marks the relay closed and closes its sockets, which ends the
// reading goroutines; it returns the listener's close error the first time.
func (r *Relay) shutdown() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.done)
	sessions := r.sessions
	r.sessions = nil
	r.mu.Unlock()

	err := r.ln.Close()
	for _, s := range sessions {
		s.conn.Close()
	}
	if err != nil {
		return fmt.Errorf("radio: close: %w", err)
	}
	return nil
}

// SetLink changes the behaviour of both directions from now on. Datagrams
// already queued keep their delivery times, but are dropped if the new
// link's Outage reports an outage when they fall due. An invalid link is
// refused with [ErrInvalidLink] and nothing changes.
func (r *Relay) SetLink(up, down Link) error {
	if err := up.validate(); err != nil {
		return fmt.Errorf("radio: up: %w", err)
	}
	if err := down.validate(); err != nil {
		return fmt.Errorf("radio: down: %w", err)
	}
	r.up.setLink(up)
	r.down.setLink(down)
	return nil
}

// Stats returns the counters of both directions. The two are read one after
// the other, not as one snapshot.
func (r *Relay) Stats() Stats {
	return Stats{Up: r.up.snapshot(), Down: r.down.snapshot()}
}

// readClients reads from the listening socket until it is closed.
func (r *Relay) readClients() error {
	buf := make([]byte, r.mtu+1) // one more: a datagram that fills it is over the MTU
	for {
		n, from, err := r.ln.ReadFromUDPAddrPort(buf)
		if err != nil {
			if r.isClosed() {
				return nil
			}
			return fmt.Errorf("radio: read: %w", err)
		}
		if n > r.mtu {
			r.up.oversize(n)
			continue
		}
		s, err := r.session(from)
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return nil
			}
			r.up.refuse(n)
			r.log.Debug("radio: no socket for client", "client", from, "err", err)
			continue
		}
		r.up.arrive(nowOf(r.clk), append([]byte(nil), buf[:n]...), s)
	}
}

// session returns the client's session, creating it and starting its
// reader on the first datagram.
func (r *Relay) session(client netip.AddrPort) (*session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if s, ok := r.sessions[client]; ok {
		return s, nil
	}
	conn, err := net.DialUDP("udp", nil, r.target)
	if err != nil {
		return nil, err
	}
	s := &session{client: client, conn: conn}
	r.sessions[client] = s
	r.log.Debug("radio: new client", "client", client, "upstream", conn.LocalAddr())
	r.loops.Add(1)
	go func() { defer r.loops.Done(); r.readServer(s) }()
	return s, nil
}

// readServer reads the server's replies to one client until the relay
// closes. Errors other than closing, such as a refused connection when the
// server is not listening yet, are logged and reading goes on.
func (r *Relay) readServer(s *session) {
	buf := make([]byte, r.mtu+1)
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			if r.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			r.log.Debug("radio: read from server", "client", s.client, "err", err)
			continue
		}
		if n > r.mtu {
			r.down.oversize(n)
			continue
		}
		r.down.arrive(nowOf(r.clk), append([]byte(nil), buf[:n]...), s)
	}
}

func (r *Relay) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}
