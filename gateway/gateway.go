package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"edgeota/gateway/internal/activity"
	"edgeota/gateway/internal/adminhttp"
	"edgeota/gateway/internal/audit"
	"edgeota/gateway/internal/broker"
	"edgeota/gateway/internal/coapd"
	"edgeota/gateway/internal/coapserve"
	"edgeota/gateway/internal/deltas"
	"edgeota/gateway/internal/deploy"
	"edgeota/gateway/internal/dtls"
	"edgeota/gateway/internal/images"
	"edgeota/gateway/internal/keyring"
	"edgeota/gateway/internal/metrics"
	"edgeota/gateway/internal/observe"
	"edgeota/gateway/internal/origin"
	"edgeota/gateway/internal/outbox"
	"edgeota/gateway/internal/qblock"
	"edgeota/gateway/internal/ratelimit"
	"edgeota/gateway/internal/rollout"
	"edgeota/gateway/internal/store"
	"edgeota/gateway/internal/transfer"
	"edgeota/gateway/internal/uplink"
	"edgeota/protocol"
	"edgeota/protocol/delta"
)

// ErrDeployment is wrapped by every reason a deployment is refused (the
// admin API answers it 422).
var ErrDeployment = deploy.ErrRefused

// ErrNoDeploymentKeys is returned by New when the database holds rollouts
// and Config.DeployTrust is empty: they cannot be verified again. It is
// also among the reasons a deployment is refused.
var ErrNoDeploymentKeys = deploy.ErrNoKeys

// Gateway is an edge gateway: a signed-model cache served to nodes over
// CoAP, a node registry and per-node assignments, rollouts of signed
// deployments, an MQTT uplink and an admin API. Make one with [New] and
// serve with [Gateway.Run].
type Gateway struct {
	cfg   Config // with its defaults
	log   *slog.Logger
	clock func() time.Time

	store    *store.DB
	keys     *keyring.Keyring
	metrics  *metrics.Metrics
	images   *images.Cache
	deltas   *deltas.Manager // nil when DeltaCacheMaxBytes is negative
	origin   *origin.Fetcher
	act      *activity.Recorder
	rollouts *rollout.Engine
	deploy   *deploy.Deployments

	serve     *coapserve.Handler
	transfers *transfer.Table
	limiter   *ratelimit.Limiter
	coap      *coapd.Server
	dtls      net.Listener // nil without CoAPSAddr
	admin     net.Listener // nil without AdminAddr

	// The uplink; nil without MQTT.
	outbox *outbox.Outbox
	uplink *uplink.Uplink
	broker *broker.Broker // nil unless embedded

	adminToken atomic.Pointer[string] // the admin API's token; SetAdminToken replaces it
	ready      chan struct{}          // closed once Run serves
	rounds     atomic.Uint64          // housekeeping rounds completed
}

