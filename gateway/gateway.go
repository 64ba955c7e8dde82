package gateway

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/prometheus/client_golang/prometheus"

	"edgeota/gateway/internal/broker"
	"edgeota/gateway/internal/coapd"
	"edgeota/gateway/internal/outbox"
	"edgeota/gateway/internal/rollout"
	"edgeota/gateway/internal/store"
	"edgeota/gateway/internal/uplink"
	"edgeota/protocol"
	"edgeota/protocol/sign"
)

// Config configures a Gateway. The zero value of every optional field
// works.
type Config struct {
	// DataDir holds the gateway's database (gateway.db). Required.
	DataDir string
	// CoAPSAddr is the UDP address of CoAP over DTLS 1.2 with per-node
	// pre-shared keys (default ":5684"); "-" disables it. A node's PSK
	// identity is its node id, and its key comes from the gateway's key
	// registry (ImportPSKs, `edgeota gateway keys import`).
	CoAPSAddr string
	// InsecureUDP also serves plain CoAP on CoAPAddr: no authentication,
	// no confidentiality, anyone on the network may speak for any node.
	// For development and simulators only; said so in the log.
	InsecureUDP bool
	// CoAPAddr is the UDP address of plain CoAP (default ":5683"), served
	// only with InsecureUDP.
	CoAPAddr string
	// Limits keep the gateway serving under abuse: request rates per
	// source address and per node, body sizes, DTLS sessions.
	Limits Limits
	// AdminAddr is the TCP address of the admin HTTP API (default
	// "127.0.0.1:8080"); "" keeps the default, "-" disables it. Beyond
	// loopback it requires AdminToken: New refuses to start otherwise.
	AdminAddr string
	// AdminToken, when set, is required as a bearer token
	// ("Authorization: Bearer <token>") on every admin request, /healthz
	// and /metrics included; at least 16 printable ASCII characters.
	AdminToken string
	// AdminTLS, when set, makes the admin API speak HTTPS with its
	// certificates (MinVersion TLS 1.2 unless set).
	AdminTLS *tls.Config
	// Trust holds the manifest keys: a model is cached only when its
	// manifest verifies against one of them. Required.
	Trust []ed25519.PublicKey
	// CacheMaxBytes bounds the cached images (0: no bound); least recently
	// used images that no node is assigned are evicted beyond it.
	CacheMaxBytes int64
	// MaxTransfers and MaxTransfersPerNode bound concurrent image
	// transfers (defaults 512 and 2); beyond them a transfer's first block
	// is answered 5.03 with Max-Age.
	MaxTransfers, MaxTransfersPerNode int
	// TransferIdle ends a transfer whose node asked nothing for that long
	// (default 30s).
	TransferIdle time.Duration
	// ConfirmableEvery is how often each observer gets a confirmable
	// notification (default 24h, docs/protocol.md section 5).
	ConfirmableEvery time.Duration
	// BlockCacheBytes bounds the image chunks kept in memory, shared by
	// every transfer (default 64 MiB; negative: none).
	BlockCacheBytes int64
	// MQTT is the uplink's broker: tcp://HOST:1883, ssl://HOST:8883,
	// "embedded" (an embedded broker on 127.0.0.1, a free port) or
	// "embedded:ADDR"; empty: no uplink.
	MQTT string
	// GatewayID names this gateway in MQTT topics and deployments
	// (default: the host name).
	GatewayID string
	// MQTTPrefix is the topic prefix (default "edgeota/v1").
	MQTTPrefix string
	// MQTTTLS, MQTTUsername and MQTTPassword authenticate to the broker.
	MQTTTLS                    *tls.Config
	MQTTUsername, MQTTPassword string
	// BatchMax and BatchInterval shape the uplink's batches (defaults 512
	// items and 100ms).
	BatchMax      int
	BatchInterval time.Duration
	// OutboxMaxItems and OutboxMaxBytes bound the uplink's outbox
	// (defaults 1,000,000 items and 256 MiB); beyond them the oldest health
	// reports are dropped, then nodes are told 5.03.
	OutboxMaxItems int
	OutboxMaxBytes int64
	// DeployTrust holds the deployment keys; without them deployments from
	// MQTT are refused.
	DeployTrust []ed25519.PublicKey
	// Clock is the gateway's time for rollouts (bakes, soaks, timeouts),
	// deployments' expiry and node registry times (default time.Now). The
	// fleet simulator gives a compressed clock; see TimeScale.
	Clock func() time.Time
	// TimeScale is how many seconds of the gateway's Clock pass per real
	// second, recorded for the logs; anything but 1 requires Sim.
	TimeScale float64
	// Sim marks a gateway run by, or for, the fleet simulator: the only
	// one allowed a TimeScale other than 1.
	Sim bool
	// Logger receives structured logs (default: discard).
	Logger *slog.Logger
	// CoAPConn and AdminListener, when set, are used instead of listening
	// on CoAPAddr and AdminAddr (tests, socket activation); CoAPConn
	// requires InsecureUDP.
	CoAPConn      *net.UDPConn
	AdminListener net.Listener
}

