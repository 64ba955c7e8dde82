package nodeagent_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"

	"edgeota/nodeagent"
	"edgeota/nodeagent/internal/gwlink"
	"edgeota/protocol"
)

// TestPowerCutSweepQBlock is the power-cut sweep of an update whose image
// comes in RFC 9177 Q-Block2 bursts (go-coap's Q-Block server, the node's
// gwlink client): blocks arrive ahead of the flash writes, and a cut at
// any flash operation still leaves a device that boots an image that
// verifies and finishes the update, resuming its download with Q-Block2.
func TestPowerCutSweepQBlock(t *testing.T) {
	tb := newTestbed(t)
	v1 := tb.release(t, 10, 1, "1.0.0", goodModel, 70000)
	rel := tb.release(t, 11, 2, "1.1.0", goodModel, 80000)
	addr := qblockServer(t, rel)
	c, err := gwlink.Dial(context.Background(), addr, "node-1",
		gwlink.WithTransmission(20*time.Millisecond, 6), gwlink.WithBackoff(10*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	src := c.ImageFor(rel.m)
	g := sweepGeometries[0]
	name := fmt.Sprintf("erase%d-write%d-qblock", g.erase, g.write)
	// Every 41st flash operation: each cut costs two downloads over
	// loopback; the cuts still land in every phase of the update (header,
	// erase and program of each erase block, progress records, verify,
	// activate, trial, confirm).
	sweep(t, tb, g, name, v1, rel, true, 41, func(t testing.TB, f nodeagent.Flash, r release) error {
		return tb.lifecycleFrom(t, f, r, src)
	})
	if !c.QBlockUsed() {
		t.Fatal("the image was read lock-step")
	}
}

// qblockServer serves rel's image with go-coap's Q-Block2 server.
func qblockServer(t *testing.T, rel release) string {
	t.Helper()
	r := mux.NewRouter()
	etag := rel.m.Digest.ETag()
	if err := r.Handle(protocol.ImagePath(rel.m.Digest), mux.HandlerFunc(func(w mux.ResponseWriter, _ *mux.Message) {
		_ = w.SetResponse(codes.Content, message.AppOctets, bytes.NewReader(rel.image), message.Option{ID: message.ETag, Value: etag})
	})); err != nil {
		t.Fatal(err)
	}
	l, err := coapnet.NewListenUDP("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := udp.NewServer(options.WithMux(r), options.WithErrors(func(error) {}),
		options.WithBlockwise(true, blockwise.SZX1024, time.Minute),
		options.WithQBlockwise(options.QBlockwiseAuto),
		options.WithQBlockwiseConfig(options.QBlockwiseConfig{MaxPayloads: 10, NonTimeout: 20 * time.Millisecond,
			NonReceiveTimeout: 1100 * time.Millisecond, NonMaxRetransmit: 4, MaxLatency: time.Second}))
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return l.LocalAddr().String()
}
