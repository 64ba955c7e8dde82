package coapd

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/message"
)

// session is one DTLS association: its connection and the PSK identity
// the peer proved.
type session struct {
	conn     net.Conn
	identity string
}

// SessionOption configures ServeSessions.
type SessionOption func(*sessionConfig)

type sessionConfig struct {
	handshakeTimeout time.Duration
	idle             time.Duration
	maxSessions      int
	maxHandshakes    int
	maxPerSource     int
	onSession        func(identity string, from netip.AddrPort, err error)
}

// WithHandshakeTimeout bounds a DTLS handshake (default 10 s).
func WithHandshakeTimeout(d time.Duration) SessionOption {
	return func(c *sessionConfig) { c.handshakeTimeout = d }
}

// WithSessionIdle closes a session that received nothing for d (default
// 10 min); the node's next request starts a new handshake.
func WithSessionIdle(d time.Duration) SessionOption {
	return func(c *sessionConfig) { c.idle = d }
}

// WithMaxSessions bounds the established sessions (default 10000) and the
// handshakes in progress (default 256); beyond them a new peer's
// association is closed at once.
func WithMaxSessions(sessions, handshakes int) SessionOption {
	return func(c *sessionConfig) { c.maxSessions, c.maxHandshakes = sessions, handshakes }
}

// WithMaxHandshakesPerSource bounds the handshakes in progress from one IP
// address (default 4), so that one address sending ClientHellos from many
// ports cannot take every handshake slot for the handshake timeout.
func WithMaxHandshakesPerSource(n int) SessionOption {
	return func(c *sessionConfig) { c.maxPerSource = n }
}

// WithSessionHook sets a function told of every handshake: the identity
// the peer proved, or the error it failed with.
func WithSessionHook(f func(identity string, from netip.AddrPort, err error)) SessionOption {
	return func(c *sessionConfig) { c.onSession = f }
}

// ServeSessions answers requests arriving over the secure sessions l
// accepts (DTLS, RFC 6347, from github.com/pion/dtls) until ctx ends,
// through the same handler, duplicate detection and notifications as the
// UDP socket. Each request carries the PSK identity its session proved
// (Request.Identity); answers and notifications to that endpoint go back
// through its session. It closes l when ctx ends.
func (s *Server) ServeSessions(ctx context.Context, l net.Listener, opts ...SessionOption) error {
	cfg := sessionConfig{handshakeTimeout: 10 * time.Second, idle: 10 * time.Minute, maxSessions: 10000, maxHandshakes: 256, maxPerSource: 4}
	for _, o := range opts {
		o(&cfg)
	}
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	hs := &handshakeSlots{perSource: map[netip.Addr]int{}}
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				s.closeSessions()
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.log.Debug("dtls accept", "err", err)
			continue
		}
		src := addrPortOf(c.RemoteAddr()).Addr()
		if int(s.nsessions.Load()) >= cfg.maxSessions || !hs.take(src, cfg.maxHandshakes, cfg.maxPerSource) {
			s.stats.sessionsRefused.Add(1)
			c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveSession(ctx, c, cfg, func() { hs.release(src) })
		}()
	}
}

// handshakeSlots counts the handshakes in progress, in total and per
// source address.
type handshakeSlots struct {
	mu        sync.Mutex
	total     int
	perSource map[netip.Addr]int
}

func (h *handshakeSlots) take(src netip.Addr, maxTotal, maxPerSource int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.total >= maxTotal || h.perSource[src] >= maxPerSource {
		return false
	}
	h.total++
	h.perSource[src]++
	return true
}

func (h *handshakeSlots) release(src netip.Addr) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.total--
	if h.perSource[src]--; h.perSource[src] <= 0 {
		delete(h.perSource, src)
	}
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if ua, ok := a.(*net.UDPAddr); ok {
		ap := ua.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

func (s *Server) serveSession(ctx context.Context, c net.Conn, cfg sessionConfig, handshakeDone func()) {
	defer c.Close()
	from := addrPortOf(c.RemoteAddr())
	identity, err := handshake(ctx, c, cfg.handshakeTimeout)
	handshakeDone()
	if cfg.onSession != nil {
		cfg.onSession(identity, from, err)
	}
	if err != nil {
		s.stats.handshakeFailed.Add(1)
		s.log.Debug("dtls handshake", "from", from.String(), "err", err)
		return
	}
	s.stats.sessions.Add(1)
	sess := &session{conn: c, identity: identity}
	if old, loaded := s.sessions.Swap(from, sess); loaded {
		old.(*session).conn.Close()
	} else {
		s.nsessions.Add(1)
	}
	defer func() {
		if s.sessions.CompareAndDelete(from, sess) {
			s.nsessions.Add(-1)
		}
	}()
	// A session's buffers are those of one UDP worker, read one datagram at
	// a time: about 3.5 KiB per session.
	ws := &workerState{out: make([]byte, 2048), opts: make(message.Options, 0, 32), in: make([]byte, s.maxSize+1), identity: identity}
	ws.resp.buf = make([]byte, 256)
	for {
		_ = c.SetReadDeadline(time.Now().Add(cfg.idle))
		n, err := c.Read(ws.in)
		var tmp *piondtls.TemporaryError
		if errors.As(err, &tmp) {
			// A record pion dropped and the session survives: larger than
			// any request, or of an unexpected content type.
			s.stats.malformed.Add(1)
			continue
		}
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("dtls session ended", "from", from.String(), "identity", identity, "err", err)
			}
			return
		}
		s.stats.received.Add(1)
		s.handleDatagram(ws, ws.in[:n], from)
		s.publishDrops(ws)
	}
}

// handshake runs the DTLS handshake and returns the PSK identity the peer
// proved.
func handshake(ctx context.Context, c net.Conn, timeout time.Duration) (string, error) {
	dc, ok := c.(*piondtls.Conn)
	if !ok {
		return "", errors.New("coapd: not a DTLS connection")
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := dc.HandshakeContext(hctx); err != nil {
		return "", err
	}
	st, ok := dc.ConnectionState()
	if !ok || len(st.IdentityHint) == 0 {
		return "", errors.New("coapd: the session proved no PSK identity")
	}
	return string(st.IdentityHint), nil
}

func (s *Server) closeSessions() {
	s.sessions.Range(func(_, v any) bool {
		v.(*session).conn.Close()
		return true
	})
}

// Sessions returns the number of established secure sessions.
func (s *Server) Sessions() int { return int(s.nsessions.Load()) }

// DropSession closes the secure session of an endpoint, if any: for
// example after its node's key was replaced.
func (s *Server) DropSession(identity string) int {
	n := 0
	s.sessions.Range(func(_, v any) bool {
		if se := v.(*session); se.identity == identity {
			se.conn.Close()
			n++
		}
		return true
	})
	return n
}
