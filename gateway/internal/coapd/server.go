package coapd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// Request is a decoded request. It is valid only while the handler runs.
type Request struct {
	// Msg is the decoded message; its options and payload point into the
	// worker's receive buffer.
	Msg message.Message
	// From is the sender's endpoint.
	From netip.AddrPort
	// Path is the Uri-Path, with a leading slash.
	Path string
	// Identity is the PSK identity the sender's DTLS session proved (the
	// node id), or "" for a request on the plain UDP socket.
	Identity string
}

// Block2 returns the Block2 option of the request: the block number and
// size it asks for; ok is false without the option.
func (r *Request) Block2() (num int64, size int, ok bool, err error) {
	v, err := r.Msg.Options.GetUint32(message.Block2)
	if errors.Is(err, message.ErrOptionNotFound) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, err
	}
	szx, num, _, err := blockwise.DecodeBlockOption(v)
	if err != nil {
		return 0, 0, false, err
	}
	return num, int(szx.Size()), true, nil
}

// Response is what a handler answers.
type Response struct {
	Code    codes.Code
	Options message.Options
	Payload []byte
	buf     []byte
	used    int
	defer_  *Deferred
	seed    Deferred // the request's identity, for Defer
	follow  follow
	silent  bool
}

// follow is what Follow asked for.
type follow struct {
	n             int
	build         func(i int, w *Response)
	onAck, onFail func()
}

func (r *Response) reset() {
	r.Code, r.Options, r.Payload, r.used, r.defer_, r.follow, r.silent = codes.Empty, r.Options[:0], nil, 0, nil, follow{}, false
}

// NoResponse sends no answer to a non-confirmable request, and an empty
// acknowledgement to a confirmable one (RFC 7252 section 4.2): for a
// request that needs none, such as a late RFC 9177 'Continue'.
func (r *Response) NoResponse() { r.silent = true }

// NoAnswer reports whether the handler called NoResponse.
func (r *Response) NoAnswer() bool { return r.silent }

// Followers builds the followers Follow asked for, each into a Response
// of its own handed to f, and returns how many there were: for a
// handler's own tests, as Deferred.Answer is (a Server sends them).
func (r *Response) Followers(f func(w *Response)) int {
	for i := 0; i < r.follow.n; i++ {
		w := new(Response)
		r.follow.build(i, w)
		f(w)
	}
	return r.follow.n
}

// Follow sends n more responses to the request after this answer, each a
// separate response with the request's token (RFC 9177 section 4.4: the
// rest of a Q-Block2 burst): build fills the i-th, 0 <= i < n, in a
// Response of its own. They are non-confirmable, or confirmable when the
// request was: those are retransmitted until acknowledged, and onAck or
// onFail (either may be nil) is called once per message, on an
// acknowledgement, or on a Reset or the last retransmission unanswered.
// A handler that also calls Defer gets no followers.
func (r *Response) Follow(n int, build func(i int, w *Response), onAck, onFail func()) {
	r.follow = follow{n: n, build: build, onAck: onAck, onFail: onFail}
}

// Deferred is a response a handler completes later, from any goroutine:
// for example once what the request carried is durable. The request's
// retransmissions are ignored meanwhile (duplicate detection), and the
// answer is sent once, piggybacked on the ACK of a confirmable request.
type Deferred struct {
	s     *Server
	to    netip.AddrPort
	mid   int32
	typ   message.Type
	token []byte
	store bool
	done  *atomic.Bool
	// identity routes the answer through the requester's secure session.
	identity string
	// answered holds the answer of a Response made outside a Server.
	answered chan *Response
}

// Defer turns this response into a deferred one: the worker sends nothing
// now, and the caller must call Complete exactly once.
func (r *Response) Defer() *Deferred {
	d := r.seed
	d.token = append([]byte(nil), d.token...)
	d.done = new(atomic.Bool)
	if d.s == nil {
		d.answered = make(chan *Response, 1)
	}
	r.defer_ = &d
	return r.defer_
}

// Deferred returns the deferred answer the handler made of this response
// with Defer, or nil when it answered at once.
func (r *Response) Deferred() *Deferred { return r.defer_ }

