package gateway

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"

	"edgeota/gateway/internal/coapd"
	"edgeota/gateway/internal/outbox"
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

// ServeCoAP answers the resources of docs/protocol.md section 5.
func (g *Gateway) ServeCoAP(w *coapd.Response, r *coapd.Request) {
	p := r.Path
	switch {
	case p == "/.well-known/core":
		if g.limited(w, r) {
			return
		}
		g.onlyGET(w, r, g.serveCore)
	case strings.HasPrefix(p, "/m/"):
		g.onlyGET(w, r, g.serveImage) // limited when a transfer starts
	case strings.HasPrefix(p, "/n/"):
		if g.limited(w, r) {
			return
		}
		g.serveNode(w, r)
	default:
		w.Code = codes.NotFound
	}
}

// limited answers 4.29 with Max-Age 1 (RFC 8516) and reports true when r
// is over its source's or its node's request rate.
func (g *Gateway) limited(w *coapd.Response, r *coapd.Request) bool {
	ok, which := g.limiter.allow(r, time.Now())
	if ok {
		return false
	}
	g.metrics.refused.WithLabelValues(which).Inc()
	w.Code = codes.TooManyRequests
	w.SetUint32(message.MaxAge, 1)
	return true
}

func (g *Gateway) onlyGET(w *coapd.Response, r *coapd.Request, h func(*coapd.Response, *coapd.Request)) {
	if r.Msg.Code != codes.GET {
		w.Code = codes.MethodNotAllowed
		return
	}
	h(w, r)
}

// serveCore answers link-format discovery: one link per cached image,
// never per-node links.
func (g *Gateway) serveCore(w *coapd.Response, _ *coapd.Request) {
	var b strings.Builder
	for i, m := range g.index.list() {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `</m/%s>;rt="edgeota.image";ct=42;sz=%d`, m.digest, m.size)
	}
	w.Code = codes.Content
	w.SetContentFormat(cfLinkFormat)
	w.Payload = []byte(b.String())
}

// serveImage answers GET /m/{hex} with one block, statelessly: the block
// the request asks for, at its size (at most 1024), or block 0.
func (g *Gateway) serveImage(w *coapd.Response, r *coapd.Request) {
	d, err := protocol.ParseDigest(strings.TrimPrefix(r.Path, "/m/"))
	if err != nil || strings.ToLower(r.Path[3:]) != r.Path[3:] {
		w.Code = codes.NotFound
		return
	}
	m, ok := g.index.get(d)
	if !ok {
		if g.fetching(d) {
			w.Code = codes.ServiceUnavailable
			w.SetUint32(message.MaxAge, busyMaxAge)
			return
		}
		w.Code = codes.NotFound
		return
	}
	num, size, _, err := r.Block2()
	if err != nil {
		w.Code = codes.BadOption
		return
	}
	if size == 0 || size > 1024 {
		size = 1024
	}
	off := num * int64(size)
	if off >= m.size {
		w.Code = codes.BadOption // a block past the end (RFC 7959 section 2.2)
		return
	}
	key := transferKey{from: r.From, digest: d}
	now := g.clock()
	ok, started, limited := g.transfers.admit(key, nodeKeyOf(r), now, func() bool { return !g.limited(w, r) })
	if limited {
		return // answered 4.29 by limited
	}
	if !ok {
		g.metrics.refused.WithLabelValues("transfers").Inc()
		w.Code = codes.ServiceUnavailable
		w.SetUint32(message.MaxAge, busyMaxAge)
		return
	}
	if started {
		g.metrics.transfersStarted.Inc()
		g.touch(d)
	}
	n := min(int64(size), m.size-off)
	buf := w.Buffer(int(n))
	if err := g.blocks.readAt(d, m.size, buf, off, func(p []byte, o int64) (int, error) { return g.store.ReadAt(d, p, o) }); err != nil {
		g.log.Error("read image block", "digest", d.String(), "offset", off, "err", err)
		w.Code = codes.InternalServerError
		return
	}
	more := off+n < m.size
	if !more {
		g.transfers.done(key)
	}
	szx, _ := sizeToSZX(size)
	opt, _ := blockwise.EncodeBlockOption(szx, num, more)
	w.Code = codes.Content
	w.SetContentFormat(cfOctetStream)
	w.SetBytes(message.ETag, d[:8])
	w.SetUint32(message.Block2, opt)
	if num == 0 || r.Msg.Options.HasOption(message.Size2) {
		w.SetUint32(message.Size2, uint32(m.size))
	}
	w.Payload = buf
	g.metrics.blocks.Inc()
	g.metrics.bytes.Add(float64(n))
}

func sizeToSZX(size int) (blockwise.SZX, error) {
	for szx := blockwise.SZX16; szx <= blockwise.SZX1024; szx++ {
		if int(szx.Size()) == size {
			return szx, nil
		}
	}
	return 0, fmt.Errorf("block size %d", size)
}

