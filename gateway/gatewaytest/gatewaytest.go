// Package gatewaytest runs a real gateway inside a test, as
// net/http/httptest runs an HTTP server: made from a [gateway.Config],
// serving until the test ends; and opens DTLS sessions to it as a node
// does.
package gatewaytest

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"

	"edgeota/gateway"
)

// StopTimeout bounds how long the cleanup of [Start] waits for the gateway
// to stop.
const StopTimeout = 10 * time.Second

// Start makes a gateway of cfg and runs it until the test ends. A
// configuration New refuses fails the test, after closing the sockets
// cfg hands over (CoAPConn, AdminListener). The cleanup stops the gateway
// and fails the test if Run returned an error other than the end of its
// context, or if the gateway did not stop within [StopTimeout].
func Start(tb testing.TB, cfg gateway.Config) *gateway.Gateway {
	tb.Helper()
	g, err := gateway.New(cfg)
	if err != nil {
		if cfg.CoAPConn != nil {
			cfg.CoAPConn.Close()
		}
		if cfg.AdminListener != nil {
			cfg.AdminListener.Close()
		}
		tb.Fatalf("gatewaytest: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				tb.Errorf("gatewaytest: Run: %v", err)
			}
		case <-time.After(StopTimeout):
			tb.Errorf("gatewaytest: the gateway did not stop within %v", StopTimeout)
		}
	})
	return g
}

// DialDTLS opens a CoAP-over-DTLS session to a gateway at addr as a node
// does: DTLS 1.2 with PSK identity and key (the node id and its key), the
// cipher suite nodes use, from the local IP address from ("" for any),
// the handshake bounded by ctx. The caller closes the session.
func DialDTLS(ctx context.Context, from, addr, identity string, key []byte) (*piondtls.Conn, error) {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	var laddr *net.UDPAddr
	if from != "" {
		laddr = &net.UDPAddr{IP: net.ParseIP(from)}
	}
	uc, err := net.DialUDP("udp", laddr, raddr)
	if err != nil {
		return nil, err
	}
	dc, err := piondtls.ClientWithOptions(dtlsnet.PacketConnFromConn(uc), raddr,
		piondtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		piondtls.WithPSKIdentityHint([]byte(identity)),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8))
	if err != nil {
		uc.Close()
		return nil, err
	}
	if err := dc.HandshakeContext(ctx); err != nil {
		dc.Close()
		return nil, err
	}
	return dc, nil
}
