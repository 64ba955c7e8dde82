package gateway

import (
	"crypto"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"edgeota/gateway/internal/ratelimit"
)

// Config configures a Gateway. DataDir and Trust are required; the zero
// value of every other field works.
type Config struct {
	// DataDir holds the gateway's database (gateway.db). Required.
	DataDir string
	// CoAPSAddr is the UDP address of CoAP over DTLS 1.2 with per-node
	// pre-shared keys (default ":5684"); "-" disables it. A node's PSK
	// identity is its node id, and its key comes from the gateway's key
	// registry ([ImportKeys], or the admin API).
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
	// Trust holds Ed25519 manifest keys: a model is cached only when its
	// manifest verifies against one of the keys of Trust and TrustKeys.
	// One of the two is required.
	Trust []ed25519.PublicKey
	// TrustKeys holds manifest keys of either algorithm (docs/protocol.md
	// section 1, v1.3): ed25519.PublicKey (EdDSA) or a P-256
	// *ecdsa.PublicKey (ES256), trusted together with Trust's.
	TrustKeys []crypto.PublicKey
	// CacheMaxBytes bounds the cached images (0: no bound); least recently
	// used images that no node is assigned are evicted beyond it.
	CacheMaxBytes int64
	// MaxTransfers and MaxTransfersPerNode bound concurrent image
	// transfers (defaults 512 and 2); beyond them a transfer's first block
	// is answered 5.03 with Max-Age.
	MaxTransfers, MaxTransfersPerNode int
	// MaxNodes bounds the node registry (default [DefaultMaxNodes];
	// negative: no bound). A Hello from a node the registry does not
	// hold, when it holds MaxNodes nodes, is refused with 5.03 and
	// Max-Age 60, nothing stored, and counted as registry_full in
	// edgeota_refused_total; known nodes are always served. It keeps a
	// flood of new node ids from growing the database without bound.
	MaxNodes int
	// TransferIdle ends a transfer whose node asked nothing for that long
	// (default 30s).
	TransferIdle time.Duration
	// QBlock sets the parameters of RFC 9177 Q-Block2 transfers, which a
	// node that asks for them gets (docs/gateway.md "Q-Block2"); zero
	// fields take the defaults of RFC 9177 section 7.2.
	QBlock QBlockParams
	// ConfirmableEvery is how often each observer gets a confirmable
	// notification (default 24h, docs/protocol.md section 5).
	ConfirmableEvery time.Duration
	// BlockCacheBytes bounds the image chunks kept in memory, shared by
	// every transfer (default 64 MiB; negative: none).
	BlockCacheBytes int64
	// DeltaCacheMaxBytes bounds the deltas the gateway computes between
	// cached images and offers to nodes (docs/protocol.md "Delta updates
	// (v1.4)"): default 64 MiB; negative: no deltas are computed or
	// offered. Least recently used deltas are evicted beyond it, and a
	// delta goes with its base or target image.
	DeltaCacheMaxBytes int64
	// MQTT is the uplink's broker: tcp://HOST:1883, ssl://HOST:8883,
	// "embedded" (an embedded broker on 127.0.0.1, a free port) or
	// "embedded:ADDR"; empty: no uplink.
	MQTT string
	// GatewayID names this gateway in MQTT topics and deployments
	// (default: the host name).
	GatewayID string
	// MQTTPrefix is the topic prefix (default protocol.DefaultTopicPrefix).
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
	// DeployTrust holds the deployment keys; without them deployments are
	// refused, and New refuses a database that holds rollouts
	// ([ErrNoDeploymentKeys]).
	DeployTrust []ed25519.PublicKey
	// DeployTrustKeys holds deployment keys of either algorithm, as
	// TrustKeys does, trusted together with DeployTrust's.
	DeployTrustKeys []crypto.PublicKey
	// TrustRoots are the root keys (Ed25519 or P-256) that may sign the
	// gateway's first trust update (docs/protocol.md "Trust update",
	// v1.3), TrustThreshold how many of them must (0: 1). A trust update
	// the gateway accepts (PUT /v1/trust) replaces its manifest,
	// deployment and root keys, is saved in DataDir and wins over Trust,
	// TrustKeys, DeployTrust, DeployTrustKeys and TrustRoots from then on; the gateway serves it to
	// its nodes (/n/{node}/trust). Without roots, trust updates are
	// refused.
	TrustRoots     []crypto.PublicKey
	TrustThreshold uint64
	// Clock is the gateway's time for rollouts (bakes, soaks, timeouts),
	// deployments' expiry, transfers' idleness, observers' confirmable
	// notifications and node registry times (default: the wall clock).
	// A simulator passes a compressed clock; when the clock has a method
	// Scale() float64, its value is logged and served by /healthz as the
	// time scale.
	Clock Clock
	// Logger receives structured logs (default: discard).
	Logger *slog.Logger
	// CoAPConn and AdminListener, when set, are used instead of listening
	// on CoAPAddr and AdminAddr (tests, socket activation); CoAPConn
	// requires InsecureUDP. The gateway owns them once New succeeded;
	// when New fails, the caller closes them.
	CoAPConn      *net.UDPConn
	AdminListener net.Listener
}

