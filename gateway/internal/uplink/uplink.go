package uplink

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/prometheus/client_golang/prometheus"

	"edgeota/gateway/internal/outbox"
	"edgeota/protocol"
)

// Queue is the durable outbox the uplink drains (package outbox).
type Queue interface {
	Peek(kind outbox.Kind, max int) ([]outbox.Item, error)
	Ack(items []outbox.Item) error
	Nack(kind outbox.Kind)
	Stats() outbox.Stats
}

// Config configures an Uplink.
type Config struct {
	// Broker is the broker URL: tcp://HOST:1883 or ssl://HOST:8883.
	Broker string
	// GatewayID names the gateway in topics ({gw}).
	GatewayID string
	// Prefix of every topic (default protocol.DefaultTopicPrefix).
	Prefix string
	// TLS configures mqtts:// (or ssl://) brokers (CA, client certificate).
	TLS *tls.Config
	// Username and Password authenticate to the broker.
	Username, Password string
	// BatchMax is the most items per publish (default 512, at most 1024);
	// BatchInterval the longest an item waits for a batch to fill (default
	// 100ms).
	BatchMax      int
	BatchInterval time.Duration
	// InFlight is how many batches per kind may await their PUBACK
	// (default 8).
	InFlight int
	// OnDeployment receives the messages of the gateway's and the fleet's
	// deployment topics (topic, payload; an empty payload withdraws). It
	// runs on its own goroutine.
	OnDeployment func(topic string, payload []byte)
	// Logger receives structured logs (default: discard).
	Logger *slog.Logger
	// Registerer receives the uplink's metrics (default: none).
	Registerer prometheus.Registerer
}

// Uplink is a gateway's MQTT connection.
type Uplink struct {
	cfg       Config
	topics    protocol.Topics
	q         Queue
	log       *slog.Logger
	client    mqtt.Client
	connected atomic.Bool
	kick      [2]chan struct{}
	reconnect chan struct{}
	inflight  [2]atomic.Int64 // items peeked and not yet acked or nacked, per kind
	gen       [2]atomic.Int64 // bumped by a Nack: batches of older generations no longer count
	m         metrics

	// retainedTimeout bounds the wait for a rollout status's PUBACK
	// (10s; a test sets it longer).
	retainedTimeout time.Duration

	failMu      sync.Mutex
	lastFailure string // the last connection failure logged, "" once connected

	rolloutMu   sync.Mutex
	rollouts    map[string]any // rollout statuses not yet published, latest wins
	rolloutWake chan struct{}
}

type metrics struct {
	batches   *prometheus.CounterVec
	items     *prometheus.CounterVec
	latency   prometheus.Histogram
	connected prometheus.GaugeFunc
	bytes     *prometheus.CounterVec
}

// MaxBatch is the most items in one publish (docs/protocol.md section 6).
const MaxBatch = 1024

// Topic returns the topic of kind of this gateway: Topic(protocol.TopicHealth)
// is {prefix}/gw/{gw}/health.
func (u *Uplink) Topic(kind protocol.TopicKind) string {
	return u.topics.Gateway(u.cfg.GatewayID, kind)
}

// topicOf is the topic kind of an outbox kind.
func topicOf(k outbox.Kind) protocol.TopicKind {
	if k == outbox.KindHealth {
		return protocol.TopicHealth
	}
	return protocol.TopicStatus
}

