package gwlink

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	netclient "github.com/plgd-dev/go-coap/v3/net/client"

	"edgeota/protocol"
)

// defaultMaxAge is the Max-Age the gateway gives manifest answers
// (docs/protocol.md section 5), used until an answer says otherwise.
const defaultMaxAge = 3600

// refreshAfter is how long an observation may stay silent before it is
// registered again: Max-Age plus a margin for a late notification.
func refreshAfter(maxAge uint32) time.Duration {
	d := time.Duration(maxAge) * time.Second
	return d + d/16 + min(d, 5*time.Second)
}

// Watch follows the manifest the gateway assigns to the node until ctx
// ends, and returns ctx's error (or ErrClosed). onChange gets the initial
// manifest and then every one whose ETag differs from the last it got; nil
// means nothing is assigned. onChange runs on its own goroutine, one call
// at a time, and Watch does not return before the running call does;
// values that change while onChange runs are conflated into the latest.
//
// Watch observes /n/{node}/manifest (RFC 7641) and also polls it every
// poll interval with the last ETag; see the package doc for when it
// registers again. Pings keep the link alive while it is silent
// (WithKeepAlive).
func (c *Client) Watch(ctx context.Context, onChange func(signed []byte)) error {
	return c.watch(ctx, protocol.ResManifest, onChange)
}

// WatchTrust follows the trust update the gateway serves the node
// (/n/{node}/trust, docs/protocol.md section 5, v1.3) like Watch follows
// the manifest: onChange gets the signed update, nil when there is none.
// A 4.04 (a gateway before v1.3, or one that does not know the node yet)
// is not an error: the observation is registered again later.
func (c *Client) WatchTrust(ctx context.Context, onChange func(signed []byte)) error {
	return c.watch(ctx, protocol.ResTrust, onChange)
}

func (c *Client) watch(ctx context.Context, res protocol.NodeResource, onChange func(signed []byte)) error {
	ctx, cancel := context.WithCancel(ctx)
	box := newMailbox()
	done := make(chan struct{})
	go func() {
		defer close(done)
		box.run(ctx, onChange)
	}()
	defer func() {
		cancel()
		<-done
	}()
	w := &watcher{
		c:      c,
		res:    res,
		path:   c.nodePath(res),
		events: make(chan watchEvent, 16),
		box:    box,
		bo:     c.newBackoff(),
	}
	w.bo.MaxInterval = max(w.bo.MaxInterval, c.cfg.backoffInitial)
	return w.run(ctx)
}

// watchEvent is an answer of observation number reg.
type watchEvent struct {
	reg uint64
	r   response
}

// watcher is the state of one Watch. Only its run goroutine touches it,
// but for events and overflow, written by go-coap's callbacks.
type watcher struct {
	c        *Client
	res      protocol.NodeResource
	path     string
	events   chan watchEvent
	overflow atomic.Bool // an event did not fit events: poll
	box      *mailbox

	obs       netclient.Observation
	reg       uint64          // number of the latest registration
	connDone  <-chan struct{} // closed when the observation's connection is
	refreshAt time.Time       // register again when nothing came by then
	needReg   bool
	regAt     time.Time // when needReg: register at
	bo        *backoff.ExponentialBackOff
	suspect   bool // a ping or poll failed: register again once the link answers

	lastETag []byte // ETag of the latest representation seen
	known    bool
}

func (w *watcher) run(ctx context.Context) error {
	c := w.c
	w.needReg, w.regAt = true, time.Now()
	poll := time.NewTicker(c.cfg.pollInterval)
	defer poll.Stop()
	var keep <-chan time.Time
	if c.cfg.keepAlive > 0 {
		kt := time.NewTicker(max(c.cfg.keepAlive/2, time.Millisecond))
		defer kt.Stop()
		keep = kt.C
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	defer w.cancel(ctx)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if w.needReg && !time.Now().Before(w.regAt) {
			if err := w.register(ctx); err != nil {
				return err
			}
		}
		if w.overflow.Swap(false) {
			w.poll(ctx)
		}
		next := w.refreshAt
		if w.needReg {
			next = w.regAt
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev := <-w.events:
			w.handle(ctx, ev)
		case <-w.connDone:
			c.log.Debug("observation's connection closed; registering again")
			w.connDone = nil
			w.again()
		case <-timer.C:
			if !w.needReg && !time.Now().Before(w.refreshAt) {
				c.log.Debug("observation silent past Max-Age; registering again")
				w.again()
			}
		case <-poll.C:
			w.poll(ctx)
		case <-keep:
			w.ping(ctx)
		}
	}
}

// again asks for a registration now.
func (w *watcher) again() {
	w.needReg, w.regAt = true, time.Now()
}

// later asks for a registration after a backoff, unless one is already due.
func (w *watcher) later() {
	if w.needReg {
		return
	}
	w.needReg, w.regAt = true, time.Now().Add(w.bo.NextBackOff())
}

// laterBy asks for a registration after d.
func (w *watcher) laterBy(d time.Duration) {
	w.needReg, w.regAt = true, time.Now().Add(d)
}

