package coapserve

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/prometheus/client_golang/prometheus"

	"edgeota/gateway/internal/coapd"
	"edgeota/gateway/internal/images"
	"edgeota/gateway/internal/metrics"
	"edgeota/gateway/internal/observe"
	"edgeota/gateway/internal/outbox"
	"edgeota/gateway/internal/qblock"
	"edgeota/gateway/internal/rollout"
	"edgeota/gateway/internal/store"
	"edgeota/protocol"
)

// Content formats of docs/protocol.md section 5.
const (
	cfOctetStream message.MediaType = 42
	cfCOSESign1   message.MediaType = 18
	cfCBOR        message.MediaType = 60
	cfLinkFormat  message.MediaType = 40
)

// Observe and cache lifetimes.
const (
	manifestMaxAge = 3600 // seconds, docs/protocol.md section 5
	busyMaxAge     = 5    // seconds a node waits after a 5.03
)

// Store is the gateway's database, as the resources use it.
type Store interface {
	Node(id string) (*store.Node, error)
	Assignment(node string) ([]byte, error)
	HelloChanges(h *protocol.Hello) (bool, error)
	PutHello(h *protocol.Hello, addr string) (n *store.Node, changed bool, err error)
	PutObserver(o store.Observer) error
	DeleteObserver(node, addr string) error
}

// Trust holds the trust update the gateway applied last (package
// keyring).
type Trust interface {
	// Signed returns it as signed, nil when there is none.
	Signed() []byte
}

// Images are the cached images (package images).
type Images interface {
	Size(d protocol.Digest) (int64, bool)
	List() []images.Image
	ReadAt(d protocol.Digest, size int64, p []byte, off int64) error
	MarkUsed(d protocol.Digest)
}

// Offers attach delta offers to the manifests nodes are answered (package
// deltas).
type Offers interface {
	// Offer returns what node n is answered for the signed manifest
	// assigned to it: signed, or signed with a delta offer.
	Offer(n *store.Node, signed []byte) []byte
}

// Origin tells which images are being fetched from their origin.
type Origin interface {
	Fetching(d protocol.Digest) bool
}

// Transfers admits image transfers (package transfer).
type Transfers interface {
	Admit(from netip.AddrPort, identity string, d protocol.Digest, now time.Time, mayStart func() bool) (ok, started, limited bool)
	Done(from netip.AddrPort, d protocol.Digest)
}

// Limiter applies the request rates (package ratelimit).
type Limiter interface {
	Allow(from netip.AddrPort, identity string, now time.Time) (ok bool, limit string)
}

// Activity aggregates what nodes send (package activity).
type Activity interface {
	Hello(node string)
	Known(node string) bool
	Seen(node, addr string, now time.Time)
	Health(r *protocol.HealthReport, addr string, now time.Time)
	Status(e *protocol.StatusEvent, addr string, now time.Time)
}

// Rollouts learn what nodes say (package deploy). A call returns a
// Commit: the node is answered once it is durable.
type Rollouts interface {
	Hello(n *store.Node, now time.Time) rollout.Commit
	Health(r *protocol.HealthReport, now time.Time) rollout.Commit
	Status(e *protocol.StatusEvent, now time.Time) rollout.Commit
}

// Audit records provisioning events (package audit).
type Audit interface {
	Provisioned(e *protocol.StatusEvent, from netip.AddrPort, authenticated bool, now time.Time)
}

// Outbox is the uplink's durable queue (package outbox).
type Outbox interface {
	Append(kind outbox.Kind, node string, data []byte, done func(err error)) error
}

// Uplink is told when items were appended (package uplink).
type Uplink interface {
	Kick(kind outbox.Kind)
}

// Sender sends notifications and separate responses (coapd.Server).
type Sender interface {
	Notify(to netip.AddrPort, identity string, token []byte, confirmable bool, build func(w *coapd.Response), onFail func()) error
	Send(to netip.AddrPort, identity string, token []byte, confirmable bool, n int,
		build func(i int, w *coapd.Response), onAck, onFail func()) error
}

// Config holds what a Handler needs. Outbox and Uplink are nil without an
// uplink; everything else is required.
type Config struct {
	Store  Store
	Images Images
	// Deltas are the stored deltas, served on /d/{hex} as images are on
	// /m/{hex}, and Offers attaches them to manifests; both nil without
	// delta updates.
	Deltas    Images
	Offers    Offers
	Origin    Origin
	Transfers Transfers
	Limiter   Limiter
	Observers *observe.Registry
	// Trust is the trust update served on /n/{node}/trust, TrustObservers
	// its observations (not saved: a node polls it after a restart).
	Trust          Trust
	TrustObservers *observe.Registry
	Activity       Activity
	Rollouts       Rollouts
	Audit          Audit
	Outbox         Outbox
	Uplink         Uplink
	Sender         Sender
	Metrics        *metrics.Metrics
	// MaxBody is the largest node document accepted (4.13 beyond).
	MaxBody int
	// Now is the gateway's time: rollouts, registry times, transfers'
	// idleness, observers' confirmable notifications.
	Now func() time.Time
	// Logger receives structured logs (default: discard).
	Logger *slog.Logger
	// QBlock are the RFC 9177 parameters of Q-Block2 transfers (section
	// 7.2 defaults for zero fields).
	QBlock qblock.Params
}