// New builds an uplink draining q; Run connects.
func New(cfg Config, q Queue) (*Uplink, error) {
	if cfg.Broker == "" || cfg.GatewayID == "" {
		return nil, errors.New("uplink: Broker and GatewayID are required")
	}
	if cfg.BatchMax <= 0 {
		cfg.BatchMax = 512
	}
	cfg.BatchMax = min(cfg.BatchMax, MaxBatch)
	if cfg.BatchInterval <= 0 {
		cfg.BatchInterval = 100 * time.Millisecond
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = 8
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	u := &Uplink{cfg: cfg, topics: protocol.Topics{Prefix: cfg.Prefix}, q: q, log: cfg.Logger, reconnect: make(chan struct{}, 1),
		rolloutWake: make(chan struct{}, 1), retainedTimeout: 10 * time.Second}
	for i := range u.kick {
		u.kick[i] = make(chan struct{}, 1)
	}
	u.m = metrics{
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgeota_uplink_batches_published_total",
			Help: "Batches acknowledged by the broker, by kind (its topic's leaf: health, events)."}, []string{"kind"}),
		items: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgeota_uplink_items_published_total",
			Help: "Health reports and status events acknowledged by the broker, by kind (its topic's leaf: health, events)."}, []string{"kind"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgeota_uplink_bytes_published_total",
			Help: "Payload bytes acknowledged by the broker, by kind (its topic's leaf: health, events)."}, []string{"kind"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "edgeota_uplink_publish_seconds",
			Help: "Time from publish to PUBACK of a batch.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
	}
	u.m.connected = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgeota_uplink_connected",
		Help: "1 while the broker connection is up."}, func() float64 {
		if u.connected.Load() {
			return 1
		}
		return 0
	})
	if r := cfg.Registerer; r != nil {
		r.MustRegister(u.m.batches, u.m.items, u.m.bytes, u.m.latency, u.m.connected)
	}
	opts := mqtt.NewClientOptions().AddBroker(cfg.Broker).SetClientID("edgeota-gw-"+cfg.GatewayID).
		SetCleanSession(true).SetOrderMatters(false).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).SetMaxReconnectInterval(5*time.Second).
		SetKeepAlive(15*time.Second).SetPingTimeout(5*time.Second).SetWriteTimeout(10*time.Second).
		SetConnectTimeout(5*time.Second).
		SetWill(u.Topic(protocol.TopicState), protocol.StateOffline, 1, true).
		SetOnConnectHandler(u.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			u.connected.Store(false)
			u.log.Warn("broker connection lost; reports stay in the outbox", "broker", cfg.Broker, "err", err)
		}).
		SetConnectionNotificationHandler(func(_ mqtt.Client, n mqtt.ConnectionNotification) {
			if f, ok := n.(mqtt.ConnectionNotificationFailed); ok {
				u.connectFailed(f.Reason)
			}
		})
	if cfg.TLS != nil {
		opts.SetTLSConfig(cfg.TLS)
	}
	if cfg.Username != "" {
		opts.SetUsername(cfg.Username).SetPassword(cfg.Password)
	}
	u.client = mqtt.NewClient(opts)
	return u, nil
}

// Connected reports whether the broker connection is up.
func (u *Uplink) Connected() bool { return u.connected.Load() }

// Kick tells the publisher of kind that items were appended.
func (u *Uplink) Kick(kind outbox.Kind) {
	select {
	case u.kick[kind&1] <- struct{}{}:
	default:
	}
}

// connectFailed logs a failed connection attempt, once for each reason in
// a row (paho retries every second or so): at error level when the broker
// refused the gateway's credentials, which retrying will not mend. The
// uplink keeps retrying either way; reports wait in the outbox.
func (u *Uplink) connectFailed(err error) {
	u.failMu.Lock()
	same := err.Error() == u.lastFailure
	u.lastFailure = err.Error()
	u.failMu.Unlock()
	if same {
		return
	}
	if errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) || errors.Is(err, packets.ErrorRefusedNotAuthorised) {
		u.log.Error("the MQTT broker refused the gateway's credentials (wrong user name or password, or not allowed to connect); retrying",
			"broker", u.cfg.Broker, "username", u.cfg.Username, "err", err)
		return
	}
	u.log.Warn("cannot connect to the MQTT broker; retrying; reports stay in the outbox", "broker", u.cfg.Broker, "err", err)
}

