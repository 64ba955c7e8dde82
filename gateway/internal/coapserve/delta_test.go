package coapserve

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"

	"edgeota/gateway/internal/activity"
	"edgeota/gateway/internal/coapd"
	"edgeota/gateway/internal/deltas"
	"edgeota/gateway/internal/images"
	"edgeota/gateway/internal/store"
	"edgeota/protocol"
	"edgeota/protocol/delta"
	"edgeota/protocol/sign"
)

// get sends a GET of path from 10.0.0.1:5683 with opts and returns the
// answer.
func get(t *testing.T, h *Handler, path string, opts ...message.Option) *coapd.Response {
	t.Helper()
	r := coapd.Request{Msg: message.Message{Code: codes.GET, Type: message.Confirmable, Token: []byte{1}},
		From: netip.MustParseAddrPort("10.0.0.1:5683"), Path: path}
	r.Msg.Options = append(r.Msg.Options, opts...)
	var w coapd.Response
	h.ServeCoAP(&w, &r)
	return &w
}

func block2(t *testing.T, num int64, size int) message.Option {
	t.Helper()
	szx, err := sizeToSZX(size)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := blockwise.EncodeBlockOption(szx, num, false)
	b := make([]byte, 4)
	n, _ := message.EncodeUint32(b, v)
	return message.Option{ID: message.Block2, Value: b[:n]}
}

// counter reads a counter of h's metrics with label value kind.
func counter(t *testing.T, h *Handler, kind string) float64 {
	t.Helper()
	mfs, err := h.cfg.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "edgeota_image_bytes_served_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == kind {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no edgeota_image_bytes_served_total{kind=%q}", kind)
	return 0
}

