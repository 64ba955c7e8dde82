package nodeagent_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"edgeota/firmware-sim/radio"
	"edgeota/gateway"
	"edgeota/gateway/admin"
	"edgeota/nodeagent"
	"edgeota/nodeagent/simmodel"
)

// TestDownloadAcrossLossyLink: a node behind a radio link that loses 20% of
// the datagrams in each direction downloads, verifies and confirms a model
// from a real gateway in RFC 9177 Q-Block2 bursts (the gateway's metrics
// show it), over plain CoAP and over DTLS with its pre-shared key
// (handshake flights lost too).
func TestDownloadAcrossLossyLink(t *testing.T) {
	for _, secure := range []bool{false, true} {
		name := map[bool]string{false: "coap", true: "coaps"}[secure]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			downloadAcrossLossyLink(t, secure)
		})
	}
}

func downloadAcrossLossyLink(t *testing.T, secure bool) {
	tb := newTestbed(t)
	rel := tb.release(t, 5, 1, "1.0.0", goodModel, 48<<10)
	// A probation of 1 s at 100 inferences/s, at least 20, judges 20 to 101
	// inferences, as many as the real clock allows. It has no bounds, so it
	// confirms whatever the model draws: over so few inferences the
	// release's bounds revert a healthy model by chance, 2 errors of 39
	// breaking 50 per-mille (P = 2.8e-3 by the binomial) or one latency
	// over 60 ms of 99 the p99 bound (the p99 of fewer than 100 is their
	// largest, P = 1.2e-2).
	rel.m.Probation.Seconds, rel.m.Probation.MinInferences = 1, 20
	rel.m.Probation.MaxErrorPermille, rel.m.Probation.MaxP99Micros = nil, nil
	rel.signed, _ = tb.signer.SignManifest(rel.m)

	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	dir, coaps, psk := t.TempDir(), "-", []byte(nil)
	if secure {
		psk, coaps = []byte("lossy-1-pre-shared-key"), "127.0.0.1:0"
		if _, err := gateway.ImportKeys(dir, map[string][]byte{"lossy-1": psk}); err != nil {
			t.Fatal(err)
		}
	}
	g, err := gateway.New(gateway.Config{DataDir: dir, Trust: []ed25519.PublicKey{priv.Public().(ed25519.PublicKey)},
		CoAPConn: conn, InsecureUDP: true, CoAPSAddr: coaps, AdminListener: ln})
	if err != nil {
		t.Fatal(err)
	}
	target, scheme := conn.LocalAddr().String(), "coap://"
	if secure {
		target, scheme = g.CoAPSAddr().String(), "coaps://"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	gdone := make(chan error, 1)
	go func() { gdone <- g.Run(ctx) }()
	defer func() { cancel(); <-gdone }()
	api, err := admin.NewClient("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.PutModel(ctx, rel.signed, bytes.NewReader(rel.image)); err != nil {
		t.Fatalf("push: %v", err)
	}
	if _, err := api.AssignAll(ctx, rel.signed); err != nil {
		t.Fatalf("assign: %v", err)
	}

	// Seed 42 fixes which datagrams are lost, by their order in each
	// direction: the first one up and the fifth one down, so the check
	// below that both directions lost some does not depend on chance.
	lossy := radio.Link{Loss: 0.2}
	relay, err := radio.New("127.0.0.1:0", target, radio.Config{Up: lossy, Down: lossy, Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	rdone := make(chan error, 1)
	go func() { rdone <- relay.Run(ctx) }()
	defer func() { relay.Close(); <-rdone }()

	f := newSim(t, geometry{4096, 8, 4}, 1)
	a, err := nodeagent.New(nodeagent.Config{NodeID: "lossy-1", Class: testClass, Component: "kws-model", Flash: f, Trust: tb.trust, Models: simmodel.Runtime{}.ForAgent(),
		SlotSize: sweepSlot, JournalBlocks: 4, InferenceRate: 100, HealthInterval: time.Second,
		Gateway: scheme + relay.Addr().String(), PSK: psk, AckTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithCancel(ctx)
	adone := make(chan error, 1)
	go func() {
		if err := a.Boot(actx); err != nil {
			adone <- err
			return
		}
		adone <- a.Run(actx)
	}()
	deadline := time.Now().Add(90 * time.Second)
	var st *nodeagent.Status
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		if st, err = nodeagent.ReadStatus(f.Clone(), sweepSlot, 4); err == nil && st.LastState == "confirmed" {
			break
		}
	}
	acancel()
	if err := <-adone; err != nil && ctx.Err() == nil && err != context.Canceled {
		t.Fatalf("agent: %v", err)
	}
	if st == nil || st.LastState != "confirmed" || st.Slots[0].Seq != 5 {
		t.Fatalf("not confirmed across the lossy link: %+v", st)
	}
	stats := relay.Stats()
	t.Logf("relay: up %d in, %d dropped; down %d in, %d dropped", stats.Up.In, stats.Up.Dropped, stats.Down.In, stats.Down.Dropped)
	if stats.Up.Dropped == 0 || stats.Down.Dropped == 0 {
		t.Fatal("the link lost nothing: the test proves nothing")
	}
	if n := scrape(t, "http://"+ln.Addr().String()+"/metrics", "edgeota_qblock_transfers_started_total"); n < 1 {
		t.Fatalf("%v Q-Block2 transfers started: the node read the image lock-step", n)
	}
}

// scrape returns the value of an unlabelled metric on a Prometheus page.
func scrape(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s on %s", name, url)
	return 0
}
