package gateway_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgeota/gateway"
	"edgeota/gateway/admin"
	"edgeota/gateway/gatewaytest"
	"edgeota/protocol"
	"edgeota/protocol/sign"
	"edgeota/test/mqttpeer"
	"edgeota/test/testutil"
)

// mqttEnv is a gateway with an uplink to a broker, and its keys.
type mqttEnv struct {
	*env
	deployer *sign.Signer
}

func newMQTTEnv(t *testing.T, broker string) *mqttEnv {
	t.Helper()
	manifestKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	deployKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, 32))
	ds, _ := sign.NewSigner(deployKey)
	ms, _ := sign.NewSigner(manifestKey)
	conn, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	g, err := gateway.New(gateway.Config{DataDir: t.TempDir(), Trust: []ed25519.PublicKey{manifestKey.Public().(ed25519.PublicKey)},
		DeployTrust: []ed25519.PublicKey{deployKey.Public().(ed25519.PublicKey)}, CoAPConn: conn, InsecureUDP: true, CoAPSAddr: "-", AdminListener: ln,
		MQTT: broker, GatewayID: "gw-1", BatchInterval: 20 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	api, err := admin.NewClient("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{t: t, g: g, api: api, coap: conn.LocalAddr().String(), signer: ms, cancel: cancel, done: make(chan error, 1)}
	go func() { e.done <- g.Run(ctx) }()
	t.Cleanup(e.stop)
	return &mqttEnv{env: e, deployer: ds}
}

func (e *mqttEnv) deployment(mod func(d *protocol.Deployment), manifest []byte) []byte {
	now := uint64(time.Now().Unix())
	d := &protocol.Deployment{ID: "dep-1", Seq: 5, Manifest: manifest, Cohort: "hw:rev2", Waves: []protocol.Wave{{BasisPoints: 10000}},
		OnFailure: protocol.FailurePause, NodeTimeoutSeconds: 60, MaxConcurrent: 10, Issued: now, Expires: now + 3600}
	if mod != nil {
		mod(d)
	}
	b, err := e.deployer.SignDeployment(d)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func assignedSeq(e *env, node string) uint64 {
	n, err := e.api.Node(context.Background(), node)
	if err != nil {
		e.t.Fatal(err)
	}
	return n.AssignedSeq
}

// TestDeploymentDownlink: a signed deployment on the gateway's retained
// deployment topic assigns its manifest to the cohort; deployments that do
// not verify, are expired, name other gateways or repeat an applied seq
// change nothing.
func TestDeploymentDownlink(t *testing.T) {
	b := mqttpeer.Start(t)
	e := newMQTTEnv(t, b.URL())
	c := e.dial()
	hello(t, c, "node-1") // labels hw=rev2
	md := e.model(7, 3000)
	e.push(md.signed, md.image)
	topic := protocol.Topics{}.Deployment("gw-1", "dep-1")
	other, _ := sign.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32)))
	forged := func() []byte {
		now := uint64(time.Now().Unix())
		b, _ := other.SignDeployment(&protocol.Deployment{ID: "dep-1", Seq: 9, Manifest: md.signed, Cohort: "*",
			Waves: []protocol.Wave{{BasisPoints: 10000}}, NodeTimeoutSeconds: 60, MaxConcurrent: 1, Issued: now, Expires: now + 60})
		return b
	}()
	refused := []struct {
		name    string
		payload []byte
	}{
		{"signed by an unknown key", forged},
		{"expired", e.deployment(func(d *protocol.Deployment) { d.Issued, d.Expires = 1000, 2000 }, md.signed)},
		{"for another gateway", e.deployment(func(d *protocol.Deployment) { d.Gateways = []string{"gw-2"} }, md.signed)},
		{"a cohort that excludes the node", e.deployment(func(d *protocol.Deployment) { d.Cohort = "hw:rev1"; d.Seq = 4 }, md.signed)},
	}
	const refusedMetric = `edgeota_refused_total{reason="deployment"}`
	for _, r := range refused {
		mqttpeer.Publish(t, b.URL(), topic, r.payload, true)
	}
	// The sync point: three refused, and the fourth (seq 4) accepted with
	// a cohort that takes no node.
	waitUntil(t, "three deployments refused and seq 4 applied", func() bool {
		rs, err := e.api.Rollouts(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		return metricValue(t, e.env, refusedMetric) == 3 && len(rs) == 1 && rs[0].Seq == 4
	})
	if s := assignedSeq(e.env, "node-1"); s != 0 {
		t.Fatalf("a refused deployment assigned seq %d", s)
	}
	mqttpeer.Publish(t, b.URL(), topic, e.deployment(nil, md.signed), true)
	waitUntil(t, "the verified deployment applied", func() bool { return assignedSeq(e.env, "node-1") == 7 })
	// The same seq again (a retained message after a reconnect) and a lower
	// one change nothing.
	md2 := e.model(8, 3000)
	mqttpeer.Publish(t, b.URL(), topic, e.deployment(func(d *protocol.Deployment) { d.Seq = 5 }, md2.signed), true)
	waitUntil(t, "the repeated seq refused", func() bool { return metricValue(t, e.env, refusedMetric) == 4 })
	if s := assignedSeq(e.env, "node-1"); s != 7 {
		t.Fatalf("a repeated seq reassigned seq %d", s)
	}
	// A node of the cohort that says Hello later gets it too.
	hello(t, c, "node-2")
	if s := assignedSeq(e.env, "node-2"); s != 7 {
		t.Fatalf("a later node got seq %d", s)
	}
}

// waitUntil polls cond until it holds, failing the test with what it
// waited for after testutil's ceiling.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, what, cond)
}

