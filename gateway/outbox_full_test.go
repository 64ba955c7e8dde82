package gateway_test

import (
	"bytes"
	"crypto/ed25519"
	"net"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"edgeota/gateway"
	"edgeota/gateway/gatewaytest"
	"edgeota/protocol"
)

// TestOutboxFullPolicy: with the broker unreachable and a tiny outbox,
// health reports make room by dropping the oldest ones, status events are
// never dropped, and once only events fill it a node gets 5.03 with
// Max-Age.
func TestOutboxFullPolicy(t *testing.T) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	conn, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "tcp://" + dead.Addr().String()
	dead.Close() // nothing listens there: the uplink never connects
	gatewaytest.Start(t, gateway.Config{DataDir: t.TempDir(), Trust: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)},
		CoAPConn: conn, InsecureUDP: true, CoAPSAddr: "-", AdminAddr: "-", MQTT: deadURL, GatewayID: "gw-1", OutboxMaxItems: 3})
	e := &env{t: t, coap: conn.LocalAddr().String()}
	c := e.dial()
	hello(t, c, "node-1")
	send := func(res protocol.NodeResource, doc any) (codes.Code, uint32) {
		b, err := protocol.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		r := post(t, c, protocol.NodePath("node-1", res), message.AppCBOR, b)
		ma, _ := r.Options().GetUint32(message.MaxAge)
		return r.Code(), ma
	}
	health := func(n uint64) any { return &protocol.HealthReport{NodeID: "node-1", Number: n, BootCount: 1} }
	event := func(n uint64) any {
		return &protocol.StatusEvent{NodeID: "node-1", State: protocol.StateIdle, Number: n, BootCount: 1}
	}
	for n := uint64(1); n <= 3; n++ {
		if code, _ := send(protocol.ResHealth, health(n)); code != codes.Changed {
			t.Fatalf("health %d: %v", n, code)
		}
	}
	// Full of health reports: events and reports still get in, dropping the
	// oldest reports.
	for n := uint64(1); n <= 3; n++ {
		if code, _ := send(protocol.ResStatus, event(n)); code != codes.Changed {
			t.Fatalf("event %d: %v", n, code)
		}
	}
	// Only events now: nothing can be dropped, the node is told to wait.
	code, maxAge := send(protocol.ResStatus, event(4))
	if code != codes.ServiceUnavailable || maxAge == 0 {
		t.Fatalf("event into a full outbox: %v, Max-Age %d", code, maxAge)
	}
	if code, _ := send(protocol.ResHealth, health(4)); code != codes.ServiceUnavailable {
		t.Fatalf("health into an outbox full of events: %v", code)
	}
}
