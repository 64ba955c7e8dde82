package test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"

	"edgeota/gateway"
	"edgeota/gateway/admin"
	"edgeota/gateway/gatewaytest"
	"edgeota/protocol"
	"edgeota/protocol/sign"
	"edgeota/test/testutil"
)

// Keys of the rollout control test: the manifest key and the deployment
// key its gateway trusts.
var (
	ctlManifestKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x71}, 32))
	ctlDeployKey   = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x72}, 32))
	ctlClass       = protocol.Class{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
)

// rolloutView is a rollout's status with every node of it.
type rolloutView struct {
	admin.Rollout
	Nodes []admin.RolloutNode
}

// withNodes reads every node of rollout st, page by page.
func withNodes(t testing.TB, api *admin.Client, st admin.Rollout) rolloutView {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v := rolloutView{Rollout: st}
	for n, err := range api.AllRolloutNodes(ctx, st.ID, admin.RolloutNodeQuery{}) {
		if err != nil {
			t.Fatalf("rollout %s's nodes: %v", st.ID, err)
		}
		v.Nodes = append(v.Nodes, n)
	}
	return v
}

// nodesIn returns the ids of the rollout's nodes in state s.
func nodesIn(st rolloutView, s admin.NodeState) []string {
	var out []string
	for _, n := range st.Nodes {
		if n.State == s {
			out = append(out, n.ID)
		}
	}
	return out
}

// nodesTouched is how many nodes the rollout ever assigned: every node not
// waiting.
func nodesTouched(st rolloutView) int { return len(st.Nodes) - len(nodesIn(st, admin.NodeWaiting)) }

// ctlGateway is an in-process gateway on a data directory serving plain
// CoAP and its admin API on loopback ports, until the test that started
// it ends.
type ctlGateway struct {
	api  *admin.Client
	coap string
}

func startCtlGateway(t *testing.T, dataDir string) *ctlGateway {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	g := gatewaytest.Start(t, gateway.Config{DataDir: dataDir, Trust: []ed25519.PublicKey{provPub(ctlManifestKey)},
		DeployTrust: []ed25519.PublicKey{provPub(ctlDeployKey)}, CoAPConn: conn, InsecureUDP: true, CoAPSAddr: "-",
		AdminListener: ln, GatewayID: "gw-ctl"})
	api, err := admin.NewClient("http://" + g.AdminAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	return &ctlGateway{api: api, coap: g.CoAPAddr().String()}
}

// control posts a rollout action; want is nil, or the sentinel its error
// must match.
func (g *ctlGateway) control(t *testing.T, id string, action admin.Action, want error) rolloutView {
	t.Helper()
	st, err := g.api.RolloutAction(adminCtx(t), id, action)
	if (want == nil && err != nil) || (want != nil && !errors.Is(err, want)) {
		t.Fatalf("%s %s: %v, want %v", action, id, err, want)
	}
	if err != nil {
		return rolloutView{Rollout: st}
	}
	return withNodes(t, g.api, st)
}

func (g *ctlGateway) status(t *testing.T, id string) rolloutView {
	t.Helper()
	st, err := g.api.Rollout(adminCtx(t), id)
	if err != nil {
		t.Fatalf("rollout %s: %v", id, err)
	}
	return withNodes(t, g.api, st)
}

// adminCtx bounds one admin call.
func adminCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testutil.DefaultCeiling)
	t.Cleanup(cancel)
	return ctx
}