// Gateway is an edge gateway: a signed-model cache served to nodes over
// CoAP, a node registry and per-node assignments, an admin API.
type Gateway struct {
	cfg            Config
	log            *slog.Logger
	store          *store.DB
	trust          *sign.TrustStore
	index          modelIndex
	observers      *observers
	transfers      *transfers
	metrics        *metrics
	coap           *coapd.Server
	dtls           net.Listener // nil without CoAPSAddr
	limits         Limits
	limiter        *limiter
	dtlsHandshakes *prometheus.CounterVec
	admin          net.Listener
	clock          func() time.Time
	touchMu        sync.Mutex
	touched        map[protocol.Digest]bool
	origin         origins
	runCtx         context.Context
	blocks         *blockCache
	reqCount       sync.Map // uint16 (kind<<8 | code) -> prometheus.Counter
	act            activity

	outbox      *outbox.Outbox
	uplink      *uplink.Uplink
	broker      *broker.Broker
	deployTrust *sign.TrustStore
	rollouts    *rollout.Engine
	rpMu        sync.Mutex
	rpLatest    map[string]rollout.StatusView // rollout statuses not yet published
	rpWake      chan struct{}
}

// New validates cfg, opens the database and listens; Run serves.
func New(cfg Config) (*Gateway, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("gateway: DataDir is required")
	}
	if len(cfg.Trust) == 0 {
		return nil, errors.New("gateway: at least one manifest key (Trust) is required")
	}
	if cfg.CoAPAddr == "" {
		cfg.CoAPAddr = ":5683"
	}
	if cfg.CoAPSAddr == "" {
		cfg.CoAPSAddr = ":5684"
	}
	if cfg.CoAPConn != nil && !cfg.InsecureUDP {
		return nil, errors.New("gateway: a plain UDP socket (CoAPConn) needs InsecureUDP")
	}
	if !cfg.InsecureUDP && cfg.CoAPSAddr == "-" {
		return nil, errors.New("gateway: no CoAP service: give a DTLS address (--coaps) or, for development, --insecure-udp")
	}
	if cfg.AdminAddr == "" {
		cfg.AdminAddr = "127.0.0.1:8080"
	}
	if cfg.MaxTransfers <= 0 {
		cfg.MaxTransfers = 512
	}
	if cfg.MaxTransfersPerNode <= 0 {
		cfg.MaxTransfersPerNode = 2
	}
	if cfg.TransferIdle <= 0 {
		cfg.TransferIdle = 30 * time.Second
	}
	if cfg.ConfirmableEvery <= 0 {
		cfg.ConfirmableEvery = 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.TimeScale == 0 {
		cfg.TimeScale = 1
	}
	if cfg.TimeScale != 1 && !cfg.Sim {
		return nil, fmt.Errorf("gateway: time scale %g refused: compressed time is for the simulator only (--sim)", cfg.TimeScale)
	}
	if cfg.BlockCacheBytes == 0 {
		cfg.BlockCacheBytes = 64 << 20
	}
	if err := checkAdminSecurity(&cfg); err != nil {
		return nil, err
	}
	trust, err := sign.NewTrustStore(sign.RoleManifest, cfg.Trust...)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g := &Gateway{runCtx: context.Background(), rpWake: make(chan struct{}, 1), cfg: cfg, log: cfg.Logger, trust: trust, observers: newObservers(),
		transfers: newTransfers(cfg.MaxTransfers, cfg.MaxTransfersPerNode, cfg.TransferIdle),
		clock:     orNow(cfg.Clock), touched: map[protocol.Digest]bool{},
		origin: origins{active: map[protocol.Digest]bool{}, client: &http.Client{Timeout: 30 * time.Minute}, maxWait: 24 * time.Hour}}
	g.limits = cfg.Limits.withDefaults()
	g.limiter = newLimiter(g.limits)
	g.metrics = newMetrics(g)
	registerLimitMetrics(g)
	g.blocks = newBlockCache(cfg.BlockCacheBytes)
	db, err := store.Open(filepath.Join(cfg.DataDir, "gateway.db"), store.WithLogger(cfg.Logger))
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g.store = db
	models, err := db.Models()
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	for _, m := range models {
		g.index.set(m.Digest, m.Size)
	}
	for _, n := range nodesOrNil(db) {
		g.act.known.Store(n, struct{}{})
	}
	// Observations survive a restart: notifications resume at once.
	if obs, err := db.Observers(); err == nil {
		for _, o := range obs {
			if ap, err := netip.ParseAddrPort(o.Addr); err == nil {
				g.observers.add(o.Node, ap, "", o.Token, g.clock())
			}
		}
	}
	if len(cfg.DeployTrust) > 0 {
		if g.deployTrust, err = sign.NewTrustStore(sign.RoleDeployment, cfg.DeployTrust...); err != nil {
			db.Close()
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	if cfg.MQTT != "" {
		if err := g.openUplink(); err != nil {
			db.Close()
			return nil, err
		}
	}
	g.rollouts = rollout.NewEngine(db, assigner{g}, rollout.WithLogger(cfg.Logger), rollout.WithPublish(g.publishRollout))
	if states, err := db.Rollouts(); err != nil {
		db.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	} else if len(states) > 0 {
		if g.deployTrust == nil {
			db.Close()
			return nil, errors.New("gateway: the database holds rollouts; give the deployment keys (--deploy-trust)")
		}
		if err := g.rollouts.Load(states, g.deployTrust.VerifyDeployment); err != nil {
			db.Close()
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	conn := cfg.CoAPConn
	if conn == nil && cfg.InsecureUDP {
		ua, err := net.ResolveUDPAddr("udp", cfg.CoAPAddr)
		if err == nil {
			conn, err = net.ListenUDP("udp", ua)
		}
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("gateway: listen CoAP %s: %w", cfg.CoAPAddr, err)
		}
	}
	closeConns := func() {
		if conn != nil {
			conn.Close()
		}
		if g.dtls != nil {
			g.dtls.Close()
		}
	}
	if cfg.CoAPSAddr != "-" {
		if g.dtls, err = listenDTLS(cfg.CoAPSAddr, g.pskFor, g.dtlsAttempt); err != nil {
			closeConns()
			db.Close()
			return nil, fmt.Errorf("gateway: listen CoAP over DTLS %s: %w", cfg.CoAPSAddr, err)
		}
	}
	g.coap = coapd.New(conn, g, coapd.WithLogger(cfg.Logger), coapd.WithRequestHook(g.logRequest))
	g.admin = cfg.AdminListener
	if g.admin == nil && cfg.AdminAddr != "-" {
		if g.admin, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
			closeConns()
			db.Close()
			return nil, fmt.Errorf("gateway: listen admin %s: %w", cfg.AdminAddr, err)
		}
	}
	return g, nil
}

// MQTTBrokerURL returns the URL of the embedded broker, or "" when the
// gateway runs none.
func (g *Gateway) MQTTBrokerURL() string {
	if g.broker == nil {
		return ""
	}
	return g.broker.URL()
}

// ActiveTransfers returns the number of image transfers in progress.
func (g *Gateway) ActiveTransfers() int { return g.transfers.count() }

// CoAPAddr returns the address plain CoAP listens on, or nil without
// InsecureUDP.
func (g *Gateway) CoAPAddr() net.Addr { return g.coap.Addr() }

// CoAPSAddr returns the address CoAP over DTLS listens on, or nil.
func (g *Gateway) CoAPSAddr() net.Addr {
	if g.dtls == nil {
		return nil
	}
	return g.dtls.Addr()
}

// AdminAddr returns the address of the admin API, or nil.
func (g *Gateway) AdminAddr() net.Addr {
	if g.admin == nil {
		return nil
	}
	return g.admin.Addr()
}

// Run serves CoAP and the admin API until ctx ends, then closes everything.
func (g *Gateway) Run(ctx context.Context) error {
	defer g.store.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g.runCtx = ctx
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	wg.Add(1)
	go func() {
		defer wg.Done()
		errc <- g.coap.Serve(ctx)
	}()
	if g.dtls != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- g.coap.ServeSessions(ctx, g.dtls, coapd.WithMaxSessions(g.limits.MaxSessions, g.limits.MaxHandshakes),
				coapd.WithMaxHandshakesPerSource(g.limits.MaxHandshakesPerSource),
				coapd.WithSessionHook(g.onSession))
		}()
	}
	if g.admin != nil {
		srv := &http.Server{Handler: g.adminHandler(), ReadHeaderTimeout: 10 * time.Second, TLSConfig: g.cfg.AdminTLS,
			ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelDebug)} // TLS handshake errors: scanners, untrusting clients
		g.logAdminSecurity()
		wg.Add(1)
		go func() {
			defer wg.Done()
			serve := srv.Serve
			if srv.TLSConfig != nil {
				serve = func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }
			}
			if err := serve(g.admin); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
				cancel()
			}
		}()
		context.AfterFunc(ctx, func() {
			sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
			defer c()
			srv.Shutdown(sctx)
		})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		g.housekeeping(ctx)
	}()
	if g.outbox != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.uplink.Run(ctx)
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.publishRollouts(ctx)
		}()
	}
	g.log.Info("gateway serving", "coaps", addrString(g.CoAPSAddr()), "coap", addrString(g.CoAPAddr()), "admin", addrString(g.AdminAddr()),
		"models", len(g.index.list()), "time_scale", g.cfg.TimeScale)
	if g.coap.Addr() != nil {
		g.log.Warn("INSECURE: plain CoAP over UDP is on (--insecure-udp): no authentication or encryption, "+
			"anyone on the network can speak for any node and read every model; use it for development and simulators only",
			"coap", g.coap.Addr().String())
	}
	wg.Wait()
	g.origin.wg.Wait()
	g.flushActivity()
	if g.outbox != nil {
		g.outbox.Close()
	}
	if g.broker != nil {
		g.broker.Close()
	}
	close(errc)
	for err := range errc {
		if err != nil {
			return err
		}
	}
	return nil
}