// Answer waits for the answer of a deferred response that no Server
// sends: one made outside a Server, as a handler's own tests make them
// (a zero Response), where Complete builds the answer and hands it here.
// It returns nil for a response a Server sends.
func (d *Deferred) Answer() *Response {
	if d.answered == nil {
		return nil
	}
	return <-d.answered
}

// Complete builds and sends the deferred answer.
func (d *Deferred) Complete(build func(w *Response)) {
	if !d.done.CompareAndSwap(false, true) {
		return
	}
	if d.s == nil {
		w := new(Response)
		build(w)
		d.answered <- w
		return
	}
	func() {
		ws := &workerState{out: make([]byte, 2048)}
		ws.resp.buf = make([]byte, 128)
		ws.resp.reset()
		build(&ws.resp)
		m := message.Message{Token: d.token, Code: ws.resp.Code, Options: ws.resp.Options, Payload: ws.resp.Payload}
		if d.typ == message.Confirmable {
			m.Type, m.MessageID = message.Acknowledgement, d.mid
		} else {
			m.Type, m.MessageID = message.NonConfirmable, d.s.nextMID()
		}
		b, err := d.s.encode(ws, m)
		if err != nil {
			d.s.log.Error("coap encode deferred", "err", err)
			return
		}
		b = append([]byte(nil), b...)
		if d.store {
			d.s.dedup.store(d.to, uint16(d.mid), b)
		}
		d.s.write(b, d.to, d.identity)
	}()
}

// scratch returns n bytes of the response's option buffer.
func (r *Response) scratch(n int) []byte {
	if r.used+n > len(r.buf) {
		r.buf = append(r.buf, make([]byte, n+64)...)
	}
	b := r.buf[r.used : r.used+n]
	r.used += n
	return b
}

// Buffer returns n bytes owned by the worker for the response's payload;
// they stay valid until the handler returns.
func (r *Response) Buffer(n int) []byte { return r.scratch(n) }

// SetUint32 sets an unsigned integer option.
func (r *Response) SetUint32(id message.OptionID, v uint32) {
	b := r.scratch(4)
	n := 0
	for x := v; x > 0; x >>= 8 {
		n++
	}
	for i := n - 1; i >= 0; i-- {
		b[n-1-i] = byte(v >> (8 * i))
	}
	r.Options = r.Options.Set(message.Option{ID: id, Value: b[:n]})
}

// SetBytes sets an opaque option (the bytes are copied).
func (r *Response) SetBytes(id message.OptionID, v []byte) {
	b := r.scratch(len(v))
	copy(b, v)
	r.Options = r.Options.Set(message.Option{ID: id, Value: b})
}

// SetContentFormat sets the Content-Format option.
func (r *Response) SetContentFormat(mt message.MediaType) {
	r.SetUint32(message.ContentFormat, uint32(mt))
}

