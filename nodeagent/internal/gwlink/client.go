package gwlink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	piondtls "github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/pkg/runner/periodic"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"edgeota/protocol"
)

// Errors callers branch on.
var (
	// ErrRefused is matched by a *StatusError with a 4.xx code: the gateway
	// refused the request and asking again will not help.
	ErrRefused = errors.New("gwlink: refused by the gateway")
	// ErrNotCached means the gateway does not hold the image (4.04).
	ErrNotCached = errors.New("gwlink: image not cached at the gateway")
	// ErrImageChanged means a block came with an ETag other than the
	// image's: the gateway serves other bytes under that path.
	ErrImageChanged = errors.New("gwlink: image changed at the gateway")
	// ErrUnreachable means the gateway did not answer for the maximum
	// elapsed time (WithMaxElapsed).
	ErrUnreachable = errors.New("gwlink: gateway unreachable")
	// ErrClosed means the Client was closed.
	ErrClosed = errors.New("gwlink: client closed")
)

// StatusError is an answer the operation cannot go on with.
type StatusError struct {
	// Op is the request, such as "POST /n/node-1/hello".
	Op string
	// Code is the response code.
	Code codes.Code
	// Diagnostic is the response payload, when the gateway explained.
	Diagnostic string
}

// Error returns, for example, "gwlink: POST /n/a/hello: 4.00 BadRequest".
func (e *StatusError) Error() string {
	s := fmt.Sprintf("gwlink: %s: %s", e.Op, codeString(e.Code))
	if e.Diagnostic != "" {
		s += ": " + e.Diagnostic
	}
	return s
}

// Is reports whether target is ErrRefused and the code a 4.xx.
func (e *StatusError) Is(target error) bool {
	return target == ErrRefused && e.Code>>5 == 4
}

func codeString(c codes.Code) string {
	return fmt.Sprintf("%d.%02d %v", c>>5, c&31, c)
}

// transientError is a failure worth retrying after a backoff: no answer, a
// closed connection, a 5.xx other than 5.03.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// busyError is a 5.03 answer: retry after wait.
type busyError struct {
	op   string
	wait time.Duration
}

func (e *busyError) Error() string { return fmt.Sprintf("%s: 5.03 busy, retry in %v", e.op, e.wait) }

// maxRequestsPerConn is how many requests a connection carries before it is
// replaced, so that its 16-bit message ids are never reused within a
// server's EXCHANGE_LIFETIME. A variable for the tests.
var maxRequestsPerConn = 60000

// Client is a node's link to its gateway. Its methods are safe for
// concurrent use; go-coap sends one request at a time on the connection
// (NSTART 1), so concurrent calls take turns.
type Client struct {
	addr    string
	node    string
	cfg     config
	log     *slog.Logger
	runner  periodic.Func
	release func() // of the shared runner

	mu     sync.Mutex
	conn   *udpclient.Conn
	gen    uint64
	used   int
	closed bool

	lastRx atomic.Int64 // Unix nanoseconds of the last datagram answered

	qr     qrouter       // Q-Block2 answers to the transfers' tokens
	noQGen atomic.Uint64 // the connection whose gateway refused Q-Block2
	okQGen atomic.Uint64 // the connection whose gateway answered Q-Block2

	helloMu sync.Mutex
	hello   []byte // the last Hello the gateway accepted
}

