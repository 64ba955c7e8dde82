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

	"edgeota/test/testutil"
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
	ctx, cancel := context.WithTimeout(context.Background(), testutil.DefaultCeiling)
	defer cancel()
	go dc.HandshakeContext(ctx)
	defer dc.Close()
	buf := make([]byte, 2048)
	pc.SetReadDeadline(time.Now().Add(testutil.DefaultCeiling))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// TestHelloFloodFromOneAddressLeavesHandshakesForOthers: one address sends
// ClientHellos from a new port each time, faster than a handshake slot
// frees up; a node on another address still opens its DTLS session and
// fetches the model, every time it tries, because one address holds at
// most --max-handshakes-per-source slots. The flood counts only once the
// gateway shows it full (sessions refused before their handshake), and
// only if it goes on while the node fetches.
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
		// At most 1000 ClientHellos a second (one a millisecond, each
		// from a new port): far more than the 4 slots of 127.0.0.2 free
		// in the gateway's 10 s handshake timeout, and a bounded load.
		for ctx.Err() == nil {
			c := dialFrom(t, "127.0.0.2", g.coaps)
			c.Write(hello)
			c.Close()
			sent.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	// The flooder's slots are full once the gateway refuses its sessions
	// before any handshake work.
	testutil.Eventually(t, "the flood to fill its handshake slots", func() bool {
		return g.metric(t, sessionsRefused) >= 20
	})
	during := sent.Load()
	for k := range 3 {
		out := filepath.Join(dir, fmt.Sprintf("got%d.bin", k))
		runLibcoap(t, client, "-u", "node-a", "-k", keyA, "-m", "get", "-o", out, "coaps://"+g.coaps+"/m/"+digest)
		if b, _ := os.ReadFile(out); len(b) != 50_000 {
			t.Fatalf("fetch %d during a ClientHello flood (%d sent): %d bytes", k, sent.Load(), len(b))
		}
	}
	if sent.Load() == during {
		t.Fatal("the flood paused while the node fetched: it proves nothing")
	}
	cancel()
	<-flooded
	if ok := g.metric(t, handshakesOK); ok < 3 {
		t.Fatalf("%v handshakes succeeded, want the node's 3", ok)
	}
	t.Logf("%d ClientHellos from 127.0.0.2: %v sessions refused for full slots, %v refused by rate",
		sent.Load(), g.metric(t, sessionsRefused), g.metric(t, refusedSource))
}