// cancel ends the current observation, telling the gateway when it can.
func (w *watcher) cancel(ctx context.Context) {
	if w.obs == nil {
		return
	}
	obs := w.obs
	w.obs, w.connDone = nil, nil
	d := w.c.cfg.requestTimeout
	if ctx.Err() != nil {
		d = min(d, 2*time.Second)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
	defer cancel()
	if err := obs.Cancel(cctx); err != nil {
		w.c.log.Debug("observation cancel", "err", err)
	}
}

// register replaces the observation with a new one. Its answer arrives as
// an event. It returns an error only when Watch must end.
func (w *watcher) register(ctx context.Context) error {
	c := w.c
	w.needReg = false
	w.cancel(ctx)
	conn, _, err := c.current(ctx)
	if err != nil {
		if errors.Is(err, ErrClosed) || ctx.Err() != nil {
			return err
		}
		c.log.Debug("observe: no connection", "err", err)
		w.later()
		return nil
	}
	w.reg++
	reg := w.reg
	rctx, cancel := context.WithTimeout(ctx, c.cfg.requestTimeout)
	defer cancel()
	obs, err := conn.Observe(rctx, w.path, func(m *pool.Message) {
		c.touch()
		r, err := readResponse(m)
		if err != nil {
			c.log.Debug("observe: unreadable notification", "err", err)
			w.overflow.Store(true)
			return
		}
		select {
		case w.events <- watchEvent{reg: reg, r: r}:
		default:
			w.overflow.Store(true)
		}
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.Debug("observe failed", "err", err)
		w.later()
		return nil
	}
	w.obs = obs
	w.connDone = conn.Context().Done()
	w.refreshAt = time.Now().Add(refreshAfter(defaultMaxAge))
	c.log.Debug("observing", "path", w.path, "registration", reg)
	return nil
}

// handle takes an answer of the observation: the registration's or a
// notification.
func (w *watcher) handle(ctx context.Context, ev watchEvent) {
	if ev.reg != w.reg {
		return // from an observation since replaced
	}
	c, r := w.c, ev.r
	switch r.code {
	case codes.Content, codes.Valid:
		if r.code == codes.Content {
			if more := r.hasBlock && blockMore(r.block); more {
				w.overflow.Store(true) // a manifest over one block: fetch it whole
			} else {
				w.offer(r)
			}
		}
		if !r.observe {
			c.log.Debug("observation ended by the gateway")
			w.obs = nil
			w.later()
			return
		}
		w.bo.Reset()
		maxAge := uint32(defaultMaxAge)
		if r.hasMaxAge {
			maxAge = r.maxAge
		}
		w.refreshAt = time.Now().Add(refreshAfter(maxAge))
	case codes.NotFound:
		w.obs = nil
		if w.res == protocol.ResManifest {
			c.rehello(ctx)
		}
		w.later()
	case codes.ServiceUnavailable:
		w.obs = nil
		var be *busyError
		if errors.As(c.busy("observe", r), &be) {
			w.laterBy(be.wait)
		}
	default:
		c.log.Warn("observe refused", "code", codeString(r.code), "diagnostic", r.diagnostic())
		w.obs = nil
		w.later()
	}
}

func blockMore(v uint32) bool {
	_, _, more, err := blockwise.DecodeBlockOption(v)
	return err == nil && more
}

// poll asks for the manifest with the last ETag. A representation the
// observation did not bring is delivered and the observation registered
// again; so it is when the link answers after a failure.
func (w *watcher) poll(ctx context.Context) {
	c := w.c
	var etag []byte
	if w.known {
		etag = w.lastETag
	}
	r, err := c.getResource(ctx, w.path, etag)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Debug("manifest poll failed", "err", err)
			w.suspect = true
		}
		return
	}
	if w.suspect {
		w.suspect = false
		w.again()
	}
	switch r.code {
	case codes.Valid:
	case codes.Content:
		if !w.known || !bytes.Equal(r.tag(), w.lastETag) {
			if w.known {
				c.log.Info("manifest change seen by polling; registering again")
				w.again()
			}
			w.offer(r)
		}
	case codes.NotFound:
		if w.res == protocol.ResManifest && c.rehello(ctx) {
			w.again()
		}
	default:
		c.log.Debug("manifest poll", "code", codeString(r.code))
	}
}

// ping checks a silent link; a failure makes the next answer register the
// observation again (the gateway may have dropped it or restarted).
func (w *watcher) ping(ctx context.Context) {
	c := w.c
	if c.idleFor() < c.cfg.keepAlive/2 && !w.suspect {
		return
	}
	conn, _, err := c.current(ctx)
	if err == nil {
		// go-coap's Ping does not notice its connection closing.
		pctx, cancel := context.WithTimeout(ctx, c.cfg.requestTimeout)
		stop := context.AfterFunc(conn.Context(), cancel)
		err = conn.Ping(pctx)
		stop()
		cancel()
	}
	if err != nil {
		if ctx.Err() == nil {
			c.log.Debug("keepalive ping failed", "err", err)
			w.suspect = true
		}
		return
	}
	c.touch()
	if w.suspect {
		c.log.Debug("link answers again; registering again")
		w.suspect = false
		w.again()
	}
}

// offer hands a representation to the delivery goroutine.
func (w *watcher) offer(r response) {
	w.lastETag, w.known = r.tag(), true
	w.box.put(w.lastETag, r.signed())
}

// mailbox holds the latest representation for onChange: a slow onChange
// sees only the latest of those that came meanwhile.
type mailbox struct {
	mu      sync.Mutex
	etag    []byte
	body    []byte
	pending bool
	wake    chan struct{}
}

func newMailbox() *mailbox { return &mailbox{wake: make(chan struct{}, 1)} }

func (m *mailbox) put(etag, body []byte) {
	m.mu.Lock()
	m.etag, m.body, m.pending = etag, body, true
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// run calls onChange with each representation whose ETag differs from the
// last one delivered, until ctx ends.
func (m *mailbox) run(ctx context.Context, onChange func([]byte)) {
	var last []byte
	delivered := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
		}
		m.mu.Lock()
		etag, body, ok := m.etag, m.body, m.pending
		m.pending = false
		m.mu.Unlock()
		if !ok || ctx.Err() != nil || (delivered && bytes.Equal(etag, last)) {
			continue
		}
		last, delivered = etag, true
		onChange(body)
	}
}