// Dial returns the link of node nodeID to the gateway at addr (host:port).
// It resolves and connects the UDP socket but sends nothing: a gateway that
// is not up yet is found by the first request. With WithPSK the socket and
// the DTLS handshake wait for the first request too.
func Dial(ctx context.Context, addr, nodeID string, opts ...Option) (*Client, error) {
	if !protocol.ValidID(nodeID) {
		return nil, fmt.Errorf("gwlink: node id %q does not match [A-Za-z0-9._-]{1,64}", nodeID)
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	runner, release := acquireTicker(cfg.tick())
	c := &Client{
		addr:    addr,
		node:    nodeID,
		cfg:     cfg,
		log:     cfg.log.With("gateway", addr, "node", nodeID),
		runner:  runner,
		release: release,
	}
	if c.cfg.psk != nil {
		// The DTLS handshake waits for the first request, like the gateway
		// itself: a node that boots before its gateway, or whose key the
		// gateway does not know yet, retries with back-off.
		return c, nil
	}
	conn, err := c.dial(ctx)
	if err != nil {
		release()
		return nil, err
	}
	c.conn, c.gen = conn, 1
	return c, nil
}

// dial connects a new go-coap connection: block-wise off (package doc),
// the configured transmission parameters, errors to the logger.
func (c *Client) dial(ctx context.Context) (*udpclient.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "udp", c.addr)
	if err != nil {
		return nil, fmt.Errorf("gwlink: dial %s: %w", c.addr, err)
	}
	uc, ok := nc.(*net.UDPConn)
	if !ok {
		_ = nc.Close()
		return nil, fmt.Errorf("gwlink: dial %s: not a UDP connection (%T)", c.addr, nc)
	}
	log := c.log
	opts := []udp.Option{
		options.WithBlockwise(false, c.cfg.szx(), c.cfg.requestTimeout),
		options.WithErrors(func(err error) { log.Debug("coap", "err", err) }),
		options.WithPeriodicRunner(c.runner),
		options.WithTransmission(1, c.cfg.ackTimeout, uint32(c.cfg.maxRetransmit)),
		options.WithCloseSocket(),
		options.WithHandlerFunc(c.qr.handle),
	}
	var conn *udpclient.Conn
	if c.cfg.psk != nil {
		dc, err := c.handshake(ctx, uc)
		if err != nil {
			_ = uc.Close()
			return nil, err
		}
		conn = coapdtls.Client(dc, opts...)
	} else {
		conn = udp.Client(uc, opts...)
	}
	local := uc.LocalAddr().String()
	conn.AddOnClose(func() { log.Debug("connection closed", "local", local) })
	log.Debug("connected", "local", local)
	return conn, nil
}

// handshake runs a DTLS handshake on uc with the node's PSK, bounded by
// the request timeout.
func (c *Client) handshake(ctx context.Context, uc *net.UDPConn) (*piondtls.Conn, error) {
	psk := c.cfg.psk
	dc, err := piondtls.ClientWithOptions(dtlsnet.PacketConnFromConn(uc), uc.RemoteAddr(),
		piondtls.WithPSK(func([]byte) ([]byte, error) { return psk, nil }),
		piondtls.WithPSKIdentityHint([]byte(c.node)),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8, piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256),
		piondtls.WithFlightInterval(c.cfg.ackTimeout/2),
	)
	if err != nil {
		return nil, fmt.Errorf("gwlink: DTLS with %s: %w", c.addr, err)
	}
	hctx, cancel := context.WithTimeout(ctx, c.cfg.requestTimeout)
	defer cancel()
	if err := dc.HandshakeContext(hctx); err != nil {
		_ = dc.Close()
		return nil, fmt.Errorf("gwlink: DTLS handshake with %s (wrong key, or unknown to the gateway?): %w", c.addr, err)
	}
	return dc, nil
}

// current returns the connection to send one request on, dialling a new
// one when the last was closed or has carried maxRequestsPerConn requests,
// and its generation (it grows with every new connection).
func (c *Client) current(ctx context.Context) (*udpclient.Conn, uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, 0, ErrClosed
	}
	if c.conn != nil && c.conn.Context().Err() == nil && c.used < maxRequestsPerConn {
		c.used++
		return c.conn, c.gen, nil
	}
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, 0, &transientError{err}
	}
	c.conn, c.used = conn, 1
	c.gen++
	return conn, c.gen, nil
}

