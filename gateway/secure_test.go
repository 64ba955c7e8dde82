package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"edgeota/gateway"
	"edgeota/gateway/admin"
	"edgeota/gateway/gatewaytest"
	"edgeota/protocol"
	"edgeota/test/testutil"
)

var (
	keyA = []byte("node-a-secret-key-0123456789")
	keyB = []byte("node-b-secret-key-0123456789")
)

// dialDTLS opens a DTLS session as identity with key, waiting for the
// handshake up to testutil's ceiling.
func (e *env) dialDTLS(identity string, key []byte) (*udpClient.Conn, error) {
	return e.dialDTLSWithin(identity, key, testutil.DefaultCeiling)
}

// refusedDTLS reports whether a handshake as identity with key fails. The
// gateway fails a wrong key only at its handshake timeout (it cannot
// decrypt the client's Finished), so the client gives up after 3 s: a
// handshake slower than that counts as refused, which can hide a bug on a
// slow machine but never fails a working gateway.
func (e *env) refusedDTLS(identity string, key []byte) bool {
	_, err := e.dialDTLSWithin(identity, key, 3*time.Second)
	return err != nil
}

func (e *env) dialDTLSWithin(identity string, key []byte, within time.Duration) (*udpClient.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	dc, err := gatewaytest.DialDTLS(ctx, "", e.coaps, identity, key)
	if err != nil {
		return nil, err
	}
	c := coapdtls.Client(dc, options.WithBlockwise(false, blockwise.SZX1024, time.Minute),
		options.WithErrors(func(error) {}), options.WithCloseSocket())
	e.t.Cleanup(func() { c.Close() })
	return c, nil
}

func secureEnv(t *testing.T) *env {
	return newEnv(t, opts{keys: map[string][]byte{"node-a": keyA, "node-b": keyB}})
}

func TestDTLSServesOwnResources(t *testing.T) {
	e := secureEnv(t)
	md := e.model(7, 50_000)
	if err := e.push(md.signed, md.image); err != nil {
		t.Fatalf("push: %v", err)
	}
	c, err := e.dialDTLS("node-a", keyA)
	if err != nil {
		t.Fatal(err)
	}
	hello(t, c, "node-a")
	if got := fetch(t, c, md.m.Digest, 1024); !bytes.Equal(got, md.image) {
		t.Fatal("image over DTLS differs")
	}
	e.assign(md.signed, []string{"node-a"}, false)
	resp, err := c.Get(ctxT(t), protocol.NodePath("node-a", protocol.ResManifest))
	if err != nil {
		t.Fatal(err)
	}
	if body, _ := resp.ReadBody(); resp.Code() != codes.Content || !bytes.Equal(body, md.signed) {
		t.Fatalf("own manifest: %v, %d bytes", resp.Code(), len(body))
	}
}

func TestDTLSNodeTouchesOnlyItsOwnResources(t *testing.T) {
	e := secureEnv(t)
	b, err := e.dialDTLS("node-b", keyB)
	if err != nil {
		t.Fatal(err)
	}
	hello(t, b, "node-b")
	a, err := e.dialDTLS("node-a", keyA)
	if err != nil {
		t.Fatal(err)
	}
	hello(t, a, "node-a")

	helloB, _ := protocol.Marshal(&protocol.Hello{NodeID: "node-b", Class: testClass, AgentVersion: "0.1.0", Component: "kws"})
	healthB, _ := protocol.Marshal(&protocol.HealthReport{NodeID: "node-b", BootCount: 1, Number: 1})
	for _, tc := range []struct {
		name string
		path string
		body []byte
	}{
		{"hello on another node's path", protocol.NodePath("node-b", protocol.ResHello), helloB},
		{"health on another node's path", protocol.NodePath("node-b", protocol.ResHealth), healthB},
		{"another node's hello on its own path", protocol.NodePath("node-a", protocol.ResHello), helloB},
		{"another node's health on its own path", protocol.NodePath("node-a", protocol.ResHealth), healthB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := post(t, a, tc.path, message.AppCBOR, tc.body); r.Code() != codes.Forbidden {
				t.Fatalf("got %v, want 4.03", r.Code())
			}
		})
	}
	resp, err := a.Get(ctxT(t), protocol.NodePath("node-b", protocol.ResManifest))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code() != codes.Forbidden {
		t.Fatalf("another node's manifest: %v, want 4.03", resp.Code())
	}
	// Nothing node-a sent changed node-b's registry entry.
	nodes, err := e.api.Nodes(ctxT(t), admin.NodeQuery{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Nodes {
		if n.ID == "node-b" && n.HealthReports != 0 {
			t.Fatalf("node-b has %d health reports from node-a's session", n.HealthReports)
		}
	}
	if n := metricValue(t, e, `edgeota_refused_total{reason="identity"}`); n != 5 {
		t.Fatalf("identity refusals: %v, want 5", n)
	}
}

func TestDTLSRefusesWrongKeyAndUnknownIdentity(t *testing.T) {
	e := secureEnv(t)
	for _, tc := range []struct {
		name, id string
		key      []byte
	}{
		{"another node's id with a wrong key", "node-b", keyA},
		{"an id without a key", "node-x", keyA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !e.refusedDTLS(tc.id, tc.key) {
				t.Fatal("session opened")
			}
		})
	}
	// A wrong key shows only in the client's Finished, which the gateway
	// cannot decrypt and drops (RFC 6347 section 4.1.2.7): that handshake
	// fails at the gateway's handshake timeout (10 s).
	testutil.Eventually(t, "the gateway to count 2 failed handshakes", func() bool {
		return metricValue(t, e, `edgeota_dtls_handshakes_total{result="failed"}`) >= 2
	}, testutil.Every(100*time.Millisecond))
	if n := metricValue(t, e, `edgeota_dtls_handshakes_total{result="ok"}`); n != 0 {
		t.Fatalf("successful handshakes: %v", n)
	}
}

