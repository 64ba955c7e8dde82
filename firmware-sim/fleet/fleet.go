package fleet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	cryptorand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"edgeota/firmware-sim/blelink"
	"edgeota/firmware-sim/clock"
	"edgeota/firmware-sim/flash"
	"edgeota/firmware-sim/radio"
	"edgeota/firmware-sim/scenario"
	"edgeota/gateway"
	"edgeota/gateway/admin"
	"edgeota/nodeagent"
	"edgeota/nodeagent/provisioning"
	"edgeota/protocol"
	"edgeota/protocol/sign"
)

// Options configure a run.
type Options struct {
	// Seed overrides the scenario's seed; 0 keeps it (or picks one).
	Seed uint64
	// Dir holds the gateway's data; default a temporary directory.
	Dir string
	// Progress, when set, gets a one-line progress report about every
	// second of real time.
	Progress func(line string)
	// Logger receives the gateway's logs (default: discard).
	Logger *slog.Logger

	// Gateway, Admin and MQTT, when set, run the fleet against a running
	// gateway (its CoAP URL coap://HOST:PORT, coaps://HOST:PORT for a
	// scenario with transport dtls, whose node keys the run registers
	// and deletes through the admin API; and a client of its admin API,
	// with its token and CA when it requires them) and broker
	// (tcp://HOST:PORT) instead of starting them in-process. That
	// gateway must trust Key for manifests and deployments (--trust,
	// --deploy-trust) and run the scenario's time scale (--sim
	// --time-scale N); faults that restart it or its broker are refused.
	Gateway, MQTT string
	Admin         *admin.Client
	// Key signs the models and deployments (default: one derived from the
	// seed).
	Key ed25519.PrivateKey
	// HeapProfile, when set, gets a heap profile (runtime/pprof) once
	// every node has said Hello: what a node costs in memory, and where.
	HeapProfile io.Writer
	// NoDeltas makes every node take full images only, whatever its
	// group says (edgeota sim run --no-deltas): the baseline a run with
	// deltas compares with.
	NoDeltas bool
}

// model is a scenario model, built and signed.
type model struct {
	spec   *scenario.Model
	image  []byte
	signed []byte
	m      *protocol.Manifest
}

// node is one virtual node.
type node struct {
	id       string
	labels   map[string]string
	psk      []byte // its DTLS pre-shared key (transport dtls; sealed in its bundle with provision: ble)
	flash    *flash.Sim
	relay    *radio.Relay
	mu       sync.Mutex
	cancel   context.CancelFunc // stops the running agent (a power cut or reboot)
	agent    *nodeagent.Agent
	hadModel bool
	unboot   atomic.Int32
	cuts     atomic.Int32
	restart  chan string  // "cut" or "reboot"
	linkDown atomic.Int64 // real unix nanos until which the link is out
	outages  atomic.Int32 // link-outage faults that struck it
	heard    atomic.Int32 // documents the gateway accepted after its last outage
	seed     int64        // of its simulated model runtime
	lockStep bool         // its agent reads images lock-step (download: lock-step)

	// With provision: ble, the node starts factory-fresh: it knows its
	// factory secret and serves the provisioning service on the air.
	secret   []byte
	bleAddr  string
	prov     *provisioning.Service
	commits  <-chan provisioning.NodeConfig
	stopAdv  func()
	said     atomic.Bool // a Hello was delivered
	provDone atomic.Bool // the provisioning status event was delivered

	// The latest download, in simulated time: when the node's agent
	// entered the downloading state (unix nanoseconds), and how long until
	// it entered the downloaded one (0 while none finished).
	dlStart atomic.Int64
	dlTook  atomic.Int64
	// confirmed is the simulated time since the start at which it last
	// confirmed an update (0: none).
	confirmed atomic.Int64
	// noDeltas: the node takes full images only (its group's deltas:
	// false, or Options.NoDeltas).
	noDeltas bool
	// transfer is the transfer (status event key 64) of the latest
	// update the node verified, fetched the payload bytes of all of them.
	transfer atomic.Pointer[protocol.Transfer]
	fetched  atomic.Uint64
}