// Handler answers requests. It runs on the worker that read the datagram
// and must not keep the request or response after it returns.
type Handler interface {
	ServeCoAP(w *Response, r *Request)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(w *Response, r *Request)

// ServeCoAP calls f.
func (f HandlerFunc) ServeCoAP(w *Response, r *Request) { f(w, r) }

// Stats are the endpoint's counters.
type Stats struct {
	Received, Sent, Malformed, BadOption, TooLarge, Duplicates, Resets uint64
	NotifyAcked, NotifyFailed, Retransmits                             uint64
	// Sessions counts DTLS handshakes that succeeded, HandshakeFailed
	// those that failed (wrong key, unknown identity, timeout), and
	// SessionsRefused associations closed at once for a full table.
	Sessions, HandshakeFailed, SessionsRefused uint64
	// SourceDropped counts the datagrams the source gate dropped before
	// decoding them (WithSourceGate); it lags the drops by at most one
	// batch per worker.
	SourceDropped uint64
	// FastReads counts the reads whose fast wait in the kernel saw the
	// next datagram come (light traffic, reader.go); HelpersWoken the
	// times a datagram backlog woke another worker (load).
	FastReads, HelpersWoken uint64
}

// Server is a CoAP endpoint on one UDP socket.
type Server struct {
	conn    *net.UDPConn
	h       Handler
	log     *slog.Logger
	workers int
	maxSize int
	dedup   *dedup
	out     *outstanding
	mid     atomic.Uint32
	stats   struct {
		received, sent, malformed, badOption, tooLarge, duplicates, resets, acked, failed, retrans atomic.Uint64
		sessions, handshakeFailed, sessionsRefused                                                 atomic.Uint64
		sourceDropped                                                                              atomic.Uint64
		fastReads, helpersWoken                                                                    atomic.Uint64
	}
	gate      *SourceGate
	onDrop    func(n uint64)
	sessions  sync.Map // netip.AddrPort -> *session
	nsessions atomic.Int64
	onReq     func(r *Request, code codes.Code, took time.Duration)
	wg        sync.WaitGroup
	// fastWait is how long the reader waits in the kernel for the next
	// datagram (reader.go); wake wakes a helper, awake counts those
	// reading.
	fastWait time.Duration
	wake     chan struct{}
	awake    atomic.Int32
	// epoch is the server's creation; loadUntil (nanoseconds since
	// epoch) the end of the load a backlog announced.
	epoch     time.Time
	loadUntil atomic.Int64
	ackTO     time.Duration
	maxRetry  int
}

// Option configures a Server.
type Option func(*Server)

// WithWorkers sets how many goroutines read the socket at most (default
// GOMAXPROCS): one always, the others only while datagrams queue up.
func WithWorkers(n int) Option { return func(s *Server) { s.workers = n } }

// WithFastWait sets how long the reader, having answered a datagram,
// waits in the kernel for the next one before it parks in Go's network
// poller (default 1 ms, which Linux rounds up to one clock tick, 1-10 ms;
// 0: always park). See reader.go: a lock-step transfer's next request is
// then read without a poller wake-up.
func WithFastWait(d time.Duration) Option { return func(s *Server) { s.fastWait = d } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithMaxMessageSize sets the largest datagram accepted (default 1152:
// a 1024-byte payload and its header and options); larger ones get 4.13.
func WithMaxMessageSize(n int) Option { return func(s *Server) { s.maxSize = n } }

// WithDedup sets how many non-idempotent exchanges are remembered for
// duplicate detection (default 65536) and for how long (default
// EXCHANGE_LIFETIME, 247 s).
func WithDedup(entries int, lifetime time.Duration) Option {
	return func(s *Server) { s.dedup = newDedup(entries, lifetime) }
}

// WithRequestHook sets a function called after every request is answered,
// for logs and metrics.
func WithRequestHook(f func(r *Request, code codes.Code, took time.Duration)) Option {
	return func(s *Server) { s.onReq = f }
}

// WithTransmission sets ACK_TIMEOUT and MAX_RETRANSMIT for confirmable
// notifications (defaults 2 s and 4, RFC 7252 section 4.8).
func WithTransmission(ackTimeout time.Duration, maxRetransmit int) Option {
	return func(s *Server) { s.ackTO, s.maxRetry = ackTimeout, maxRetransmit }
}

// New returns a server for conn. It raises the socket's buffers to 4 MiB
// (the receive buffer past net.core.rmem_max when the process holds
// CAP_NET_ADMIN).
// conn may be nil for a server that only serves secure sessions
// (ServeSessions).
func New(conn *net.UDPConn, h Handler, opts ...Option) *Server {
	s := &Server{conn: conn, h: h, log: slog.New(slog.DiscardHandler), workers: runtime.GOMAXPROCS(0),
		maxSize: 1152, ackTO: 2 * time.Second, maxRetry: 4, fastWait: defaultFastWait, epoch: time.Now()}
	for _, o := range opts {
		o(s)
	}
	if s.dedup == nil {
		s.dedup = newDedup(1<<16, 247*time.Second)
	}
	s.out = newOutstanding(1 << 16)
	s.mid.Store(uint32(time.Now().UnixNano()))
	if conn != nil {
		raiseReadBuffer(conn, 4<<20)
		_ = conn.SetWriteBuffer(4 << 20)
	}
	return s
}

// Addr returns the local address of the UDP socket, or nil without one.
func (s *Server) Addr() net.Addr {
	if s.conn == nil {
		return nil
	}
	return s.conn.LocalAddr()
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{Received: s.stats.received.Load(), Sent: s.stats.sent.Load(), Malformed: s.stats.malformed.Load(),
		BadOption: s.stats.badOption.Load(), TooLarge: s.stats.tooLarge.Load(), Duplicates: s.stats.duplicates.Load(),
		Resets: s.stats.resets.Load(), NotifyAcked: s.stats.acked.Load(), NotifyFailed: s.stats.failed.Load(),
		Retransmits: s.stats.retrans.Load(), Sessions: s.stats.sessions.Load(), HandshakeFailed: s.stats.handshakeFailed.Load(),
		SessionsRefused: s.stats.sessionsRefused.Load(), SourceDropped: s.stats.sourceDropped.Load(),
		FastReads: s.stats.fastReads.Load(), HelpersWoken: s.stats.helpersWoken.Load()}
}

// Serve reads and answers datagrams until ctx ends; it then closes the
// socket and waits for its workers.
func (s *Server) Serve(ctx context.Context) error {
	if s.conn == nil {
		<-ctx.Done()
		s.out.stopAll()
		return nil
	}
	sio, err := newSockIO(s.conn)
	if err != nil {
		s.conn.Close()
		return err
	}
	if err := sio.setFastWait(s.fastWait); err != nil {
		s.log.Warn("coap fast wait off", "err", err)
	}
	woken := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(woken)
		s.conn.Close()
		sio.wake()
	})
	s.workers = max(s.workers, 1)
	errc := make(chan error, s.workers)
	s.wake = make(chan struct{}, s.workers)
	for i := 0; i < s.workers; i++ {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if i == 0 {
				errc <- s.reader(ctx, sio)
			} else {
				errc <- s.helper(ctx, sio)
			}
		}()
	}
	s.wg.Wait()
	if !stop() {
		<-woken // sio.wake must not touch a descriptor number closed and reused
	}
	sio.close()
	s.out.stopAll()
	if ctx.Err() != nil {
		return nil
	}
	return <-errc
}

