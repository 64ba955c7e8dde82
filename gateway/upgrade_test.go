package gateway_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
	bolt "go.etcd.io/bbolt"

	"edgeota/gateway"
	"edgeota/gateway/admin"
	"edgeota/gateway/gatewaytest"
	"edgeota/protocol"
	"edgeota/protocol/sign"
	"edgeota/test/mqttpeer"
	"edgeota/test/testutil"
)

// A gateway's data directory, as a release wrote it, is kept under
// testdata/release-NAME/: gateway.db (two models, four nodes with their
// keys, assignments, a provisioning audit entry and a rollout stopped in
// the middle of its first wave) and outbox.db (health reports and status
// events not yet forwarded: the broker was down). expect.json is what that
// release's admin API showed just before it stopped, and the outbox items
// it had accepted. TestUpgradeGateway starts this code on a copy of every
// recorded release and checks that nothing was lost. The files are the
// fixed record of a release's format: never regenerate one; record a new
// release into a new directory with
//
//	go test ./gateway -run TestRecordGatewayRelease -record-release NAME
//
// which refuses a directory that exists.
var recordRelease = flag.String("record-release", "", "write a gateway data directory of this build into testdata/release-NAME (must not exist)")

// The recorded gateway's identity, keys, nodes and deployment.
const (
	upgradeGateway    = "gw-upgrade"
	upgradeDeployment = "dep-kws-2"
)

var (
	upgradeClass      = protocol.Class{0x7f, 0x1c, 0x33, 0x52, 0x0e, 0x4b, 0x4f, 0x7a, 0x9d, 0x61, 0x2a, 0x18, 0x90, 0xc4, 0x5e, 0x02}
	upgradeStart      = time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)
	upgradeManifest   = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x41}, ed25519.SeedSize))
	upgradeDeployKey  = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x42}, ed25519.SeedSize))
	upgradeNodes      = []string{"node-1", "node-2", "node-3", "node-4"}
	upgradeLabels     = map[string]string{"hw": "rev2", "site": "plant-7"}
	upgradeAuditActor = "0011223344556677"
)

func upgradePSK(node string) []byte { return []byte(node + "-pre-shared-key") }

// upgradeClock is the recorded gateway's time: base, then as fast as the
// wall clock.
type upgradeClock struct{ base, start time.Time }

func newUpgradeClock(base time.Time) upgradeClock { return upgradeClock{base, time.Now()} }
func (c upgradeClock) Now() time.Time             { return c.base.Add(time.Since(c.start)) }

// upgradeModel returns model seq's image (deterministic) and its signed
// manifest.
func upgradeModel(tb testing.TB, seq uint64) (signed, image []byte, m *protocol.Manifest) {
	tb.Helper()
	image = make([]byte, 2000+1000*int(seq))
	r := rand.New(rand.NewPCG(seq, 0x6a7e))
	for i := range image {
		image[i] = byte(r.Uint32())
	}
	m = &protocol.Manifest{Format: 1, Seq: seq, Component: "kws", Version: fmt.Sprintf("1.%d.0", seq),
		Digest: sha256.Sum256(image), Size: uint64(len(image)), Class: upgradeClass, Epoch: 1}
	s, _ := sign.NewSigner(upgradeManifest)
	signed, err := s.SignManifest(m)
	if err != nil {
		tb.Fatal(err)
	}
	return signed, image, m
}

// upgradeConfig is the recorded gateway's configuration on dataDir, with
// its sockets.
func upgradeConfig(tb testing.TB, dataDir, mqtt string, clock gateway.Clock) gateway.Config {
	tb.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		conn.Close()
		tb.Fatal(err)
	}
	return gateway.Config{DataDir: dataDir, GatewayID: upgradeGateway, MQTT: mqtt, BatchInterval: 10 * time.Millisecond,
		Trust:       []ed25519.PublicKey{upgradeManifest.Public().(ed25519.PublicKey)},
		DeployTrust: []ed25519.PublicKey{upgradeDeployKey.Public().(ed25519.PublicKey)},
		CoAPConn:    conn, InsecureUDP: true, CoAPSAddr: "127.0.0.1:0", AdminListener: ln, Clock: clock,
		Logger: slog.New(slog.DiscardHandler)}
}

