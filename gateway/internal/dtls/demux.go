package dtls

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// demux is the UDP socket under pion's DTLS listener: it reads the
// datagrams in batches, drops those of a source its gate refuses before
// pion sees them (no record parsed, no association made, no cookie
// computed), and hands the others to the association of their endpoint,
// or to Accept for a new endpoint whose datagram is a handshake record.
// pion's own listener reads one datagram at a time on one goroutine and
// offers no hook before its demultiplexing; this one replaces it.
//
// What it holds is bounded: an association queues at most peerQueue
// datagrams (beyond them, drops), and new associations wait for Accept in
// a queue of acceptBacklog (beyond it, the datagram is dropped and no
// association made); the caller (coapd.Server.ServeSessions) bounds the
// associations it accepts.
type demux struct {
	conn  *net.UDPConn
	batch interface {
		ReadBatch([]ipv4.Message, int) (int, error)
	}
	gate    func(netip.Addr) bool
	dropped func(n uint64)

	mu     sync.Mutex
	peers  map[netip.AddrPort]*peer
	accept chan *peer
	done   chan struct{}
	close  sync.Once
}

const (
	peerQueue     = 64
	acceptBacklog = 128
	demuxBatch    = 32
	maxRecord     = 8192
	// contentHandshake is the content type of a DTLS handshake record
	// (RFC 6347 section 4.1), the first byte of a ClientHello's datagram.
	contentHandshake = 22
)

var _ dtlsnet.PacketListener = (*demux)(nil)

func newDemux(conn *net.UDPConn, gate func(netip.Addr) bool, dropped func(n uint64)) *demux {
	d := &demux{conn: conn, gate: gate, dropped: dropped, peers: map[netip.AddrPort]*peer{},
		accept: make(chan *peer, acceptBacklog), done: make(chan struct{})}
	if la, ok := conn.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() != nil {
		d.batch = ipv4.NewPacketConn(conn)
	} else {
		d.batch = ipv6.NewPacketConn(conn)
	}
	go d.read()
	return d
}

func (d *demux) read() {
	defer d.Close()
	msgs := make([]ipv4.Message, demuxBatch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, maxRecord)}
	}
	for {
		n, err := d.batch.ReadBatch(msgs, 0)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		var drops uint64
		for i := range n {
			ua, ok := msgs[i].Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			ap := ua.AddrPort()
			from := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
			if d.gate != nil && !d.gate(from.Addr()) {
				drops++
				continue
			}
			d.dispatch(from, ua, msgs[i].Buffers[0][:msgs[i].N])
		}
		if drops > 0 && d.dropped != nil {
			d.dropped(drops)
		}
	}
}

// dispatch hands b to from's association, making one for a handshake
// record from a new endpoint.
func (d *demux) dispatch(from netip.AddrPort, ua *net.UDPAddr, b []byte) {
	d.mu.Lock()
	p, ok := d.peers[from]
	if !ok {
		if len(b) == 0 || b[0] != contentHandshake {
			d.mu.Unlock()
			return
		}
		p = &peer{d: d, addr: from, raddr: ua, in: make(chan []byte, peerQueue), done: make(chan struct{}), wake: make(chan struct{}, 1)}
		select {
		case d.accept <- p:
			d.peers[from] = p
		default:
			d.mu.Unlock()
			return
		}
	}
	d.mu.Unlock()
	select {
	case p.in <- append([]byte(nil), b...):
	default: // the association is behind: drop, as a full socket would
	}
}

// Accept returns the next new association.
func (d *demux) Accept() (net.PacketConn, net.Addr, error) {
	select {
	case p := <-d.accept:
		return p, p.raddr, nil
	case <-d.done:
		return nil, nil, net.ErrClosed
	}
}

// Close closes the socket; associations already accepted stay open until
// closed (their writes then fail).
func (d *demux) Close() error {
	var err error
	d.close.Do(func() {
		close(d.done)
		err = d.conn.Close()
	})
	return err
}

// Addr returns the socket's local address.
func (d *demux) Addr() net.Addr { return d.conn.LocalAddr() }

func (d *demux) forget(p *peer) {
	d.mu.Lock()
	if d.peers[p.addr] == p {
		delete(d.peers, p.addr)
	}
	d.mu.Unlock()
}

// peer is one association's view of the socket: the datagrams of its
// endpoint, and writes to it.
type peer struct {
	d        *demux
	addr     netip.AddrPort
	raddr    *net.UDPAddr
	in       chan []byte
	done     chan struct{}
	close    sync.Once
	deadline atomic.Int64 // read deadline, Unix ns; 0: none
	wake     chan struct{}
}

// ReadFrom returns the next datagram of the endpoint.
func (p *peer) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, again, err := p.readOnce(b)
		if !again {
			return n, p.raddr, err
		}
	}
}

// readOnce waits for a datagram until the read deadline; again reports
// that the deadline moved meanwhile.
func (p *peer) readOnce(b []byte) (n int, again bool, err error) {
	var timeout <-chan time.Time
	if dl := p.deadline.Load(); dl != 0 {
		wait := time.Until(time.Unix(0, dl))
		if wait <= 0 {
			return 0, false, os.ErrDeadlineExceeded
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case m := <-p.in:
		return copy(b, m), false, nil
	case <-p.done:
		return 0, false, net.ErrClosed
	case <-p.d.done:
		return 0, false, net.ErrClosed
	case <-p.wake: // the deadline moved
		return 0, true, nil
	case <-timeout:
		return 0, false, os.ErrDeadlineExceeded
	}
}

// WriteTo sends b to the endpoint (addr is the endpoint's).
func (p *peer) WriteTo(b []byte, _ net.Addr) (int, error) {
	return p.d.conn.WriteToUDPAddrPort(b, p.addr)
}

// Close ends the association's view; a later datagram of the endpoint
// may start a new one.
func (p *peer) Close() error {
	p.close.Do(func() {
		close(p.done)
		p.d.forget(p)
	})
	return nil
}

// LocalAddr returns the socket's local address.
func (p *peer) LocalAddr() net.Addr { return p.d.conn.LocalAddr() }

// SetDeadline sets the read deadline (writes do not block).
func (p *peer) SetDeadline(t time.Time) error { return p.SetReadDeadline(t) }

// SetReadDeadline sets the read deadline and wakes a blocked ReadFrom to
// see it.
func (p *peer) SetReadDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	p.deadline.Store(ns)
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return nil
}

// SetWriteDeadline does nothing: a UDP write does not wait.
func (p *peer) SetWriteDeadline(time.Time) error { return nil }