func (s *Server) nextMID() int32 { return int32(uint16(s.mid.Add(1))) }

// batchSize is how many datagrams a worker reads (recvmmsg) and answers
// (sendmmsg) per system call at most.
const batchSize = 32

type workerState struct {
	in   []byte
	out  []byte
	opts message.Options // decoded request options, reused
	req  Request
	// pathBuf joins the request's Uri-Path; lastPath is the string made
	// of it last (see path).
	pathBuf  []byte
	lastPath string
	resp     Response
	// identity is the PSK identity of the secure session this worker
	// serves ("" on the UDP socket).
	identity string

	// bio is the worker's batched I/O on the UDP socket (nil for a
	// secure session's worker); inBatch is set while the datagrams of one
	// read are handled, when answers are queued for one sendmmsg.
	bio     *batchIO
	inBatch bool
	// dropped counts the source gate's drops not yet published.
	dropped uint64
}

// flush sends the answers a worker queued, in as few system calls as the
// kernel takes them.
func (s *Server) flush(ws *workerState) {
	s.publishDrops(ws)
	k, err := ws.bio.flush()
	if err != nil {
		s.log.Debug("coap write batch", "err", err)
	}
	s.stats.sent.Add(uint64(k))
}

// reply queues an answer to the datagram being handled (or sends it at
// once outside a batch).
func (s *Server) reply(ws *workerState, b []byte, to netip.AddrPort) {
	if !ws.inBatch {
		s.write(b, to, ws.identity)
		return
	}
	if ws.bio.full() {
		s.flush(ws)
	}
	ws.bio.queue(b, to)
}

// known lists the request options this endpoint understands; an unknown
// critical (odd-numbered) option gets 4.02 (RFC 7252 section 5.4.1).
func known(id message.OptionID) bool {
	switch id {
	case message.IfMatch, message.URIHost, message.ETag, message.IfNoneMatch, message.Observe, message.URIPort,
		message.URIPath, message.ContentFormat, message.MaxAge, message.URIQuery, message.Accept,
		message.Block2, message.Block1, message.Size2, message.Size1,
		message.QBlock1, message.QBlock2: // RFC 9177: the handler answers 4.02 where it does not serve them
		return true
	}
	return false
}