// upgradeCoAP is a plain-CoAP client of a gateway, as the recorded nodes.
type upgradeCoAP struct {
	t *testing.T
	c *udpClient.Conn
}

func dialUpgrade(t *testing.T, addr string) upgradeCoAP {
	t.Helper()
	c, err := udp.Dial(addr, options.WithBlockwise(true, blockwise.SZX1024, time.Minute), options.WithErrors(func(error) {}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return upgradeCoAP{t, c}
}

// post sends a node document, which the gateway must take (2.04).
func (u upgradeCoAP) post(node string, res protocol.NodeResource, doc any) {
	u.t.Helper()
	b, err := protocol.Marshal(doc)
	if err != nil {
		u.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testutil.DefaultCeiling)
	defer cancel()
	resp, err := u.c.Post(ctx, protocol.NodePath(node, res), message.AppCBOR, bytes.NewReader(b))
	if err != nil {
		u.t.Fatalf("post %s %s: %v", node, res, err)
	}
	if resp.Code() != codes.Changed {
		u.t.Fatalf("post %s %s: %v", node, res, resp.Code())
	}
}

// hello says node runs manifest m confirmed in slot, the other slot
// holding other (nil: empty).
func (u upgradeCoAP) hello(node string, m *protocol.Manifest, slot protocol.Slot, other *protocol.Manifest) {
	u.t.Helper()
	h := &protocol.Hello{NodeID: node, Class: upgradeClass, Labels: upgradeLabels, RunningSeq: m.Seq, RunningDigest: m.Digest,
		ActiveSlot: slot, AgentVersion: "0.1.0", EpochFloor: 1, ActiveState: protocol.SlotConfirmed, Component: "kws"}
	if other != nil {
		h.Other = &protocol.OtherSlot{Seq: other.Seq, Digest: other.Digest, State: protocol.SlotConfirmed, Epoch: 1}
	}
	u.post(node, protocol.ResHello, h)
}

// image downloads an image block-wise.
func (u upgradeCoAP) image(d protocol.Digest) []byte {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.DefaultCeiling)
	defer cancel()
	resp, err := u.c.Get(ctx, protocol.ImagePath(d))
	if err != nil {
		u.t.Fatalf("get image %s: %v", d, err)
	}
	if resp.Code() != codes.Content {
		u.t.Fatalf("get image %s: %v", d, resp.Code())
	}
	b, err := resp.ReadBody()
	if err != nil {
		u.t.Fatal(err)
	}
	return b
}

// upgradeItem is an outbox item: its kind, node, boot count and number,
// which tell it from any other (docs/protocol.md section 4).
type upgradeItem struct {
	Kind   string `json:"kind"` // "health" or "status"
	Node   string `json:"node"`
	Boot   uint64 `json:"boot"`
	Number uint64 `json:"number"`
}

// gatewayExpect is what a release's admin API showed before it stopped,
// and the items its outbox held.
type gatewayExpect struct {
	Stopped time.Time          `json:"stopped"` // by the gateway's clock
	Models  []admin.Model      `json:"models"`
	Nodes   []admin.Node       `json:"nodes"`
	Keys    []string           `json:"keys"`
	Audit   []admin.AuditEntry `json:"audit"`
	Rollout rolloutExpect      `json:"rollout"`
	Outbox  []upgradeItem      `json:"outbox"`
}

// rolloutExpect is a rollout's status with its nodes, in the shape the
// release's admin API answered it (nodes inside the status, as before
// contract v1.2); the current one answers the nodes on their own route.
type rolloutExpect struct {
	admin.Rollout
	Nodes []admin.RolloutNode `json:"nodes"`
}

// rolloutOf reads rollout id's status and every node of it.
func rolloutOf(t *testing.T, api *admin.Client, id string) rolloutExpect {
	t.Helper()
	ctx := context.Background()
	var r rolloutExpect
	var err error
	if r.Rollout, err = api.Rollout(ctx, id); err != nil {
		t.Fatal(err)
	}
	for n, err := range api.AllRolloutNodes(ctx, id, admin.RolloutNodeQuery{}) {
		if err != nil {
			t.Fatal(err)
		}
		r.Nodes = append(r.Nodes, n)
	}
	return r
}

// allNodes reads every node of the registry.
func allNodes(t *testing.T, api *admin.Client) []admin.Node {
	t.Helper()
	var ns []admin.Node
	for n, err := range api.AllNodes(context.Background(), admin.NodeQuery{}) {
		if err != nil {
			t.Fatal(err)
		}
		ns = append(ns, n)
	}
	return ns
}

// views reads what expect.json records from a running gateway's admin API.
func views(t *testing.T, api *admin.Client) gatewayExpect {
	t.Helper()
	ctx := context.Background()
	var x gatewayExpect
	var err error
	if x.Models, err = api.Models(ctx); err != nil {
		t.Fatal(err)
	}
	x.Nodes = allNodes(t, api)
	if x.Keys, err = api.Keys(ctx); err != nil {
		t.Fatal(err)
	}
	if x.Audit, err = api.Audit(ctx, ""); err != nil {
		t.Fatal(err)
	}
	x.Rollout = rolloutOf(t, api, upgradeDeployment)
	slices.SortFunc(x.Models, func(a, b admin.Model) int { return strings.Compare(a.Digest, b.Digest) })
	slices.SortFunc(x.Nodes, func(a, b admin.Node) int { return strings.Compare(a.ID, b.ID) })
	slices.Sort(x.Keys)
	slices.SortFunc(x.Rollout.Nodes, func(a, b admin.RolloutNode) int { return strings.Compare(a.ID, b.ID) })
	for i := range x.Rollout.Waves {
		x.Rollout.Waves[i].Offline = 0 // counted against the clock, not stored
	}
	return x
}

// rolloutNode returns node id's state in r.
func rolloutNode(r rolloutExpect, id string) admin.RolloutNode {
	for _, n := range r.Nodes {
		if n.ID == id {
			return n
		}
	}
	return admin.RolloutNode{}
}

// TestRecordGatewayRelease writes this build's data directory into
// testdata/release-NAME with -record-release NAME; see recordRelease.
func TestRecordGatewayRelease(t *testing.T) {
	if *recordRelease == "" {
		t.Skip("records a release's data directory with -record-release NAME")
	}
	dir := filepath.Join("testdata", "release-"+*recordRelease)
	if _, err := os.Stat(dir); err == nil {
		t.Fatalf("%s exists: a recorded release is never rewritten", dir)
	}
	data := t.TempDir()
	keys := map[string][]byte{}
	for _, n := range upgradeNodes {
		keys[n] = upgradePSK(n)
	}
	if _, err := gateway.ImportKeys(data, keys); err != nil {
		t.Fatal(err)
	}
	// An uplink to a broker that is down: everything forwarded stays in
	// the outbox.
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down.Close()
	clock := newUpgradeClock(upgradeStart)
	cfg := upgradeConfig(t, data, "tcp://"+down.Addr().String(), clock)
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() {
		if cancel != nil {
			cancel()
			<-done
		}
	}()
	api, err := admin.NewClient("http://" + g.AdminAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := dialUpgrade(t, g.CoAPAddr().String())

	// Two models; every node runs the first, a standing rule.
	s1, i1, m1 := upgradeModel(t, 1)
	s2, i2, m2 := upgradeModel(t, 2)
	for _, m := range [][2][]byte{{s1, i1}, {s2, i2}} {
		if _, err := api.PutModel(ctx, m[0], bytes.NewReader(m[1])); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := api.AssignAll(ctx, s1); err != nil {
		t.Fatal(err)
	}
	var items []upgradeItem
	health := func(node string, boot, n uint64, m *protocol.Manifest) {
		c.post(node, protocol.ResHealth, &protocol.HealthReport{NodeID: node, UptimeSeconds: 60 * n, RunningSeq: m.Seq,
			Inferences: 100, LatencyP50Micros: 900, LatencyP99Micros: 2000, BootCount: boot, Time: uint64(clock.Now().Unix()), Number: n})
		items = append(items, upgradeItem{"health", node, boot, n})
	}
	status := func(ev *protocol.StatusEvent) {
		c.post(ev.NodeID, protocol.ResStatus, ev)
		items = append(items, upgradeItem{"status", ev.NodeID, ev.BootCount, ev.Number})
	}
	for _, n := range upgradeNodes {
		c.hello(n, m1, protocol.SlotA, nil)
	}
	for _, n := range upgradeNodes {
		health(n, 1, 1, m1)
		health(n, 1, 2, m1)
	}
	status(&protocol.StatusEvent{NodeID: "node-4", State: protocol.StateProvisioned, Reason: "provisioned, serial 4",
		BootCount: 1, Number: 1, Actor: upgradeAuditActor})

	// The rollout of model 2: two waves, one download at a time.
	ds, _ := sign.NewSigner(upgradeDeployKey)
	now := uint64(clock.Now().Unix())
	signedDep, err := ds.SignDeployment(&protocol.Deployment{ID: upgradeDeployment, Seq: 1, Manifest: s2, Cohort: "hw:rev2",
		Waves: []protocol.Wave{{BasisPoints: 5000}, {BasisPoints: 10000}}, OnFailure: protocol.FailurePause,
		NodeTimeoutSeconds: 86400, MaxConcurrent: 1, Issued: now - 60, Expires: now + 10*365*86400})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.PostDeployment(ctx, signedDep); err != nil {
		t.Fatal(err)
	}
	r := rolloutOf(t, api, upgradeDeployment)
	assigned := func(r rolloutExpect) []string {
		var ids []string
		for _, n := range r.Nodes {
			if n.State == admin.NodeAssigned {
				ids = append(ids, n.ID)
			}
		}
		return ids
	}
	first := assigned(r)
	if len(first) != 1 {
		t.Fatalf("assigned %v at the start, want one node", first)
	}
	// The first node downloads, boots on trial, confirms: it succeeds and
	// the second node of wave 1 is assigned; it starts downloading.
	a := first[0]
	status(&protocol.StatusEvent{NodeID: a, State: protocol.StateDownloading, Seq: 2, Digest: m2.Digest, BootCount: 1, Number: 1})
	status(&protocol.StatusEvent{NodeID: a, State: protocol.StateTrial, Seq: 2, Digest: m2.Digest, BytesReceived: m2.Size, BootCount: 2, Number: 1})
	c.hello(a, m2, protocol.SlotB, m1)
	status(&protocol.StatusEvent{NodeID: a, State: protocol.StateConfirmed, Seq: 2, Digest: m2.Digest, BootCount: 2, Number: 2})
	health(a, 2, 1, m2)
	r = rolloutOf(t, api, upgradeDeployment)
	second := assigned(r)
	if len(second) != 1 || rolloutNode(r, a).State != admin.NodeSucceeded || r.Wave != 1 || r.Phase != admin.PhaseRunning {
		t.Fatalf("rollout: wave %d %s, %s %s, assigned %v", r.Wave, r.Phase, a, rolloutNode(r, a).State, second)
	}
	status(&protocol.StatusEvent{NodeID: second[0], State: protocol.StateDownloading, Seq: 2, Digest: m2.Digest, BootCount: 1, Number: 1})

	// The node registry records activity once a second: wait for it.
	want := map[string][2]uint64{}
	for _, it := range items {
		w := want[it.Node]
		if it.Kind == "health" {
			w[0]++
		} else {
			w[1]++
		}
		want[it.Node] = w
	}
	testutil.Eventually(t, "the nodes' activity recorded", func() bool {
		ns := allNodes(t, api)
		for _, n := range ns {
			if w := want[n.ID]; n.HealthReports != w[0] || n.StatusEvents != w[1] {
				return false
			}
		}
		return len(ns) == len(upgradeNodes)
	})
	x := views(t, api)
	x.Outbox = items
	x.Stopped = clock.Now()
	cancel()
	if err := <-done; err != nil && !strings.Contains(err.Error(), context.Canceled.Error()) {
		t.Fatalf("gateway Run: %v", err)
	}
	cancel = nil

	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"gateway.db", "outbox.db"} {
		b, err := os.ReadFile(filepath.Join(data, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := json.MarshalIndent(x, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "expect.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestUpgradeGateway starts this code on a copy of every recorded
// release's data directory: the models are listed and served, byte for
// byte; the nodes, their keys (a DTLS handshake with one), the audit and
// the rollout read as the release showed them; the outbox forwards every
// item it held to a real broker (mosquitto) and drains; and the rollout
// resumes: the node that was downloading confirms, wave 1 completes and
// the rollout assigns the next node of wave 2.
func TestUpgradeGateway(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join("testdata", "release-*"))
	if len(dirs) == 0 {
		t.Fatal("no recorded release under testdata")
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) { upgradeGatewayFrom(t, dir) })
	}
}

func upgradeGatewayFrom(t *testing.T, dir string) {
	var want gatewayExpect
	b, err := os.ReadFile(filepath.Join(dir, "expect.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	// The recorded files are never written: the gateway runs on copies.
	data := t.TempDir()
	for _, f := range []string{"gateway.db", "outbox.db"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(data, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	broker := mqttpeer.Start(t)
	topics := protocol.Topics{}
	healthSub := mqttpeer.Subscribe(t, broker.URL(), topics.Gateway(upgradeGateway, protocol.TopicHealth))
	statusSub := mqttpeer.Subscribe(t, broker.URL(), topics.Gateway(upgradeGateway, protocol.TopicStatus))

	// The clock goes on from where the release stopped.
	g := gatewaytest.Start(t, upgradeConfig(t, data, broker.URL(), newUpgradeClock(want.Stopped)))
	api, err := admin.NewClient("http://" + g.AdminAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	got := views(t, api)
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"models", got.Models, want.Models},
		{"nodes", got.Nodes, want.Nodes},
		{"keys", got.Keys, want.Keys},
		{"audit", got.Audit, want.Audit},
		{"rollout", got.Rollout, want.Rollout},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			g, _ := json.MarshalIndent(c.got, "", "  ")
			w, _ := json.MarshalIndent(c.want, "", "  ")
			t.Errorf("%s:\n%s\nthe release showed:\n%s", c.what, g, w)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// The models are served, byte for byte.
	c := dialUpgrade(t, g.CoAPAddr().String())
	for _, seq := range []uint64{1, 2} {
		_, image, m := upgradeModel(t, seq)
		if got := c.image(m.Digest); !bytes.Equal(got, image) {
			t.Fatalf("model %d served %d bytes that differ from its %d", seq, len(got), len(image))
		}
	}
	// The nodes' keys open DTLS sessions.
	for _, n := range upgradeNodes {
		ctx, cancel := context.WithTimeout(context.Background(), testutil.DefaultCeiling)
		dc, err := gatewaytest.DialDTLS(ctx, "", g.CoAPSAddr().String(), n, upgradePSK(n))
		cancel()
		if err != nil {
			t.Fatalf("DTLS handshake of %s: %v", n, err)
		}
		dc.Close()
	}

	// The outbox forwards every item it held, then holds none.
	forwarded := func() []upgradeItem {
		var out []upgradeItem
		for _, m := range healthSub.Messages() {
			reps, err := protocol.DecodeHealthBatch(m.Payload)
			if err != nil {
				t.Fatalf("health batch: %v", err)
			}
			for _, r := range reps {
				out = append(out, upgradeItem{"health", r.NodeID, r.BootCount, r.Number})
			}
		}
		for _, m := range statusSub.Messages() {
			evs, err := protocol.DecodeEventBatch(m.Payload)
			if err != nil {
				t.Fatalf("status batch: %v", err)
			}
			for _, e := range evs {
				out = append(out, upgradeItem{"status", e.NodeID, e.BootCount, e.Number})
			}
		}
		return out
	}
	key := func(i upgradeItem) string { return fmt.Sprintf("%s/%s/%d/%d", i.Kind, i.Node, i.Boot, i.Number) }
	sorted := func(items []upgradeItem) []string {
		var s []string
		for _, i := range items {
			s = append(s, key(i))
		}
		slices.Sort(s)
		return slices.Compact(s) // QoS 1 may deliver twice
	}
	wantItems := sorted(want.Outbox)
	testutil.Eventually(t, "every outbox item forwarded", func() bool { return len(sorted(forwarded())) >= len(wantItems) })
	if got := sorted(forwarded()); !slices.Equal(got, wantItems) {
		t.Fatalf("forwarded %v, the outbox held %v", got, wantItems)
	}
	testutil.Eventually(t, "the outbox empty", func() bool { return metric(t, api, "edgeota_outbox_depth") == 0 })

	// The rollout resumes: the node that was downloading confirms.
	var downloading string
	for _, n := range want.Rollout.Nodes {
		if n.State == admin.NodeAssigned {
			downloading = n.ID
		}
	}
	_, _, m1 := upgradeModel(t, 1)
	_, _, m2 := upgradeModel(t, 2)
	c.hello(downloading, m2, protocol.SlotB, m1)
	r := rolloutOf(t, api, upgradeDeployment)
	var next []string
	for _, n := range want.Rollout.Nodes {
		if n.State == admin.NodeWaiting && rolloutNode(r, n.ID).State == admin.NodeAssigned {
			next = append(next, n.ID)
		}
	}
	if r.Phase != admin.PhaseRunning || r.Wave != 2 || rolloutNode(r, downloading).State != admin.NodeSucceeded || len(next) != 1 {
		t.Fatalf("after %s confirmed: %s in wave %d, %s %s, newly assigned %v; want running in wave 2, succeeded, one assigned",
			downloading, r.Phase, r.Wave, downloading, rolloutNode(r, downloading).State, next)
	}
	if n, err := api.Node(context.Background(), next[0]); err != nil || n.AssignedSeq != 2 {
		t.Fatalf("%s is assigned seq %d (%v), want 2", next[0], n.AssignedSeq, err)
	}
}

// metric returns the value of an unlabelled metric from the admin API.
func metric(t *testing.T, api *admin.Client, name string) float64 {
	t.Helper()
	b, err := api.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestNewerDatabaseRefused: a gateway whose gateway.db or outbox.db a
// newer edgeota wrote (a schema version above this build's) does not start: New fails with
// ErrSchemaTooNew, saying both versions and that a newer edgeota is
// needed, and the file it refused does not change. (When outbox.db is the
// newer one, gateway.db was opened first: a newer edgeota migrated it too,
// so nothing migrates it here.)
func TestNewerDatabaseRefused(t *testing.T) {
	for _, tc := range []struct {
		file, what string
		version    uint64 // this build's
	}{
		{"gateway.db", "the gateway database has schema version", gateway.SchemaVersion()},
		{"outbox.db", "the outbox has schema version", 1},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data := t.TempDir()
			for _, f := range []string{"gateway.db", "outbox.db"} {
				b, err := os.ReadFile(filepath.Join("testdata", "release-0.1", f))
				if err != nil {
					t.Fatal(err)
				}
				os.WriteFile(filepath.Join(data, f), b, 0o600)
			}
			db, err := bolt.Open(filepath.Join(data, tc.file), 0o600, &bolt.Options{Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("meta")).Put([]byte("format"), []byte{byte(tc.version + 1)})
			}); err != nil {
				t.Fatal(err)
			}
			db.Close()
			read := func() [32]byte {
				b, _ := os.ReadFile(filepath.Join(data, tc.file))
				return sha256.Sum256(b)
			}
			sum := read()
			cfg := upgradeConfig(t, data, "tcp://127.0.0.1:1", nil)
			if _, err = gateway.New(cfg); err == nil {
				t.Fatal("New started on a newer database")
			}
			cfg.CoAPConn.Close()
			cfg.AdminListener.Close()
			if !errors.Is(err, gateway.ErrSchemaTooNew) {
				t.Fatalf("New = %v, want ErrSchemaTooNew", err)
			}
			for _, part := range []string{fmt.Sprintf("%s %d", tc.what, tc.version+1), fmt.Sprintf("supports versions up to %d", tc.version),
				"a newer edgeota wrote it"} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("%q does not say %q", err, part)
				}
			}
			if read() != sum {
				t.Errorf("refusing changed %s", tc.file)
			}
		})
	}
}