func (u *Uplink) onConnect(c mqtt.Client) {
	u.failMu.Lock()
	u.lastFailure = ""
	u.failMu.Unlock()
	u.log.Info("broker connected", "broker", u.cfg.Broker, "gateway", u.cfg.GatewayID)
	go func() {
		if t := c.Publish(u.Topic(protocol.TopicState), 1, true, protocol.StateOnline); t.WaitTimeout(10*time.Second) && t.Error() != nil {
			u.log.Warn("publish online state", "err", t.Error())
		}
		if u.cfg.OnDeployment != nil {
			filters := map[string]byte{u.topics.Deployment(u.cfg.GatewayID, "+"): 1, u.topics.FleetDeployment("+"): 1}
			t := c.SubscribeMultiple(filters, func(_ mqtt.Client, m mqtt.Message) {
				u.cfg.OnDeployment(m.Topic(), append([]byte(nil), m.Payload()...))
			})
			if t.WaitTimeout(10*time.Second) && t.Error() != nil {
				u.log.Error("subscribe to deployments", "err", t.Error())
			}
		}
		u.connected.Store(true)
		select {
		case u.reconnect <- struct{}{}:
		default:
		}
		select { // rollout statuses that could not be published
		case u.rolloutWake <- struct{}{}:
		default:
		}
		for k := range u.kick {
			u.Kick(outbox.Kind(k))
		}
	}()
}

// Run connects to the broker (retrying until it answers) and publishes
// until ctx ends; it then says "offline" and disconnects.
func (u *Uplink) Run(ctx context.Context) error {
	u.client.Connect() // with ConnectRetry, connects in the background
	var wg sync.WaitGroup
	for _, k := range []outbox.Kind{outbox.KindHealth, outbox.KindStatus} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u.publisher(ctx, k)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		u.publishRollouts(ctx)
	}()
	wg.Wait()
	if u.client.IsConnectionOpen() {
		t := u.client.Publish(u.Topic(protocol.TopicState), 1, true, protocol.StateOffline)
		t.WaitTimeout(2 * time.Second)
	}
	u.client.Disconnect(500)
	return nil
}

// PublishRollout queues the status of rollout id for its retained rollout
// topic (docs/protocol.md section 6), where it is published as JSON.
// Statuses are queued latest wins, and sent while Run runs; it never
// blocks.
func (u *Uplink) PublishRollout(id string, status any) {
	u.rolloutMu.Lock()
	if u.rollouts == nil {
		u.rollouts = map[string]any{}
	}
	u.rollouts[id] = status
	u.rolloutMu.Unlock()
	select {
	case u.rolloutWake <- struct{}{}:
	default:
	}
}

// publishRollouts sends queued rollout statuses until ctx ends.
func (u *Uplink) publishRollouts(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-u.rolloutWake:
		}
		u.rolloutMu.Lock()
		batch := u.rollouts
		u.rollouts = nil
		u.rolloutMu.Unlock()
		for id, st := range batch {
			if ctx.Err() != nil {
				return
			}
			b, err := json.Marshal(st)
			if err != nil {
				u.log.Error("rollout status", "deployment", id, "err", err)
				continue
			}
			if err := u.publishRetained(ctx, u.topics.Rollout(u.cfg.GatewayID, id), b, u.retainedTimeout); err != nil {
				u.log.Debug("publish rollout status", "deployment", id, "err", err)
				u.requeueRollout(id, st)
			}
		}
	}
}

// requeueRollout queues a status whose publish failed again, unless a newer
// one was queued meanwhile; it goes out at the next wake, at the latest when
// the broker connects again.
func (u *Uplink) requeueRollout(id string, status any) {
	u.rolloutMu.Lock()
	defer u.rolloutMu.Unlock()
	if u.rollouts == nil {
		u.rollouts = map[string]any{}
	}
	if _, newer := u.rollouts[id]; !newer {
		u.rollouts[id] = status
	}
}

