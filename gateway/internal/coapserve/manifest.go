package coapserve

import (
	"errors"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"edgeota/gateway/internal/coapd"
	"edgeota/gateway/internal/observe"
	"edgeota/gateway/internal/store"
)

// serveManifest answers GET /n/{node}/manifest, registering or cancelling
// an observation (RFC 7641). The manifest carries the node's delta offer
// when it has one (docs/protocol.md "Delta updates (v1.4)"); the ETag is
// taken over the bytes sent.
func (h *Handler) serveManifest(w *coapd.Response, r *coapd.Request, node string) {
	n, err := h.cfg.Store.Node(node)
	if err != nil {
		w.Code = codes.NotFound
		return
	}
	payload, err := h.cfg.Store.Assignment(node)
	if err != nil {
		h.log.Error("read assignment", "node", node, "err", err)
		w.Code = codes.InternalServerError
		return
	}
	if h.cfg.Offers != nil {
		payload = h.cfg.Offers.Offer(n, payload)
	}
	etag := observe.ETag(payload)
	obs, err := r.Msg.Options.Observe()
	registering := err == nil && obs == 0
	if err == nil && obs == 1 {
		h.cfg.Observers.Remove(node, r.From, r.Msg.Token)
		h.cfg.Store.DeleteObserver(node, r.From.String())
	}
	w.Code = codes.Content
	if registering {
		ob, changed, evicted := h.cfg.Observers.Add(node, r.From, r.Identity, r.Msg.Token, h.cfg.Now())
		w.SetUint32(message.Observe, ob.Seq)
		h.cfg.Metrics.Observers.Set(float64(h.cfg.Observers.Count()))
		// Saved, so that notifications resume after a restart; a DTLS
		// session does not survive one, so its observations are not.
		if changed && r.Identity == "" {
			if err := h.cfg.Store.PutObserver(store.Observer{Node: node, Addr: r.From.String(), Token: ob.Token}); err != nil {
				h.log.Warn("save observer", "node", node, "err", err)
			}
		}
		if evicted != nil {
			h.cfg.Store.DeleteObserver(node, evicted.Addr.String())
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

// Notify sends the current assignment of node to its observers, in
// non-confirmable notifications.
func (h *Handler) Notify(node string) {
	h.notify(node, false, h.cfg.Observers.Next(node))
}

// NotifyDue sends a confirmable notification to every observer that had
// none for every (docs/protocol.md section 5), as of now.
func (h *Handler) NotifyDue(now time.Time, every time.Duration) {
	for _, ob := range h.cfg.Observers.Due(now, every) {
		h.notify(ob.Node, true, []observe.Observer{ob})
	}
}

// notify sends the current assignment of node to obs. A failed
// notification drops the observation.
func (h *Handler) notify(node string, confirmable bool, obs []observe.Observer) {
	if len(obs) == 0 {
		return
	}
	payload, err := h.cfg.Store.Assignment(node)
	if err != nil {
		h.log.Error("read assignment", "node", node, "err", err)
		return
	}
	if h.cfg.Offers != nil {
		if n, err := h.cfg.Store.Node(node); err == nil {
			payload = h.cfg.Offers.Offer(n, payload)
		}
	}
	etag := observe.ETag(payload)
	for _, ob := range obs {
		err := h.cfg.Sender.Notify(ob.Addr, ob.Identity, ob.Token, confirmable, func(w *coapd.Response) {
			w.Code = codes.Content
			w.SetUint32(message.Observe, ob.Seq)
			w.SetBytes(message.ETag, etag)
			w.SetUint32(message.MaxAge, manifestMaxAge)
			w.SetContentFormat(cfCOSESign1)
			w.Payload = payload
		}, func() {
			h.log.Info("observer gone", "node", ob.Node, "addr", ob.Addr.String())
			h.cfg.Observers.Remove(ob.Node, ob.Addr, ob.Token)
			h.cfg.Store.DeleteObserver(ob.Node, ob.Addr.String())
			h.cfg.Metrics.Observers.Set(float64(h.cfg.Observers.Count()))
		})
		if errors.Is(err, coapd.ErrNoSession) {
			h.log.Info("observer's session ended", "node", ob.Node, "addr", ob.Addr.String())
			h.cfg.Observers.Remove(ob.Node, ob.Addr, ob.Token)
			h.cfg.Metrics.Observers.Set(float64(h.cfg.Observers.Count()))
			continue
		}
		if err != nil {
			h.log.Error("notify", "node", node, "err", err)
			continue
		}
		h.cfg.Metrics.Notifications.Inc()
	}
}