func (s *Server) handleDatagram(ws *workerState, data []byte, from netip.AddrPort) {
	if !s.admitSource(ws, from) {
		return
	}
	if len(data) > s.maxSize {
		s.stats.tooLarge.Add(1)
		s.rejectTooLarge(ws, data, from)
		return
	}
	// The request lives in the worker: passed to the handler through an
	// interface, a local one would be allocated per datagram.
	req := &ws.req
	*req = Request{Msg: message.Message{Options: ws.opts[:0]}}
	if _, err := coder.DefaultCoder.Decode(data, &req.Msg); err != nil {
		s.stats.malformed.Add(1)
		s.resetMalformed(ws, data, from)
		return
	}
	m := &req.Msg
	req.From, req.Identity = from, ws.identity
	switch {
	case m.Code == codes.Empty && (m.Type == message.Acknowledgement || m.Type == message.Reset):
		s.out.resolve(uint16(m.MessageID), from, m.Type == message.Reset, &s.stats.acked, &s.stats.failed)
		if m.Type == message.Reset {
			s.stats.resets.Add(1)
		}
		return
	case m.Code == codes.Empty && m.Type == message.Confirmable: // CoAP ping
		s.sendEmpty(ws, message.Reset, m.MessageID, from)
		return
	case m.Code < codes.GET || m.Code > codes.DELETE:
		if m.Type == message.Confirmable {
			s.sendEmpty(ws, message.Reset, m.MessageID, from)
		}
		return
	case m.Type != message.Confirmable && m.Type != message.NonConfirmable:
		return
	}
	idempotent := m.Code == codes.GET
	if !idempotent {
		if prev, ok := s.dedup.lookup(from, uint16(m.MessageID)); ok {
			s.stats.duplicates.Add(1)
			if prev != nil {
				s.reply(ws, prev, from)
			}
			return
		}
	}
	start := time.Now()
	w := &ws.resp
	w.reset()
	for _, o := range m.Options {
		if o.ID&1 == 1 && !known(o.ID) {
			s.stats.badOption.Add(1)
			w.Code = codes.BadOption
			break
		}
	}
	if w.Code == codes.Empty {
		path, err := ws.path(m.Options)
		if err != nil {
			w.Code = codes.BadRequest
		} else {
			req.Path = path
			if len(req.Path) == 0 || req.Path[0] != '/' {
				req.Path = "/" + req.Path
			}
			w.seed = Deferred{s: s, to: from, mid: m.MessageID, typ: m.Type, token: m.Token, store: !idempotent, identity: ws.identity}
			if !idempotent {
				// Marked in progress before the handler runs, so that a
				// deferred answer completed at once is not overwritten.
				s.dedup.store(from, uint16(m.MessageID), nil)
			}
			s.h.ServeCoAP(w, req)
			if w.defer_ != nil {
				if s.onReq != nil {
					s.onReq(req, codes.Empty, time.Since(start))
				}
				return
			}
			if w.silent {
				if m.Type == message.Confirmable {
					s.sendEmpty(ws, message.Acknowledgement, m.MessageID, from)
				}
				if s.onReq != nil {
					s.onReq(req, codes.Empty, time.Since(start))
				}
				return
			}
			if w.Code == codes.Empty {
				w.Code = codes.InternalServerError
			}
		}
	}
	out := message.Message{Token: m.Token, Options: w.Options, Code: w.Code, Payload: w.Payload}
	if m.Type == message.Confirmable {
		out.Type, out.MessageID = message.Acknowledgement, m.MessageID
	} else {
		out.Type, out.MessageID = message.NonConfirmable, s.nextMID()
	}
	b, err := s.encode(ws, out)
	if err != nil {
		s.log.Error("coap encode", "path", req.Path, "err", err)
		return
	}
	if !idempotent {
		s.dedup.store(from, uint16(m.MessageID), append([]byte(nil), b...))
	}
	s.reply(ws, b, from)
	if s.onReq != nil {
		s.onReq(req, w.Code, time.Since(start))
	}
	if f := w.follow; f.n > 0 {
		s.sendFollowers(ws, m.Token, from, m.Type == message.Confirmable, f)
	}
}