// New validates cfg, opens the database and listens; [Gateway.Run]
// serves. It never changes cfg. When it fails, whatever it opened is
// closed again.
func New(cfg Config) (_ *Gateway, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	kc := keyring.Config{Roots: cfg.TrustRoots, Threshold: cfg.TrustThreshold}
	for _, k := range cfg.Trust {
		kc.Manifest = append(kc.Manifest, k)
	}
	kc.Manifest = append(kc.Manifest, cfg.TrustKeys...)
	for _, k := range cfg.DeployTrust {
		kc.Deployment = append(kc.Deployment, k)
	}
	kc.Deployment = append(kc.Deployment, cfg.DeployTrustKeys...)
	keys, err := keyring.Open(cfg.DataDir, kc)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if u := keys.Update(); u != nil {
		cfg.Logger.Info("keys of the trust update in the data directory, not the configured ones", "trust_version", u.Version,
			"manifest_keys", len(u.ManifestKeys), "deployment_keys", len(u.DeploymentKeys), "roots", len(u.RootKeys))
	}

	// One cleanup path: everything opened below is closed, newest first,
	// when New fails.
	var closers []func() error
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()

	g := &Gateway{cfg: cfg, log: cfg.Logger, clock: cfg.Clock.Now, keys: keys,
		transfers: transfer.New(cfg.MaxTransfers, cfg.MaxTransfersPerNode, cfg.TransferIdle),
		limiter:   ratelimit.New(cfg.Limits.rates()), ready: make(chan struct{})}
	token := cfg.AdminToken
	g.adminToken.Store(&token)
	g.metrics = metrics.New(metrics.Gauges{
		TransfersActive: func() float64 { return float64(g.transfers.Count()) },
		Sessions:        func() float64 { return float64(g.coap.Sessions()) },
		SessionsRefused: func() float64 { return float64(g.coap.Stats().SessionsRefused) },
		Nodes: func() float64 {
			n, _ := g.store.NodeCount()
			return float64(n)
		},
		QBlock: func() qblock.Stats { return g.serve.QBlock().Stats() },
	}, cfg.limitMetrics())

	db, err := store.Open(filepath.Join(cfg.DataDir, DatabaseFile), store.WithLogger(cfg.Logger),
		store.WithMaxNodes(cfg.MaxNodes))
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	closers = append(closers, db.Close)
	g.store = db
	g.images = images.New(db, cfg.BlockCacheBytes, cfg.Logger)
	models, err := db.Models()
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	for _, m := range models {
		g.images.Add(m.Digest, m.Size)
	}
	if cfg.DeltaCacheMaxBytes >= 0 {
		g.deltas, err = deltas.New(deltas.Config{Store: db, Images: g.images, Format: delta.Format1,
			Diff:     func(base, target []byte) ([]byte, error) { return delta.Diff(base, target) },
			MaxBytes: cfg.DeltaCacheMaxBytes, ChunkCacheBytes: min(cfg.BlockCacheBytes, 8<<20),
			Ready: func(nodes []string) {
				for _, id := range nodes {
					g.serve.Notify(id)
				}
			},
			Metrics: g.metrics, Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	nodes, err := db.Nodes()
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	known := make([]string, len(nodes))
	for i, n := range nodes {
		known[i] = n.ID
	}
	g.act = activity.New(db, known, cfg.Logger)
	g.origin = origin.New(origin.Config{Dir: filepath.Join(cfg.DataDir, "origin"), Trust: keys, Store: db, Images: g.images,
		Logger: cfg.Logger})

	if cfg.MQTT != "" {
		if err := g.openUplink(&closers); err != nil {
			return nil, err
		}
	}
	var publish func(string, rollout.StatusView)
	if g.uplink != nil {
		publish = func(id string, st rollout.StatusView) { g.uplink.PublishRollout(id, adminhttp.Rollout(st)) }
	}
	g.rollouts = rollout.NewEngine(db, notifier{g}, rollout.WithLogger(cfg.Logger), rollout.WithPublish(publish))
	g.deploy = deploy.New(deploy.Config{GatewayID: g.cfg.GatewayID, Topics: protocol.Topics{Prefix: cfg.MQTTPrefix},
		Trust: keys, DeployTrust: keys, Store: db, Engine: g.rollouts, Images: g.images, Fetcher: g.origin,
		Now: g.clock, OnRefused: g.metrics.Refused.WithLabelValues("deployment").Inc, Logger: cfg.Logger})
	if states, err := db.Rollouts(); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	} else if len(states) > 0 {
		if keys.Deployment().Len() == 0 {
			return nil, fmt.Errorf("gateway: the database holds rollouts: %w", ErrNoDeploymentKeys)
		}
		if err := g.rollouts.Load(states, keys.VerifyDeployment, g.clock()); err != nil {
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
			return nil, fmt.Errorf("gateway: listen CoAP %s: %w", cfg.CoAPAddr, err)
		}
		closers = append(closers, conn.Close)
	}
	// One source gate for both ports: an address's datagrams count
	// together, dropped before anything decodes them.
	gate := coapd.NewSourceGate(cfg.Limits.SourceDropRate, cfg.Limits.SourceDropBurst)
	sourceDropped := g.metrics.Refused.WithLabelValues(ratelimit.SourceRate)
	countDrops := func(n uint64) { sourceDropped.Add(float64(n)) }
	if cfg.CoAPSAddr != "-" {
		if g.dtls, err = dtls.Listen(cfg.CoAPSAddr, db, g.admitHandshake, gate.Allow, countDrops); err != nil {
			return nil, fmt.Errorf("gateway: listen CoAP over DTLS %s: %w", cfg.CoAPSAddr, err)
		}
		closers = append(closers, g.dtls.Close)
	}
	observers := observe.NewRegistry()
	// Observations survive a restart: notifications resume at once.
	if obs, err := db.Observers(); err == nil {
		for _, o := range obs {
			if ap, err := netip.ParseAddrPort(o.Addr); err == nil {
				observers.Add(o.Node, ap, "", o.Token, g.clock())
			}
		}
	}
	g.coap = coapd.New(conn, coapd.HandlerFunc(func(w *coapd.Response, r *coapd.Request) { g.serve.ServeCoAP(w, r) }),
		coapd.WithLogger(cfg.Logger), coapd.WithRequestHook(func(r *coapd.Request, code codes.Code, took time.Duration) {
			g.serve.LogRequest(r, code, took)
		}), coapd.WithSourceGate(gate), coapd.WithSourceDropHook(countDrops))
	sc := coapserve.Config{Store: db, Images: g.images, Origin: g.origin, Transfers: g.transfers, Limiter: g.limiter,
		Observers: observers, Trust: keys, TrustObservers: observe.NewRegistry(), Activity: g.act, Rollouts: g.deploy, Audit: audit.New(db, cfg.Logger), Sender: g.coap,
		Metrics: g.metrics, MaxBody: cfg.Limits.MaxBody, Now: g.clock, Logger: cfg.Logger,
		QBlock: qblock.Params{MaxPayloads: cfg.QBlock.MaxPayloads, NonTimeout: cfg.QBlock.NonTimeout,
			NonReceiveTimeout: cfg.QBlock.NonReceiveTimeout, NonMaxRetransmit: cfg.QBlock.NonMaxRetransmit,
			MaxTransfers: cmp.Or(cfg.QBlock.MaxTransfers, cfg.MaxTransfers)}}
	if g.outbox != nil {
		sc.Outbox, sc.Uplink = g.outbox, g.uplink
	}
	if g.deltas != nil {
		sc.Deltas, sc.Offers = g.deltas.Blobs(), g.deltas
	}
	g.serve = coapserve.New(sc)

	g.admin = cfg.AdminListener
	if g.admin == nil && cfg.AdminAddr != "-" {
		if g.admin, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
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

// Run serves CoAP, the uplink and the admin API until ctx ends, then
// closes everything. It returns the first error that stopped a service,
// or nil.
func (g *Gateway) Run(ctx context.Context) error {
	defer g.store.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	goRun := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}
	goRun(func() { errc <- g.coap.Serve(ctx) })
	if g.dtls != nil {
		l := g.cfg.Limits
		goRun(func() {
			errc <- g.coap.ServeSessions(ctx, g.dtls, coapd.WithMaxSessions(l.MaxSessions, l.MaxHandshakes),
				coapd.WithMaxHandshakesPerSource(l.MaxHandshakesPerSource), coapd.WithSessionHook(g.onSession))
		})
	}
	if g.admin != nil {
		srv := &http.Server{Handler: g.adminHandler(), ReadHeaderTimeout: 10 * time.Second, TLSConfig: g.cfg.AdminTLS,
			ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelDebug)} // TLS handshake errors: scanners, untrusting clients
		g.logAdminSecurity()
		goRun(func() {
			serve := srv.Serve
			if srv.TLSConfig != nil {
				serve = func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }
			}
			if err := serve(g.admin); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
				cancel()
			}
		})
		context.AfterFunc(ctx, func() {
			sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
			defer c()
			srv.Shutdown(sctx)
		})
	}
	goRun(func() { g.origin.Run(ctx) })
	if g.deltas != nil {
		goRun(func() { g.deltas.Run(ctx) })
	}
	goRun(func() { g.housekeeping(ctx) })
	if g.uplink != nil {
		goRun(func() { g.uplink.Run(ctx) })
	}
	g.log.Info("gateway serving", "coaps", addrString(g.CoAPSAddr()), "coap", addrString(g.CoAPAddr()), "admin", addrString(g.AdminAddr()),
		"models", len(g.images.List()), "time_scale", timeScale(g.cfg.Clock))
	close(g.ready)
	if g.coap.Addr() != nil {
		g.log.Warn("INSECURE: plain CoAP over UDP is on (InsecureUDP): no authentication or encryption, "+
			"anyone on the network can speak for any node and read every model; use it for development and simulators only",
			"coap", g.coap.Addr().String())
	}
	wg.Wait()
	g.serve.Close()
	g.serve.Wait()
	g.act.Flush()
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

// housekeeping records node activity and ticks the rollouts every second;
// every five seconds it ends idle transfers, forgets quiet rate keys,
// sends the due confirmable notifications, records the images' last use
// and enforces the cache quota.
func (g *Gateway) housekeeping(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for tick := 0; ; tick++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		g.act.Flush()
		g.rollouts.Tick(g.clock()).Then(func(err error) {
			if err != nil {
				g.log.Error("rollout tick", "err", err)
			}
		})
		if tick%5 == 0 {
			now := g.clock()
			g.transfers.Sweep(now)
			g.limiter.Sweep(time.Now())
			g.serve.NotifyDue(now, g.cfg.ConfirmableEvery)
			g.images.FlushUsed()
			g.enforceQuota()
			if g.deltas != nil {
				g.deltas.Enforce()
			}
		}
		g.rounds.Add(1)
	}
}