// hello says a node's Hello over CoAP; the gateway has handed it to its
// rollouts when it answers 2.04.
func (g *ctlGateway) hello(t *testing.T, h *protocol.Hello) {
	t.Helper()
	c, err := udp.Dial(g.coap, options.WithErrors(func(error) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body, err := protocol.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testutil.DefaultCeiling)
	defer cancel()
	resp, err := c.Post(ctx, protocol.NodePath(h.NodeID, protocol.ResHello), message.AppCBOR, bytes.NewReader(body))
	if err != nil || resp.Code() != codes.Changed {
		t.Fatalf("hello of %s: %v %v", h.NodeID, resp, err)
	}
}

// TestRolloutControlThroughAdminAPI: pause, resume and abort of a rollout
// through the admin API of a real gateway (gatewaytest), restarted on its
// data directory between steps; the test plays its nodes over CoAP. With
// max_concurrent 1 a node of wave 1 that confirms the new manifest frees
// the download slot, and a running rollout assigns the next node at once,
// while it handles that Hello; so the Hello's 2.04 is the sync point after
// which a paused or aborted rollout must have assigned no one. The pause
// and the abort survive restarts; resumed, the rollout assigns the next
// node in its answer to resume; an aborted rollout refuses every control.
func TestRolloutControlThroughAdminAPI(t *testing.T) {
	dataDir := t.TempDir()
	signer, err := sign.NewSigner(ctlManifestKey)
	if err != nil {
		t.Fatal(err)
	}
	deployer, _ := sign.NewSigner(ctlDeployKey)
	m := &protocol.Manifest{Format: protocol.ManifestFormat, Seq: 5, Component: "kws", Version: "1.5.0",
		Digest: sha256.Sum256([]byte("the model")), Size: 9, Class: ctlClass, Epoch: 1}
	manifest, err := signer.SignManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	now := uint64(time.Now().Unix())
	dep, err := deployer.SignDeployment(&protocol.Deployment{ID: "ctl", Seq: 1, Manifest: manifest, Cohort: "hw:rev2",
		Waves:     []protocol.Wave{{BasisPoints: 5000}, {BasisPoints: 10000}},
		OnFailure: protocol.FailurePause, NodeTimeoutSeconds: 3600, MaxConcurrent: 1, Issued: now, Expires: now + 3600})
	if err != nil {
		t.Fatal(err)
	}
	hello := func(id string) *protocol.Hello {
		return &protocol.Hello{NodeID: id, Class: ctlClass, Labels: map[string]string{"hw": "rev2"}, AgentVersion: "0.1.0", Component: "kws"}
	}
	confirmed := func(id string) *protocol.Hello {
		h := hello(id)
		h.RunningSeq, h.RunningDigest, h.ActiveState = m.Seq, m.Digest, protocol.SlotConfirmed
		return h
	}

	var first, second string
	if !t.Run("pause", func(t *testing.T) {
		g := startCtlGateway(t, dataDir)
		for i := range 10 {
			g.hello(t, hello(fmt.Sprintf("n%02d", i)))
		}
		posted, err := g.api.PostDeployment(adminCtx(t), dep)
		if err != nil {
			t.Fatalf("deploy: %v", err)
		}
		st := withNodes(t, g.api, posted)
		if a := nodesIn(st, admin.NodeAssigned); len(a) != 1 || nodesTouched(st) != 1 {
			t.Fatalf("deployed: assigned %v, %d touched; want 1 (max_concurrent 1)", a, nodesTouched(st))
		}
		first = nodesIn(st, admin.NodeAssigned)[0]
		if st := g.control(t, "ctl", admin.Pause, nil); st.Phase != admin.PhasePaused {
			t.Fatalf("pause answered phase %s", st.Phase)
		}
		g.control(t, "ctl", admin.Pause, admin.ErrConflict)
		g.hello(t, confirmed(first))
		st = g.status(t, "ctl")
		if st.Phase != admin.PhasePaused || len(nodesIn(st, admin.NodeConfirmed)) != 1 || nodesTouched(st) != 1 {
			t.Fatalf("paused, after %s confirmed: phase %s, confirmed %v, %d touched; want paused and no other node assigned",
				first, st.Phase, nodesIn(st, admin.NodeConfirmed), nodesTouched(st))
		}
	}) {
		return
	}
	if !t.Run("resume and abort", func(t *testing.T) {
		g := startCtlGateway(t, dataDir)
		if st := g.status(t, "ctl"); st.Phase != admin.PhasePaused {
			t.Fatalf("after a restart the rollout is %s, want paused", st.Phase)
		}
		st := g.control(t, "ctl", admin.Resume, nil)
		if a := nodesIn(st, admin.NodeAssigned); st.Phase != admin.PhaseRunning || len(a) != 1 || nodesTouched(st) != 2 {
			t.Fatalf("resume answered phase %s, assigned %v, %d touched; want running with the next node assigned", st.Phase, a, nodesTouched(st))
		}
		second = nodesIn(st, admin.NodeAssigned)[0]
		g.control(t, "ctl", admin.Resume, admin.ErrConflict)
		if st := g.control(t, "ctl", admin.Abort, nil); st.Phase != admin.PhaseAborted {
			t.Fatalf("abort answered phase %s", st.Phase)
		}
		g.hello(t, confirmed(second))
		if st := g.status(t, "ctl"); st.Phase != admin.PhaseAborted || nodesTouched(st) != 2 {
			t.Fatalf("aborted, after %s confirmed: phase %s, %d touched; want aborted and no other node assigned", second, st.Phase, nodesTouched(st))
		}
		for _, action := range []admin.Action{admin.Pause, admin.Resume, admin.Abort} {
			g.control(t, "ctl", action, admin.ErrConflict)
			g.control(t, "nope", action, admin.ErrNotFound)
		}
	}) {
		return
	}
	t.Run("after a restart", func(t *testing.T) {
		g := startCtlGateway(t, dataDir)
		if st := g.status(t, "ctl"); st.Phase != admin.PhaseAborted || nodesTouched(st) != 2 {
			t.Fatalf("after a restart the rollout is %s with %d touched, want aborted with 2", st.Phase, nodesTouched(st))
		}
		g.control(t, "ctl", admin.Resume, admin.ErrConflict)
		for i := range 10 {
			id := fmt.Sprintf("n%02d", i)
			n, err := g.api.Node(adminCtx(t), id)
			if err != nil {
				t.Fatalf("node %s: %v", id, err)
			}
			if want := map[bool]uint64{true: m.Seq}[id == first || id == second]; n.AssignedSeq != want {
				t.Errorf("%s is assigned seq %d, want %d", id, n.AssignedSeq, want)
			}
		}
	})
}