// dropSession ends a DTLS connection that got no answer for a whole
// request timeout, so that the next request starts a new handshake: a
// gateway that restarted (or closed an idle session, its close_notify
// lost on the radio) no longer knows the old session and silently drops
// what is sent on it. A plain UDP socket has no session to lose and is
// kept.
func (c *Client) dropSession(gen uint64) {
	if c.cfg.psk == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen && c.conn != nil {
		c.log.Info("no answer on the DTLS session: a new handshake on the next request")
		_ = c.conn.Close()
		c.conn = nil
	}
}

// Close closes the connection. Calls in progress and later calls fail
// with ErrClosed or a closed-connection error.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.release()
	if c.conn != nil {
		return c.conn.Close()
	}
	return nil
}

// qblockOn reports whether images are read with Q-Block2: the option is
// on and the gateway of the current connection did not refuse it.
func (c *Client) qblockOn() bool {
	if !c.cfg.qblock {
		return false
	}
	c.mu.Lock()
	gen := c.gen
	c.mu.Unlock()
	return c.noQGen.Load() != gen || gen == 0
}

// qblockKnown reports whether the gateway of the current connection
// answered with Q-Block2 before.
func (c *Client) qblockKnown() bool {
	c.mu.Lock()
	gen := c.gen
	c.mu.Unlock()
	return c.okQGen.Load() == gen
}

// qblockSeen remembers that the gateway of the current connection does
// Q-Block2: silence is now loss, not a gateway without it.
func (c *Client) qblockSeen() {
	c.mu.Lock()
	gen := c.gen
	c.mu.Unlock()
	c.okQGen.Store(gen)
}

// QBlockUsed reports whether the gateway of the current connection
// answered a Q-Block2 request: images are read in bursts.
func (c *Client) QBlockUsed() bool { return c.qblockKnown() }

// noQBlock remembers that the gateway of the current connection does not
// do Q-Block2.
func (c *Client) noQBlock() {
	c.mu.Lock()
	gen := c.gen
	c.mu.Unlock()
	if c.noQGen.Swap(gen) != gen {
		c.log.Info("the gateway does not do Q-Block2: images are read block by block")
	}
}

// NodeID returns the node the link speaks for.
func (c *Client) NodeID() string { return c.node }

func (c *Client) touch() { c.lastRx.Store(time.Now().UnixNano()) }

func (c *Client) idleFor() time.Duration {
	return time.Duration(time.Now().UnixNano() - c.lastRx.Load())
}

// response is what this package reads from an answer, copied out of
// go-coap's pooled message.
type response struct {
	code      codes.Code
	body      []byte
	etag      []byte
	maxAge    uint32
	hasMaxAge bool
	block     uint32
	hasBlock  bool
	size2     int64 // -1 when absent
	observe   bool
}

func readResponse(m *pool.Message) (response, error) {
	r := response{code: m.Code(), size2: -1}
	body, err := m.ReadBody()
	if err != nil {
		return r, fmt.Errorf("read payload: %w", err)
	}
	r.body = body
	if et, err := m.ETag(); err == nil {
		r.etag = bytes.Clone(et)
	}
	opts := m.Options()
	if v, err := opts.GetUint32(message.MaxAge); err == nil {
		r.maxAge, r.hasMaxAge = v, true
	}
	if v, err := opts.GetUint32(message.Block2); err == nil {
		r.block, r.hasBlock = v, true
	}
	if v, err := opts.GetUint32(message.Size2); err == nil {
		r.size2 = int64(v)
	}
	r.observe = m.HasOption(message.Observe)
	return r, nil
}

// diagnostic is the payload of an error answer as text, shortened.
func (r *response) diagnostic() string {
	if len(r.body) > 128 {
		return string(r.body[:128]) + "..."
	}
	return string(r.body)
}

