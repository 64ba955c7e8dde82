// Package gatewaytest runs a real gateway inside a test, as
// net/http/httptest runs an HTTP server: made from a [gateway.Config],
// serving until the test ends.
package gatewaytest

import (
	"context"
	"errors"
	"testing"
	"time"

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
