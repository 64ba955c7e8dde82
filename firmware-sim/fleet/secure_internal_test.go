package fleet

import (
	"crypto/ed25519"
	"testing"
	"time"

	"edgeota/firmware-sim/scenario"
)

// TestGatewayConfigTransport: over DTLS the in-process gateway serves no
// plain CoAP, and its handshake limits let the whole fleet, which speaks
// from one address, handshake at once; over UDP it serves plain CoAP only.
func TestGatewayConfigTransport(t *testing.T) {
	for _, tc := range []struct {
		transport string
		nodes     int
	}{{scenario.TransportDTLS, 200}, {scenario.TransportDTLS, 2000}, {scenario.TransportUDP, 200}} {
		sc := &scenario.Scenario{Transport: tc.transport, TimeScale: 60, Fleet: []scenario.Group{{Count: tc.nodes}}}
		s := &sim{sc: sc, dtls: tc.transport == scenario.TransportDTLS, clock: newScaledClock(testStart, 60), key: testKey}
		cfg := s.gatewayConfig()
		if cfg.Limits.SourceRate != -1 {
			t.Errorf("%s: source rate %v, want -1 (off): every node speaks from 127.0.0.1", tc.transport, cfg.Limits.SourceRate)
		}
		if tc.transport == scenario.TransportUDP {
			if !cfg.InsecureUDP || cfg.CoAPSAddr != "-" {
				t.Errorf("udp: InsecureUDP %v, CoAPSAddr %q", cfg.InsecureUDP, cfg.CoAPSAddr)
			}
			continue
		}
		if cfg.InsecureUDP || cfg.CoAPConn != nil {
			t.Errorf("dtls: the gateway also serves plain CoAP")
		}
		if l := cfg.Limits; l.MaxHandshakesPerSource < 2*tc.nodes || l.MaxHandshakes < l.MaxHandshakesPerSource {
			t.Errorf("dtls, %d nodes: %d handshakes per source, %d in all", tc.nodes, l.MaxHandshakesPerSource, l.MaxHandshakes)
		}
	}
}

var (
	testStart = time.Unix(1_800_000_000, 0)
	testKey   = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
)
