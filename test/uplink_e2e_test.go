package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"edgeota/protocol"
	"edgeota/test/mqttpeer"
	"edgeota/test/testutil"
)

type reportKey struct {
	node         string
	boot, number uint64
}

// sender plays nodes that post health reports and status events to a
// gateway over CoAP, retrying each until it gets 2.04, and remembers every
// document the gateway accepted.
type sender struct {
	t        *testing.T
	addr     string
	mu       sync.Mutex
	accepted []reportKey
	clients  map[string]*udpClient.Conn
}

func newSender(t *testing.T, addr string) *sender {
	return &sender{t: t, addr: addr, clients: map[string]*udpClient.Conn{}}
}

func (s *sender) conn(node string) *udpClient.Conn {
	if c := s.clients[node]; c != nil {
		return c
	}
	c, err := udp.Dial(s.addr, options.WithErrors(func(error) {}))
	if err != nil {
		s.t.Fatal(err)
	}
	s.clients[node] = c
	return c
}

// post sends one document to the node's resource res until the gateway
// answers 2.04 or the deadline.
func (s *sender) post(node string, res protocol.NodeResource, doc any, deadline time.Time) bool {
	body, err := protocol.Marshal(doc)
	if err != nil {
		s.t.Fatal(err)
	}
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		resp, err := s.conn(node).Post(ctx, protocol.NodePath(node, res), message.AppCBOR, bytes.NewReader(body))
		cancel()
		if err == nil && resp.Code() == codes.Changed {
			return true
		}
		if err != nil { // the link or the gateway went away: a fresh socket
			s.clients[node].Close()
			delete(s.clients, node)
			time.Sleep(100 * time.Millisecond)
		} else {
			time.Sleep(200 * time.Millisecond)
		}
	}
	return false
}

func (s *sender) hello(node string) {
	h := &protocol.Hello{NodeID: node, Class: protocol.Class{1}, AgentVersion: "0.1.0", Component: "kws", Labels: map[string]string{"hw": "rev2"}}
	if !s.post(node, protocol.ResHello, h, time.Now().Add(testutil.DefaultCeiling)) {
		s.t.Fatalf("hello of %s refused", node)
	}
}

// stream posts reports 1..n of every node, round by round, calling between
// after each round.
func (s *sender) stream(nodes []string, n int, between func(round int)) {
	for i := 1; i <= n; i++ {
		for _, node := range nodes {
			r := &protocol.HealthReport{NodeID: node, UptimeSeconds: uint64(i), Inferences: 10, Errors: 1, BootCount: 1, Number: uint64(i)}
			if s.post(node, protocol.ResHealth, r, time.Now().Add(60*time.Second)) {
				s.mu.Lock()
				s.accepted = append(s.accepted, reportKey{node, 1, uint64(i)})
				s.mu.Unlock()
			}
		}
		if between != nil {
			between(i)
		}
	}
}

// received decodes every health batch the subscriber got, in arrival
// order.
func received(t *testing.T, msgs []mqttpeer.Message) []reportKey {
	var out []reportKey
	for _, m := range msgs {
		if tp, err := (protocol.Topics{}).Parse(m.Topic); err != nil || tp.Kind != protocol.TopicHealth {
			continue
		}
		rs, err := protocol.DecodeHealthBatch(m.Payload)
		if err != nil {
			t.Fatalf("undecodable batch on %s: %v", m.Topic, err)
		}
		for _, r := range rs {
			out = append(out, reportKey{r.NodeID, r.BootCount, r.Number})
		}
	}
	return out
}

// checkDelivered checks every accepted report arrived, and in order per
// node (first arrivals; QoS 1 duplicates allowed).
func checkDelivered(t *testing.T, accepted, got []reportKey) {
	t.Helper()
	seen := map[reportKey]bool{}
	last := map[string]uint64{}
	dups := 0
	for _, k := range got {
		if seen[k] {
			dups++
			continue
		}
		seen[k] = true
		if k.number < last[k.node] {
			t.Errorf("node %s: report %d arrived after %d", k.node, k.number, last[k.node])
		}
		last[k.node] = k.number
	}
	missing := 0
	for _, k := range accepted {
		if !seen[k] {
			missing++
		}
	}
	t.Logf("accepted %d reports, received %d distinct (%d duplicates), %d missing", len(accepted), len(seen), dups, missing)
	if missing > 0 {
		t.Fatalf("%d accepted reports never reached the broker", missing)
	}
}

func startUplinkGateway(t *testing.T, dir, broker, coap, admin string) *daemon {
	return startDaemon(t, dir, "gateway", "--data", "gw-data", "--trust", "op.pub", "--insecure-udp", "--coaps", "-", "--coap", coap, "--admin", admin,
		"--mqtt", broker, "--gateway-id", "gw1", "--batch-interval", "50ms")
}