// Handler answers the resources of docs/protocol.md section 5; it is a
// coapd.Handler.
type Handler struct {
	cfg      Config
	log      *slog.Logger
	reqCount sync.Map      // uint16 (kind<<8 | code) -> prometheus.Counter
	fullLog  quietLog      // Hellos the full node registry refused
	storing  chan struct{} // Hellos being stored (maxHellosStoring)
	stores   sync.WaitGroup
	qblocks  *qblock.Table // Q-Block2 transfers in flight
}

// New returns a Handler of cfg.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, storing: make(chan struct{}, maxHellosStoring)}
	h.qblocks = h.newQBlockTable(cfg.QBlock)
	return h
}

// QBlock returns the table of Q-Block2 transfers in flight, for metrics
// and tests.
func (h *Handler) QBlock() *qblock.Table { return h.qblocks }

// Close ends the Q-Block2 transfers in flight.
func (h *Handler) Close() { h.qblocks.Close() }

// ServeCoAP answers one request.
func (h *Handler) ServeCoAP(w *coapd.Response, r *coapd.Request) {
	if r.Msg.Options.HasOption(message.QBlock1) && h.qblock1(w, r) {
		return
	}
	switch protocol.PathKindOf(r.Path) {
	case protocol.PathCoreKind:
		if h.limited(w, r) {
			return
		}
		h.onlyGET(w, r, h.serveCore)
	case protocol.PathImage, protocol.PathDelta:
		h.onlyGET(w, r, h.serveImage) // limited when a transfer starts
	case protocol.PathNode:
		if r.Msg.Options.HasOption(message.QBlock2) {
			w.Code = codes.BadOption // RFC 9177 is served for bodies only
			return
		}
		if h.limited(w, r) {
			return
		}
		h.serveNode(w, r)
	default:
		w.Code = codes.NotFound
	}
}

// LogRequest counts an answered request in edgeota_coap_requests_total
// and logs it at debug level (a coapd request hook).
func (h *Handler) LogRequest(r *coapd.Request, code codes.Code, took time.Duration) {
	kind := protocol.PathKindOf(r.Path)
	key := uint16(kind)<<8 | uint16(code)
	c, ok := h.reqCount.Load(key)
	if !ok {
		c, _ = h.reqCount.LoadOrStore(key, h.cfg.Metrics.Requests.WithLabelValues(kind.String(), code.String()))
	}
	c.(prometheus.Counter).Inc()
	if h.log.Enabled(context.Background(), slog.LevelDebug) {
		h.log.Debug("coap request", "method", r.Msg.Code.String(), "path", r.Path, "from", r.From.String(),
			"code", code.String(), "took_us", took.Microseconds())
	}
}

// limited answers 4.29 with Max-Age 1 (RFC 8516) and reports true when r
// is over its source's or its node's request rate.
func (h *Handler) limited(w *coapd.Response, r *coapd.Request) bool {
	ok, which := h.cfg.Limiter.Allow(r.From, r.Identity, time.Now())
	if ok {
		return false
	}
	h.cfg.Metrics.Refused.WithLabelValues(which).Inc()
	w.Code = codes.TooManyRequests
	w.SetUint32(message.MaxAge, 1)
	return true
}

func (h *Handler) onlyGET(w *coapd.Response, r *coapd.Request, serve func(*coapd.Response, *coapd.Request)) {
	if r.Msg.Code != codes.GET {
		w.Code = codes.MethodNotAllowed
		return
	}
	serve(w, r)
}

// serveCore answers link-format discovery: one link per cached image,
// never per-node links.
func (h *Handler) serveCore(w *coapd.Response, r *coapd.Request) {
	q, ok, answered := qblockOptions(w, r)
	if answered {
		return
	}
	if ok {
		h.serveQBlock2(w, r, h.coreBody(), &q)
		return
	}
	w.Code = codes.Content
	w.SetContentFormat(cfLinkFormat)
	w.Payload = h.coreLinks()
}

// coreLinks is the link-format document of /.well-known/core.
func (h *Handler) coreLinks() []byte {
	var b strings.Builder
	for i, m := range h.cfg.Images.List() {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `<%s>;rt="edgeota.image";ct=42;sz=%d`, protocol.ImagePath(m.Digest), m.Size)
	}
	return []byte(b.String())
}