func TestKeyChangeClosesSession(t *testing.T) {
	e := secureEnv(t)
	a, err := e.dialDTLS("node-a", keyA)
	if err != nil {
		t.Fatal(err)
	}
	hello(t, a, "node-a")
	res, err := e.api.PutKeys(ctxT(t), []admin.Key{{NodeID: "node-a", PSK: "hex:00112233445566778899aabbccddeeff"}})
	if err != nil || !slices.Equal(res.Changed, []string{"node-a"}) || res.Imported != 1 {
		t.Fatalf("PutKeys: %+v, %v", res, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := a.Ping(ctx); err == nil {
		t.Fatal("the old session still answers after its key changed")
	}
	if !e.refusedDTLS("node-a", keyA) {
		t.Fatal("the old key still opens a session")
	}
	if _, err := e.dialDTLS("node-a", []byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}); err != nil {
		t.Fatalf("the new key: %v", err)
	}
	keys, err := e.api.Keys(ctxT(t))
	if err != nil || strings.Join(keys, ",") != "node-a,node-b" {
		t.Fatalf("Keys: %v, %v", keys, err)
	}
}

func TestNodeRateAnswers429(t *testing.T) {
	e := newEnv(t, opts{limits: limitsForTest()})
	c := e.dial()
	hello(t, c, "n1") // 1 of the burst of 3
	codesSeen := map[codes.Code]int{}
	var maxAge uint32
	for i := 0; i < 6; i++ {
		r, err := c.Get(ctxT(t), protocol.NodePath("n1", protocol.ResManifest))
		if err != nil {
			t.Fatal(err)
		}
		codesSeen[r.Code()]++
		if r.Code() == codes.TooManyRequests {
			maxAge, _ = r.Options().GetUint32(message.MaxAge)
		}
	}
	if codesSeen[codes.Content] != 2 || codesSeen[codes.TooManyRequests] != 4 || maxAge != 1 {
		t.Fatalf("answers %v, Max-Age %d: want 2 × 2.05 then 4 × 4.29 with Max-Age 1", codesSeen, maxAge)
	}
	if n := metricValue(t, e, `edgeota_refused_total{reason="node_rate"}`); n != 4 {
		t.Fatalf("node_rate refusals: %v", n)
	}
	// Another node (another endpoint) is not affected.
	hello(t, e.dial(), "n2")
}

func TestBlocksOfAnAdmittedTransferAreNeverLimited(t *testing.T) {
	e := newEnv(t, opts{limits: limitsForTest()})
	md := e.model(9, 20*1024)
	if err := e.push(md.signed, md.image); err != nil {
		t.Fatalf("push: %v", err)
	}
	// 20 blocks at a node rate of 0.001/s and a burst of 3: only block 0
	// takes a token.
	if got := fetch(t, e.dial(), md.m.Digest, 1024); !bytes.Equal(got, md.image) {
		t.Fatal("image differs")
	}
}

func TestBodyLimitAnswers413(t *testing.T) {
	l := limitsForTest()
	l.NodeRate, l.MaxBody = -1, 64
	e := newEnv(t, opts{limits: l})
	c := e.dial()
	b, _ := protocol.Marshal(&protocol.Hello{NodeID: "n1", Class: testClass, AgentVersion: "0.1.0", Component: "kws",
		Labels: map[string]string{"region": "us-east-with-a-long-label-value", "hw": "rev2"}})
	if len(b) <= 64 {
		t.Fatalf("test hello is only %d bytes", len(b))
	}
	r := post(t, c, protocol.NodePath("n1", protocol.ResHello), message.AppCBOR, b)
	size1, _ := r.Options().GetUint32(message.Size1)
	if r.Code() != codes.RequestEntityTooLarge || size1 != 64 {
		t.Fatalf("got %v Size1 %d, want 4.13 with Size1 64", r.Code(), size1)
	}
	if nodes, err := e.api.Nodes(ctxT(t), admin.NodeQuery{}); err != nil || nodes.Total != 0 {
		t.Fatalf("an oversized hello registered a node: %v, %v", nodes, err)
	}
}

// limitsForTest is a node rate that refills almost never, with a burst of
// 3, and no per-source rate (every test client is on 127.0.0.1).
func limitsForTest() gateway.Limits {
	return gateway.Limits{SourceRate: -1, NodeRate: 0.001, NodeBurst: 3}
}

// metricValue reads one sample from the gateway's /metrics.
func metricValue(t testing.TB, e *env, name string) float64 {
	t.Helper()
	b, err := e.api.Metrics(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

func TestProvisioningEventsAreAudited(t *testing.T) {
	e := secureEnv(t)
	a, err := e.dialDTLS("node-a", keyA)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := protocol.Marshal(&protocol.Hello{NodeID: "node-a", Class: testClass, AgentVersion: "0.1.0", Component: "kws",
		Labels: map[string]string{"region": "us-east"}})
	if r := post(t, a, protocol.NodePath("node-a", protocol.ResHello), message.AppCBOR, b); r.Code() != codes.Changed {
		t.Fatalf("hello: %v", r.Code())
	}
	ev, _ := protocol.Marshal(&protocol.StatusEvent{NodeID: "node-a", State: protocol.StateProvisioned, BootCount: 1, Number: 1,
		Actor: "0123456789abcdef", Reason: "provisioned, serial 7"})
	if r := post(t, a, protocol.NodePath("node-a", protocol.ResStatus), message.AppCBOR, ev); r.Code() != codes.Changed {
		t.Fatalf("status: %v", r.Code())
	}
	// Another state is not an audit entry.
	ev2, _ := protocol.Marshal(&protocol.StatusEvent{NodeID: "node-a", State: protocol.StateIdle, BootCount: 1, Number: 2})
	post(t, a, protocol.NodePath("node-a", protocol.ResStatus), message.AppCBOR, ev2)
	entries, err := e.api.Audit(ctxT(t), "node-a")
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	if len(entries) != 1 {
		t.Fatalf("%d entries: %+v", len(entries), entries)
	}
	got := entries[0]
	if got.Seq != 1 || got.Node != "node-a" || got.Actor != "0123456789abcdef" || got.Detail != "provisioned, serial 7" ||
		got.Labels["region"] != "us-east" || got.Component != "kws" || !got.Authenticated || got.At.IsZero() {
		t.Fatalf("entry %+v", got)
	}
	if entries, err = e.api.Audit(ctxT(t), "node-b"); err != nil || len(entries) != 0 {
		t.Fatalf("node-b: %+v, %v", entries, err)
	}

	// The same event posted again on a new session (a node whose answer
	// was lost drops its session and posts again; the new endpoint gets
	// past the CoAP duplicate detection): still one entry. A commit
	// reported after a reboot is a second one.
	a2, err := e.dialDTLS("node-a", keyA)
	if err != nil {
		t.Fatal(err)
	}
	if r := post(t, a2, protocol.NodePath("node-a", protocol.ResStatus), message.AppCBOR, ev); r.Code() != codes.Changed {
		t.Fatalf("status again: %v", r.Code())
	}
	if entries, err = e.api.Audit(ctxT(t), "node-a"); err != nil || len(entries) != 1 {
		t.Fatalf("after the event was posted again: %d entries (%v), want 1: %+v", len(entries), err, entries)
	}
	ev3, _ := protocol.Marshal(&protocol.StatusEvent{NodeID: "node-a", State: protocol.StateProvisioned, BootCount: 2, Number: 1,
		Actor: "0123456789abcdef", Reason: "provisioned, serial 8"})
	if r := post(t, a2, protocol.NodePath("node-a", protocol.ResStatus), message.AppCBOR, ev3); r.Code() != codes.Changed {
		t.Fatalf("status of boot 2: %v", r.Code())
	}
	if entries, err = e.api.Audit(ctxT(t), "node-a"); err != nil || len(entries) != 2 || entries[1].Detail != "provisioned, serial 8" {
		t.Fatalf("after a second commit: %+v, %v; want 2 entries", entries, err)
	}
}

// TestDTLSOversizedRecordKeepsTheSession: a request larger than any the
// gateway reads is dropped, and the session goes on serving.
func TestDTLSOversizedRecordKeepsTheSession(t *testing.T) {
	e := secureEnv(t)
	a, err := e.dialDTLS("node-a", keyA)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := a.Post(ctx, protocol.NodePath("node-a", protocol.ResHealth), message.AppCBOR, bytes.NewReader(make([]byte, 4000))); err == nil {
		t.Fatal("an oversized request got an answer")
	}
	hello(t, a, "node-a") // the same session still works
}