// sim is one run.
type sim struct {
	sc       *scenario.Scenario
	opts     Options
	seed     uint64
	rng      *rand.Rand
	clock    *clock.Scaled
	key      ed25519.PrivateKey
	signer   *sign.Signer
	trust    *sign.TrustStore
	models   map[string]*model
	byDigest map[protocol.Digest]string
	nodes    []*node
	dir      string
	log      *slog.Logger

	// secrets draws the nodes' keys and factory secrets and the operator
	// key: a stream of its own, so that the other choices of a seed stay
	// what they were before transport and provision existed.
	secrets     *rand.Rand
	dtls        bool               // transport dtls: the gateway serves CoAP over DTLS only
	operator    ed25519.PrivateKey // signs provisioning bundles (provision: ble)
	air         *blelink.Air       // where fresh nodes advertise (provision: ble)
	provElapsed time.Duration

	gwMu     sync.Mutex
	gw       *gateway.Gateway
	gwCancel context.CancelFunc
	gwDone   chan error
	coapAddr string        // the gateway's CoAP port, or its CoAP over DTLS port under transport dtls: what the radios relay to
	api      *admin.Client // the gateway's admin API, under gwMu

	nodesStop context.CancelFunc // stops every node's life
	nodesWG   sync.WaitGroup

	brMu   sync.Mutex
	broker *mqtt.Server
	brAddr string
	health ledger // every health report: accepted by the gateway, received on the broker

	// External mode: runID scopes node ids, labels, cohorts and deployment
	// ids to this run on a gateway that outlives it.
	external bool
	runID    string
	gwID     string
	keyed    []string // node ids whose keys this run put in the gateway's registry
	paho     pahomqtt.Client

	// What the run costs: the process's CPU time at the start, and
	// samples before the nodes started and once every node was heard
	// (taken by the drive loop).
	cpu0          time.Duration
	before, after usage
	sampled       bool
}

