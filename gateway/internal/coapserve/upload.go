package coapserve

import (
	"errors"
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"edgeota/gateway/internal/coapd"
	"edgeota/gateway/internal/outbox"
	"edgeota/gateway/internal/rollout"
	"edgeota/gateway/internal/store"
	"edgeota/protocol"
)

// serveUpload takes a Hello, health report or status event.
func (h *Handler) serveUpload(w *coapd.Response, r *coapd.Request, node string, res protocol.NodeResource) {
	cf, err := r.Msg.Options.ContentFormat()
	if err != nil || cf != cfCBOR {
		w.Code = codes.UnsupportedMediaType
		return
	}
	body := r.Msg.Payload
	addr := r.From.String()
	if len(body) > h.cfg.MaxBody {
		h.cfg.Metrics.Refused.WithLabelValues("body").Inc()
		w.Code = codes.RequestEntityTooLarge
		w.SetUint32(message.Size1, uint32(h.cfg.MaxBody))
		return
	}
	bad := func(err error) {
		h.log.Info("refused node document", "node", node, "kind", string(res), "from", addr, "err", err)
		h.cfg.Metrics.Refused.WithLabelValues("malformed").Inc()
		w.Code = codes.BadRequest
		w.Payload = []byte(protocol.Truncate(err.Error(), protocol.MaxErrorTextLen))
	}
	// A body naming another node than the path: 4.00, or 4.03 under DTLS
	// where the path is the session's own identity (docs/protocol.md section 5).
	otherNode := func(docNode string) {
		if r.Identity == "" {
			bad(fmt.Errorf("%s for %q posted to %s", res, docNode, protocol.NodePath(node, res)))
			return
		}
		h.cfg.Metrics.Refused.WithLabelValues("identity").Inc()
		h.log.Warn("document for another node", "identity", r.Identity, "names", docNode, "from", addr)
		w.Code = codes.Forbidden
		w.Payload = []byte("document names another node")
	}
	switch res {
	case protocol.ResHello:
		hello, err := protocol.DecodeHello(body)
		if err != nil {
			bad(err)
			return
		}
		if hello.NodeID != node {
			otherNode(hello.NodeID)
			return
		}
		h.hello(w, hello, addr)
		return
	case protocol.ResHealth:
		var rep protocol.HealthReport
		if err := protocol.DecodeHealthReport(body, &rep); err != nil {
			bad(err)
			return
		}
		if rep.NodeID != node {
			otherNode(rep.NodeID)
			return
		}
		if !h.cfg.Activity.Known(node) {
			unknownNode(w)
			return
		}
		now := h.cfg.Now()
		h.cfg.Activity.Health(&rep, addr, now)
		c := h.cfg.Rollouts.Health(&rep, now)
		h.cfg.Metrics.Health.Inc()
		if h.cfg.Outbox != nil {
			h.forward(w, outbox.KindHealth, node, body, c)
			return
		}
		h.answerWhen(w, c, node, res)
		return
	case protocol.ResStatus:
		e, err := protocol.DecodeStatusEvent(body)
		if err != nil {
			bad(err)
			return
		}
		if e.NodeID != node {
			otherNode(e.NodeID)
			return
		}
		if !h.cfg.Activity.Known(node) {
			unknownNode(w)
			return
		}
		now := h.cfg.Now()
		h.cfg.Activity.Status(e, addr, now)
		if e.State == protocol.StateProvisioned {
			h.cfg.Audit.Provisioned(e, r.From, r.Identity == e.NodeID, now)
		}
		c := h.cfg.Rollouts.Status(e, now)
		h.log.Info("status", "node", node, "state", e.State.String(), "seq", e.Seq, "reason_code", e.Code.String(), "reason", e.Reason)
		h.cfg.Metrics.StatusEvents.Inc()
		if h.cfg.Outbox != nil {
			h.forward(w, outbox.KindStatus, node, body, c)
			return
		}
		h.answerWhen(w, c, node, res)
		return
	}
	w.Code = codes.Changed
}

