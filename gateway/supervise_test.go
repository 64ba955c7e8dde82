package gateway_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"

	"edgeota/gateway"
	"edgeota/gateway/admin"
	"edgeota/gateway/gatewaytest"
	"edgeota/test/testutil"
)

// TestReadyAndHousekeepingRounds: Ready is open until Run serves and
// closed after; the housekeeping count advances while the gateway runs
// (what feeds a watchdog).
func TestReadyAndHousekeepingRounds(t *testing.T) {
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32)).Public().(ed25519.PublicKey)
	g, err := gateway.New(gateway.Config{DataDir: t.TempDir(), Trust: []ed25519.PublicKey{pub},
		CoAPAddr: "127.0.0.1:0", InsecureUDP: true, CoAPSAddr: "-", AdminAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.Ready():
		t.Fatal("Ready is closed before Run")
	default:
	}
	if n := g.HousekeepingRounds(); n != 0 {
		t.Fatalf("%d housekeeping rounds before Run", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() {
		cancel()
		if err := testutil.Receive(t, "Run to return", done); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	}()
	testutil.Closed(t, "Ready", g.Ready())
	// The admin API answers once Ready is closed, without a retry.
	resp, err := http.Get("http://" + g.AdminAddr().String() + admin.PathHealth)
	if err != nil {
		t.Fatalf("after Ready: %v", err)
	}
	resp.Body.Close()
	first := g.HousekeepingRounds()
	testutil.Eventually(t, "two more housekeeping rounds", func() bool { return g.HousekeepingRounds() >= first+2 })
}

// TestSetAdminToken: a new token holds from the next request on and the
// old one is refused; SetAdminToken refuses what New refuses.
func TestSetAdminToken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32)).Public().(ed25519.PublicKey)
	g, base := startGateway(t, gateway.Config{AdminToken: testToken, AdminListener: ln, Trust: []ed25519.PublicKey{pub}})
	status := func(auth string) int {
		resp, _ := adminGet(t, http.DefaultClient, base+admin.PathNodes, auth)
		return resp.StatusCode
	}
	if got := status("Bearer " + testToken); got != http.StatusOK {
		t.Fatalf("the first token: %d", got)
	}
	next := strings.Repeat("n", 32)
	if err := g.SetAdminToken(next); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		auth string
		want int
	}{{"Bearer " + testToken, http.StatusUnauthorized}, {"Bearer " + next, http.StatusOK}, {"", http.StatusUnauthorized}} {
		if got := status(c.auth); got != c.want {
			t.Errorf("after SetAdminToken, %q: %d, want %d", c.auth, got, c.want)
		}
	}
	if err := g.SetAdminToken("short"); !errors.Is(err, gateway.ErrAdminTokenShort) {
		t.Errorf("a short token: %v, want ErrAdminTokenShort", err)
	}
	if got := status("Bearer " + next); got != http.StatusOK {
		t.Errorf("a refused token replaced the good one: %d", got)
	}
	// On loopback the token may go; beyond loopback it may not.
	if err := g.SetAdminToken(""); err != nil {
		t.Fatalf("no token on loopback: %v", err)
	}
	if got := status(""); got != http.StatusOK {
		t.Errorf("without a token: %d, want 200", got)
	}
	wide, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	gw, _ := startGateway(t, gateway.Config{AdminToken: testToken, AdminListener: wide, Trust: []ed25519.PublicKey{pub}})
	if err := gw.SetAdminToken(""); !errors.Is(err, gateway.ErrAdminNoToken) {
		t.Errorf("no token beyond loopback: %v, want ErrAdminNoToken", err)
	}
}

// startGateway runs a gateway of cfg on loopback sockets (plain UDP, the
// admin listener of cfg) and returns it with its admin URL.
func startGateway(t testing.TB, cfg gateway.Config) (*gateway.Gateway, string) {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir, cfg.CoAPConn, cfg.InsecureUDP, cfg.CoAPSAddr = t.TempDir(), conn, true, "-"
	g := gatewaytest.Start(t, cfg)
	testutil.Closed(t, "Ready", g.Ready())
	return g, "http://" + g.AdminAddr().String()
}