// Run runs a scenario to its end and returns what happened.
func Run(ctx context.Context, sc *scenario.Scenario, opts Options) (*scenario.Result, error) {
	s := &sim{sc: sc, opts: opts, models: map[string]*model{}, byDigest: map[protocol.Digest]string{}, log: opts.Logger,
		external: opts.Gateway != "" || opts.Admin != nil || opts.MQTT != "", dtls: sc.Transport == scenario.TransportDTLS}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.seed = opts.Seed
	if s.seed == 0 {
		s.seed = sc.Seed
	}
	if s.seed == 0 {
		s.seed = rand.Uint64()
	}
	s.rng = rand.New(rand.NewPCG(s.seed, 0x5eed))
	s.secrets = rand.New(rand.NewPCG(s.seed, 0x6b657973))
	if s.external {
		if opts.Gateway == "" || opts.Admin == nil || opts.MQTT == "" {
			return nil, errors.New("fleet: a running gateway needs its CoAP URL, its admin API and its broker")
		}
		for _, f := range sc.Faults {
			if f.Kind == scenario.FaultGatewayRestart || f.Kind == scenario.FaultBrokerOutage {
				return nil, fmt.Errorf("fleet: fault %s needs the gateway and broker the simulator starts itself", f.Kind)
			}
		}
		// A gateway outlives the run: scope the run's nodes and
		// deployments to it, uniquely even for the same seed.
		var b [2]byte
		cryptorand.Read(b[:])
		s.runID = fmt.Sprintf("%04x%02x%02x", s.seed&0xffff, b[0], b[1])
	}
	s.dir = opts.Dir
	if s.dir == "" {
		d, err := os.MkdirTemp("", "edgeota-sim-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		s.dir = d
	}
	if err := checkDescriptors(sc.Nodes()); err != nil {
		return nil, err
	}
	realStart, cpu0 := time.Now(), cpuTime()
	s.cpu0 = cpu0
	if err := s.setup(ctx); err != nil {
		s.teardown()
		return nil, err
	}
	defer s.teardown()
	finished, err := s.drive(ctx)
	if err != nil {
		return nil, err
	}
	// The nodes stop first, then every report the gateway accepted gets
	// its chance to reach the broker before the result is taken.
	s.nodesStop()
	s.nodesWG.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for !s.settled() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	res := s.result()
	res.Finished, res.RealElapsed = finished, time.Since(realStart)
	if !s.sampled {
		s.after = sample()
	}
	res.Resources = resources(len(s.nodes), s.before, s.after, s.cpu0)
	return res, nil
}

// setup builds keys and models, starts the broker, the gateway and the
// nodes (with the initial model installed).
func (s *sim) setup(ctx context.Context) error {
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(s.rng.Uint32())
	}
	s.key = ed25519.NewKeyFromSeed(seed)
	if s.opts.Key != nil {
		s.key = s.opts.Key
	}
	s.signer, _ = sign.NewSigner(s.key)
	s.trust, _ = sign.NewTrustStore(sign.RoleManifest, s.key.Public().(ed25519.PublicKey))
	var maxSize int
	for i := range s.sc.Models {
		spec := &s.sc.Models[i]
		img := make([]byte, spec.Size)
		from := 0
		if spec.From != "" {
			// Retrained from an earlier model: its image, the last
			// Changed of it drawn again (docs/simulator.md).
			copy(img, s.models[spec.From].image)
			from = spec.Size - int(uint64(spec.Size)*spec.Changed/10000)
		}
		if spec.Corpus != "" {
			c, _ := scenario.CorpusImage(spec.Corpus)
			copy(img, c)
			from = len(img)
		}
		for j := from; j < len(img); j++ {
			img[j] = byte(s.rng.Uint32())
		}
		copy(img, "edgeota-sim-model "+spec.Behaviour+"\n")
		m := &protocol.Manifest{Format: 1, Seq: uint64(100 + i), Component: simComponent, Version: spec.Version,
			Digest: sha256.Sum256(img), Size: uint64(len(img)), Class: simClass, Epoch: 1}
		if p := spec.Probation; p != nil {
			m.Probation = &protocol.Probation{Seconds: p.Seconds, MinInferences: p.MinInferences,
				MaxErrorPermille: p.MaxErrorPermille, MaxP99Micros: p.MaxP99Micros}
		}
		signed, err := s.signer.SignManifest(m)
		if err != nil {
			return err
		}
		s.models[spec.Name] = &model{spec: spec, image: img, signed: signed, m: m}
		s.byDigest[m.Digest] = spec.Name
		maxSize = max(maxSize, spec.Size)
	}
	s.clock = clock.NewScaled(clock.Real{}, s.sc.TimeScale)
	ids := s.identities()
	if s.external {
		if err := s.attach(ctx); err != nil {
			return err
		}
		if s.dtls {
			if err := s.registerKeys(ctx, ids); err != nil {
				return err
			}
		}
	} else {
		if s.dtls {
			// Every node's key is in the gateway's registry before it
			// starts, as `edgeota gateway keys import` would put it.
			keys := make(map[string][]byte, len(ids))
			for _, id := range ids {
				keys[id.id] = id.psk
			}
			if _, err := gateway.ImportKeys(s.dir, keys); err != nil {
				return fmt.Errorf("fleet: import the nodes' keys: %w", err)
			}
		}
		if err := s.startBroker(""); err != nil {
			return err
		}
		if err := s.startGatewayOn("127.0.0.1:0"); err != nil {
			return err
		}
	}
	for _, m := range s.models {
		if err := s.push(ctx, m); err != nil {
			return err
		}
	}
	s.before = sample()
	slot := int64((maxSize + 8192 + 4095) / 4096 * 4096)
	nctx, stop := context.WithCancel(ctx)
	s.nodesStop = stop
	if s.sc.Provision == scenario.ProvisionBLE {
		s.air = blelink.NewAir()
		s.operator = ed25519.NewKeyFromSeed(s.secretBytes(ed25519.SeedSize))
	}
	for i, id := range ids {
		nd, err := s.newNode(nctx, id, i, slot)
		if err != nil {
			return err
		}
		s.nodes = append(s.nodes, nd)
	}
	if s.air != nil {
		return s.provisionAll(ctx)
	}
	return nil
}

// identity is who a node is before it starts: its id, labels, DTLS key
// and factory secret, and how it downloads (its group's).
type identity struct {
	id          string
	labels      map[string]string
	psk, secret []byte
	noDeltas    bool
	download    string
}

