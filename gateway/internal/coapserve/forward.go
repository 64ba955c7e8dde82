package coapserve

import (
	"errors"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"edgeota/gateway/internal/coapd"
	"edgeota/gateway/internal/outbox"
	"edgeota/gateway/internal/rollout"
)

// outboxFullMaxAge is how long a node waits after a 5.03 for a full outbox.
const outboxFullMaxAge = 30

// forward appends a node document to the outbox for the uplink and answers
// the node once it is durable, and so is what the rollouts decided on it
// (c): 2.04, or 5.03 with Max-Age when the outbox is full even after
// dropping old health reports (status events are never dropped).
func (h *Handler) forward(w *coapd.Response, kind outbox.Kind, node string, body []byte, c rollout.Commit) {
	d := w.Defer()
	err := h.cfg.Outbox.Append(kind, node, body, func(err error) { // Append copies body
		if err != nil {
			h.log.Error("outbox append", "node", node, "kind", kind.String(), "err", err)
			d.Complete(func(w *coapd.Response) {
				w.Code = codes.ServiceUnavailable
				w.SetUint32(message.MaxAge, outboxFullMaxAge)
			})
			return
		}
		h.cfg.Uplink.Kick(kind)
		c.Then(func(err error) {
			if err != nil {
				h.log.Error("rollout: commit", "node", node, "kind", kind.String(), "err", err)
				d.Complete(func(w *coapd.Response) { w.Code = codes.InternalServerError })
				return
			}
			d.Complete(func(w *coapd.Response) { w.Code = codes.Changed })
		})
	})
	if errors.Is(err, outbox.ErrFull) {
		h.cfg.Metrics.Refused.WithLabelValues("outbox_full").Inc()
		h.log.Warn("outbox full: node told to retry", "node", node, "kind", kind.String())
		d.Complete(func(w *coapd.Response) {
			w.Code = codes.ServiceUnavailable
			w.SetUint32(message.MaxAge, outboxFullMaxAge)
		})
		return
	}
	if err != nil {
		h.log.Error("outbox append", "node", node, "err", err)
		d.Complete(func(w *coapd.Response) { w.Code = codes.InternalServerError })
	}
}