// TestUplinkSurvivesBrokerOutage: mosquitto is stopped for a while under a
// steady stream of reports and started again; every report the gateway
// accepted reaches the broker, in order per node. A consumer that went
// offline before the outage gets, once back, every report published after
// it left: the broker saved its session and queue to its persistence file
// when it stopped, and restored them from it.
func TestUplinkSurvivesBrokerOutage(t *testing.T) {
	b := mqttpeer.Start(t)
	dir := t.TempDir()
	mustRun(t, dir, "keygen", "--out", "op")
	coap, admin := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, "udp")), fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, "tcp"))
	topics := protocol.Topics{}
	sub := mqttpeer.Subscribe(t, b.URL(), topics.GatewayAll("gw1"))
	away := mqttpeer.Subscribe(t, b.URL(), topics.Gateway("gw1", protocol.TopicHealth))
	startUplinkGateway(t, dir, b.URL(), coap, admin)
	s := newSender(t, coap)
	nodes := []string{"n1", "n2", "n3", "n4", "n5"}
	for _, n := range nodes {
		s.hello(n)
	}
	const leaves = 10 // the round after which the away consumer disconnects
	s.stream(nodes, 120, func(round int) {
		switch round {
		case leaves:
			away.Pause()
		case 30:
			b.Stop()
			t.Log("broker stopped")
			// What the broker saved: the away consumer's session, and the
			// reports queued for it.
			db, err := os.ReadFile(b.PersistenceFile())
			if err != nil || !bytes.Contains(db, []byte(away.ClientID())) {
				t.Fatalf("the broker's persistence file (%d bytes, %v) lacks the away consumer's session", len(db), err)
			}
		case 90:
			b.Restart()
			t.Log("broker restarted")
		}
		time.Sleep(20 * time.Millisecond)
	})
	sub.WaitFor(t, func(msgs []mqttpeer.Message) bool {
		got := map[reportKey]bool{}
		for _, k := range received(t, msgs) {
			got[k] = true
		}
		return len(got) >= len(s.accepted)
	}, 60*time.Second)
	checkDelivered(t, s.accepted, received(t, sub.Messages()))
	if len(s.accepted) != len(nodes)*120 {
		t.Fatalf("the gateway accepted %d of %d reports while the broker was down", len(s.accepted), len(nodes)*120)
	}
	online := false
	for _, m := range sub.Messages() {
		online = online || (m.Topic == topics.Gateway("gw1", protocol.TopicState) && string(m.Payload) == protocol.StateOnline)
	}
	if !online {
		t.Fatal("no online state published")
	}

	// Back after the restart, the away consumer gets what was queued for
	// it: a broker that lost its database would have forgotten its session
	// and everything published while it was away.
	var missed []reportKey
	for _, k := range s.accepted {
		if k.number > leaves {
			missed = append(missed, k)
		}
	}
	away.Resume(t)
	away.WaitFor(t, func(msgs []mqttpeer.Message) bool {
		got := map[reportKey]bool{}
		for _, k := range received(t, msgs) {
			got[k] = true
		}
		for _, k := range missed {
			if !got[k] {
				return false
			}
		}
		return true
	}, 60*time.Second)
}

// TestUplinkSurvivesGatewayKill: the gateway process is killed with
// SIGKILL mid-stream and restarted; every report it had accepted (answered
// 2.04) reaches the broker.
func TestUplinkSurvivesGatewayKill(t *testing.T) {
	b := mqttpeer.Start(t)
	dir := t.TempDir()
	mustRun(t, dir, "keygen", "--out", "op")
	coap, admin := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, "udp")), fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, "tcp"))
	sub := mqttpeer.Subscribe(t, b.URL(), protocol.Topics{}.GatewayAll("gw1"))
	g := startUplinkGateway(t, dir, b.URL(), coap, admin)
	s := newSender(t, coap)
	nodes := []string{"k1", "k2", "k3"}
	for _, n := range nodes {
		s.hello(n)
	}
	s.stream(nodes, 100, func(round int) {
		if round == 40 {
			g.cmd.Process.Signal(syscall.SIGKILL)
			g.cmd.Wait()
			t.Log("gateway killed with SIGKILL")
			g = startUplinkGateway(t, dir, b.URL(), coap, admin)
		}
	})
	sub.WaitFor(t, func(msgs []mqttpeer.Message) bool {
		got := map[reportKey]bool{}
		for _, k := range received(t, msgs) {
			got[k] = true
		}
		return len(got) >= len(s.accepted)
	}, 60*time.Second)
	checkDelivered(t, s.accepted, received(t, sub.Messages()))
}