// identities names the fleet's nodes in fleet order, scoped to the run on
// a shared gateway, each with a random 32-byte PSK and factory secret.
func (s *sim) identities() []identity {
	var out []identity
	for _, g := range s.sc.Fleet {
		for i := 0; i < g.Count; i++ {
			n := len(out) + 1
			id, labels := fmt.Sprintf("sim-%04d", n), g.Labels
			if s.runID != "" {
				id = fmt.Sprintf("sim-%s-%04d", s.runID, n)
				labels = maps.Clone(g.Labels)
				if labels == nil {
					labels = map[string]string{}
				}
				labels["sim_run"] = s.runID
			}
			psk, secret := s.secretBytes(32), s.secretBytes(32)
			if s.runID != "" {
				// A gateway that outlives the run gets keys nobody can
				// derive from the seed.
				cryptorand.Read(psk)
			}
			out = append(out, identity{id: id, labels: labels, psk: psk, secret: secret, noDeltas: g.NoDeltas || s.opts.NoDeltas,
				download: g.Download})
		}
	}
	return out
}

// secretBytes draws n bytes from the run's secrets stream.
func (s *sim) secretBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(s.secrets.Uint32())
	}
	return b
}

var simClass = protocol.Class{0x51, 0x4d}

// simComponent is the component every simulated node runs.
const simComponent = "sim-model"

func (s *sim) startBroker(addr string) error {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("fleet: broker: %w", err)
	}
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return err
	}
	if err := srv.AddListener(listeners.NewNet("tcp", ln)); err != nil {
		return err
	}
	// Count health reports as they arrive: the inline subscription runs on
	// the publisher's goroutine, before the broker acknowledges.
	if err := srv.Subscribe(protocol.Topics{}.Gateway("+", protocol.TopicHealth), 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		s.count(pk.Payload)
	}); err != nil {
		return err
	}
	if err := srv.Serve(); err != nil {
		return err
	}
	s.brMu.Lock()
	s.broker, s.brAddr = srv, ln.Addr().String()
	s.brMu.Unlock()
	return nil
}

// startGatewayOn starts the in-process gateway with its CoAP (or, under
// transport dtls, its CoAP over DTLS) port on addr, and records the port
// the radios relay to.
func (s *sim) startGatewayOn(addr string) error {
	cfg := s.gatewayConfig()
	if s.dtls {
		cfg.CoAPSAddr = addr
	} else {
		ua, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return err
		}
		if cfg.CoAPConn, err = net.ListenUDP("udp", ua); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		if cfg.CoAPConn != nil {
			cfg.CoAPConn.Close()
		}
		return err
	}
	cfg.AdminListener = ln
	g, err := gateway.New(cfg)
	if err != nil {
		ln.Close()
		if cfg.CoAPConn != nil {
			cfg.CoAPConn.Close()
		}
		return err
	}
	port := g.CoAPAddr()
	if s.dtls {
		port = g.CoAPSAddr()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	s.gwMu.Lock()
	api, err := admin.NewClient("http://" + ln.Addr().String())
	if err != nil {
		cancel()
		<-done
		return err
	}
	s.gw, s.gwCancel, s.gwDone, s.api = g, cancel, done, api
	s.coapAddr = port.String()
	s.gwMu.Unlock()
	return nil
}

