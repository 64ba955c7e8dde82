package gateway_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"edgeota/gateway"
	"edgeota/gateway/admin"
	"edgeota/gateway/gatewaytest"
	"edgeota/test/testutil"
)

const testToken = "0123456789abcdef0123456789abcdef"

// startAdmin runs a gateway with cfg's admin settings on loopback sockets
// (unless cfg brings its own admin listener) and returns its admin URL.
func startAdmin(t testing.TB, cfg gateway.Config) string {
	t.Helper()
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32)).Public().(ed25519.PublicKey)
	cfg.DataDir, cfg.Trust = t.TempDir(), []ed25519.PublicKey{pub}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	cfg.CoAPConn, cfg.InsecureUDP, cfg.CoAPSAddr = conn, true, "-"
	if cfg.AdminListener == nil {
		if cfg.AdminListener, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	g := gatewaytest.Start(t, gateway.Config(cfg))
	scheme := "http://"
	if cfg.AdminTLS != nil {
		scheme = "https://"
	}
	return scheme + g.AdminAddr().String()
}

// adminGet sends a GET with an optional Authorization header value.
func adminGet(t testing.TB, hc *http.Client, url, auth string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// TestAdminToken: with a token, every path (health and metrics included)
// answers 401 with a Bearer challenge and a JSON error unless the right
// bearer token is sent; refusals are counted.
func TestAdminToken(t *testing.T) {
	base := startAdmin(t, gateway.Config{AdminToken: testToken})
	tests := []struct {
		name, path, auth string
		want             int
		challenge        string // expected in WWW-Authenticate
	}{
		{"no token", admin.PathNodes, "", http.StatusUnauthorized, `Bearer realm="edgeota admin"`},
		{"no token on healthz", admin.PathHealth, "", http.StatusUnauthorized, "Bearer"},
		{"no token on metrics", admin.PathMetrics, "", http.StatusUnauthorized, "Bearer"},
		{"no token on an unknown path", "/nope", "", http.StatusUnauthorized, "Bearer"},
		{"another scheme", admin.PathNodes, "Basic " + testToken, http.StatusUnauthorized, "Bearer"},
		{"empty bearer", admin.PathNodes, "Bearer ", http.StatusUnauthorized, "Bearer"},
		{"wrong token", admin.PathNodes, "Bearer " + strings.Repeat("x", len(testToken)), http.StatusUnauthorized, `error="invalid_token"`},
		{"token prefix", admin.PathNodes, "Bearer " + testToken[:20], http.StatusUnauthorized, `error="invalid_token"`},
		{"token and more", admin.PathNodes, "Bearer " + testToken + "0", http.StatusUnauthorized, `error="invalid_token"`},
		{"right token", admin.PathNodes, "Bearer " + testToken, http.StatusOK, ""},
		{"scheme in lower case", admin.PathHealth, "bearer " + testToken, http.StatusOK, ""},
		{"right token, unknown path", "/nope", "Bearer " + testToken, http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := adminGet(t, http.DefaultClient, base+tt.path, tt.auth)
			if resp.StatusCode != tt.want {
				t.Fatalf("%s: %s %s", tt.path, resp.Status, body)
			}
			if tt.want != http.StatusUnauthorized {
				return
			}
			if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, tt.challenge) {
				t.Errorf("WWW-Authenticate %q, want %q", ch, tt.challenge)
			}
			var e struct{ Error, Reason string }
			if err := json.Unmarshal(body, &e); err != nil || e.Reason != "unauthorized" || e.Error == "" {
				t.Errorf("body %s (%v), want a JSON error with reason unauthorized", body, err)
			}
			if strings.Contains(string(body), testToken) {
				t.Error("the answer holds the token")
			}
		})
	}
	_, metrics := adminGet(t, http.DefaultClient, base+admin.PathMetrics, "Bearer "+testToken)
	for _, want := range []string{`edgeota_admin_refused_total{reason="missing"} 6`, `edgeota_admin_refused_total{reason="invalid"} 3`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestAdminWithoutToken: without a token the admin API on loopback is open
// as before.
func TestAdminWithoutToken(t *testing.T) {
	base := startAdmin(t, gateway.Config{})
	if resp, body := adminGet(t, http.DefaultClient, base+admin.PathNodes, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s", resp.Status, body)
	}
}

// TestAdminRefusedBeyondLoopback: New refuses an admin API beyond
// loopback without a token, whether it would listen itself or is handed a
// listener, and bad token or TLS settings.
func TestAdminRefusedBeyondLoopback(t *testing.T) {
	pub := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
	wildcard := func(t testing.TB) net.Listener {
		ln, err := net.Listen("tcp", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln
	}
	tests := []struct {
		name     string
		cfg      func(t testing.TB) gateway.Config
		wantErr  error  // errors.Is, or nil
		wantText string // in the error; "" for success
	}{
		{"all interfaces, no host", func(testing.TB) gateway.Config { return gateway.Config{AdminAddr: ":0"} }, gateway.ErrAdminNoToken, ":0"},
		{"0.0.0.0", func(testing.TB) gateway.Config { return gateway.Config{AdminAddr: "0.0.0.0:0"} }, gateway.ErrAdminNoToken, "0.0.0.0"},
		{"[::]", func(testing.TB) gateway.Config { return gateway.Config{AdminAddr: "[::]:0"} }, gateway.ErrAdminNoToken, ""},
		{"a LAN address", func(testing.TB) gateway.Config { return gateway.Config{AdminAddr: "192.0.2.10:8080"} }, gateway.ErrAdminNoToken, ""},
		{"IPv4-mapped LAN address", func(testing.TB) gateway.Config { return gateway.Config{AdminAddr: "[::ffff:192.0.2.10]:8080"} }, gateway.ErrAdminNoToken, ""},
		{"a wildcard listener", func(t testing.TB) gateway.Config { return gateway.Config{AdminListener: wildcard(t)} }, gateway.ErrAdminNoToken, ""},
		{"token too short", func(testing.TB) gateway.Config { return gateway.Config{AdminToken: "secret"} }, gateway.ErrAdminTokenShort, "too short"},
		{"token with a space", func(testing.TB) gateway.Config { return gateway.Config{AdminToken: "0123456789 abcdef"} }, nil, "printable ASCII"},
		{"TLS without a certificate", func(testing.TB) gateway.Config { return gateway.Config{AdminTLS: &tls.Config{}} }, nil, "no certificate"},
		{"loopback", func(testing.TB) gateway.Config { return gateway.Config{AdminAddr: "127.0.0.1:0"} }, nil, ""},
		{"localhost", func(testing.TB) gateway.Config { return gateway.Config{AdminAddr: "localhost:0"} }, nil, ""},
		{"all interfaces with a token", func(testing.TB) gateway.Config { return gateway.Config{AdminAddr: ":0", AdminToken: testToken} }, nil, ""},
		{"a wildcard listener with a token", func(t testing.TB) gateway.Config {
			return gateway.Config{AdminListener: wildcard(t), AdminToken: testToken}
		}, nil, ""},
		{"disabled", func(testing.TB) gateway.Config { return gateway.Config{AdminAddr: "-"} }, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg(t)
			cfg.DataDir, cfg.Trust = t.TempDir(), []ed25519.PublicKey{pub}
			cfg.CoAPAddr, cfg.InsecureUDP, cfg.CoAPSAddr = "127.0.0.1:0", true, "-"
			g, err := gateway.New(cfg)
			if tt.wantErr == nil && tt.wantText == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				g.Run(ctx) // closes what New opened
				return
			}
			if err == nil {
				t.Fatal("New accepted it")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v is not %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not mention %q", err, tt.wantText)
			}
			if strings.Contains(err.Error(), "--") {
				t.Errorf("the library names a command-line flag: %v", err)
			}
		})
	}
}

// TestAdminTLS: with AdminTLS the admin API speaks HTTPS only, with the
// certificate given (self-signed here), and still requires the token.
func TestAdminTLS(t *testing.T) {
	cert, pool := testutil.SelfSigned(t)
	base := startAdmin(t, gateway.Config{AdminToken: testToken, AdminTLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	trusting := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	tests := []struct {
		name, auth string
		want       int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"wrong token", "Bearer " + strings.Repeat("y", 32), http.StatusUnauthorized},
		{"right token", "Bearer " + testToken, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if resp, body := adminGet(t, trusting, base+admin.PathHealth, tt.auth); resp.StatusCode != tt.want {
				t.Fatalf("%s %s", resp.Status, body)
			}
		})
	}
	t.Run("untrusted certificate", func(t *testing.T) {
		_, err := (&http.Client{Timeout: 10 * time.Second}).Get(base + admin.PathHealth)
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Fatalf("a client without the certificate: %v", err)
		}
	})
	t.Run("plain HTTP", func(t *testing.T) {
		resp, body := adminGet(t, http.DefaultClient, "http://"+strings.TrimPrefix(base, "https://")+admin.PathHealth, "Bearer "+testToken)
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP to the TLS port: %s %s", resp.Status, body)
		}
	})
}
