package coapserve

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"edgeota/gateway/internal/coapd"
	"edgeota/gateway/internal/qblock"
	"edgeota/protocol"
)

// qanswer is what one request got: its answer and its followers.
type qanswer struct {
	code   codes.Code
	silent bool
	blocks []qblock.Block
	bodies [][]byte
	etags  [][]byte
	size2  []uint32
}

var tokens uint16

// qget serves a GET of path with options opts from endpoint from.
func qget(t *testing.T, h *Handler, from netip.AddrPort, typ message.Type, path string, opts ...message.Option) qanswer {
	t.Helper()
	tokens++ // each request its own token, as RFC 9177 section 6 has it
	r := coapd.Request{Msg: message.Message{Code: codes.GET, Type: typ, Token: []byte{byte(tokens >> 8), byte(tokens)}}, From: from, Path: path}
	buf := make([]byte, 128)
	r.Msg.Options, _, _ = r.Msg.Options.SetPath(buf, path)
	for _, o := range opts {
		r.Msg.Options = r.Msg.Options.Add(o)
	}
	var w coapd.Response
	h.ServeCoAP(&w, &r)
	a := qanswer{code: w.Code, silent: w.NoAnswer()}
	add := func(w *coapd.Response) {
		v, err := w.Options.GetBytes(message.QBlock2)
		if err != nil {
			return
		}
		b, err := qblock.DecodeBlock(v)
		if err != nil {
			t.Fatal(err)
		}
		etag, _ := w.Options.GetBytes(message.ETag)
		size, _ := w.Options.GetUint32(message.Size2)
		a.blocks = append(a.blocks, b)
		a.bodies = append(a.bodies, append([]byte(nil), w.Payload...))
		a.etags = append(a.etags, append([]byte(nil), etag...))
		a.size2 = append(a.size2, size)
	}
	add(&w)
	w.Followers(add)
	return a
}

// check checks that a's blocks are nums of body data (block size bs),
// each with the ETag and Size2 of the body.
func (a qanswer) check(t *testing.T, what string, data, etag []byte, bs int, nums ...uint32) {
	t.Helper()
	var got []uint32
	for i, b := range a.blocks {
		got = append(got, b.Num)
		off := int(b.Num) * bs
		want := data[off:min(off+bs, len(data))]
		if b.Size() != bs || !bytes.Equal(a.bodies[i], want) || b.More != (off+bs < len(data)) ||
			!bytes.Equal(a.etags[i], etag) || int(a.size2[i]) != len(data) {
			t.Fatalf("%s: block %+v: wrong bytes, M bit, ETag or Size2", what, b)
		}
	}
	if !slices.Equal(got, nums) {
		t.Fatalf("%s: blocks %v, want %v", what, got, nums)
	}
}