// gatewayConfig is the in-process gateway's configuration, without its
// sockets.
func (s *sim) gatewayConfig() gateway.Config {
	pub := s.key.Public().(ed25519.PublicKey)
	cfg := gateway.Config{DataDir: s.dir, InsecureUDP: true, CoAPSAddr: "-", Trust: []ed25519.PublicKey{pub},
		DeployTrust: []ed25519.PublicKey{pub}, MQTT: "tcp://" + s.brAddr, GatewayID: "sim-gw", BatchInterval: 100 * time.Millisecond,
		Clock: s.clock, MaxTransfers: 4096, MaxTransfersPerNode: 2, Logger: s.log,
		// Every simulated node speaks from 127.0.0.1: no per-address rate.
		Limits: gateway.Limits{SourceRate: -1},
		// NON_TIMEOUT is ACK_TIMEOUT (RFC 9177 section 7.2): on a link in
		// simulated time, the nodes' scaled one, so that a burst a node
		// did not answer is sent again after simulated seconds.
		// MAX_PAYLOADS from the link's bandwidth-delay product, the
		// nodes' too: see [simMaxPayloads].
		QBlock: gateway.QBlockParams{NonTimeout: s.ackTimeout(), MaxPayloads: s.maxPayloads()}}
	if s.dtls {
		cfg.InsecureUDP = false
		// Every virtual node's radio relay speaks from 127.0.0.1 (a port
		// of its own), so the per-address bound on handshakes in
		// progress, 4 by default against one host's ClientHello flood,
		// would queue the whole fleet behind four slots at start and
		// after a gateway restart. Allow every node to handshake at once,
		// twice over: a handshake whose flight the radio lost holds its
		// slot until the handshake timeout while the node retries from a
		// new port.
		hs := 2*s.sc.Nodes() + 16
		cfg.Limits.MaxHandshakesPerSource = hs
		cfg.Limits.MaxHandshakes = max(256, hs)
	}
	return cfg
}