// enforceQuota evicts least recently used images beyond CacheMaxBytes.
func (g *Gateway) enforceQuota() {
	if n, err := g.store.CacheBytes(); err == nil {
		g.metrics.CacheBytes.Set(float64(n))
	}
	if g.cfg.CacheMaxBytes <= 0 {
		return
	}
	evicted, err := g.store.Evict(g.cfg.CacheMaxBytes)
	if err != nil {
		g.log.Error("cache eviction", "err", err)
	}
	for _, d := range evicted {
		g.images.Remove(d)
		g.forgetDeltas(d)
		g.metrics.Evictions.Inc()
		g.log.Info("evicted model", "digest", d.String())
	}
}

// forgetDeltas forgets the deltas from or to image d, which the store
// deleted with it.
func (g *Gateway) forgetDeltas(d protocol.Digest) {
	if g.deltas != nil {
		g.deltas.ForgetImage(d)
	}
}

// admitHandshake refuses a DTLS handshake from a source over its request
// rate, so that a flood of ClientHellos costs no cryptography.
func (g *Gateway) admitHandshake(src netip.Addr) bool {
	if g.limiter.AllowSource(src, time.Now()) {
		return true
	}
	g.metrics.Refused.WithLabelValues(ratelimit.SourceRate).Inc()
	return false
}

// onSession counts handshakes and logs the failed ones: a wrong key and an
// unknown identity look the same to the gateway (the handshake's Finished
// message does not verify), so both are logged with the identity offered.
func (g *Gateway) onSession(identity string, from netip.AddrPort, err error) {
	if err != nil {
		g.metrics.DTLSHandshakes.WithLabelValues("failed").Inc()
		g.log.Warn("DTLS handshake failed", "from", from.String(), "err", err)
		return
	}
	g.metrics.DTLSHandshakes.WithLabelValues("ok").Inc()
	g.log.Debug("DTLS session", "node", identity, "from", from.String())
}

// notifier tells the observers of nodes the rollout engine assigned.
type notifier struct{ g *Gateway }

// Nodes waiting for the delta of their new manifest are notified once it
// is computed (deltas.Config.Ready), the others at once.
func (n notifier) Notify(nodes []string) {
	waiting := map[string]bool{}
	if n.g.deltas != nil {
		for _, id := range n.g.deltas.Assigned(nodes) {
			waiting[id] = true
		}
	}
	for _, id := range nodes {
		if !waiting[id] {
			n.g.serve.Notify(id)
		}
	}
}
