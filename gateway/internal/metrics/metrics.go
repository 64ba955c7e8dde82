// Package metrics holds the gateway's Prometheus metrics, served on the
// admin port at /metrics (docs/operations.md lists them). Their names are
// part of what operators rely on: they do not change.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"edgeota/gateway/internal/qblock"
)

// Metrics are the gateway's own metrics; the uplink and the outbox gauges
// register theirs in Registry too.
type Metrics struct {
	// Registry holds every metric of the gateway.
	Registry *prometheus.Registry
	// Requests counts CoAP requests answered, by resource kind and code.
	Requests *prometheus.CounterVec
	// Blocks counts the image and delta blocks served.
	Blocks prometheus.Counter
	// Bytes counts the payload bytes served, by kind: "full" for images,
	// "delta" for deltas (docs/protocol.md "Delta updates (v1.4)").
	Bytes *prometheus.CounterVec
	// DeltasComputed counts the deltas computed, by result: "offered"
	// (kept and offered), "too_large" (not 20% smaller than the image),
	// "failed"; DeltaSeconds observes how long each took.
	DeltasComputed *prometheus.CounterVec
	DeltaSeconds   prometheus.Histogram
	// DeltaCacheBytes is the size of the stored deltas; DeltaOffers counts
	// the manifest answers and notifications made with a delta offer.
	DeltaCacheBytes prometheus.Gauge
	DeltaOffers     prometheus.Counter
	// TransfersStarted counts the image transfers admitted.
	TransfersStarted prometheus.Counter
	// Refused counts requests refused, by reason.
	Refused *prometheus.CounterVec
	// Observers is the number of manifest observations.
	Observers prometheus.Gauge
	// Notifications counts manifest notifications sent.
	Notifications prometheus.Counter
	// Health and StatusEvents count the node documents accepted.
	Health, StatusEvents prometheus.Counter
	// CacheBytes is the size of the cached images; Evictions counts the
	// images the quota evicted.
	CacheBytes prometheus.Gauge
	Evictions  prometheus.Counter
	// OutboxDropped counts health reports dropped from a full outbox.
	OutboxDropped prometheus.Counter
	// AdminRefused counts admin requests refused 401, by reason.
	AdminRefused *prometheus.CounterVec
	// DTLSHandshakes counts DTLS handshakes, by result.
	DTLSHandshakes *prometheus.CounterVec
}

// Gauges are the values the metrics read when scraped.
type Gauges struct {
	// TransfersActive is the number of transfers in progress.
	TransfersActive func() float64
	// Sessions is the number of DTLS sessions; SessionsRefused counts
	// those refused before their handshake.
	Sessions, SessionsRefused func() float64
	// Nodes is the number of nodes in the registry.
	Nodes func() float64
	// QBlock reads the counters of the Q-Block2 transfers (RFC 9177);
	// nil: none.
	QBlock func() qblock.Stats
}