// TestEmbeddedBroker: --mqtt embedded runs a broker in the gateway and the
// uplink publishes to it; the state topic says online.
func TestEmbeddedBroker(t *testing.T) {
	e := newMQTTEnv(t, "embedded")
	c := e.dial()
	hello(t, c, "node-1")
	hb, _ := protocol.Marshal(&protocol.HealthReport{NodeID: "node-1", Inferences: 1, Number: 1, BootCount: 1})
	post(t, c, protocol.NodePath("node-1", protocol.ResHealth), 60, hb)
	url := e.g.MQTTBrokerURL()
	if url == "" {
		t.Fatal("no embedded broker URL")
	}
	got := make(chan string, 16)
	cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("t"))
	if tk := cl.Connect(); !tk.WaitTimeout(testutil.DefaultCeiling) || tk.Error() != nil {
		t.Fatalf("connect to the embedded broker: %v", tk.Error())
	}
	defer cl.Disconnect(100)
	cl.Subscribe(protocol.Topics{}.GatewayAll("gw-1"), 1, func(_ mqtt.Client, m mqtt.Message) { got <- m.Topic() + " " + string(m.Payload()) })
	select {
	case s := <-got:
		if s != "edgeota/v1/gw/gw-1/state online" {
			t.Logf("first message: %q", s)
		}
	case <-time.After(testutil.DefaultCeiling):
		t.Fatal("nothing from the embedded broker")
	}
}

// testLogger writes the gateway's logs to the test log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestRolloutsNeedTheirDeploymentKeys: a gateway whose database holds
// rollouts does not start without the deployment keys that verify them
// again (ErrNoDeploymentKeys, naming no flag), and starts with them.
func TestRolloutsNeedTheirDeploymentKeys(t *testing.T) {
	manifestKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	deployKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, 32))
	dir := t.TempDir()
	cfg := gateway.Config{DataDir: dir, Trust: []ed25519.PublicKey{manifestKey.Public().(ed25519.PublicKey)},
		DeployTrust: []ed25519.PublicKey{deployKey.Public().(ed25519.PublicKey)}, InsecureUDP: true,
		CoAPAddr: "127.0.0.1:0", CoAPSAddr: "-", AdminAddr: "127.0.0.1:0", GatewayID: "gw-1"}
	ms, _ := sign.NewSigner(manifestKey)
	ds, _ := sign.NewSigner(deployKey)
	e := &mqttEnv{env: &env{t: t, signer: ms}, deployer: ds}
	md := e.model(7, 3000)

	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	api, err := admin.NewClient("http://" + g.AdminAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, postErr := api.PostDeployment(ctxT(t), e.deployment(nil, md.signed))
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	if postErr != nil {
		t.Fatalf("PostDeployment: %v", postErr)
	}

	without := cfg
	without.DeployTrust = nil
	if _, err := gateway.New(without); !errors.Is(err, gateway.ErrNoDeploymentKeys) || strings.Contains(err.Error(), "--") {
		t.Fatalf("New without deployment keys: %v, want ErrNoDeploymentKeys naming no flag", err)
	}
	gatewaytest.Start(t, cfg)
}

// TestRolloutStatusRetained: a rollout's status is published, retained, on
// its rollout topic (docs/protocol.md section 6): a subscriber that comes
// after the gateway published reads the current status at once, and when
// the rollout changes (paused through the admin API) a later subscriber
// reads the new one.
func TestRolloutStatusRetained(t *testing.T) {
	b := mqttpeer.Start(t)
	e := newMQTTEnv(t, b.URL())
	topics := protocol.Topics{}
	live := mqttpeer.Subscribe(t, b.URL(), topics.Rollout("gw-1", "+"))
	hello(t, e.dial(), "node-1") // labels hw=rev2: in the deployment's cohort
	md := e.model(7, 3000)
	e.push(md.signed, md.image)
	mqttpeer.Publish(t, b.URL(), topics.Deployment("gw-1", "dep-1"), e.deployment(nil, md.signed), true)

	type status struct {
		ID    string `json:"id"`
		Phase string `json:"phase"`
		Wave  int    `json:"wave"`
	}
	phase := func(m mqttpeer.Message) status {
		var st status
		if err := json.Unmarshal(m.Payload, &st); err != nil {
			t.Fatalf("rollout status on %s is not JSON: %v: %q", m.Topic, err, m.Payload)
		}
		return st
	}
	// lateReads waits until live has seen the rollout in phase want, then
	// checks that a new subscriber's first message is the retained status
	// in that phase, and one the gateway published (live gets it too).
	lateReads := func(want string) {
		t.Helper()
		live.WaitFor(t, func(msgs []mqttpeer.Message) bool {
			return len(msgs) > 0 && phase(msgs[len(msgs)-1]).Phase == want
		}, 20*time.Second)
		late := mqttpeer.Subscribe(t, b.URL(), topics.Rollout("gw-1", "dep-1"))
		late.WaitFor(t, func(msgs []mqttpeer.Message) bool { return len(msgs) > 0 }, 10*time.Second)
		m := late.Messages()[0]
		if st := phase(m); !m.Retained || st.ID != "dep-1" || st.Phase != want {
			t.Fatalf("a late subscriber read %+v (retained %v), want the retained status of dep-1 in phase %s", st, m.Retained, want)
		}
		live.WaitFor(t, func(msgs []mqttpeer.Message) bool {
			for _, l := range msgs {
				if bytes.Equal(l.Payload, m.Payload) {
					return true
				}
			}
			return false
		}, 10*time.Second) // the retained status is one the gateway published
	}
	lateReads("running")

	if _, err := e.api.PauseRollout(ctxT(t), "dep-1"); err != nil {
		t.Fatalf("pause: %v", err)
	}
	lateReads("paused")
}