// serveNode answers /n/{node}/manifest, /hello, /health and /status.
func (g *Gateway) serveNode(w *coapd.Response, r *coapd.Request) {
	rest := strings.TrimPrefix(r.Path, "/n/")
	node, res, ok := strings.Cut(rest, "/")
	if !ok || !protocol.ValidID(node) || strings.Contains(res, "/") {
		w.Code = codes.NotFound
		return
	}
	if r.Identity != "" && node != r.Identity {
		// Under DTLS a node touches only its own resources (docs/protocol.md
		// section 5).
		g.metrics.refused.WithLabelValues("identity").Inc()
		g.log.Warn("request for another node's resource", "identity", r.Identity, "path", r.Path, "from", r.From.String())
		w.Code = codes.Forbidden
		w.Payload = []byte("not your node id")
		return
	}
	switch res {
	case "manifest":
		g.onlyGET(w, r, func(w *coapd.Response, r *coapd.Request) { g.serveManifest(w, r, node) })
	case "hello", "health", "status":
		if r.Msg.Code != codes.POST {
			w.Code = codes.MethodNotAllowed
			return
		}
		g.serveUpload(w, r, node, res)
	default:
		w.Code = codes.NotFound
	}
}

func (g *Gateway) serveManifest(w *coapd.Response, r *coapd.Request, node string) {
	if _, err := g.store.Node(node); err != nil {
		w.Code = codes.NotFound
		return
	}
	payload, err := g.store.Assignment(node)
	if err != nil {
		g.log.Error("read assignment", "node", node, "err", err)
		w.Code = codes.InternalServerError
		return
	}
	etag := manifestETag(payload)
	obs, err := r.Msg.Options.Observe()
	registering := err == nil && obs == 0
	if err == nil && obs == 1 {
		g.observers.remove(node, r.From, r.Msg.Token)
		g.store.DeleteObserver(node, r.From.String())
	}
	w.Code = codes.Content
	if registering {
		ob, changed, evicted := g.observers.add(node, r.From, r.Identity, r.Msg.Token, g.clock())
		w.SetUint32(message.Observe, ob.seq)
		g.metrics.observers.Set(float64(g.observers.count()))
		// Saved, so that notifications resume after a restart; a DTLS
		// session does not survive one, so its observations are not.
		if changed && r.Identity == "" {
			if err := g.store.PutObserver(store.Observer{Node: node, Addr: r.From.String(), Token: ob.token}); err != nil {
				g.log.Warn("save observer", "node", node, "err", err)
			}
		}
		if evicted != nil {
			g.store.DeleteObserver(node, evicted.addr.String())
		}
	}
	if tag, err := r.Msg.Options.GetBytes(message.ETag); err == nil && string(tag) == string(etag) && !registering {
		w.Code = codes.Valid
	}
	w.SetBytes(message.ETag, etag)
	w.SetUint32(message.MaxAge, manifestMaxAge)
	w.SetContentFormat(cfCOSESign1)
	if w.Code == codes.Content {
		w.Payload = payload
	}
}

// notifyManifest sends the current assignment of node to its observers.
// Notifications are non-confirmable unless confirmable is set; a failed
// one drops the observation.
func (g *Gateway) notifyManifest(node string, confirmable bool, obs []observer) {
	if len(obs) == 0 {
		return
	}
	payload, err := g.store.Assignment(node)
	if err != nil {
		g.log.Error("read assignment", "node", node, "err", err)
		return
	}
	etag := manifestETag(payload)
	for _, ob := range obs {
		ob := ob
		err := g.coap.Notify(ob.addr, ob.identity, ob.token, confirmable, func(w *coapd.Response) {
			w.Code = codes.Content
			w.SetUint32(message.Observe, ob.seq)
			w.SetBytes(message.ETag, etag)
			w.SetUint32(message.MaxAge, manifestMaxAge)
			w.SetContentFormat(cfCOSESign1)
			w.Payload = payload
		}, func() {
			g.log.Info("observer gone", "node", ob.node, "addr", ob.addr.String())
			g.observers.remove(ob.node, ob.addr, ob.token)
			g.store.DeleteObserver(ob.node, ob.addr.String())
			g.metrics.observers.Set(float64(g.observers.count()))
		})
		if errors.Is(err, coapd.ErrNoSession) {
			g.log.Info("observer's session ended", "node", ob.node, "addr", ob.addr.String())
			g.observers.remove(ob.node, ob.addr, ob.token)
			g.metrics.observers.Set(float64(g.observers.count()))
			continue
		}
		if err != nil {
			g.log.Error("notify", "node", node, "err", err)
			continue
		}
		g.metrics.notifications.Inc()
	}
}

