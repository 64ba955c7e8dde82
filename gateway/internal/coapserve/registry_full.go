package coapserve

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"edgeota/gateway/internal/coapd"
)

// registryFullMaxAge is the Max-Age, in seconds, of the 5.03 that answers
// a Hello the full node registry refuses: the longest a node waits before
// it tries again (docs/protocol.md section 5).
const registryFullMaxAge = 60

// registryFullLogEvery is how often at most the refusals of a full
// registry are logged at warn level.
const registryFullLogEvery = time.Minute

// registryFull answers a Hello from a new node that the full registry
// refused: 5.03 with Max-Age, counted as registry_full, and logged
// without flooding the log.
func (h *Handler) registryFull(w *coapd.Response, node, addr string) {
	h.cfg.Metrics.Refused.WithLabelValues("registry_full").Inc()
	if warn, n := h.fullLog.refused(time.Now()); warn {
		h.log.Warn("hellos from new nodes refused: the node registry is full (raise --max-nodes)",
			"refused", n, "latest_node", node, "from", addr)
	} else if h.log.Enabled(context.Background(), slog.LevelDebug) {
		h.log.Debug("hello refused: node registry full", "node", node, "from", addr)
	}
	w.Code = codes.ServiceUnavailable
	w.SetUint32(message.MaxAge, registryFullMaxAge)
	w.Payload = []byte("node registry full")
}

// quietLog paces a warning that a flood could repeat: the first
// occurrence is logged, then at most one summary per period, saying how
// many occurred since the last one.
type quietLog struct {
	mu    sync.Mutex
	next  time.Time // no warning before
	since int       // occurrences not yet in a warning
}

// refused counts one occurrence at now and reports whether to log a
// warning, and how many occurrences it covers.
func (q *quietLog) refused(now time.Time) (warn bool, n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.since++
	if now.Before(q.next) {
		return false, 0
	}
	n, q.since, q.next = q.since, 0, now.Add(registryFullLogEvery)
	return true, n
}