// sendFollowers builds, encodes and sends a handler's followers (Follow):
// queued in the worker's batch, or written at once outside one.
func (s *Server) sendFollowers(ws *workerState, token []byte, to netip.AddrPort, confirmable bool, f follow) {
	tok := token
	if confirmable {
		tok = append([]byte(nil), token...) // the receive buffer is reused
	}
	for i := 0; i < f.n; i++ {
		w := &ws.resp
		w.reset()
		f.build(i, w)
		if w.Code == codes.Empty {
			continue
		}
		m := message.Message{Token: tok, Options: w.Options, Code: w.Code, Payload: w.Payload,
			Type: message.NonConfirmable, MessageID: s.nextMID()}
		if confirmable {
			m.Type = message.Confirmable
		}
		b, err := s.encode(ws, m)
		if err != nil {
			s.log.Error("coap encode follower", "err", err)
			continue
		}
		if confirmable {
			s.out.addConfirmableAck(s, uint16(m.MessageID), to, ws.identity, append([]byte(nil), b...), f.onAck, f.onFail)
		}
		s.reply(ws, b, to)
	}
}

// Send sends n separate responses (RFC 7252 section 5.2.2) to an
// endpoint, as Follow does after an answer, outside any request: build
// fills the i-th, token is the request's; identity is the PSK identity of
// the endpoint's secure session, or "" for the UDP socket. Confirmable
// ones are retransmitted on timers, onAck or onFail (may be nil) told
// once per message. It returns the first write error (ErrNoSession when
// the session has ended).
func (s *Server) Send(to netip.AddrPort, identity string, token []byte, confirmable bool, n int,
	build func(i int, w *Response), onAck, onFail func()) error {
	if identity != "" {
		if v, ok := s.sessions.Load(to); !ok || v.(*session).identity != identity {
			return ErrNoSession
		}
	} else if s.conn == nil {
		return ErrNoSession
	}
	ws := &workerState{out: make([]byte, 2048)}
	ws.resp.buf = make([]byte, 128)
	var first error
	for i := 0; i < n; i++ {
		w := &ws.resp
		w.reset()
		build(i, w)
		if w.Code == codes.Empty {
			continue
		}
		m := message.Message{Token: token, Options: w.Options, Code: w.Code, Payload: w.Payload,
			Type: message.NonConfirmable, MessageID: s.nextMID()}
		if confirmable {
			m.Type = message.Confirmable
		}
		b, err := s.encode(ws, m)
		if err != nil {
			return fmt.Errorf("coapd: encode response: %w", err)
		}
		if confirmable {
			b = append([]byte(nil), b...)
			s.out.addConfirmableAck(s, uint16(m.MessageID), to, identity, b, onAck, onFail)
		}
		if err := s.write(b, to, identity); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// path returns the request's Uri-Path joined as message.Options.Path
// does ("/a/b"; its errors for no Uri-Path, a '/' inside a segment, or
// invalid UTF-8), without allocating when it is the path this worker
// returned last: a transfer asks for the same path block after block.
func (ws *workerState) path(opts message.Options) (string, error) {
	first, last, err := opts.Find(message.URIPath)
	if err != nil {
		return "", err
	}
	ws.pathBuf = ws.pathBuf[:0]
	for _, o := range opts[first:last] {
		if bytes.IndexByte(o.Value, '/') >= 0 {
			return "", message.ErrInvalidEncoding
		}
		ws.pathBuf = append(append(ws.pathBuf, '/'), o.Value...)
	}
	if string(ws.pathBuf) == ws.lastPath {
		return ws.lastPath, nil
	}
	if !utf8.Valid(ws.pathBuf) {
		return "", message.ErrInvalidEncoding
	}
	ws.lastPath = string(ws.pathBuf)
	return ws.lastPath, nil
}

func (s *Server) encode(ws *workerState, m message.Message) ([]byte, error) {
	n, err := coder.DefaultCoder.Encode(m, ws.out)
	if errors.Is(err, message.ErrTooSmall) {
		ws.out = make([]byte, n+64)
		n, err = coder.DefaultCoder.Encode(m, ws.out)
	}
	if err != nil {
		return nil, err
	}
	return ws.out[:n], nil
}

// ErrNoSession is returned by Notify for an endpoint that has no secure
// session (any more) and the server no UDP socket.
var ErrNoSession = errors.New("coapd: no session to that endpoint")

// write sends a datagram to an endpoint: through its secure session when
// identity is set (and only through a session that proved that identity),
// else on the UDP socket.
func (s *Server) write(b []byte, to netip.AddrPort, identity string) error {
	var err error
	if identity != "" {
		v, ok := s.sessions.Load(to)
		if ok && v.(*session).identity == identity {
			_, err = v.(*session).conn.Write(b)
		} else {
			err = ErrNoSession
		}
	} else if s.conn != nil {
		_, err = s.conn.WriteToUDPAddrPort(b, to)
	} else {
		err = ErrNoSession
	}
	if err != nil {
		s.log.Debug("coap write", "to", to.String(), "err", err)
		return err
	}
	s.stats.sent.Add(1)
	return nil
}

func (s *Server) sendEmpty(ws *workerState, t message.Type, mid int32, to netip.AddrPort) {
	b, err := s.encode(ws, message.Message{Type: t, Code: codes.Empty, MessageID: mid})
	if err == nil {
		s.reply(ws, b, to)
	}
}

// resetMalformed answers an undecodable confirmable message with a Reset
// when its header can be read (RFC 7252 section 4.2).
func (s *Server) resetMalformed(ws *workerState, data []byte, from netip.AddrPort) {
	if len(data) >= 4 && data[0]>>6 == 1 && (data[0]>>4)&3 == byte(message.Confirmable) {
		s.sendEmpty(ws, message.Reset, int32(uint16(data[2])<<8|uint16(data[3])), from)
	}
}

// rejectTooLarge answers an oversized request with 4.13 and Size1 when its
// header can be read.
func (s *Server) rejectTooLarge(ws *workerState, data []byte, from netip.AddrPort) {
	if len(data) < 4 || data[0]>>6 != 1 {
		return
	}
	tkl := int(data[0] & 0x0f)
	if tkl > 8 || len(data) < 4+tkl {
		return
	}
	typ := message.Type((data[0] >> 4) & 3)
	mid := int32(uint16(data[2])<<8 | uint16(data[3]))
	w := &ws.resp
	w.reset()
	w.SetUint32(message.Size1, uint32(s.maxSize))
	out := message.Message{Token: data[4 : 4+tkl], Code: codes.RequestEntityTooLarge, Options: w.Options}
	switch typ {
	case message.Confirmable:
		out.Type, out.MessageID = message.Acknowledgement, mid
	case message.NonConfirmable:
		out.Type, out.MessageID = message.NonConfirmable, s.nextMID()
	default:
		return
	}
	if b, err := s.encode(ws, out); err == nil {
		s.reply(ws, b, from)
	}
}

// Notify sends a notification (or any separate response) to an endpoint:
// build fills the response, token is the observation's token. identity is
// the PSK identity of the endpoint's secure session, or "" for the UDP
// socket; a notification never leaves by another way than the one the
// observation came in by (ErrNoSession when that session has ended).
// Non-confirmable unless confirmable is set; a confirmable one is
// retransmitted on timers, never blocking the caller. onFail (may be nil)
// is called once when the endpoint answers with a Reset or never
// acknowledges.
func (s *Server) Notify(to netip.AddrPort, identity string, token []byte, confirmable bool, build func(w *Response), onFail func()) error {
	ws := &workerState{out: make([]byte, 2048)}
	ws.resp.buf = make([]byte, 128)
	ws.resp.reset()
	build(&ws.resp)
	m := message.Message{Token: token, Code: ws.resp.Code, Options: ws.resp.Options, Payload: ws.resp.Payload,
		MessageID: s.nextMID(), Type: message.NonConfirmable}
	if confirmable {
		m.Type = message.Confirmable
	}
	b, err := s.encode(ws, m)
	if err != nil {
		return fmt.Errorf("coapd: encode notification: %w", err)
	}
	b = append([]byte(nil), b...)
	mid := uint16(m.MessageID)
	if identity != "" {
		if v, ok := s.sessions.Load(to); !ok || v.(*session).identity != identity {
			return ErrNoSession
		}
	} else if s.conn == nil {
		return ErrNoSession
	}
	if confirmable {
		s.out.addConfirmable(s, mid, to, identity, b, onFail)
	} else {
		s.out.addNon(mid, to, onFail)
	}
	return s.write(b, to, identity)
}