func (s *sim) stopGateway() {
	s.gwMu.Lock()
	cancel, done := s.gwCancel, s.gwDone
	s.gwCancel = nil
	s.gwMu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// restartGateway stops the gateway and starts it again on the same port
// with the same data. Under transport dtls every session is lost with the
// old gateway: the nodes handshake again.
func (s *sim) restartGateway() error {
	s.stopGateway()
	s.gwMu.Lock()
	addr := s.coapAddr
	s.gwMu.Unlock()
	var err error
	for i := 0; i < 50; i++ {
		if err = s.startGatewayOn(addr); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("fleet: restart the gateway on %s: %w", addr, err)
}

func (s *sim) teardown() {
	if s.nodesStop != nil {
		s.nodesStop()
		s.nodesWG.Wait()
	}
	if s.paho != nil {
		s.paho.Disconnect(100)
	}
	s.forgetKeys()
	for _, n := range s.nodes {
		n.mu.Lock()
		if n.cancel != nil {
			n.cancel()
		}
		n.mu.Unlock()
		if n.relay != nil {
			n.relay.Close()
		}
		if n.stopAdv != nil {
			n.stopAdv()
		}
	}
	if s.air != nil {
		s.air.Wait()
	}
	s.stopGateway()
	s.brMu.Lock()
	if s.broker != nil {
		s.broker.Close()
	}
	s.brMu.Unlock()
}

// push stores a model in the gateway through its admin API.
func (s *sim) push(ctx context.Context, m *model) error {
	if _, err := s.adminAPI().PutModel(ctx, m.signed, bytes.NewReader(m.image)); err != nil {
		return fmt.Errorf("fleet: push %s: %w", m.spec.Name, err)
	}
	return nil
}

// adminAPI is the gateway's admin API: the running gateway's, or the
// in-process gateway's of the moment (a restart gives it a new port).
func (s *sim) adminAPI() *admin.Client {
	s.gwMu.Lock()
	defer s.gwMu.Unlock()
	return s.api
}

// adminTimeout bounds an admin API call made outside a caller's context.
const adminTimeout = time.Minute

// attach joins a running gateway and broker: it checks the gateway's time
// scale and subscribes to its health topic.
func (s *sim) attach(ctx context.Context) error {
	scheme, port := "coap", "5683"
	if s.dtls {
		scheme, port = "coaps", "5684"
	}
	u, err := url.Parse(s.opts.Gateway)
	if err != nil || u.Scheme != scheme || u.Host == "" {
		return fmt.Errorf("fleet: --gateway %q: the scenario's transport %s wants %s://HOST[:PORT]", s.opts.Gateway, s.sc.Transport, scheme)
	}
	s.coapAddr = u.Host
	if u.Port() == "" {
		s.coapAddr = net.JoinHostPort(u.Hostname(), port)
	}
	if ua, err := net.ResolveUDPAddr("udp", s.coapAddr); err == nil {
		s.coapAddr = ua.String()
	}
	s.api = s.opts.Admin
	hz, err := s.api.Health(ctx)
	if err != nil {
		return fmt.Errorf("fleet: the gateway's admin API: %w", err)
	}
	if hz.TimeScale != s.sc.TimeScale {
		return fmt.Errorf("fleet: the gateway runs time scale %g, the scenario %g: start it with --sim --time-scale %g",
			hz.TimeScale, s.sc.TimeScale, s.sc.TimeScale)
	}
	if hz.GatewayID == "" {
		return errors.New("fleet: the gateway has no MQTT uplink (--mqtt and --gateway-id)")
	}
	s.gwID = hz.GatewayID
	opts := pahomqtt.NewClientOptions().AddBroker(s.opts.MQTT).SetClientID("edgeota-sim-" + s.runID).
		SetCleanSession(false).SetOrderMatters(false).SetAutoReconnect(true).SetMaxReconnectInterval(2 * time.Second)
	opts.SetOnConnectHandler(func(c pahomqtt.Client) {
		c.Subscribe(protocol.Topics{}.Gateway(s.gwID, protocol.TopicHealth), 1, func(_ pahomqtt.Client, m pahomqtt.Message) { s.count(m.Payload()) })
	})
	s.paho = pahomqtt.NewClient(opts)
	if t := s.paho.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return fmt.Errorf("fleet: broker %s: %v", s.opts.MQTT, t.Error())
	}
	return nil
}

// count records the health reports of one MQTT batch.
func (s *sim) count(payload []byte) {
	rs, err := protocol.DecodeHealthBatch(payload)
	if err != nil {
		return
	}
	for _, r := range rs {
		s.health.mark(reportID{r.NodeID, r.BootCount, r.Number}, reportReceived)
	}
}

// depID is the id a scenario deployment has on the gateway.
func (s *sim) depID(id string) string {
	if s.runID == "" {
		return id
	}
	return id + "-" + s.runID
}

// scopedCohort limits a cohort to this run's nodes on a shared gateway.
func (s *sim) scopedCohort(c string) string {
	if s.runID == "" {
		return c
	}
	if strings.TrimSpace(c) == "*" {
		return "sim_run:" + s.runID
	}
	return "(" + c + ") AND sim_run:" + s.runID
}

// registerKeys puts the run's node keys in a running gateway's registry
// (PUT /v1/keys, as `edgeota gateway keys import --admin` does); teardown
// deletes them. The run's nodes all speak from this host, so a gateway
// whose per-address handshake bound is below the fleet's size makes them
// queue for handshakes: say so.
func (s *sim) registerKeys(ctx context.Context, ids []identity) error {
	entries := make([]admin.Key, len(ids))
	for i, id := range ids {
		entries[i] = admin.Key{NodeID: id.id, PSK: "hex:" + hex.EncodeToString(id.psk)}
	}
	if _, err := s.adminAPI().PutKeys(ctx, entries); err != nil {
		return fmt.Errorf("fleet: register the nodes' keys: %w", err)
	}
	s.keyed = make([]string, len(ids))
	for i, id := range ids {
		s.keyed[i] = id.id
	}
	if n, ok := s.gatewayLimit(ctx, "max_handshakes_per_source"); ok && n < float64(len(ids)) {
		s.progress(fmt.Sprintf("warning: the gateway allows %g handshakes at once per address and this run's %d nodes share one: "+
			"start it with --max-handshakes-per-source %d or more, or nodes queue for their sessions", n, len(ids), 2*len(ids)))
	}
	return nil
}

// forgetKeys deletes the keys registerKeys put in a running gateway's
// registry.
func (s *sim) forgetKeys() {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	for _, id := range s.keyed {
		if err := s.adminAPI().DeleteKey(ctx, id); err != nil {
			s.log.Warn("forget a simulated node's key", "node", id, "err", err)
		}
	}
	s.keyed = nil
}

// gatewayLimit reads one configured limit from the gateway's metrics
// (edgeota_limit{name="..."}); false when it cannot.
func (s *sim) gatewayLimit(ctx context.Context, name string) (float64, bool) {
	b, err := s.adminAPI().Metrics(ctx)
	if err != nil {
		return 0, false
	}
	prefix := `edgeota_limit{name="` + name + `"} `
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}