// New returns the metrics, registered in a new registry with the Go and
// process collectors, the gauges g, and limits: each configured limit by
// name as the edgeota_limit gauge, and the transfer limits ("max_transfers",
// "max_transfers_per_node") under their own names as well.
func New(g Gauges, limits map[string]float64) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgeota_coap_requests_total",
			Help: "CoAP requests answered, by resource kind and response code."}, []string{"resource", "code"}),
		Blocks: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeota_image_blocks_served_total",
			Help: "Image and delta blocks (Block2) served."}),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgeota_image_bytes_served_total",
			Help: "Payload bytes served, by kind: full (images) or delta (deltas, docs/protocol.md \"Delta updates (v1.4)\")."}, []string{"kind"}),
		DeltasComputed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgeota_deltas_computed_total",
			Help: "Deltas computed, by result: offered (kept and offered), too_large (not at least 20% smaller than the image, or larger than the delta cache bound: not offered), failed."}, []string{"result"}),
		DeltaSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "edgeota_delta_compute_seconds",
			Help: "Time to compute one delta.", Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30}}),
		DeltaCacheBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgeota_delta_cache_bytes",
			Help: "Bytes of stored deltas."}),
		DeltaOffers: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeota_delta_offers_total",
			Help: "Manifest answers and notifications made with a delta offer (2.03 answers to a node that holds it included)."}),
		TransfersStarted: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeota_image_transfers_started_total",
			Help: "Image transfers admitted."}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgeota_refused_total",
			Help: "Requests refused, by reason (transfers: over a transfer limit, malformed: bad node document, registry_full: a Hello from a new node over max_nodes)."}, []string{"reason"}),
		Observers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgeota_manifest_observers",
			Help: "Registered observations of node manifests."}),
		Notifications: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeota_manifest_notifications_total",
			Help: "Manifest notifications sent."}),
		Health: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeota_health_reports_total",
			Help: "Health reports accepted (each stored once)."}),
		StatusEvents: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeota_status_events_total",
			Help: "Status events accepted."}),
		CacheBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgeota_cache_bytes",
			Help: "Bytes of cached model images."}),
		Evictions: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeota_cache_evictions_total",
			Help: "Model images evicted by the cache quota."}),
		OutboxDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeota_outbox_dropped_total",
			Help: "Health reports dropped from a full outbox (oldest first; status events are never dropped)."}),
		AdminRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgeota_admin_refused_total",
			Help: "Admin API requests refused 401, by reason (missing: no bearer token, invalid: a wrong one)."}, []string{"reason"}),
		DTLSHandshakes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgeota_dtls_handshakes_total",
			Help: "DTLS handshakes, by result (failed: wrong key, unknown identity, timeout)."}, []string{"result"}),
	}
	m.Bytes.WithLabelValues("full")
	m.Bytes.WithLabelValues("delta")
	for _, r := range []string{"offered", "too_large", "failed"} {
		m.DeltasComputed.WithLabelValues(r)
	}
	m.AdminRefused.WithLabelValues("missing")
	m.AdminRefused.WithLabelValues("invalid")
	limit := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "edgeota_limit",
		Help: "Configured limits: rates in requests per second (negative: off), bursts in requests, sizes in bytes, counts."},
		[]string{"name"})
	for name, v := range limits {
		limit.WithLabelValues(name).Set(v)
	}
	reg.MustRegister(m.Requests, m.Blocks, m.Bytes, m.TransfersStarted, m.Refused, m.Observers,
		m.Notifications, m.Health, m.StatusEvents, m.CacheBytes, m.Evictions, m.OutboxDropped, m.AdminRefused,
		m.DTLSHandshakes, m.DeltasComputed, m.DeltaSeconds, m.DeltaCacheBytes, m.DeltaOffers, limit,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgeota_image_transfers_active", Help: "Image transfers in progress."},
			g.TransfersActive),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgeota_transfer_limit_total", Help: "Configured limit of concurrent transfers."},
			constant(limits["max_transfers"])),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgeota_transfer_limit_per_node", Help: "Configured limit of concurrent transfers per node."},
			constant(limits["max_transfers_per_node"])),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "edgeota_dtls_sessions_refused_total",
			Help: "DTLS sessions refused before their handshake: the session limit, the handshake limit or the per-source handshake limit was full."},
			g.SessionsRefused),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgeota_dtls_sessions", Help: "Established DTLS sessions."}, g.Sessions),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgeota_nodes",
			Help: "Nodes in the registry; a Hello from a new node is refused once it reaches edgeota_limit{name=\"max_nodes\"}."}, g.Nodes),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if g.QBlock != nil {
		reg.MustRegister(qblockCollector(g.QBlock))
	}
	return m
}

var (
	qTransfers = prometheus.NewDesc("edgeota_qblock_transfers",
		"Q-Block2 (RFC 9177) transfers in flight: streaming, or lingering after their last burst for recovery requests.", nil, nil)
	qStarted = prometheus.NewDesc("edgeota_qblock_transfers_started_total", "Q-Block2 transfers started.", nil, nil)
	qEnded   = prometheus.NewDesc("edgeota_qblock_transfers_ended_total",
		"Q-Block2 transfers ended, by reason: done, vanished (bursts unanswered), failed (a confirmable block unacknowledged), replaced, closed.",
		[]string{"reason"}, nil)
	qSets = prometheus.NewDesc("edgeota_qblock_bursts_total",
		"Q-Block2 bursts (MAX_PAYLOADS sets) sent, by trigger: request, continue, ack, pace (no Continue came).",
		[]string{"trigger"}, nil)
	qHeard = prometheus.NewDesc("edgeota_qblock_recovery_requests_total",
		"Requests for missing Q-Block2 blocks of transfers in flight.", nil, nil)
)

// qblockCollector reads the Q-Block2 table's counters when scraped.
type qblockCollector func() qblock.Stats

func (c qblockCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- qTransfers
	ch <- qStarted
	ch <- qEnded
	ch <- qSets
	ch <- qHeard
}

func (c qblockCollector) Collect(ch chan<- prometheus.Metric) {
	s := c()
	ch <- prometheus.MustNewConstMetric(qTransfers, prometheus.GaugeValue, float64(s.Transfers))
	ch <- prometheus.MustNewConstMetric(qStarted, prometheus.CounterValue, float64(s.Started))
	ch <- prometheus.MustNewConstMetric(qHeard, prometheus.CounterValue, float64(s.Heard))
	for r, n := range s.Ended {
		ch <- prometheus.MustNewConstMetric(qEnded, prometheus.CounterValue, float64(n), qblock.Reason(r).String())
	}
	for tr, n := range s.Sets {
		ch <- prometheus.MustNewConstMetric(qSets, prometheus.CounterValue, float64(n), qblock.Trigger(tr).String())
	}
}

func constant(v float64) func() float64 { return func() float64 { return v } }
