package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the gateway's Prometheus metrics, served on the admin port at
// /metrics.
type metrics struct {
	reg              *prometheus.Registry
	requests         *prometheus.CounterVec
	blocks           prometheus.Counter
	bytes            prometheus.Counter
	transfersStarted prometheus.Counter
	transfersActive  prometheus.GaugeFunc
	refused          *prometheus.CounterVec
	observers        prometheus.Gauge
	notifications    prometheus.Counter
	health           prometheus.Counter
	events           prometheus.Counter
	cacheBytes       prometheus.Gauge
	evictions        prometheus.Counter
	outboxDropped    prometheus.Counter
	adminRefused     *prometheus.CounterVec
}

func newMetrics(g *Gateway) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgeota_coap_requests_total",
			Help: "CoAP requests answered, by resource kind and response code."}, []string{"resource", "code"}),
		blocks: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeota_image_blocks_served_total",
			Help: "Image blocks (Block2) served."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeota_image_bytes_served_total",
			Help: "Image payload bytes served."}),
		transfersStarted: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeota_image_transfers_started_total",
			Help: "Image transfers admitted."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgeota_refused_total",
			Help: "Requests refused, by reason (transfers: over a transfer limit, malformed: bad node document)."}, []string{"reason"}),
		observers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgeota_manifest_observers",
			Help: "Registered observations of node manifests."}),
		notifications: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeota_manifest_notifications_total",
			Help: "Manifest notifications sent."}),
		health: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeota_health_reports_total",
			Help: "Health reports accepted (each stored once)."}),
		events: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeota_status_events_total",
			Help: "Status events accepted."}),
		cacheBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgeota_cache_bytes",
			Help: "Bytes of cached model images."}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeota_cache_evictions_total",
			Help: "Model images evicted by the cache quota."}),
		outboxDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeota_outbox_dropped_total",
			Help: "Health reports dropped from a full outbox (oldest first; status events are never dropped)."}),
	}
	m.transfersActive = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgeota_image_transfers_active",
		Help: "Image transfers in progress."}, func() float64 { return float64(g.transfers.count()) })
	reg.MustRegister(m.requests, m.blocks, m.bytes, m.transfersStarted, m.transfersActive, m.refused, m.observers,
		m.notifications, m.health, m.events, m.cacheBytes, m.evictions, m.outboxDropped,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgeota_transfer_limit_total", Help: "Configured limit of concurrent transfers."},
			func() float64 { return float64(g.cfg.MaxTransfers) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgeota_transfer_limit_per_node", Help: "Configured limit of concurrent transfers per node."},
			func() float64 { return float64(g.cfg.MaxTransfersPerNode) }),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.adminRefused = newAdminRefused(reg)
	return m
}
