package gateway_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"slices"
	"testing"
	"time"

	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"edgeota/gateway"
	"edgeota/gateway/gatewaytest"
	"edgeota/protocol"
	"edgeota/test/testutil"
)

// qpeer is a test's own RFC 9177 client over a UDP socket: it sends
// requests with Q-Block2 options and reads the responses as they come,
// so that a test decides which are lost.
type qpeer struct {
	t    *testing.T
	conn *net.UDPConn
	mid  uint16
	buf  []byte
}

func newQPeer(t *testing.T, addr string) *qpeer {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &qpeer{t: t, conn: c, mid: 0x100, buf: make([]byte, 2048)}
}

// qopt is a Q-Block2 option: block num, M bit more, 1024 bytes.
func qopt(num uint32, more bool) message.Option {
	v := num<<4 | 6
	if more {
		v |= 8
	}
	b := binary.BigEndian.AppendUint32(nil, v)
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	return message.Option{ID: message.QBlock2, Value: b}
}

// send sends a GET of path with extra options, of type typ, token tok.
func (p *qpeer) send(typ message.Type, path, tok string, extra ...message.Option) {
	p.t.Helper()
	p.request(codes.GET, typ, path, tok, nil, extra...)
}

// request sends a request of code with a payload.
func (p *qpeer) request(code codes.Code, typ message.Type, path, tok string, payload []byte, extra ...message.Option) {
	p.t.Helper()
	p.mid++
	opts := message.Options{}
	buf := make([]byte, 256)
	opts, _, _ = opts.SetPath(buf, path)
	for _, o := range extra {
		opts = opts.Add(o)
	}
	out := make([]byte, 2048)
	n, err := coder.DefaultCoder.Encode(message.Message{Code: code, Type: typ, MessageID: int32(p.mid), Token: []byte(tok),
		Options: opts, Payload: payload}, out)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.conn.Write(out[:n]); err != nil {
		p.t.Fatal(err)
	}
}

// block is one response as the peer read it.
type block struct {
	typ    message.Type
	code   codes.Code
	tok    string
	num    uint32
	more   bool
	etag   []byte
	size2  uint32
	body   []byte
	hasQB2 bool
}

// recv reads one response (within the test ceiling).
func (p *qpeer) recv() block {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(testutil.DefaultCeiling))
	n, err := p.conn.Read(p.buf)
	if err != nil {
		p.t.Fatalf("read: %v", err)
	}
	var m message.Message
	m.Options = make(message.Options, 0, 16)
	if _, err := coder.DefaultCoder.Decode(p.buf[:n], &m); err != nil {
		p.t.Fatal(err)
	}
	b := block{typ: m.Type, code: m.Code, tok: string(m.Token), body: append([]byte(nil), m.Payload...)}
	if v, err := m.Options.GetUint32(message.QBlock2); err == nil {
		b.hasQB2, b.num, b.more = true, v>>4, v&8 != 0
	}
	b.etag, _ = m.Options.GetBytes(message.ETag)
	b.etag = append([]byte(nil), b.etag...)
	b.size2, _ = m.Options.GetUint32(message.Size2)
	return b
}

// recvSet reads n blocks, each checked against the image: 2.05,
// non-confirmable, token tok, the image's ETag and Size2, the right bytes.
// It returns their numbers in arrival order.
func (p *qpeer) recvSet(n int, tok string, img []byte, etag []byte) []uint32 {
	p.t.Helper()
	var nums []uint32
	for i := 0; i < n; i++ {
		b := p.recv()
		if b.code != codes.Content || b.typ != message.NonConfirmable || b.tok != tok || !b.hasQB2 ||
			!bytes.Equal(b.etag, etag) || int(b.size2) != len(img) {
			p.t.Fatalf("block %+v (want token %q)", b, tok)
		}
		off := int(b.num) * 1024
		if !bytes.Equal(b.body, img[off:min(off+1024, len(img))]) || b.more != (off+1024 < len(img)) {
			p.t.Fatalf("block %d: wrong bytes or M bit", b.num)
		}
		nums = append(nums, b.num)
	}
	return nums
}

func sorted(nums []uint32) []uint32 { return slices.Sorted(slices.Values(nums)) }

func seq(from, to uint32) []uint32 {
	var s []uint32
	for n := from; n <= to; n++ {
		s = append(s, n)
	}
	return s
}