// answerWhen answers a node's document 2.04 once what the rollouts decided
// on it is durable, 5.00 when that failed (the node sends it again).
func (h *Handler) answerWhen(w *coapd.Response, c rollout.Commit, node string, res protocol.NodeResource) {
	if c.Durable() {
		w.Code = codes.Changed
		return
	}
	h.completeWhen(w.Defer(), c, node, res)
}

// completeWhen completes a deferred answer as answerWhen answers.
func (h *Handler) completeWhen(d *coapd.Deferred, c rollout.Commit, node string, res protocol.NodeResource) {
	c.Then(func(err error) {
		if err != nil {
			h.log.Error("rollout: commit", "node", node, "kind", string(res), "err", err)
			d.Complete(func(w *coapd.Response) { w.Code = codes.InternalServerError })
			return
		}
		d.Complete(func(w *coapd.Response) { w.Code = codes.Changed })
	})
}

// maxHellosStoring bounds the Hellos being stored at once, each on its own
// goroutine; a Hello beyond it holds its worker until one is done.
const maxHellosStoring = 256

// hello registers a node's Hello: a node's class never changes.
//
// A Hello that repeats what the registry holds (a node that restarted with
// nothing changed) writes nothing to the registry: LastSeen and Addr go
// with the node's other activity, recorded once a second (package
// activity); the node is known already, durably. Any other Hello (a new
// node, an activation, a revert, new labels) is committed before its 2.04,
// so a gateway killed after the answer still knows what the node runs:
// rollouts started later and the standing rule read it from the registry
// (docs/protocol.md section 5: the gateway remembers every node across
// restarts). That commit is shared with the Hellos arriving together
// (store.DB.PutHello batches), which is why the Hello is stored on a
// goroutine of its own: a worker waiting for the commit would hold the
// datagrams it read after this one, and the commit would carry one Hello
// instead of many.
func (h *Handler) hello(w *coapd.Response, hello *protocol.Hello, addr string) {
	node := hello.NodeID
	prev, err := h.cfg.Store.Node(node)
	if err == nil && prev.Class != hello.Class {
		h.log.Warn("hello refused: class changed", "node", node, "from", addr, "was", prev.Class.String(), "now", hello.Class.String())
		w.Code = codes.Forbidden
		w.Payload = []byte("class mismatch")
		return
	}
	if err == nil {
		if changes, err := h.cfg.Store.HelloChanges(hello); err == nil && !changes {
			now := h.cfg.Now()
			h.cfg.Activity.Seen(node, addr, now)
			prev.LastSeen, prev.Addr = now, addr
			h.logHello(hello, addr)
			h.answerWhen(w, h.cfg.Rollouts.Hello(prev, now), node, protocol.ResHello)
			return
		}
	}
	d := w.Defer()
	h.storing <- struct{}{}
	h.stores.Add(1)
	go func() {
		defer func() {
			<-h.storing
			h.stores.Done()
		}()
		n, changed, err := h.cfg.Store.PutHello(hello, addr)
		if errors.Is(err, store.ErrRegistryFull) {
			d.Complete(func(w *coapd.Response) { h.registryFull(w, node, addr) })
			return
		}
		if err != nil {
			h.log.Error("store hello", "node", node, "err", err)
			d.Complete(func(w *coapd.Response) { w.Code = codes.InternalServerError })
			return
		}
		h.cfg.Activity.Hello(node) // only once stored: a refused node stays unknown
		h.logHello(hello, addr)
		if changed {
			h.Notify(node)
		}
		h.completeWhen(d, h.cfg.Rollouts.Hello(n, h.cfg.Now()), node, protocol.ResHello)
	}()
}

// Wait waits until the Hellos being stored are stored and answered; the
// gateway calls it once CoAP is no longer served, before it closes the
// database.
func (h *Handler) Wait() { h.stores.Wait() }

func (h *Handler) logHello(hello *protocol.Hello, addr string) {
	h.log.Info("hello", "node", hello.NodeID, "from", addr, "running_seq", hello.RunningSeq, "slot", hello.ActiveSlot.String(), "state", hello.ActiveState.String())
}

func unknownNode(w *coapd.Response) {
	w.Code = codes.NotFound
	w.Payload = []byte("say hello first")
}