// publishRetained publishes a retained QoS 1 message and waits for its
// PUBACK up to timeout, or until ctx ends.
func (u *Uplink) publishRetained(ctx context.Context, topic string, payload []byte, timeout time.Duration) error {
	t := u.client.Publish(topic, 1, true, payload)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return fmt.Errorf("uplink: publish %s: %w", topic, ctx.Err())
	case <-timer.C:
		return fmt.Errorf("uplink: publish %s: no PUBACK within %v", topic, timeout)
	}
}

// publisher drains one kind: batches of up to BatchMax items, each sent
// when full or when its first item waited BatchInterval, InFlight at once.
func (u *Uplink) publisher(ctx context.Context, kind outbox.Kind) {
	topic := u.Topic(topicOf(kind))
	label := string(topicOf(kind))
	slots := make(chan struct{}, u.cfg.InFlight)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if !u.connected.Load() {
			select {
			case <-ctx.Done():
				return
			case <-u.reconnect:
			case <-time.After(time.Second):
			}
			continue
		}
		// Wait for a full batch or the batch interval.
		if n := u.waiting(kind); n < u.cfg.BatchMax {
			if n == 0 {
				select {
				case <-ctx.Done():
					return
				case <-u.kick[kind&1]:
				case <-time.After(time.Second):
				}
				continue
			}
			timer.Reset(u.cfg.BatchInterval)
		fill:
			for u.waiting(kind) < u.cfg.BatchMax {
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
					break fill
				case <-u.kick[kind&1]:
				}
			}
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		items, err := u.q.Peek(kind, u.cfg.BatchMax)
		gen := u.gen[kind&1].Load()
		u.inflight[kind&1].Add(int64(len(items)))
		if err != nil || len(items) == 0 {
			<-slots
			if err != nil {
				u.log.Error("outbox peek", "kind", kind.String(), "err", err)
			}
			continue
		}
		payload := batchPayload(items)
		start := time.Now()
		tok := u.client.Publish(topic, 1, false, payload)
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			defer func() { <-slots }()
			defer func() {
				if u.gen[kind&1].Load() == gen {
					u.inflight[kind&1].Add(-int64(len(items)))
				}
			}()
			select {
			case <-tok.Done():
			case <-ctx.Done():
				return // unacknowledged items stay in the outbox
			}
			if err := tok.Error(); err != nil {
				u.log.Warn("publish failed; batch stays in the outbox", "kind", kind.String(), "items", len(items), "err", err)
				// Every item peeked so far waits again (the outbox's cursor
				// goes back to the oldest unacknowledged one).
				u.gen[kind&1].Add(1)
				u.inflight[kind&1].Store(0)
				u.q.Nack(kind)
				return
			}
			if err := u.q.Ack(items); err != nil {
				u.log.Error("outbox ack", "err", err)
				return
			}
			u.m.latency.Observe(time.Since(start).Seconds())
			u.m.batches.WithLabelValues(label).Inc()
			u.m.items.WithLabelValues(label).Add(float64(len(items)))
			u.m.bytes.WithLabelValues(label).Add(float64(len(payload)))
		}()
	}
}

// waiting is how many committed items of kind wait for a publish: the
// outbox's depth less what is in flight.
func (u *Uplink) waiting(kind outbox.Kind) int {
	st := u.q.Stats()
	return st.Kind(kind).Depth - int(u.inflight[kind&1].Load())
}

// batchPayload is a CBOR array of the items' documents, whose bytes are
// already CBOR: an array head, then the items as they are.
func batchPayload(items []outbox.Item) []byte {
	n := 0
	for _, it := range items {
		n += len(it.Data)
	}
	out := make([]byte, 0, n+3)
	switch c := len(items); {
	case c < 24:
		out = append(out, 0x80|byte(c))
	case c < 256:
		out = append(out, 0x98, byte(c))
	default:
		out = append(out, 0x99, byte(c>>8), byte(c))
	}
	for _, it := range items {
		out = append(out, it.Data...)
	}
	return out
}
