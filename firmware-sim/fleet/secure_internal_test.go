package fleet

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"edgeota/firmware-sim/clock"
	"edgeota/firmware-sim/scenario"
	"edgeota/gateway/admin"
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
		s := &sim{sc: sc, dtls: tc.transport == scenario.TransportDTLS, clock: clock.NewScaled(clock.NewFake(testStart), 60), key: testKey}
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

// TestRegisterKeysWarnsOfTheHandshakeBound: against a running gateway whose
// per-address handshake bound is below the fleet's size, registering the
// keys says which flag to raise; at or above it, nothing is said. The keys
// go to PUT /v1/keys with the admin token.
func TestRegisterKeysWarnsOfTheHandshakeBound(t *testing.T) {
	for _, tc := range []struct {
		bound int
		warn  bool
	}{{4, true}, {16, false}} {
		var put []byte
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer tok" {
				http.Error(w, "token", http.StatusUnauthorized)
				return
			}
			switch r.Method + " " + r.URL.Path {
			case admin.RoutePutKeys.String():
				put, _ = io.ReadAll(r.Body)
				io.WriteString(w, `{"imported":8,"changed":[]}`)
			case admin.RouteMetrics.String():
				fmt.Fprintf(w, "# HELP edgeota_limit x\nedgeota_limit{name=\"max_handshakes\"} 256\nedgeota_limit{name=\"max_handshakes_per_source\"} %d\n", tc.bound)
			default:
				http.NotFound(w, r)
			}
		}))
		var lines []string
		api, err := admin.NewClient(srv.URL, admin.WithToken("tok"))
		if err != nil {
			t.Fatal(err)
		}
		s := &sim{external: true, api: api, opts: Options{Progress: func(l string) { lines = append(lines, l) }}}
		ids := make([]identity, 8)
		for i := range ids {
			ids[i] = identity{id: fmt.Sprintf("n%d", i), psk: []byte("0123456789abcdef")}
		}
		if err := s.registerKeys(context.Background(), ids); err != nil {
			t.Fatal(err)
		}
		srv.Close()
		if !strings.Contains(string(put), `"node_id":"n7","psk":"hex:30313233343536373839616263646566"`) {
			t.Errorf("PUT keys %s", put)
		}
		warned := len(lines) == 1 && strings.Contains(lines[0], "--max-handshakes-per-source 16")
		if warned != tc.warn || (!tc.warn && len(lines) != 0) {
			t.Errorf("bound %d: said %q", tc.bound, lines)
		}
		if len(s.keyed) != 8 {
			t.Errorf("%d keys to forget", len(s.keyed))
		}
	}
}