func addrString(a net.Addr) string {
	if a == nil {
		return "off"
	}
	return a.String()
}

// housekeeping ends idle transfers, sends the daily confirmable
// notifications, flushes the models' last use and enforces the cache quota.
func (g *Gateway) housekeeping(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for tick := 0; ; tick++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		g.flushActivity()
		if err := g.rollouts.Tick(g.clock()); err != nil {
			g.log.Error("rollout tick", "err", err)
		}
		if tick%5 != 0 {
			continue
		}
		now := g.clock()
		g.transfers.sweep(now)
		g.limiter.sweep(time.Now())
		for _, ob := range g.observers.due(now, g.cfg.ConfirmableEvery) {
			g.notifyManifest(ob.node, true, []observer{ob})
		}
		g.flushTouched()
		g.enforceQuota()
	}
}

// touch records that a transfer of d started (LRU), in memory; flushed by
// housekeeping so the block path never writes to the database.
func (g *Gateway) touch(d protocol.Digest) {
	g.touchMu.Lock()
	g.touched[d] = true
	g.touchMu.Unlock()
}

func (g *Gateway) flushTouched() {
	g.touchMu.Lock()
	ds := g.touched
	g.touched = map[protocol.Digest]bool{}
	g.touchMu.Unlock()
	for d := range ds {
		if err := g.store.Touch(d); err != nil && !errors.Is(err, store.ErrNotFound) {
			g.log.Warn("touch model", "digest", d.String(), "err", err)
		}
	}
}

