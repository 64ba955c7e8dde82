package gateway

import (
	"errors"
	"strings"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"edgeota/gateway/internal/coapd"
	"edgeota/gateway/internal/outbox"
)

// outboxFullMaxAge is how long a node waits after a 5.03 for a full outbox.
const outboxFullMaxAge = 30

// relay appends a node document to the outbox and answers the node once it
// is durable: 2.04, or 5.03 with Max-Age when the outbox is full even after
// dropping old health reports (status events are never dropped).
func (g *Gateway) relay(w *coapd.Response, kind outbox.Kind, node string, body []byte) {
	d := w.Defer()
	err := g.outbox.Append(kind, node, body, func(err error) { // Append copies body
		if err != nil {
			g.log.Error("outbox append", "node", node, "kind", kind.String(), "err", err)
			d.Complete(func(w *coapd.Response) {
				w.Code = codes.ServiceUnavailable
				w.SetUint32(message.MaxAge, outboxFullMaxAge)
			})
			return
		}
		d.Complete(func(w *coapd.Response) { w.Code = codes.Changed })
		g.uplink.Kick(kind)
	})
	if errors.Is(err, outbox.ErrFull) {
		g.metrics.refused.WithLabelValues("outbox_full").Inc()
		g.log.Warn("outbox full: node told to retry", "node", node, "kind", kind.String())
		d.Complete(func(w *coapd.Response) {
			w.Code = codes.ServiceUnavailable
			w.SetUint32(message.MaxAge, outboxFullMaxAge)
		})
		return
	}
	if err != nil {
		g.log.Error("outbox append", "node", node, "err", err)
		d.Complete(func(w *coapd.Response) { w.Code = codes.InternalServerError })
	}
}

// parseMQTT splits --mqtt into a broker URL, or the embedded broker and
// its address.
func parseMQTT(s string) (url string, embedded bool, addr string) {
	if s == "embedded" {
		return "", true, ""
	}
	if rest, ok := strings.CutPrefix(s, "embedded:"); ok {
		return "", true, rest
	}
	return s, false, ""
}