// TestOfflineWill: a gateway that dies without a word (SIGKILL: no
// "offline" of its own, no DISCONNECT) is marked "offline" on its retained
// state topic by the broker, from the last will the gateway registered
// when it connected; a subscriber that comes later reads it, retained.
func TestOfflineWill(t *testing.T) {
	b := mqttpeer.Start(t)
	dir := t.TempDir()
	mustRun(t, dir, "keygen", "--out", "op")
	coap, admin := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, "udp")), fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, "tcp"))
	state := protocol.Topics{}.Gateway("gw1", protocol.TopicState)
	sub := mqttpeer.Subscribe(t, b.URL(), state)
	g := startUplinkGateway(t, dir, b.URL(), coap, admin)
	last := func(want string) func([]mqttpeer.Message) bool {
		return func(msgs []mqttpeer.Message) bool {
			return len(msgs) > 0 && string(msgs[len(msgs)-1].Payload) == want
		}
	}
	sub.WaitFor(t, last(protocol.StateOnline), 20*time.Second)
	g.cmd.Process.Signal(syscall.SIGKILL)
	g.cmd.Wait()
	sub.WaitFor(t, last(protocol.StateOffline), 20*time.Second)
	late := mqttpeer.Subscribe(t, b.URL(), state)
	late.WaitFor(t, func(msgs []mqttpeer.Message) bool { return len(msgs) > 0 }, 10*time.Second)
	if m := late.Messages()[0]; string(m.Payload) != protocol.StateOffline || !m.Retained {
		t.Fatalf("a late subscriber read %q (retained %v), want the retained %q", m.Payload, m.Retained, protocol.StateOffline)
	}
}

// TestUplinkOverTLSWithPassword: mosquitto with a TLS listener only, no
// anonymous clients and a password file. A gateway given mqtts://, the
// broker's CA, its user name and a password file connects and publishes its
// state and the reports of its nodes; a gateway with a wrong password is
// refused, says so in an error that names the cause, and goes on serving
// its nodes.
func TestUplinkOverTLSWithPassword(t *testing.T) {
	b := mqttpeer.StartWith(t, mqttpeer.Options{TLS: true, Users: map[string]string{"gw1": "correct horse", "gw2": "battery staple"}})
	dir := t.TempDir()
	mustRun(t, dir, "keygen", "--out", "op")
	for name, pass := range map[string]string{"gw1.pass": "correct horse\n", "wrong.pass": "battery stapler\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(pass), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	topics := protocol.Topics{}
	sub := b.Subscribe(t, topics.GatewayAll("+"))
	start := func(id, passFile string) (*loggedProc, string, string) {
		coap, admin := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, "udp")), fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, "tcp"))
		p := startLogged(t, dir, id, "gateway", "--data", id+"-data", "--trust", "op.pub", "--insecure-udp", "--coaps", "-",
			"--coap", coap, "--admin", admin, "--gateway-id", id, "--batch-interval", "50ms",
			"--mqtt", b.URL(), "--mqtt-ca", b.CAFile(), "--mqtt-username", id, "--mqtt-password-file", passFile)
		waitHealthy(t, p, "http://"+admin)
		return p, coap, admin
	}

	_, coap, _ := start("gw1", "gw1.pass")
	sub.WaitFor(t, func(msgs []mqttpeer.Message) bool {
		for _, m := range msgs {
			if m.Topic == topics.Gateway("gw1", protocol.TopicState) && string(m.Payload) == protocol.StateOnline {
				return true
			}
		}
		return false
	}, 20*time.Second)
	s := newSender(t, coap)
	s.hello("t1")
	s.stream([]string{"t1"}, 3, nil)
	sub.WaitFor(t, func(msgs []mqttpeer.Message) bool { return len(received(t, msgs)) >= 3 }, 20*time.Second)
	checkDelivered(t, s.accepted, received(t, sub.Messages()))

	wrong, _, admin := start("gw2", "wrong.pass")
	testutil.Eventually(t, "the refused gateway's error", func() bool {
		return strings.Contains(wrong.log.String(), "the MQTT broker refused the gateway's credentials")
	})
	if strings.Contains(wrong.log.String(), "broker connected") {
		t.Fatalf("the gateway with a wrong password connected:\n%s", wrong.log.String())
	}
	waitHealthy(t, wrong, "http://"+admin) // still serving its nodes
	for _, m := range sub.Messages() {
		if tp, err := topics.Parse(m.Topic); err == nil && tp.Gateway == "gw2" {
			t.Fatalf("the gateway with a wrong password published on %s", m.Topic)
		}
	}
}
