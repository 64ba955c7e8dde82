package gateway

import (
	"bytes"
	"crypto/ed25519"
	"net"
	"net/netip"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"edgeota/gateway/internal/coapd"
	"edgeota/protocol"
)

// FuzzServeCoAP feeds arbitrary datagrams, decoded as the CoAP endpoint
// decodes them, to the gateway's resource handlers, as a node on plain UDP
// and as a DTLS session's identity: they must never panic and must always
// answer with a code.
func FuzzServeCoAP(f *testing.F) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Fatal(err)
	}
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)).Public().(ed25519.PublicKey)
	g, err := New(Config{DataDir: f.TempDir(), Trust: []ed25519.PublicKey{pub}, CoAPConn: conn, InsecureUDP: true,
		CoAPSAddr: "-", AdminAddr: "-", Limits: Limits{SourceRate: -1, NodeRate: -1}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { g.store.Close(); conn.Close() })

	class := protocol.Class{1, 2, 3}
	hello, _ := protocol.Marshal(&protocol.Hello{NodeID: "n1", Class: class, AgentVersion: "1", Component: "kws"})
	health, _ := protocol.Marshal(&protocol.HealthReport{NodeID: "n1", BootCount: 1, Number: 1})
	status, _ := protocol.Marshal(&protocol.StatusEvent{NodeID: "n1", State: protocol.StateIdle, BootCount: 1, Number: 1})
	req := func(code codes.Code, path string, payload []byte, opts ...message.Option) []byte {
		m := message.Message{Code: code, Type: message.Confirmable, MessageID: 7, Token: []byte{1, 2}, Payload: payload}
		buf := make([]byte, 64)
		m.Options, _, _ = m.Options.SetPath(buf, path)
		if payload != nil {
			m.Options = m.Options.Add(message.Option{ID: message.ContentFormat, Value: []byte{60}})
		}
		m.Options = append(m.Options, opts...)
		out := make([]byte, 2048)
		n, err := coder.DefaultCoder.Encode(m, out)
		if err != nil {
			f.Fatal(err)
		}
		return out[:n]
	}
	for _, s := range [][]byte{
		req(codes.POST, "/n/n1/hello", hello),
		req(codes.POST, "/n/n1/health", health),
		req(codes.POST, "/n/n1/status", status),
		req(codes.GET, "/n/n1/manifest", nil, message.Option{ID: message.Observe, Value: nil}),
		req(codes.GET, "/m/"+protocol.Digest{}.String(), nil, message.Option{ID: message.Block2, Value: []byte{0x16}}),
		req(codes.GET, "/.well-known/core", nil),
		req(codes.DELETE, "/n/n2/hello", nil),
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	from := netip.MustParseAddrPort("127.0.0.1:9")
	f.Fuzz(func(t *testing.T, b []byte, secure bool) {
		r := coapd.Request{Msg: message.Message{Options: make(message.Options, 0, 16)}, From: from}
		if _, err := coder.DefaultCoder.Decode(b, &r.Msg); err != nil {
			return
		}
		if r.Msg.Code < codes.GET || r.Msg.Code > codes.DELETE {
			return // the endpoint never hands these to a handler
		}
		p, err := r.Msg.Options.Path()
		if err != nil {
			return
		}
		r.Path = "/" + p
		if secure {
			r.Identity = "n1"
		}
		var w coapd.Response
		g.ServeCoAP(&w, &r)
		if w.Code == codes.Empty {
			t.Fatalf("%s %s: no answer", r.Msg.Code, r.Path)
		}
	})
}
