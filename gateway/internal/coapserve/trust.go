package coapserve

import (
	"errors"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"edgeota/gateway/internal/coapd"
	"edgeota/gateway/internal/observe"
)

// serveTrust answers GET /n/{node}/trust (v1.3): the trust update the
// gateway applied last, an empty payload when none, observable like the
// manifest. A node that never said Hello gets 4.04, as for the manifest.
func (h *Handler) serveTrust(w *coapd.Response, r *coapd.Request, node string) {
	if h.cfg.Trust == nil || h.cfg.TrustObservers == nil {
		w.Code = codes.NotFound
		return
	}
	if _, err := h.cfg.Store.Node(node); err != nil {
		w.Code = codes.NotFound
		return
	}
	payload := h.cfg.Trust.Signed()
	etag := observe.ETag(payload)
	obs, err := r.Msg.Options.Observe()
	registering := err == nil && obs == 0
	if err == nil && obs == 1 {
		h.cfg.TrustObservers.Remove(node, r.From, r.Msg.Token)
	}
	w.Code = codes.Content
	if registering {
		ob, _, _ := h.cfg.TrustObservers.Add(node, r.From, r.Identity, r.Msg.Token, h.cfg.Now())
		w.SetUint32(message.Observe, ob.Seq)
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

// NotifyTrust sends the current trust update to every node observing it,
// in non-confirmable notifications.
func (h *Handler) NotifyTrust() {
	if h.cfg.Trust == nil || h.cfg.TrustObservers == nil {
		return
	}
	payload := h.cfg.Trust.Signed()
	etag := observe.ETag(payload)
	for _, ob := range h.cfg.TrustObservers.All() {
		err := h.cfg.Sender.Notify(ob.Addr, ob.Identity, ob.Token, false, func(w *coapd.Response) {
			w.Code = codes.Content
			w.SetUint32(message.Observe, ob.Seq)
			w.SetBytes(message.ETag, etag)
			w.SetUint32(message.MaxAge, manifestMaxAge)
			w.SetContentFormat(cfCOSESign1)
			w.Payload = payload
		}, func() {
			h.cfg.TrustObservers.Remove(ob.Node, ob.Addr, ob.Token)
		})
		if errors.Is(err, coapd.ErrNoSession) {
			h.cfg.TrustObservers.Remove(ob.Node, ob.Addr, ob.Token)
			continue
		}
		if err != nil {
			h.log.Error("notify trust update", "node", ob.Node, "err", err)
			continue
		}
		h.cfg.Metrics.Notifications.Inc()
	}
}