// TestQBlock2BurstAndRecovery drives a Q-Block2 download over loopback
// with a client of the test's own: the first burst loses blocks 3 and 7
// (dropped by the client, deterministically), one request names both and
// gets exactly them, 'Continue's fetch the next bursts at once; a late
// Continue gets nothing. Bad Q-Block2 options get their error codes.
func TestQBlock2BurstAndRecovery(t *testing.T) {
	// NON_TIMEOUT of a minute: no burst goes out unasked during the test.
	e := newEnv(t, opts{qblock: gateway.QBlockParams{NonTimeout: time.Minute}})
	md := e.model(9, 25*1024-100) // 25 blocks: bursts 0-9, 10-19, 20-24
	if err := e.push(md.signed, md.image); err != nil {
		t.Fatalf("push: %v", err)
	}
	path, etag := protocol.ImagePath(md.m.Digest), md.m.Digest[:8]
	p := newQPeer(t, e.coap)

	p.send(message.NonConfirmable, path, "t1", qopt(0, true))
	got := p.recvSet(10, "t1", md.image, etag)
	if s := sorted(got); !equalNums(s, seq(0, 9)) {
		t.Fatalf("first burst %v", got)
	}
	// Lost: 3 and 7. Ask for both in one request.
	p.send(message.NonConfirmable, path, "t2", qopt(3, false), qopt(7, false))
	if got := sorted(p.recvSet(2, "t2", md.image, etag)); !equalNums(got, []uint32{3, 7}) {
		t.Fatalf("recovered %v", got)
	}
	p.send(message.NonConfirmable, path, "t3", qopt(10, true))
	if got := sorted(p.recvSet(10, "t3", md.image, etag)); !equalNums(got, seq(10, 19)) {
		t.Fatalf("second burst %v", got)
	}
	p.send(message.NonConfirmable, path, "t4", qopt(20, true))
	if got := sorted(p.recvSet(5, "t4", md.image, etag)); !equalNums(got, seq(20, 24)) {
		t.Fatalf("last burst %v", got)
	}
	blocks := metricValue(t, e, "edgeota_image_blocks_served_total")
	if blocks != 27 {
		t.Fatalf("blocks served %v, want 25 + 2 recovered", blocks)
	}
	// A late Continue (its burst went out) is answered with nothing: once
	// the gateway has handled it (counted with code Empty), no block more
	// was served.
	p.send(message.NonConfirmable, path, "t5", qopt(10, true))
	testutil.Eventually(t, "the late Continue handled", func() bool {
		return metricValue(t, e, `edgeota_coap_requests_total{code="Empty",resource="image"}`) == 1
	})
	if v := metricValue(t, e, "edgeota_image_blocks_served_total"); v != blocks {
		t.Fatalf("a late Continue was served %v blocks", v-blocks)
	}
	for _, m := range []struct {
		name string
		v    float64
	}{
		{`edgeota_qblock_bursts_total{trigger="request"}`, 1}, {`edgeota_qblock_bursts_total{trigger="continue"}`, 2},
		{`edgeota_qblock_bursts_total{trigger="pace"}`, 0}, {"edgeota_qblock_recovery_requests_total", 1},
		{"edgeota_qblock_transfers", 1}, {"edgeota_image_transfers_started_total", 1},
	} {
		if v := metricValue(t, e, m.name); v != m.v {
			t.Errorf("%s = %v, want %v", m.name, v, m.v)
		}
	}

	// Bad input, each in a confirmable request, answered in its ACK.
	for _, tc := range []struct {
		name string
		path string
		opts []message.Option
		code codes.Code
	}{
		{"decreasing", path, []message.Option{qopt(7, false), qopt(3, false)}, codes.BadRequest},
		{"duplicate", path, []message.Option{qopt(3, false), qopt(3, false)}, codes.BadRequest},
		{"past the end", path, []message.Option{qopt(25, false)}, codes.BadOption},
		{"four bytes", path, []message.Option{{ID: message.QBlock2, Value: []byte{0, 0, 0, 0x0e}}}, codes.BadOption},
		{"with Block2", path, []message.Option{{ID: message.Block2, Value: []byte{0x16}}, qopt(1, false)}, codes.BadOption},
		{"Q-Block1", path, []message.Option{{ID: message.QBlock1, Value: []byte{0x06}}}, codes.BadOption},
		{"a node resource", protocol.NodePath("n1", protocol.ResManifest), []message.Option{qopt(0, true)}, codes.BadOption},
	} {
		p.send(message.Confirmable, tc.path, "bad", tc.opts...)
		if b := p.recv(); b.typ != message.Acknowledgement || b.code != tc.code {
			t.Errorf("%s: %v %v, want %v", tc.name, b.typ, b.code, tc.code)
		}
	}
}

func equalNums(a, b []uint32) bool { return slices.Equal(a, b) }