func (g *Gateway) enforceQuota() {
	if n, err := g.store.CacheBytes(); err == nil {
		g.metrics.cacheBytes.Set(float64(n))
	}
	if g.cfg.CacheMaxBytes <= 0 {
		return
	}
	evicted, err := g.store.Evict(g.cfg.CacheMaxBytes)
	if err != nil {
		g.log.Error("cache eviction", "err", err)
	}
	for _, d := range evicted {
		g.index.del(d)
		g.blocks.drop(d)
		g.metrics.evictions.Inc()
		g.log.Info("evicted model", "digest", d.String())
	}
}

func (g *Gateway) logRequest(r *coapd.Request, code codes.Code, took time.Duration) {
	kind := 0
	switch {
	case len(r.Path) > 3 && r.Path[:3] == "/m/":
		kind = 1
	case len(r.Path) > 3 && r.Path[:3] == "/n/":
		kind = 2
	case r.Path == "/.well-known/core":
		kind = 3
	}
	key := uint16(kind)<<8 | uint16(code)
	c, ok := g.reqCount.Load(key)
	if !ok {
		c, _ = g.reqCount.LoadOrStore(key, g.metrics.requests.WithLabelValues([]string{"other", "image", "node", "core"}[kind], code.String()))
	}
	c.(prometheus.Counter).Inc()
	if g.log.Enabled(context.Background(), slog.LevelDebug) {
		g.log.Debug("coap request", "method", r.Msg.Code.String(), "path", r.Path, "from", r.From.String(),
			"code", code.String(), "took_us", took.Microseconds())
	}
}