// serveUpload stores a Hello, health report or status event.
func (g *Gateway) serveUpload(w *coapd.Response, r *coapd.Request, node, kind string) {
	cf, err := r.Msg.Options.ContentFormat()
	if err != nil || cf != cfCBOR {
		w.Code = codes.UnsupportedMediaType
		return
	}
	body := r.Msg.Payload
	addr := r.From.String()
	if len(body) > g.limits.MaxBody {
		g.metrics.refused.WithLabelValues("body").Inc()
		w.Code = codes.RequestEntityTooLarge
		w.SetUint32(message.Size1, uint32(g.limits.MaxBody))
		return
	}
	bad := func(err error) {
		g.log.Info("refused node document", "node", node, "kind", kind, "from", addr, "err", err)
		g.metrics.refused.WithLabelValues("malformed").Inc()
		w.Code = codes.BadRequest
		w.Payload = []byte(truncate(err.Error(), 120))
	}
	// A body naming another node than the path: 4.00, or 4.03 under DTLS
	// where the path is the session's own identity (docs/protocol.md section 5).
	otherNode := func(docNode string) {
		if r.Identity == "" {
			bad(fmt.Errorf("%s for %q posted to /n/%s", kind, docNode, node))
			return
		}
		g.metrics.refused.WithLabelValues("identity").Inc()
		g.log.Warn("document for another node", "identity", r.Identity, "names", docNode, "from", addr)
		w.Code = codes.Forbidden
		w.Payload = []byte("document names another node")
	}
	switch kind {
	case "hello":
		h, err := protocol.DecodeHello(body)
		if err != nil {
			bad(err)
			return
		}
		if h.NodeID != node {
			otherNode(h.NodeID)
			return
		}
		if prev, err := g.store.Node(node); err == nil && prev.Class != h.Class {
			g.log.Warn("hello refused: class changed", "node", node, "from", addr, "was", prev.Class.String(), "now", h.Class.String())
			w.Code = codes.Forbidden
			w.Payload = []byte("class mismatch")
			return
		}
		_, changed, err := g.store.PutHello(h, addr)
		g.act.known.Store(node, struct{}{})
		if err != nil {
			g.log.Error("store hello", "node", node, "err", err)
			w.Code = codes.InternalServerError
			return
		}
		g.log.Info("hello", "node", node, "from", addr, "running_seq", h.RunningSeq, "slot", h.ActiveSlot.String(), "state", h.ActiveState.String())
		if n, err := g.store.Node(node); err == nil {
			if err := g.rollouts.Hello(nodeInfo(n), g.previousManifest, g.clock()); err != nil {
				g.log.Error("rollout: hello", "node", node, "err", err)
			}
		}
		if changed {
			g.notifyManifest(node, false, g.observers.next(node))
		}
	case "health":
		var rep protocol.HealthReport
		if err := protocol.DecodeHealthReport(body, &rep); err != nil {
			bad(err)
			return
		}
		if rep.NodeID != node {
			otherNode(rep.NodeID)
			return
		}
		if _, ok := g.act.known.Load(node); !ok {
			g.unknownNode(w)
			return
		}
		g.act.health(&rep, addr, g.clock())
		if err := g.rollouts.Health(&rep, g.clock()); err != nil {
			g.log.Error("rollout: health", "node", node, "err", err)
		}
		g.metrics.health.Inc()
		if g.outbox != nil {
			g.relay(w, outbox.KindHealth, node, body)
			return
		}
	case "status":
		e, err := protocol.DecodeStatusEvent(body)
		if err != nil {
			bad(err)
			return
		}
		if e.NodeID != node {
			otherNode(e.NodeID)
			return
		}
		if _, ok := g.act.known.Load(node); !ok {
			g.unknownNode(w)
			return
		}
		g.act.status(e, addr, g.clock())
		if e.State == protocol.StateProvisioned {
			g.audit(e, r)
		}
		if err := g.rollouts.Status(e, g.clock()); err != nil {
			g.log.Error("rollout: status", "node", node, "err", err)
		}
		if g.outbox != nil {
			g.relay(w, outbox.KindEvent, node, body)
		}
		g.log.Info("status", "node", node, "state", e.State.String(), "seq", e.Seq, "reason_code", e.Code.String(), "reason", e.Reason)
		g.metrics.events.Inc()
		if g.outbox != nil {
			return
		}
	}
	w.Code = codes.Changed
}

func (g *Gateway) unknownNode(w *coapd.Response) {
	w.Code = codes.NotFound
	w.Payload = []byte("say hello first")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// modelIndex is the in-memory index of cached images, so that serving a
// block costs no database lookup beyond reading its chunk.
type modelIndex struct {
	mu sync.RWMutex
	m  map[protocol.Digest]indexed
}

type indexed struct {
	digest protocol.Digest
	size   int64
}

func (x *modelIndex) get(d protocol.Digest) (indexed, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	v, ok := x.m[d]
	return v, ok
}

func (x *modelIndex) set(d protocol.Digest, size int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.m == nil {
		x.m = map[protocol.Digest]indexed{}
	}
	x.m[d] = indexed{d, size}
}

func (x *modelIndex) del(d protocol.Digest) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.m, d)
}

func (x *modelIndex) list() []indexed {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]indexed, 0, len(x.m))
	for _, v := range x.m {
		out = append(out, v)
	}
	sortIndexed(out)
	return out
}

func sortIndexed(v []indexed) {
	slices.SortFunc(v, func(a, b indexed) int { return strings.Compare(a.digest.String(), b.digest.String()) })
}
