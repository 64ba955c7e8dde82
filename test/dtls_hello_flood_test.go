package test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"
)

// captureClientHello returns the first datagram a DTLS PSK client sends:
// a ClientHello a flooder can replay from any port.
func captureClientHello(t *testing.T) []byte {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	uc, err := net.DialUDP("udp", nil, pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	dc, err := piondtls.ClientWithOptions(dtlsnet.PacketConnFromConn(uc), uc.RemoteAddr(),
		piondtls.WithPSK(func([]byte) ([]byte, error) { return []byte("flooder-key-0123"), nil }),
		piondtls.WithPSKIdentityHint([]byte("flooder")),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	go dc.HandshakeContext(ctx)
	defer dc.Close()
	buf := make([]byte, 2048)
	pc.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// TestHelloFloodFromOneAddressLeavesHandshakesForOthers: one address sends
// ClientHellos from a new port each time, faster than its request rate
// would let a handshake slot free up; a node on another address still
// opens its DTLS session and fetches the model, every time it tries,
// because one address holds at most --max-handshakes-per-source slots.
func TestHelloFloodFromOneAddressLeavesHandshakesForOthers(t *testing.T) {
	t.Parallel()
	client := requirePeer(t, "coap-client-openssl", "libcoap3-bin")
	dir := t.TempDir()
	signDTLSModel(t, dir, 50_000)
	keyA := literalKey(t)
	g := startDTLSGateway(t, dir, map[string]string{"node-a": keyA}, "--rate-source", "200", "--max-handshakes", "64")
	digest := g.push(t, dir, false)
	hello := captureClientHello(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sent atomic.Int64
	flooded := make(chan struct{})
	go func() {
		defer close(flooded)
		for ctx.Err() == nil {
			c := dialFrom(t, "127.0.0.2", g.coaps)
			c.Write(hello)
			c.Close()
			sent.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	time.Sleep(time.Second) // the flood has had time to take its slots
	for k := range 3 {
		out := filepath.Join(dir, fmt.Sprintf("got%d.bin", k))
		runLibcoap(t, client, "-u", "node-a", "-k", keyA, "-B", "5", "-m", "get", "-o", out, "coaps://"+g.coaps+"/m/"+digest)
		if b, _ := os.ReadFile(out); len(b) != 50_000 {
			t.Fatalf("fetch %d during a ClientHello flood (%d sent): %d bytes", k, sent.Load(), len(b))
		}
	}
	cancel()
	<-flooded
	if sent.Load() < 500 {
		t.Fatalf("only %d ClientHellos sent: the flood proves nothing", sent.Load())
	}
	t.Logf("%d ClientHellos from 127.0.0.2; refused by rate %v", sent.Load(), g.metric(t, refusedSource))
}