// TestQBlock2BodiesAndDiscovery: images, deltas and /.well-known/core
// answer Q-Block2 the same way; a discovery probe as go-coap's and
// libcoap's clients send it (CON, Q-Block2 0/0/16) gets one block with
// Q-Block2, which tells the client the gateway supports RFC 9177.
func TestQBlock2BodiesAndDiscovery(t *testing.T) {
	h := newTestHandler(t)
	img, delta := memImage(25*1024-100), memImage(12*1024+5)
	h.cfg.Images, h.cfg.Deltas = img, delta
	from := netip.MustParseAddrPort("192.0.2.7:5683")
	for _, tc := range []struct {
		name string
		path string
		data []byte
		etag []byte
	}{
		{"image", protocol.ImagePath(img.d), img.data, img.d[:8]},
		{"delta", protocol.DeltaPath(delta.d), delta.data, delta.d[:8]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			count := uint32((len(tc.data) + 1023) / 1024)
			a := qget(t, h, from, message.NonConfirmable, tc.path, qopt(0, true))
			a.check(t, "the whole body", tc.data, tc.etag, 1024, seq(0, min(9, count-1))...)
			a = qget(t, h, from, message.NonConfirmable, tc.path, qopt(3, false), qopt(7, false))
			a.check(t, "missing 3 and 7", tc.data, tc.etag, 1024, 3, 7)
			a = qget(t, h, from, message.NonConfirmable, tc.path, qopt(10, true))
			a.check(t, "continue at 10", tc.data, tc.etag, 1024, seq(10, min(19, count-1))...)
			if a := qget(t, h, from, message.NonConfirmable, tc.path, qopt(10, true)); !a.silent || len(a.blocks) != 0 {
				t.Fatalf("a late Continue got %v %v", a.code, a.blocks)
			}
		})
	}
	core := h.coreLinks()
	if !bytes.Contains(core, []byte(protocol.ImagePath(img.d))) || len(core) <= 16 {
		t.Fatalf("core %s", core)
	}
	inFlight := h.QBlock().Stats().Transfers
	probe := qget(t, h, from, message.Confirmable, protocol.PathCore, message.Option{ID: message.QBlock2, Value: nil})
	sum := h.coreBody().etag
	probe.check(t, "probe", core, sum, 16, 0)
	// Discovery in 16-byte blocks: a set per request, no state kept (a
	// probe from every port of a flood holds no place in the table).
	whole := qget(t, h, from, message.NonConfirmable, protocol.PathCore, message.Option{ID: message.QBlock2, Value: []byte{0x08}})
	whole.check(t, "core from 0", core, sum, 16, seq(0, min(9, uint32(len(core)-1)/16))...)
	if n := h.QBlock().Stats().Transfers; n != inFlight {
		t.Fatalf("discovery left %d transfers in the table", n-inFlight)
	}
	// Without Q-Block2: the plain answer, whole.
	r := coapd.Request{Msg: message.Message{Code: codes.GET, Type: message.Confirmable}, From: from, Path: protocol.PathCore}
	var w coapd.Response
	h.ServeCoAP(&w, &r)
	if w.Code != codes.Content || !bytes.Equal(w.Payload, core) || w.Options.HasOption(message.QBlock2) {
		t.Fatalf("plain core: %v %s", w.Code, w.Payload)
	}
}

func seq(from, to uint32) []uint32 {
	var s []uint32
	for n := from; n <= to; n++ {
		s = append(s, n)
	}
	return s
}

// full admits no new transfer, as transfer bounds at their limit do.
type full struct{}

func (full) Admit(netip.AddrPort, string, protocol.Digest, time.Time, func() bool) (bool, bool, bool) {
	return false, false, false
}
func (full) Done(netip.AddrPort, protocol.Digest) {}

// TestQBlock2NeverRefusedOnceAdmitted: the transfer bounds apply when a
// Q-Block2 transfer starts; its later requests (recovery, Continue) are
// served while it is in flight, even when the bounds no longer hold it.
func TestQBlock2NeverRefusedOnceAdmitted(t *testing.T) {
	h := newTestHandler(t)
	img := memImage(25 * 1024)
	h.cfg.Images = img
	from := netip.MustParseAddrPort("192.0.2.7:5683")
	path := protocol.ImagePath(img.d)
	qget(t, h, from, message.NonConfirmable, path, qopt(0, true)).check(t, "start", img.data, img.d[:8], 1024, seq(0, 9)...)
	h.cfg.Transfers = full{}
	qget(t, h, from, message.NonConfirmable, path, qopt(4, false)).check(t, "recovery", img.data, img.d[:8], 1024, 4)
	qget(t, h, from, message.NonConfirmable, path, qopt(10, true)).check(t, "continue", img.data, img.d[:8], 1024, seq(10, 19)...)
	other := netip.MustParseAddrPort("192.0.2.8:5683")
	if a := qget(t, h, other, message.NonConfirmable, path, qopt(0, true)); a.code != codes.ServiceUnavailable {
		t.Fatalf("a new transfer over the bounds: %v", a.code)
	}
}