// TestDeltaServedAndOffered: a node that runs a cached image and lists
// format 1 is answered its manifest plain until the delta is computed,
// then with the offer (a new ETag, the same signature); the delta is
// served on /d/{hex} block by block at the size asked, with its ETag and
// Size2, its bytes counted as delta bytes; it is not listed in
// /.well-known/core, and an unknown delta is 4.04.
func TestDeltaServedAndOffered(t *testing.T) {
	h := newTestHandler(t)
	db := h.cfg.Store.(*store.DB)
	imgs := h.cfg.Images.(*images.Cache)
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	signer, _ := sign.NewSigner(priv)
	trust, _ := sign.NewTrustStore(sign.RoleManifest, priv.Public().(ed25519.PublicKey))
	rng := rand.New(rand.NewPCG(5, 5))
	base := make([]byte, 40_000)
	for i := range base {
		base[i] = byte(rng.Uint32())
	}
	target := bytes.Clone(base)
	for i := 36_000; i < len(target); i++ {
		target[i] = byte(rng.Uint32())
	}
	class := protocol.Class{1}
	put := func(seq uint64, image []byte) []byte {
		m := &protocol.Manifest{Format: 1, Seq: seq, Component: "kws", Version: "1", Digest: sha256.Sum256(image),
			Size: uint64(len(image)), Class: class}
		signed, err := signer.SignManifest(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.PutModel(signed, bytes.NewReader(image), trust); err != nil {
			t.Fatal(err)
		}
		imgs.Add(m.Digest, int64(len(image)))
		return signed
	}
	put(1, base)
	signedTarget := put(2, target)
	ready := make(chan []string, 1)
	dm, err := deltas.New(deltas.Config{Store: db, Images: imgs, Format: delta.Format1, Metrics: h.cfg.Metrics,
		Diff:  func(b, t []byte) ([]byte, error) { return delta.Diff(b, t) },
		Ready: func(nodes []string) { ready <- nodes }})
	if err != nil {
		t.Fatal(err)
	}
	h.cfg.Deltas, h.cfg.Offers = dm.Blobs(), dm
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go dm.Run(ctx)

	hello := &protocol.Hello{NodeID: "n1", Class: class, AgentVersion: "1.0.0", Component: "kws", RunningSeq: 1,
		RunningDigest: sha256.Sum256(base), ActiveState: protocol.SlotConfirmed, DeltaFormats: []uint64{1}}
	if w, _ := postHello(t, h, hello, "10.0.0.1:5683"); w.Code != codes.Changed {
		t.Fatalf("hello answered %v", w.Code)
	}
	if err := db.Assign([]string{"n1"}, signedTarget); err != nil {
		t.Fatal(err)
	}
	manifest := protocol.NodePath("n1", protocol.ResManifest)
	first := get(t, h, manifest)
	if first.Code != codes.Content || !bytes.Equal(first.Payload, signedTarget) {
		t.Fatalf("before the delta: %v, %d bytes; want the plain manifest", first.Code, len(first.Payload))
	}
	if nodes := <-ready; len(nodes) != 1 || nodes[0] != "n1" {
		t.Fatalf("ready told %v", nodes)
	}
	w := get(t, h, manifest)
	etag0, _ := first.Options.GetBytes(message.ETag)
	etag1, _ := w.Options.GetBytes(message.ETag)
	if bytes.Equal(etag0, etag1) {
		t.Fatal("the ETag did not change with the offer")
	}
	if _, err := trust.VerifyManifest(w.Payload); err != nil {
		t.Fatalf("manifest with its offer does not verify: %v", err)
	}
	e, _ := sign.Parse(w.Payload)
	raw, ok := e.Unprotected(protocol.DeltaOfferLabel)
	if !ok {
		t.Fatal("no offer once the delta is computed")
	}
	offer, err := protocol.DecodeDeltaOffer(raw)
	if err != nil {
		t.Fatal(err)
	}
	if offer.Base != hello.RunningDigest || offer.Size*5 > uint64(len(target))*4 {
		t.Fatalf("offer %+v", offer)
	}

	// The delta, 256 bytes a block as a node on a small radio asks.
	path := protocol.DeltaPath(offer.Delta)
	if !strings.HasPrefix(path, "/d/") {
		t.Fatalf("delta path %q", path)
	}
	var got []byte
	for num := int64(0); ; num++ {
		w := get(t, h, path, block2(t, num, 256))
		if w.Code != codes.Content {
			t.Fatalf("block %d: %v", num, w.Code)
		}
		if tag, _ := w.Options.GetBytes(message.ETag); !bytes.Equal(tag, offer.Delta[:8]) {
			t.Fatalf("block %d: ETag %x", num, tag)
		}
		if cf, _ := w.Options.ContentFormat(); cf != cfOctetStream {
			t.Fatalf("block %d: content-format %v", num, cf)
		}
		if num == 0 {
			if sz, err := w.Options.GetUint32(message.Size2); err != nil || uint64(sz) != offer.Size {
				t.Fatalf("Size2 %d, %v; want %d", sz, err, offer.Size)
			}
		}
		got = append(got, w.Payload...)
		v, _ := w.Options.GetUint32(message.Block2)
		_, bnum, more, _ := blockwise.DecodeBlockOption(v)
		if bnum != num || len(w.Payload) > 256 {
			t.Fatalf("block %d answered as %d with %d bytes", num, bnum, len(w.Payload))
		}
		if !more {
			break
		}
	}
	if sha256.Sum256(got) != offer.Delta || uint64(len(got)) != offer.Size {
		t.Fatal("the bytes served are not the offered delta")
	}
	if out, err := delta.Apply(base, got); err != nil || !bytes.Equal(out, target) {
		t.Fatalf("the served delta does not rebuild the target: %v", err)
	}
	if n := counter(t, h, "delta"); n != float64(len(got)) {
		t.Fatalf("delta bytes served %v, want %d", n, len(got))
	}
	if n := counter(t, h, "full"); n != 0 {
		t.Fatalf("full bytes served %v, want 0", n)
	}
	// Resume at any block.
	if w := get(t, h, path, block2(t, 3, 256)); w.Code != codes.Content || !bytes.Equal(w.Payload, got[768:1024]) {
		t.Fatalf("block 3 again: %v", w.Code)
	}
	w = get(t, h, protocol.ImagePath(sha256.Sum256(target)), block2(t, 0, 1024))
	if n := counter(t, h, "full"); w.Code != codes.Content || n != 1024 {
		t.Fatalf("image block: %v, full bytes %v", w.Code, n)
	}
	if w := get(t, h, protocol.DeltaPath(protocol.Digest{7})); w.Code != codes.NotFound {
		t.Fatalf("unknown delta: %v", w.Code)
	}
	if w := get(t, h, protocol.ImagePath(offer.Delta)); w.Code != codes.NotFound {
		t.Fatalf("a delta on the image path: %v", w.Code)
	}
	if w := get(t, h, protocol.PathCore); strings.Contains(string(w.Payload), offer.Delta.String()) || strings.Contains(string(w.Payload), "</d/") {
		t.Fatalf("/.well-known/core lists the delta: %s", w.Payload)
	}
}

// postStatus posts e and returns the answer.
func postStatus(t *testing.T, h *Handler, e *protocol.StatusEvent) *coapd.Response {
	t.Helper()
	body, err := protocol.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	r := coapd.Request{Msg: message.Message{Code: codes.POST, Type: message.Confirmable, Payload: body},
		From: netip.MustParseAddrPort("10.0.0.1:5683"), Path: protocol.NodePath(e.NodeID, protocol.ResStatus)}
	r.Msg.Options, _, _ = message.Options{}.SetContentFormat(make([]byte, 4), message.AppCBOR)
	var w coapd.Response
	h.ServeCoAP(&w, &r)
	if d := w.Deferred(); d != nil {
		return d.Answer()
	}
	return &w
}

// TestTransferRecorded: the transfer of a status event (key 64) is the
// node's latest in the registry, with its fallback reason, and outlives
// later status events that carry none.
func TestTransferRecorded(t *testing.T) {
	h := newTestHandler(t)
	rec := h.cfg.Activity.(*activity.Recorder)
	db := h.cfg.Store.(*store.DB)
	hello := &protocol.Hello{NodeID: "n1", Class: protocol.Class{1}, AgentVersion: "1.0.0", Component: "kws"}
	postHello(t, h, hello, "10.0.0.1:5683")
	d := protocol.Digest{0xaa}
	steps := []struct {
		name string
		ev   protocol.StatusEvent
		want *store.Transfer
	}{
		{"no transfer yet", protocol.StatusEvent{State: protocol.StateIdle}, nil},
		{"delta starts", protocol.StatusEvent{State: protocol.StateDownloading, Seq: 2, Digest: d,
			Transfer: &protocol.Transfer{Kind: protocol.TransferDelta, Delta: protocol.Digest{0xde}}},
			&store.Transfer{Seq: 2, Digest: d, State: protocol.StateDownloading, Kind: protocol.TransferDelta, Delta: protocol.Digest{0xde}}},
		{"falls back", protocol.StatusEvent{State: protocol.StateDownloading, Seq: 2, Digest: d,
			Transfer: &protocol.Transfer{Kind: protocol.TransferFull, Fetched: 900, Fallback: "patch refused"}},
			&store.Transfer{Seq: 2, Digest: d, State: protocol.StateDownloading, Kind: protocol.TransferFull, Fetched: 900, Fallback: "patch refused"}},
		{"verified, with a pending after it in the same second", protocol.StatusEvent{State: protocol.StateVerified, Seq: 2, Digest: d,
			Transfer: &protocol.Transfer{Kind: protocol.TransferFull, Fetched: 41_000}},
			&store.Transfer{Seq: 2, Digest: d, State: protocol.StateVerified, Kind: protocol.TransferFull, Fetched: 41_000}},
	}
	for i, s := range steps {
		e := s.ev
		e.NodeID, e.BootCount, e.Number = "n1", 1, uint64(2*i+1)
		if w := postStatus(t, h, &e); w.Code != codes.Changed {
			t.Fatalf("%s: answered %v", s.name, w.Code)
		}
		if i == len(steps)-1 { // a status event without a transfer, flushed together
			p := protocol.StatusEvent{NodeID: "n1", State: protocol.StatePending, Seq: 2, Digest: d, BootCount: 1, Number: uint64(2*i + 2)}
			postStatus(t, h, &p)
		}
		rec.Flush()
		n, err := db.Node("n1")
		if err != nil {
			t.Fatal(err)
		}
		if (n.Transfer == nil) != (s.want == nil) || (s.want != nil && *n.Transfer != *s.want) {
			t.Fatalf("%s: transfer %+v, want %+v", s.name, n.Transfer, s.want)
		}
	}
}