func nodesOrNil(db *store.DB) []string {
	ns, err := db.Nodes()
	if err != nil {
		return nil
	}
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.ID
	}
	return out
}

// openUplink opens the outbox, starts the embedded broker when asked, and
// builds the MQTT uplink.
func (g *Gateway) openUplink() error {
	cfg := &g.cfg
	if cfg.GatewayID == "" {
		h, err := os.Hostname()
		if err != nil || !protocol.ValidID(h) {
			return errors.New("gateway: GatewayID is required with MQTT (the host name is not a valid id)")
		}
		cfg.GatewayID = h
	}
	if !protocol.ValidID(cfg.GatewayID) {
		return fmt.Errorf("gateway: gateway id %q does not match [A-Za-z0-9._-]{1,64}", cfg.GatewayID)
	}
	url, embedded, addr := parseMQTT(cfg.MQTT)
	if embedded {
		b, err := broker.Start(addr, g.log)
		if err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
		g.broker = b
		url = b.URL()
		g.log.Info("embedded MQTT broker listening", "url", url)
	}
	ob, err := outbox.Open(outbox.Config{Path: filepath.Join(cfg.DataDir, "outbox.db"), MaxItems: cfg.OutboxMaxItems,
		MaxBytes: cfg.OutboxMaxBytes, Logger: g.log, OnDrop: func(n int) {
			g.metrics.outboxDropped.Add(float64(n))
			g.log.Warn("outbox full: oldest health reports dropped", "count", n)
		}})
	if err != nil {
		if g.broker != nil {
			g.broker.Close()
		}
		return fmt.Errorf("gateway: %w", err)
	}
	g.outbox = ob
	up, err := uplink.New(uplink.Config{Broker: url, GatewayID: cfg.GatewayID, Prefix: cfg.MQTTPrefix, TLS: cfg.MQTTTLS,
		Username: cfg.MQTTUsername, Password: cfg.MQTTPassword, BatchMax: cfg.BatchMax, BatchInterval: cfg.BatchInterval,
		OnDeployment: g.onDeployment, Logger: g.log, Registerer: g.metrics.reg}, ob)
	if err != nil {
		ob.Close()
		return fmt.Errorf("gateway: %w", err)
	}
	g.uplink = up
	g.metrics.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgeota_outbox_depth", Help: "Items waiting in the uplink outbox."},
			func() float64 { st := ob.Stats(); return float64(st.Health.Depth + st.Events.Depth) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgeota_outbox_oldest_seconds", Help: "Age of the oldest item in the outbox."},
			func() float64 { st := ob.Stats(); return max(st.Health.OldestAge, st.Events.OldestAge).Seconds() }))
	return nil
}

// publishRollout publishes a rollout's status, retained, on its rollout
// topic (docs/protocol.md section 6), when there is an uplink.
// Statuses are queued latest-wins and sent in order by publishRollouts.
func (g *Gateway) publishRollout(id string, st rollout.StatusView) {
	if g.uplink == nil {
		return
	}
	g.rpMu.Lock()
	if g.rpLatest == nil {
		g.rpLatest = map[string]rollout.StatusView{}
	}
	g.rpLatest[id] = st
	g.rpMu.Unlock()
	select {
	case g.rpWake <- struct{}{}:
	default:
	}
}

// publishRollouts sends queued rollout statuses until ctx ends.
func (g *Gateway) publishRollouts(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.rpWake:
		}
		g.rpMu.Lock()
		batch := g.rpLatest
		g.rpLatest = nil
		g.rpMu.Unlock()
		for id, st := range batch {
			b, err := json.Marshal(st)
			if err != nil {
				continue
			}
			if err := g.uplink.PublishRetained("rollouts/"+id, b, 10*time.Second); err != nil {
				g.log.Debug("publish rollout status", "deployment", id, "err", err)
			}
		}
	}
}

func orNow(f func() time.Time) func() time.Time {
	if f == nil {
		return time.Now
	}
	return f
}

// ScaledClock returns a clock that starts at the real now and runs scale
// times faster than real time (the simulator's time compression).
func ScaledClock(scale float64) func() time.Time {
	start := time.Now()
	return func() time.Time {
		return start.Add(time.Duration(float64(time.Since(start)) * scale))
	}
}
