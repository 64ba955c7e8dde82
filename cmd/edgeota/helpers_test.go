package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"log/slog"
	"net"
	"testing"
	"time"

	"edgeota/gateway"
	"edgeota/gateway/gatewaytest"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func encodeHex(b []byte) string { return hex.EncodeToString(b) }

// startCLIGateway runs a real gateway in the test process, serving CoAP
// over DTLS and its admin API on loopback with a token, which it returns.
func startCLIGateway(t testing.TB) (*gateway.Gateway, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const token = "cli-test-admin-token"
	trust := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	g := gatewaytest.Start(t, gateway.Config{DataDir: t.TempDir(), Trust: []ed25519.PublicKey{trust}, CoAPSAddr: "127.0.0.1:0",
		AdminListener: ln, AdminToken: token, Logger: slog.New(slog.DiscardHandler)})
	return g, token
}

// dtlsHandshake opens a DTLS session to addr as identity with key, as a
// node would, and closes it.
func dtlsHandshake(addr, identity string, key []byte, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	dc, err := gatewaytest.DialDTLS(ctx, "", addr, identity, key)
	if err != nil {
		return err
	}
	return dc.Close()
}
