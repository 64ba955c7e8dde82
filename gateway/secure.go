package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/prometheus/client_golang/prometheus"

	"edgeota/gateway/internal/store"
)

// dtlsCipherSuites are the PSK suites the gateway offers: AES-128-CCM-8,
// the one RFC 7252 section 9.1.3.1 and RFC 7925 make mandatory for CoAP,
// then AES-128-GCM and AES-128-CCM.
var dtlsCipherSuites = []piondtls.CipherSuiteID{
	piondtls.TLS_PSK_WITH_AES_128_CCM_8,
	piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256,
	piondtls.TLS_PSK_WITH_AES_128_CCM,
}

// errUnknownIdentity is what a handshake with an identity that has no key
// fails with.
var errUnknownIdentity = errors.New("no key for that identity")

// listenDTLS listens for CoAP over DTLS 1.2 (go-coap's DTLS listener over
// github.com/pion/dtls) with per-node pre-shared keys: psk returns the key
// of the identity a client presents. attempt may refuse a source before
// any handshake work (nil: none refused).
func listenDTLS(addr string, psk func(identity []byte) ([]byte, error), attempt func(net.Addr) error) (net.Listener, error) {
	opts := []piondtls.ServerOption{
		piondtls.WithPSK(psk),
		piondtls.WithPSKIdentityHint([]byte("edgeota")),
		piondtls.WithCipherSuites(dtlsCipherSuites...),
		piondtls.WithExtendedMasterSecret(piondtls.RequestExtendedMasterSecret),
	}
	if attempt != nil {
		opts = append(opts, piondtls.WithOnConnectionAttempt(attempt))
	}
	l, err := coapnet.NewDTLSListener("udp", addr, coapnet.NewDTLSServerOptions(opts...))
	if err != nil {
		return nil, err
	}
	return l, nil
}

// pskFor returns the key of a node from the registry: the DTLS PSK
// callback, whose identity is the node id.
func (g *Gateway) pskFor(identity []byte) ([]byte, error) {
	k, err := g.store.PSK(string(identity))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w %q", errUnknownIdentity, identity)
	}
	return k, err
}

// dtlsAttempt refuses a handshake from a source over its request rate, so
// that a flood of ClientHellos costs no cryptography.
func (g *Gateway) dtlsAttempt(a net.Addr) error {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return nil
	}
	ap := ua.AddrPort()
	if !g.limiter.bySource.allow(ap.Addr().Unmap(), time.Now()) {
		g.metrics.refused.WithLabelValues("source_rate").Inc()
		return errors.New("over the source's request rate")
	}
	return nil
}

// onSession counts handshakes and logs the failed ones: a wrong key and an
// unknown identity look the same to the gateway (the handshake's Finished
// message does not verify), so both are logged with the identity offered.
func (g *Gateway) onSession(identity string, from netip.AddrPort, err error) {
	if err != nil {
		g.dtlsHandshakes.WithLabelValues("failed").Inc()
		g.log.Warn("DTLS handshake failed", "from", from.String(), "err", err)
		return
	}
	g.dtlsHandshakes.WithLabelValues("ok").Inc()
	g.log.Debug("DTLS session", "node", identity, "from", from.String())
}

// registerLimitMetrics exposes every configured limit, and the DTLS
// session counters.
func registerLimitMetrics(g *Gateway) {
	l := g.limits
	limit := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "edgeota_limit",
		Help: "Configured limits: rates in requests per second (negative: off), bursts in requests, sizes in bytes, counts."},
		[]string{"name"})
	for name, v := range map[string]float64{
		"source_rate": l.SourceRate, "source_burst": float64(l.SourceBurst),
		"node_rate": l.NodeRate, "node_burst": float64(l.NodeBurst),
		"max_body": float64(l.MaxBody), "max_sessions": float64(l.MaxSessions), "max_handshakes": float64(l.MaxHandshakes),
		"max_handshakes_per_source": float64(l.MaxHandshakesPerSource),
		"max_transfers":             float64(g.cfg.MaxTransfers), "max_transfers_per_node": float64(g.cfg.MaxTransfersPerNode),
	} {
		limit.WithLabelValues(name).Set(v)
	}
	g.dtlsHandshakes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgeota_dtls_handshakes_total",
		Help: "DTLS handshakes, by result (failed: wrong key, unknown identity, timeout)."}, []string{"result"})
	g.metrics.reg.MustRegister(limit, g.dtlsHandshakes,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "edgeota_dtls_sessions_refused_total",
			Help: "DTLS sessions refused before their handshake: the session limit, the handshake limit or the per-source handshake limit was full."},
			func() float64 {
				if g.coap == nil {
					return 0
				}
				return float64(g.coap.Stats().SessionsRefused)
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgeota_dtls_sessions", Help: "Established DTLS sessions."},
			func() float64 {
				if g.coap == nil {
					return 0
				}
				return float64(g.coap.Sessions())
			}))
}