// exchange sends one request, built by build on the current connection
// with a context bounded by the request timeout, and returns the answer.
// A failure to get one is a *transientError unless ctx ended.
func (c *Client) exchange(ctx context.Context, build func(ctx context.Context, conn *udpclient.Conn) (*pool.Message, error)) (response, error) {
	conn, gen, err := c.current(ctx)
	if err != nil {
		return response{}, err
	}
	rctx, cancel := context.WithTimeout(ctx, c.cfg.requestTimeout)
	defer cancel()
	req, err := build(rctx, conn)
	if err != nil {
		return response{}, fmt.Errorf("gwlink: build request: %w", err)
	}
	defer conn.ReleaseMessage(req)
	resp, err := conn.Do(req)
	if err != nil {
		if cerr := context.Cause(ctx); cerr != nil {
			return response{}, cerr
		}
		c.dropSession(gen)
		return response{}, &transientError{err}
	}
	defer conn.ReleaseMessage(resp)
	c.touch()
	r, err := readResponse(resp)
	if err != nil {
		return r, &transientError{err}
	}
	return r, nil
}

// busy turns a 5.03 answer into a busyError: wait Max-Age (60 s when
// absent, RFC 7252 section 5.10.5), at most maxWait, at least the first
// backoff.
func (c *Client) busy(op string, r response) error {
	wait := 60 * time.Second
	if r.hasMaxAge {
		wait = time.Duration(r.maxAge) * time.Second
	}
	wait = max(min(wait, c.cfg.maxWait), c.cfg.backoffInitial)
	return &busyError{op: op, wait: wait}
}

// answerError classifies an answer that is not a success: 5.03 and 4.29
// (Too Many Requests, RFC 8516) wait, any other 4.xx is a *StatusError,
// anything else is transient.
func (c *Client) answerError(op string, r response) error {
	switch {
	case r.code == codes.ServiceUnavailable || r.code == codes.TooManyRequests:
		return c.busy(op, r)
	case r.code>>5 == 4:
		return &StatusError{Op: op, Code: r.code, Diagnostic: r.diagnostic()}
	default:
		return &transientError{fmt.Errorf("%s: %s", op, codeString(r.code))}
	}
}

func (c *Client) newBackoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = c.cfg.backoffInitial
	b.MaxInterval = c.cfg.backoffMax
	return b
}

// retry runs op until it succeeds, fails for good or ctx ends. A
// *transientError is retried after a backoff; after maxElapsed (0: no
// bound) of transient failures in a row it gives up with ErrUnreachable. A
// *busyError waits its time and ends a run of transient failures. Any other
// error is returned as is.
func retry[T any](ctx context.Context, c *Client, op string, maxElapsed time.Duration, f func() (T, error)) (T, error) {
	var since time.Time // start of the current run of transient failures
	wrapped := func() (T, error) {
		v, err := f()
		var te *transientError
		var be *busyError
		switch {
		case err == nil:
			return v, nil
		case errors.As(err, &be):
			since = time.Time{}
			return v, &backoff.RetryAfterError{Duration: be.wait}
		case errors.As(err, &te):
			if since.IsZero() {
				since = time.Now()
			} else if maxElapsed > 0 && time.Since(since) >= maxElapsed {
				return v, backoff.Permanent(fmt.Errorf("%w: %s: %w", ErrUnreachable, op, te.err))
			}
			return v, err
		default:
			return v, backoff.Permanent(err)
		}
	}
	notify := func(err error, next time.Duration) {
		c.log.Debug("retrying", "op", op, "in", next, "err", err)
	}
	return backoff.Retry(ctx, wrapped, backoff.WithBackOff(c.newBackoff()), backoff.WithMaxElapsedTime(0), backoff.WithNotify(notify))
}

// encodeBlock2 is the Block2 option value asking for block num of size szx.
func encodeBlock2(szx blockwise.SZX, num int64) (uint32, error) {
	return blockwise.EncodeBlockOption(szx, num, false)
}
