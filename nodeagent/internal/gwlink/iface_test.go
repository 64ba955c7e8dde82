package gwlink_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"edgeota/nodeagent"
	"edgeota/nodeagent/internal/gwlink"
)

// A Client is the node agent's Reporter and an Image its ImageSource.
var (
	_ nodeagent.Reporter    = (*gwlink.Client)(nil)
	_ nodeagent.ImageSource = (*gwlink.Image)(nil)
)

// TestDialDTLSWaitsForTheGateway: with a PSK, Dial sends nothing and
// fails nothing while the gateway is down; the first request's handshake
// fails as a transient error, retried until the request's deadline.
func TestDialDTLSWaitsForTheGateway(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close() // nothing listens there now
	c, err := gwlink.Dial(context.Background(), addr, "node-1", gwlink.WithPSK([]byte("0123456789abcdef")),
		gwlink.WithTransmission(50*time.Millisecond, 1), gwlink.WithRequestTimeout(200*time.Millisecond), gwlink.WithMaxElapsed(time.Second))
	if err != nil {
		t.Fatalf("Dial with the gateway down: %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err = c.Manifest(ctx)
	if err == nil || errors.Is(err, gwlink.ErrRefused) {
		t.Fatalf("a request with the gateway down: %v, want a transient failure", err)
	}
}