// DefaultMaxNodes is the default of [Config.MaxNodes]: twice the 10,000
// nodes a gateway is sized for, so that replaced nodes (a new id each,
// the old record kept) and growth fit for years, while a flood of new ids
// stops at a few MiB of records.
const DefaultMaxNodes = 20000

// Clock tells the gateway's time (see [Config.Clock]).
type Clock interface {
	Now() time.Time
}

// wallClock is the default Clock.
type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// timeScale returns how many seconds of c pass per real second: its
// Scale() when it has one, 1 otherwise.
func timeScale(c Clock) float64 {
	if s, ok := c.(interface{ Scale() float64 }); ok {
		return s.Scale()
	}
	return 1
}

// ErrNoCoAP is returned by New for a configuration that serves no CoAP:
// no DTLS address and no InsecureUDP.
var ErrNoCoAP = errors.New("no CoAP service: give a DTLS address (CoAPSAddr) or, for development, InsecureUDP")

// withDefaults returns a copy of c with its defaults filled in, or why c
// is refused. The caller's Config is never changed.
func (c Config) withDefaults() (Config, error) {
	if c.DataDir == "" {
		return c, errors.New("gateway: DataDir is required")
	}
	if len(c.Trust)+len(c.TrustKeys) == 0 {
		return c, errors.New("gateway: at least one manifest key (Trust or TrustKeys) is required")
	}
	if c.CoAPAddr == "" {
		c.CoAPAddr = ":5683"
	}
	if c.CoAPSAddr == "" {
		c.CoAPSAddr = ":5684"
	}
	if c.CoAPConn != nil && !c.InsecureUDP {
		return c, errors.New("gateway: a plain UDP socket (CoAPConn) needs InsecureUDP")
	}
	if q := c.QBlock; q.MaxPayloads < 0 || q.MaxPayloads > 256 || q.NonTimeout < 0 || q.NonReceiveTimeout < 0 ||
		q.NonMaxRetransmit < 0 || q.NonMaxRetransmit > 10 || q.MaxTransfers < 0 {
		return c, fmt.Errorf("gateway: QBlock: MaxPayloads 0 to 256, NonMaxRetransmit 0 to 10, no negative value: %+v", q)
	}
	if !c.InsecureUDP && c.CoAPSAddr == "-" {
		return c, fmt.Errorf("gateway: %w", ErrNoCoAP)
	}
	if c.AdminAddr == "" {
		c.AdminAddr = "127.0.0.1:8080"
	}
	if c.MaxTransfers <= 0 {
		c.MaxTransfers = 512
	}
	if c.MaxTransfersPerNode <= 0 {
		c.MaxTransfersPerNode = 2
	}
	if c.MaxNodes == 0 {
		c.MaxNodes = DefaultMaxNodes
	}
	if c.TransferIdle <= 0 {
		c.TransferIdle = 30 * time.Second
	}
	if c.ConfirmableEvery <= 0 {
		c.ConfirmableEvery = 24 * time.Hour
	}
	if c.BlockCacheBytes == 0 {
		c.BlockCacheBytes = 64 << 20
	}
	if c.Clock == nil {
		c.Clock = wallClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Limits = c.Limits.withDefaults()
	if err := checkAdminSecurity(&c); err != nil {
		return c, err
	}
	return c, nil
}

// Limits keep the gateway serving under abuse. The zero value of each
// field takes its default; a negative rate turns that limit off.
//
// Rates are token buckets (golang.org/x/time/rate). They count every CoAP
// request except the blocks of an image transfer already admitted: once
// block 0 is served, a transfer is never refused by a limit (docs/protocol.md
// section 5). A request over a rate is answered 4.29 Too Many Requests
// (RFC 8516) with Max-Age 1.
// QBlockParams are the congestion-control parameters of RFC 9177
// section 7.2 the gateway serves Q-Block2 with, and the bound of its
// table of Q-Block2 transfers.
type QBlockParams struct {
	// MaxPayloads is MAX_PAYLOADS, the blocks of one burst (default 10,
	// at most 256; RFC 9177 asks both peers to use the same value).
	MaxPayloads int
	// NonTimeout is NON_TIMEOUT (default 2s): the pause between two
	// bursts to a node that sends no 'Continue' is between NonTimeout
	// and 1.5 times it, doubled after each burst the node did not
	// answer.
	NonTimeout time.Duration
	// NonReceiveTimeout is NON_RECEIVE_TIMEOUT (default twice
	// NonTimeout).
	NonReceiveTimeout time.Duration
	// NonMaxRetransmit is NON_MAX_RETRANSMIT (default 4, at most 10):
	// bursts sent to a silent node before its transfer is dropped.
	NonMaxRetransmit int
	// MaxTransfers bounds the Q-Block2 transfers in flight (default
	// MaxTransfers); beyond it a node's request for a body gets 5.03.
	MaxTransfers int
}

type Limits struct {
	// SourceRate and SourceBurst bound the requests per second of one
	// source IP address (defaults 2000 and 4000).
	SourceRate  float64
	SourceBurst int
	// SourceDropRate and SourceDropBurst bound the datagrams per second
	// of one source IP address before anything decodes them: beyond
	// them a datagram is dropped unanswered at the cost of a table
	// look-up, and counted as source_rate in edgeota_refused_total
	// (defaults ten times SourceRate, 20000 at its default, and one
	// second's worth; off when SourceRate is off and SourceDropRate is
	// not set; a negative rate: off). Unlike SourceRate they count every
	// datagram, blocks of a transfer included, so they are set far above
	// what an address sends: a node fetching in lock-step over loopback
	// reaches 25,000 blocks a second, within the burst for a 4 MiB
	// image; over a radio, tens.
	SourceDropRate  float64
	SourceDropBurst int
	// NodeRate and NodeBurst bound the requests per second of one node:
	// its PSK identity under DTLS, its source endpoint on plain UDP
	// (defaults 50 and 100).
	NodeRate  float64
	NodeBurst int
	// MaxBody is the largest node document accepted, in bytes (default
	// and at most 1024, docs/protocol.md section 5); larger ones get 4.13.
	MaxBody int
	// MaxSessions and MaxHandshakes bound the DTLS sessions established
	// and in progress (defaults 10000 and 256); MaxHandshakesPerSource
	// bounds the handshakes in progress from one IP address (default 4),
	// so that ClientHellos from one address cannot hold every slot.
	MaxSessions, MaxHandshakes, MaxHandshakesPerSource int
	// MaxKeys bounds the sources and nodes each rate tracks at once
	// (default 100000); when full, an unknown source is refused until
	// idle entries are swept.
	MaxKeys int
}

func (l Limits) withDefaults() Limits {
	if l.SourceRate == 0 {
		l.SourceRate = 2000
	}
	if l.SourceBurst <= 0 {
		l.SourceBurst = max(1, int(2*l.SourceRate))
	}
	if l.SourceDropRate == 0 && l.SourceRate > 0 {
		l.SourceDropRate = 10 * l.SourceRate
	}
	if l.SourceDropBurst <= 0 {
		l.SourceDropBurst = max(1, int(l.SourceDropRate))
	}
	if l.NodeRate == 0 {
		l.NodeRate = 50
	}
	if l.NodeBurst <= 0 {
		l.NodeBurst = max(1, int(2*l.NodeRate))
	}
	if l.MaxBody <= 0 || l.MaxBody > 1024 {
		l.MaxBody = 1024
	}
	if l.MaxSessions <= 0 {
		l.MaxSessions = 10000
	}
	if l.MaxHandshakes <= 0 {
		l.MaxHandshakes = 256
	}
	if l.MaxHandshakesPerSource <= 0 {
		l.MaxHandshakesPerSource = 4
	}
	if l.MaxKeys <= 0 {
		l.MaxKeys = 100000
	}
	return l
}

// rates returns the request rates of l.
func (l Limits) rates() ratelimit.Config {
	return ratelimit.Config{SourceRate: l.SourceRate, SourceBurst: l.SourceBurst, NodeRate: l.NodeRate,
		NodeBurst: l.NodeBurst, MaxKeys: l.MaxKeys}
}

// limitMetrics returns the configured limits of c by the name the edgeota_limit
// gauge gives them.
func (c Config) limitMetrics() map[string]float64 {
	l := c.Limits
	return map[string]float64{
		"source_rate": l.SourceRate, "source_burst": float64(l.SourceBurst),
		"source_drop_rate": l.SourceDropRate, "source_drop_burst": float64(l.SourceDropBurst),
		"node_rate": l.NodeRate, "node_burst": float64(l.NodeBurst),
		"max_body": float64(l.MaxBody), "max_sessions": float64(l.MaxSessions), "max_handshakes": float64(l.MaxHandshakes),
		"max_handshakes_per_source": float64(l.MaxHandshakesPerSource),
		"max_transfers":             float64(c.MaxTransfers), "max_transfers_per_node": float64(c.MaxTransfersPerNode),
		"max_nodes": float64(c.MaxNodes),
	}
}
