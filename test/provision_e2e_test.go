package test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ble/ble"

	"edgeota/firmware-sim/blelink"
	"edgeota/firmware-sim/flash"
	"edgeota/gateway"
	"edgeota/gateway/admin"
	"edgeota/gateway/gatewaytest"
	"edgeota/gateway/provisioner"
	"edgeota/nodeagent"
	"edgeota/nodeagent/provisioning"
	"edgeota/nodeagent/simmodel"
	"edgeota/protocol"
	"edgeota/protocol/provision"
	"edgeota/protocol/sign"
	"edgeota/test/testutil"
)

// Keys and identities of the provisioning end-to-end test: the manifest
// key the gateway and the nodes trust, the operator key nodes are
// manufactured to trust, and the deployment key of the gateway.
var (
	provManifestKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x61}, 32))
	provOperatorKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x62}, 32))
	provDeployKey   = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x63}, 32))
	provClass       = protocol.Class{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
)

const (
	provSlot      = 64 << 10 // bytes of image per flash slot
	provJournal   = 4        // erase blocks of the boot-state journal
	provComponent = "kws-model"
)

func provPub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// TestProvisionedNodeReceivesRollout is the "done when" of issue 8, in one
// process and without a radio: a gateway serving CoAP over DTLS only, two
// fresh simulated nodes wired as `edgeota node --ble` wires a real one
// (provisioning service, Supervise, Apply, agent), each provisioned over
// go-ble's real ATT server and GATT client on an in-memory link. Each node
// then says Hello over DTLS with the labels set over BLE, the gateway
// audits who provisioned it, and a rollout to `region:us-east AND
// hw:rev2` reaches node-p and not node-q (region=eu-west, hw=rev2). Once
// node-q is provisioned again with region=us-east, the completed rollout
// reaches it too.
func TestProvisionedNodeReceivesRollout(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gw := startProvGateway(t)
	opKID := sign.KeyIDOf(provPub(provOperatorKey)).String()

	type nodeSpec struct {
		id, addr string
		labels   map[string]string
		secret   []byte
		psk      []byte
		mtu      int // provisioner.Options.MTU: 0 exchanges the largest, 23 none
	}
	specs := []nodeSpec{
		{"node-p", "0a:00:00:00:00:11", map[string]string{"region": "us-east", "hw": "rev2"},
			bytes.Repeat([]byte{0x71}, 32), bytes.Repeat([]byte{0x81}, 32), 0},
		{"node-q", "0a:00:00:00:00:12", map[string]string{"region": "eu-west", "hw": "rev2"},
			bytes.Repeat([]byte{0x72}, 32), bytes.Repeat([]byte{0x82}, 32), ble.DefaultMTU},
	}

	// 1. The gateway learns the nodes' keys through its admin API.
	var keys []admin.Key
	for _, s := range specs {
		keys = append(keys, admin.Key{NodeID: s.id, PSK: "hex:" + hex.EncodeToString(s.psk)})
	}
	if _, err := gw.api.PutKeys(ctx, keys); err != nil {
		t.Fatal(err)
	}

	// 2. Fresh nodes serve the provisioning service on the air; none runs
	// an agent before it is provisioned.
	air := blelink.NewAir()
	nodes := map[string]*provNode{}
	for _, s := range specs {
		nodes[s.id] = startProvNode(t, air, s.addr, s.id, s.secret)
	}
	if n := len(gw.nodes(t)); n != 0 {
		t.Fatalf("the gateway knows %d nodes before provisioning", n)
	}

	// 3. Provision each node over BLE: scan, dial, GATT, chunked bundle,
	// commit.
	uri := "coaps://" + gw.g.CoAPSAddr().String()
	for _, s := range specs {
		n := nodes[s.id]
		if got := n.agents.Load(); got != 0 {
			t.Fatalf("%s ran %d agents before provisioning", s.id, got)
		}
		signed := provBundle(t, s.id, 1, s.labels, uri, s.secret, s.psk)
		cli, err := provisioner.Connect(ctx, air, s.addr)
		if err != nil {
			t.Fatal(err)
		}
		res, err := provisioner.Provision(ctx, cli, signed, provisioner.Options{MTU: s.mtu})
		if err != nil {
			t.Fatalf("provision %s: %v", s.id, err)
		}
		// At the default MTU the bundle travels in numbered chunks.
		if res.Node.NodeID != s.id || res.Node.Serial != 0 || res.Node.Class != provClass.String() ||
			res.NodeID != s.id || res.Serial != 1 || res.Signer != opKID || (s.mtu == ble.DefaultMTU && res.Chunks < len(signed)/20) {
			t.Fatalf("provision %s: result %+v", s.id, res)
		}
		t.Logf("%s provisioned: %d-byte bundle in %d chunks", s.id, res.Bytes, res.Chunks)
	}

	// 4. Each node restarts its agent with the committed configuration: it
	// says Hello over DTLS, then reports the provisioning (state 9).
	for _, s := range specs {
		n := nodes[s.id]
		h := n.waitFor(t, ctx, "a delivered Hello", func(d provDelivered) bool { return d.hello })
		if !maps.Equal(h.labels, s.labels) || h.component != provComponent {
			t.Fatalf("%s said Hello with labels %v, component %q", s.id, h.labels, h.component)
		}
		e := n.waitFor(t, ctx, "a delivered provisioning event", func(d provDelivered) bool { return d.state == protocol.StateProvisioned })
		if e.actor != opKID {
			t.Fatalf("%s reported the provisioning by %q, want %s", s.id, e.actor, opKID)
		}
		if got := n.agents.Load(); got != 1 {
			t.Fatalf("%s ran %d agents after one commit", s.id, got)
		}
	}
	registry := gw.nodes(t)
	for _, s := range specs {
		v, ok := registry[s.id]
		if !ok || !maps.Equal(v.Labels, s.labels) || v.Component != provComponent || v.Class != provClass.String() || v.RunningSeq != 0 {
			t.Fatalf("the gateway's registry holds %s as %+v (known %v)", s.id, v, ok)
		}
	}
	audit, err := gw.api.Audit(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		var mine []admin.AuditEntry
		for _, a := range audit {
			if a.Node == s.id {
				mine = append(mine, a)
			}
		}
		if len(mine) != 1 || mine[0].Actor != opKID || !mine[0].Authenticated ||
			!maps.Equal(mine[0].Labels, s.labels) || mine[0].Component != provComponent {
			t.Fatalf("audit entries of %s: %+v, want one by %s, authenticated, with labels %v", s.id, mine, opKID, s.labels)
		}
	}
	provisioned := time.Since(start)

	// 5. A model and a signed deployment to region:us-east AND hw:rev2.
	image := provImage(20 << 10)
	signer, err := sign.NewSigner(provManifestKey)
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := signer.SignManifest(&protocol.Manifest{Format: protocol.ManifestFormat, Seq: 1, Component: provComponent,
		Version: "1.0.0", Digest: sha256.Sum256(image), Size: uint64(len(image)), Class: provClass, Epoch: 1,
		Probation: &protocol.Probation{Seconds: 1, MinInferences: 20}})
	if err != nil {
		t.Fatal(err)
	}
	gw.push(t, manifest, image)
	deployer, err := sign.NewSigner(provDeployKey)
	if err != nil {
		t.Fatal(err)
	}
	minReports, maxFailed := uint64(1), uint64(0)
	now := uint64(time.Now().Unix())
	deployment, err := deployer.SignDeployment(&protocol.Deployment{ID: "kws-prov-1", Seq: 1, Manifest: manifest,
		Cohort: "region:us-east AND hw:rev2", Waves: []protocol.Wave{{BasisPoints: 10000, BakeSeconds: 1}},
		Gates: protocol.Gates{MinReports: &minReports, MaxFailed: &maxFailed}, OnFailure: protocol.FailurePause,
		NodeTimeoutSeconds: 60, MaxConcurrent: 10, Issued: now, Expires: now + 3600})
	if err != nil {
		t.Fatal(err)
	}
	posted, err := gw.api.PostDeployment(ctx, deployment)
	if err != nil {
		t.Fatal(err)
	}
	if ids := provRolloutNodes(withNodes(t, gw.api, posted)); !slices.Equal(ids, []string{"node-p"}) {
		t.Fatalf("the rollout targets %v, want [node-p]", ids)
	}

	var final rolloutView
	gw.waitUntil(t, ctx, "the rollout to complete with node-p succeeded", func() bool {
		final = gw.rollout(t, ctx, "kws-prov-1")
		return final.Phase == "completed"
	})
	if ids := provRolloutNodes(final); !slices.Equal(ids, []string{"node-p"}) || final.Nodes[0].State != "succeeded" {
		t.Fatalf("completed rollout: phase %s, nodes %+v", final.Phase, final.Nodes)
	}
	gw.waitUntil(t, ctx, "node-p to run seq 1 confirmed", func() bool {
		v := gw.nodes(t)["node-p"]
		return v.RunningSeq == 1 && v.ActiveState == "confirmed"
	})
	rolledOut := time.Since(start)

	// 6. node-q, outside the cohort, was never offered the model.
	if v := gw.nodes(t)["node-q"]; v.RunningSeq != 0 || v.Assigned != "" || v.AssignedSeq != 0 {
		t.Fatalf("node-q outside the cohort: %+v", v)
	}
	for id, want := range map[string]string{"node-p": "1.0.0", "node-q": ""} {
		if got := nodes[id].running(); got != want {
			t.Fatalf("%s's agent runs version %q, want %q", id, got, want)
		}
	}
	// The node says over BLE what it runs (the service's running version).
	cli, err := provisioner.Connect(ctx, air, "0a:00:00:00:00:11")
	if err != nil {
		t.Fatal(err)
	}
	s, err := provisioner.Open(ctx, cli, provisioner.Options{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info()
	s.Close()
	if err != nil || info.RunningVersion != "1.0.0" || info.Serial != 1 || info.Component != provComponent {
		t.Fatalf("node-p over BLE after the rollout: %+v, %v", info, err)
	}

	// 7. A technician moves node-q to us-east: a new bundle (serial 2, same
	// key) with new labels. Its agent restarts, says Hello with them, and
	// the completed rollout, whose cohort it now matches, gives it the
	// model at once.
	moved := map[string]string{"region": "us-east", "hw": "rev2"}
	qcli, err := provisioner.Connect(ctx, air, specs[1].addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provisioner.Provision(ctx, qcli, provBundle(t, "node-q", 2, moved, uri, specs[1].secret, specs[1].psk), provisioner.Options{}); err != nil {
		t.Fatalf("re-provision node-q: %v", err)
	}
	gw.waitUntil(t, ctx, "node-q to run the rolled-out model, confirmed", func() bool {
		v := gw.nodes(t)["node-q"]
		return maps.Equal(v.Labels, moved) && v.RunningSeq == 1 && v.ActiveState == "confirmed"
	})
	gw.waitUntil(t, ctx, "the completed rollout to count node-q succeeded", func() bool {
		final = gw.rollout(t, ctx, "kws-prov-1")
		for _, n := range final.Nodes {
			if n.ID == "node-q" {
				return n.State == "succeeded"
			}
		}
		return false
	})
	if final.Phase != "completed" {
		t.Fatalf("the rollout is %s after node-q joined, want completed", final.Phase)
	}

	// The nodes' flash, read after their agents stopped.
	for _, sp := range specs {
		nodes[sp.id].stop(t)
	}
	for id, seq := range map[string]uint64{"node-p": 1, "node-q": 1} {
		st, err := nodeagent.ReadStatus(nodes[id].flash, provSlot, provJournal)
		if err != nil {
			t.Fatal(err)
		}
		if st.HighestSeq != seq || (seq > 0 && (st.LastState != "confirmed" || st.Slots[0].Seq != seq || st.Slots[0].State != "confirmed")) {
			t.Fatalf("%s's flash: %+v", id, st)
		}
	}
	t.Logf("provisioned and said hello in %v; rollout complete and confirmed at %v; total %v",
		provisioned.Round(time.Millisecond), rolledOut.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// provRolloutNodes returns the ids of a rollout's nodes, sorted.
func provRolloutNodes(st rolloutView) []string {
	var ids []string
	for _, n := range st.Nodes {
		ids = append(ids, n.ID)
	}
	slices.Sort(ids)
	return ids
}

// provImage is a simulated model image of size bytes that behaves healthy.
func provImage(size int) []byte {
	img := bytes.Repeat([]byte("kws weights "), size/12+1)[:size]
	copy(img, "edgeota-sim-model error_permille=0 p50_us=2000 p99_us=5000\n")
	return img
}

// provBundle is a provisioning bundle for node id signed by the operator
// key, its PSK sealed under the node's factory secret.
func provBundle(t testing.TB, id string, serial uint64, labels map[string]string, uri string, secret, psk []byte) []byte {
	t.Helper()
	sealed, err := provision.Seal(secret, id, serial, psk)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := provision.Sign(&provision.Bundle{Format: provision.Format, NodeID: id, Serial: serial, Issued: uint64(time.Now().Unix()),
		Labels: labels, Component: provComponent, Gateway: uri,
		ManifestKeys: []ed25519.PublicKey{provPub(provManifestKey)}, OperatorKeys: []ed25519.PublicKey{provPub(provOperatorKey)},
		PSK: sealed}, provOperatorKey)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// provGateway is an in-process gateway serving CoAP over DTLS only, and
// its admin API.
type provGateway struct {
	g   *gateway.Gateway
	api *admin.Client
}

// startProvGateway starts a gateway on loopback; cleanup stops it and
// checks that Run ended cleanly.
func startProvGateway(t testing.TB) *provGateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := gatewaytest.Start(t, gateway.Config{DataDir: t.TempDir(), Trust: []ed25519.PublicKey{provPub(provManifestKey)},
		DeployTrust: []ed25519.PublicKey{provPub(provDeployKey)}, CoAPSAddr: "127.0.0.1:0", AdminListener: ln, GatewayID: "gw-prov"})
	api, err := admin.NewClient("http://"+g.AdminAddr().String(), admin.WithHTTPClient(&http.Client{Timeout: 10 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	return &provGateway{g: g, api: api}
}

// nodes returns the gateway's node registry by id.
func (gw *provGateway) nodes(t testing.TB) map[string]admin.Node {
	t.Helper()
	out := map[string]admin.Node{}
	for v, err := range gw.api.AllNodes(context.Background(), admin.NodeQuery{}) {
		if err != nil {
			t.Fatal(err)
		}
		out[v.ID] = v
	}
	return out
}

// rollout returns rollout id's status and nodes.
func (gw *provGateway) rollout(t testing.TB, ctx context.Context, id string) rolloutView {
	t.Helper()
	st, err := gw.api.Rollout(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return withNodes(t, gw.api, st)
}

// push stores a model through the admin API.
func (gw *provGateway) push(t testing.TB, manifest, image []byte) {
	t.Helper()
	if _, err := gw.api.PutModel(context.Background(), manifest, bytes.NewReader(image)); err != nil {
		t.Fatal(err)
	}
}

// waitUntil checks cond every 100ms until it holds, failing the test when
// ctx ends first.
func (gw *provGateway) waitUntil(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// provDelivered is what a node's agent got the gateway to accept: a Hello
// or a status event.
type provDelivered struct {
	hello     bool
	labels    map[string]string
	component string
	state     protocol.State
	actor     string
}

// provNode is a simulated node run the way `edgeota node --ble` runs one:
// a provisioning service on the air, and an agent supervised across
// commits on its simulated flash.
type provNode struct {
	id     string
	flash  *flash.Sim
	agents atomic.Int32 // agents built
	agent  atomic.Pointer[nodeagent.Agent]
	cancel context.CancelFunc
	done   chan error
	once   sync.Once

	mu        sync.Mutex
	delivered []provDelivered
	wake      chan struct{}
}

// startProvNode starts a fresh node: never provisioned, knowing only its
// id, class, factory secret and the operator key it was manufactured to
// trust. Cleanup stops it.
func startProvNode(t testing.TB, air *blelink.Air, addr, id string, secret []byte) *provNode {
	t.Helper()
	f, err := flash.New(nodeagent.FlashSize(provSlot, 4096, provJournal), flash.WithEraseSize(4096), flash.WithWriteSize(8))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	n := &provNode{id: id, flash: f, done: make(chan error, 1), wake: make(chan struct{}, 1)}
	onCommit, commits := provisioning.CommitChannel()
	svc, err := provisioning.New(provisioning.Config{NodeID: id, Class: provClass, AgentVersion: nodeagent.AgentVersion,
		RunningVersion: n.running, FactorySecret: secret, FactoryKeys: []ed25519.PublicKey{provPub(provOperatorKey)},
		Store: &provisioning.MemStore{}, OnCommit: onCommit, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	stopAdv, err := air.Advertise(blelink.Peripheral{Addr: addr, Name: id, Services: []ble.UUID{ble.MustParse(provision.ServiceUUID)},
		Accept: func(c ble.Conn) {
			if err := svc.ServeConn(ctx, c); err != nil && ctx.Err() == nil {
				t.Errorf("%s: ServeConn: %v", id, err)
			}
		}})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var first *provisioning.NodeConfig
	if pc, ok := svc.Current(); ok {
		first = &pc
	}
	go func() {
		n.done <- provisioning.Supervise(ctx, log, first, commits, func(ctx context.Context, pc *provisioning.NodeConfig, committed bool) error {
			if pc == nil {
				return nil // nothing to talk to before provisioning
			}
			cfg := nodeagent.Config{NodeID: id, Class: provClass, Flash: f, Models: simmodel.Runtime{}.ForAgent(), SlotSize: provSlot, JournalBlocks: provJournal,
				InferenceRate: 100, HealthInterval: 200 * time.Millisecond, AckTimeout: 100 * time.Millisecond,
				PollInterval: time.Second, Logger: log, OnDelivered: n.record}
			if committed {
				cfg.Provisioned = &nodeagent.Provisioning{Actor: pc.Signer, Serial: pc.Serial}
			}
			if err := provisioning.Apply(&cfg, *pc); err != nil {
				return err
			}
			a, err := nodeagent.New(cfg)
			if err != nil {
				return err
			}
			n.agents.Add(1)
			n.agent.Store(a)
			defer n.agent.Store(nil)
			if err := a.Boot(ctx); err != nil {
				return err
			}
			return a.Run(ctx)
		})
	}()
	t.Cleanup(func() {
		n.stop(t)
		stopAdv()
		air.Wait()
	})
	return n
}

// running is the version the node's agent runs, "" for none.
func (n *provNode) running() string {
	if a := n.agent.Load(); a != nil {
		if r := a.Device().Running(); r != nil {
			return r.Manifest.Version
		}
	}
	return ""
}

// record is the agent's OnDelivered hook.
func (n *provNode) record(doc any) {
	var d provDelivered
	switch doc := doc.(type) {
	case *protocol.Hello:
		d = provDelivered{hello: true, labels: maps.Clone(doc.Labels), component: doc.Component}
	case *protocol.StatusEvent:
		d = provDelivered{state: doc.State, actor: doc.Actor}
	default:
		return
	}
	n.mu.Lock()
	n.delivered = append(n.delivered, d)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// waitFor returns the first delivered document that match accepts.
func (n *provNode) waitFor(t testing.TB, ctx context.Context, what string, match func(provDelivered) bool) provDelivered {
	t.Helper()
	for {
		n.mu.Lock()
		i := slices.IndexFunc(n.delivered, match)
		var d provDelivered
		if i >= 0 {
			d = n.delivered[i]
		}
		n.mu.Unlock()
		if i >= 0 {
			return d
		}
		select {
		case <-n.wake:
		case <-ctx.Done():
			t.Fatalf("%s: waiting for %s: %v", n.id, what, ctx.Err())
		}
	}
}

// stop stops the node's agent and checks that Supervise ended cleanly.
func (n *provNode) stop(t testing.TB) {
	t.Helper()
	n.once.Do(func() {
		n.cancel()
		select {
		case err := <-n.done:
			if err != nil {
				t.Errorf("%s: Supervise: %v", n.id, err)
			}
		case <-time.After(testutil.DefaultCeiling):
			t.Errorf("%s: the agent did not stop", n.id)
		}
	})
}