// TestQBlock2PeerVanishes: peers that ask for a body and then say nothing
// get NON_MAX_RETRANSMIT more bursts each, at pauses that double, and
// their transfers leave the table (and the transfer bounds): the state a
// vanished peer leaves is bounded in time and size.
func TestQBlock2PeerVanishes(t *testing.T) {
	const peers, retransmit = 5, 2
	e := newEnv(t, opts{maxPerNode: 4, qblock: gateway.QBlockParams{NonTimeout: 20 * time.Millisecond, NonMaxRetransmit: retransmit}})
	md := e.model(10, 100*1024)
	if err := e.push(md.signed, md.image); err != nil {
		t.Fatalf("push: %v", err)
	}
	for i := 0; i < peers; i++ {
		newQPeer(t, e.coap).send(message.NonConfirmable, protocol.ImagePath(md.m.Digest), "v", qopt(0, true))
	}
	testutil.Eventually(t, "every vanished peer's transfer ended", func() bool {
		return metricValue(t, e, `edgeota_qblock_transfers_ended_total{reason="vanished"}`) == peers &&
			metricValue(t, e, "edgeota_qblock_transfers") == 0 && metricValue(t, e, "edgeota_image_transfers_active") == 0
	})
	if v := metricValue(t, e, `edgeota_qblock_bursts_total{trigger="pace"}`); v != peers*retransmit {
		t.Fatalf("%v bursts to silent peers, want %d", v, peers*retransmit)
	}
	if v := metricValue(t, e, "edgeota_image_blocks_served_total"); v != peers*10*(1+retransmit) {
		t.Fatalf("%v blocks to silent peers, want %d", v, peers*10*(1+retransmit))
	}
}

// TestQBlock2OverDTLS: go-coap's Q-Block client fetches an image through
// a DTLS session, every byte checked.
func TestQBlock2OverDTLS(t *testing.T) {
	e := secureEnv(t)
	md := e.model(11, 60_000)
	if err := e.push(md.signed, md.image); err != nil {
		t.Fatalf("push: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testutil.DefaultCeiling)
	defer cancel()
	dc, err := gatewaytest.DialDTLS(ctx, "", e.coaps, "node-a", keyA)
	if err != nil {
		t.Fatal(err)
	}
	c := coapdtls.Client(dc, options.WithBlockwise(true, blockwise.SZX1024, time.Minute), options.WithQBlockwise(options.QBlockwiseOnly),
		options.WithErrors(func(error) {}), options.WithCloseSocket())
	defer c.Close()
	req, err := c.NewGetRequest(ctx, protocol.ImagePath(md.m.Digest))
	if err != nil {
		t.Fatal(err)
	}
	req.SetType(message.NonConfirmable)
	resp, err := c.Do(req)
	if err != nil || resp.Code() != codes.Content {
		t.Fatalf("get: %v %v", resp, err)
	}
	body, _ := resp.ReadBody()
	if !bytes.Equal(body, md.image) {
		t.Fatalf("image differs: %d bytes", len(body))
	}
	if v := metricValue(t, e, `edgeota_qblock_bursts_total{trigger="request"}`); v != 1 {
		t.Fatalf("bursts by request %v", v)
	}
}

// TestQBlock1OnePayload: RFC 9177 asks an endpoint to support both
// Q-Block options or neither. A node's document fits one payload, so the
// gateway takes Q-Block1 as a whole body in one (NUM 0, M unset, with
// Size1 and Request-Tag); a body of more payloads gets 4.13.
func TestQBlock1OnePayload(t *testing.T) {
	e := newEnv(t, opts{})
	hello, err := protocol.Marshal(&protocol.Hello{NodeID: "q1", Class: testClass, AgentVersion: "0.1.0", Component: "kws"})
	if err != nil {
		t.Fatal(err)
	}
	p := newQPeer(t, e.coap)
	path := protocol.NodePath("q1", protocol.ResHello)
	size1 := message.Option{ID: message.Size1, Value: []byte{byte(len(hello))}}
	tag := message.Option{ID: message.RequestTag, Value: []byte{1, 2, 3, 4}}
	cf := message.Option{ID: message.ContentFormat, Value: []byte{60}}
	q1 := func(v byte) message.Option { return message.Option{ID: message.QBlock1, Value: []byte{v}} }
	for _, tc := range []struct {
		name string
		opts []message.Option
		code codes.Code
	}{
		{"one payload", []message.Option{q1(0x06), cf, size1, tag}, codes.Changed},
		{"no Request-Tag", []message.Option{q1(0x06), cf, size1}, codes.BadRequest},
		{"no Size1", []message.Option{q1(0x06), cf, tag}, codes.BadRequest},
		{"more payloads", []message.Option{q1(0x0e), cf, size1, tag}, codes.RequestEntityTooLarge},
		{"a later payload", []message.Option{q1(0x16), cf, size1, tag}, codes.RequestEntityTooLarge},
		{"with Block1", []message.Option{q1(0x06), cf, {ID: message.Block1, Value: []byte{0x06}}, size1, tag}, codes.BadOption},
		{"SZX 7", []message.Option{q1(0x07), cf, size1, tag}, codes.BadOption},
	} {
		p.request(codes.POST, message.Confirmable, path, "h", hello, tc.opts...)
		if b := p.recv(); b.typ != message.Acknowledgement || b.code != tc.code {
			t.Errorf("%s: %v %v, want %v", tc.name, b.typ, b.code, tc.code)
		}
	}
}