// serveImage answers GET /m/{hex}, and GET /d/{hex} for a delta
// (docs/protocol.md section 5), with one block, statelessly: the block the
// request asks for, at its size (at most 1024), or block 0.
func (h *Handler) serveImage(w *coapd.Response, r *coapd.Request) {
	p, err := protocol.ParsePath(r.Path)
	if err != nil {
		w.Code = codes.NotFound
		return
	}
	d := p.Digest
	src, kind := h.cfg.Images, "full"
	if p.Kind == protocol.PathDelta {
		if h.cfg.Deltas == nil {
			w.Code = codes.NotFound
			return
		}
		src, kind = h.cfg.Deltas, "delta"
	}
	size, ok := src.Size(d)
	if !ok {
		if p.Kind == protocol.PathImage && h.cfg.Origin.Fetching(d) {
			w.Code = codes.ServiceUnavailable
			w.SetUint32(message.MaxAge, busyMaxAge)
			return
		}
		w.Code = codes.NotFound
		return
	}
	q, isQ, answered := qblockOptions(w, r)
	if answered {
		return
	}
	var num int64
	var bsize int
	if isQ {
		// RFC 9177: the first block it names is admitted as a plain
		// request's would be; the rest is checked in serveQBlock2.
		o := q.Options()[0]
		num, bsize = int64(o.Num), o.Size()
	} else if num, bsize, _, err = r.Block2(); err != nil {
		w.Code = codes.BadOption
		return
	}
	if bsize == 0 || bsize > 1024 {
		bsize = 1024
	}
	off := num * int64(bsize)
	if off >= size {
		w.Code = codes.BadOption // a block past the end (RFC 7959 section 2.2)
		return
	}
	var qb body
	if isQ {
		qb = imageBody(d, size)
		if p.Kind == protocol.PathDelta {
			qb = deltaBody(d, size)
		}
		if h.qblocks.InFlight(qblock.Key{From: r.From, Body: d, Kind: qb.kind}) {
			// Admitted when it started, and never refused since (the
			// transfer bounds may have let its idle entry go while it
			// lingered for recovery requests).
			h.serveQBlock2(w, r, qb, &q)
			return
		}
	}
	ok, started, limited := h.cfg.Transfers.Admit(r.From, r.Identity, d, h.cfg.Now(), func() bool { return !h.limited(w, r) })
	if limited {
		return // answered 4.29 by limited
	}
	if !ok {
		h.cfg.Metrics.Refused.WithLabelValues("transfers").Inc()
		w.Code = codes.ServiceUnavailable
		w.SetUint32(message.MaxAge, busyMaxAge)
		return
	}
	if started {
		h.cfg.Metrics.TransfersStarted.Inc()
		src.MarkUsed(d)
	}
	if isQ {
		h.serveQBlock2(w, r, qb, &q)
		return
	}
	n := min(int64(bsize), size-off)
	buf := w.Buffer(int(n))
	if err := src.ReadAt(d, size, buf, off); err != nil {
		h.log.Error("read block", "kind", kind, "digest", d.String(), "offset", off, "err", err)
		w.Code = codes.InternalServerError
		return
	}
	more := off+n < size
	if !more {
		h.cfg.Transfers.Done(r.From, d)
	}
	szx, _ := sizeToSZX(bsize)
	opt, _ := blockwise.EncodeBlockOption(szx, num, more)
	w.Code = codes.Content
	w.SetContentFormat(cfOctetStream)
	w.SetBytes(message.ETag, d[:8])
	w.SetUint32(message.Block2, opt)
	if num == 0 || r.Msg.Options.HasOption(message.Size2) {
		w.SetUint32(message.Size2, uint32(size))
	}
	w.Payload = buf
	h.cfg.Metrics.Blocks.Inc()
	h.cfg.Metrics.Bytes.WithLabelValues(kind).Add(float64(n))
}

func sizeToSZX(size int) (blockwise.SZX, error) {
	for szx := blockwise.SZX16; szx <= blockwise.SZX1024; szx++ {
		if int(szx.Size()) == size {
			return szx, nil
		}
	}
	return 0, fmt.Errorf("block size %d", size)
}

// serveNode answers /n/{node}/manifest, /trust, /hello, /health and
// /status.
func (h *Handler) serveNode(w *coapd.Response, r *coapd.Request) {
	p, err := protocol.ParsePath(r.Path)
	if err != nil {
		w.Code = codes.NotFound
		return
	}
	if r.Identity != "" && p.Node != r.Identity {
		// Under DTLS a node touches only its own resources (docs/protocol.md
		// section 5).
		h.cfg.Metrics.Refused.WithLabelValues("identity").Inc()
		h.log.Warn("request for another node's resource", "identity", r.Identity, "path", r.Path, "from", r.From.String())
		w.Code = codes.Forbidden
		w.Payload = []byte("not your node id")
		return
	}
	switch p.Resource {
	case protocol.ResManifest:
		h.onlyGET(w, r, func(w *coapd.Response, r *coapd.Request) { h.serveManifest(w, r, p.Node) })
	case protocol.ResTrust:
		h.onlyGET(w, r, func(w *coapd.Response, r *coapd.Request) { h.serveTrust(w, r, p.Node) })
	default: // hello, health, status
		if r.Msg.Code != codes.POST {
			w.Code = codes.MethodNotAllowed
			return
		}
		h.serveUpload(w, r, p.Node, p.Resource)
	}
}
