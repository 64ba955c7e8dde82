package deploy

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"
	"time"

	"edgeota/gateway/internal/rollout"
	"edgeota/gateway/internal/store"
	"edgeota/protocol"
	"edgeota/protocol/sign"
)

// fakeStore records the seqs applied, and how often its nodes were read
// while no rollout was starting.
type fakeStore struct {
	applied       []uint64
	nodes         []*store.Node
	eng           *fakeEngine
	listed        int
	listedOutside int
}

func (s *fakeStore) DeploymentSeq() (uint64, error) {
	if len(s.applied) == 0 {
		return 0, nil
	}
	return s.applied[len(s.applied)-1], nil
}

func (s *fakeStore) ApplyDeployment(seq uint64, _ []string, _ []byte) (bool, error) {
	if h, _ := s.DeploymentSeq(); seq <= h {
		return false, nil
	}
	s.applied = append(s.applied, seq)
	return true, nil
}

func (s *fakeStore) Nodes() ([]*store.Node, error) {
	s.listed++
	if !s.eng.starting {
		s.listedOutside++
	}
	return s.nodes, nil
}

func (s *fakeStore) Model(protocol.Digest) (*store.Model, error)      { return nil, store.ErrNotFound }
func (s *fakeStore) Assignment(string) ([]byte, error)                { return nil, nil }
func (s *fakeStore) Size(protocol.Digest) (int64, bool)               { return 1, true }
func (s *fakeStore) Fetch([]byte, string) (*protocol.Manifest, error) { return nil, nil }

// fakeEngine records the rollouts started and the nodes they started with.
type fakeEngine struct {
	started  []string
	nodes    []string
	starting bool
}

func (e *fakeEngine) Start(d *protocol.Deployment, _ []byte, _ *protocol.Manifest, nodes func() ([]rollout.NodeInfo, error),
	_ func(rollout.NodeInfo) []byte, _ time.Time) error {
	e.starting = true
	defer func() { e.starting = false }()
	ns, err := nodes()
	if err != nil {
		return err
	}
	e.started = append(e.started, d.ID)
	for _, n := range ns {
		e.nodes = append(e.nodes, n.ID)
	}
	return nil
}
func (e *fakeEngine) Hello(rollout.NodeInfo, func(rollout.NodeInfo) []byte, time.Time) rollout.Commit {
	return rollout.Commit{}
}
func (e *fakeEngine) Health(*protocol.HealthReport, time.Time) rollout.Commit {
	return rollout.Commit{}
}
func (e *fakeEngine) Status(*protocol.StatusEvent, time.Time) rollout.Commit { return rollout.Commit{} }

type fixture struct {
	x        *Deployments
	st       *fakeStore
	eng      *fakeEngine
	refused  int
	manifest []byte // signed by the manifest key
	foreign  []byte // a manifest signed by another key
	deployer *sign.Signer
	now      time.Time
}

func newFixture(t *testing.T, withKeys bool) *fixture {
	t.Helper()
	key := func(b byte) (*sign.Signer, ed25519.PublicKey) {
		priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, 32))
		s, err := sign.NewSigner(priv)
		if err != nil {
			t.Fatal(err)
		}
		return s, priv.Public().(ed25519.PublicKey)
	}
	ms, mpub := key(1)
	ds, dpub := key(2)
	other, _ := key(3)
	trust, _ := sign.NewTrustStore(sign.RoleManifest, mpub)
	var deployTrust DeploymentKeys // nil: no deployment keys
	if withKeys {
		deployTrust, _ = sign.NewTrustStore(sign.RoleDeployment, dpub)
	}
	m := &protocol.Manifest{Format: 1, Seq: 3, Component: "kws", Version: "1.3", Digest: sha256.Sum256([]byte("img")), Size: 3,
		Class: protocol.Class{1}, Epoch: 1}
	f := &fixture{eng: &fakeEngine{}, deployer: ds, now: time.Unix(1_800_000_000, 0)}
	f.st = &fakeStore{eng: f.eng}
	var err error
	if f.manifest, err = ms.SignManifest(m); err != nil {
		t.Fatal(err)
	}
	if f.foreign, err = other.SignManifest(m); err != nil {
		t.Fatal(err)
	}
	f.x = New(Config{GatewayID: "gw-1", Trust: trust, DeployTrust: deployTrust, Store: f.st, Engine: f.eng, Images: f.st,
		Fetcher: f.st, Now: func() time.Time { return f.now }, OnRefused: func() { f.refused++ }})
	return f
}

func (f *fixture) deployment(t *testing.T, mod func(d *protocol.Deployment)) []byte {
	t.Helper()
	now := uint64(f.now.Unix())
	d := &protocol.Deployment{ID: "dep-1", Seq: 5, Manifest: f.manifest, Cohort: "*", Waves: []protocol.Wave{{BasisPoints: 10000}},
		OnFailure: protocol.FailurePause, NodeTimeoutSeconds: 60, MaxConcurrent: 10, Issued: now, Expires: now + 3600}
	if mod != nil {
		mod(d)
	}
	b, err := f.deployer.SignDeployment(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestApplyRefuses: every reason a deployment is refused wraps ErrRefused
// and changes nothing: no seq recorded, no rollout started.
func TestApplyRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		keys   bool
		mod    func(f *fixture, d *protocol.Deployment)
		signed func(f *fixture) []byte // instead of a deployment of mod
		is     error
	}{
		{name: "no deployment keys", is: ErrNoKeys},
		{name: "not a deployment", keys: true, signed: func(f *fixture) []byte { return f.manifest }},
		{name: "expired", keys: true, mod: func(f *fixture, d *protocol.Deployment) {
			d.Issued, d.Expires = uint64(f.now.Unix())-7200, uint64(f.now.Unix())
		}},
		{name: "for other gateways", keys: true, mod: func(_ *fixture, d *protocol.Deployment) { d.Gateways = []string{"gw-2"} }},
		{name: "manifest of an unknown key", keys: true, mod: func(f *fixture, d *protocol.Deployment) { d.Manifest = f.foreign }},
		{name: "rollback manifest of an unknown key", keys: true, mod: func(f *fixture, d *protocol.Deployment) {
			d.RollbackManifest = f.foreign
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.keys)
			var signed []byte
			if tc.signed != nil {
				signed = tc.signed(f)
			} else {
				signed = f.deployment(t, func(d *protocol.Deployment) {
					if tc.mod != nil {
						tc.mod(f, d)
					}
				})
			}
			_, err := f.x.Apply(signed)
			if !errors.Is(err, ErrRefused) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("Apply: %v, want ErrRefused (and %v)", err, tc.is)
			}
			if len(f.st.applied) != 0 || len(f.eng.started) != 0 {
				t.Fatalf("a refused deployment changed something: seqs %v, rollouts %v", f.st.applied, f.eng.started)
			}
		})
	}
}

// TestApplyOnceBySeq: a deployment starts its rollout once; the same seq
// or a lower one is refused afterwards.
func TestApplyOnceBySeq(t *testing.T) {
	f := newFixture(t, true)
	if _, err := f.x.Apply(f.deployment(t, nil)); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{5, 4} {
		_, err := f.x.Apply(f.deployment(t, func(d *protocol.Deployment) { d.ID, d.Seq = "dep-2", seq }))
		if !errors.Is(err, ErrRefused) {
			t.Fatalf("seq %d after 5: %v, want ErrRefused", seq, err)
		}
	}
	if len(f.eng.started) != 1 || f.eng.started[0] != "dep-1" {
		t.Fatalf("rollouts started: %v", f.eng.started)
	}
}

// TestOnMessage: deployments arrive on the gateway's and the fleet's
// deployment topics, read with protocol.Topics.Parse; other topics and
// empty (withdrawn) payloads start nothing, and refusals are counted.
func TestOnMessage(t *testing.T) {
	topics := protocol.Topics{}
	f := newFixture(t, true)
	f.x.OnMessage(topics.Gateway("gw-1", protocol.TopicHealth), f.deployment(t, nil))
	f.x.OnMessage(topics.Deployment("gw-1", "dep-1"), nil)
	if len(f.eng.started) != 0 || f.refused != 0 {
		t.Fatalf("started %v, refused %d, want nothing", f.eng.started, f.refused)
	}
	f.x.OnMessage(topics.Deployment("gw-1", "dep-1"), f.deployment(t, nil))
	f.x.OnMessage(topics.FleetDeployment("dep-2"), f.deployment(t, func(d *protocol.Deployment) { d.ID, d.Seq = "dep-2", 6 }))
	f.x.OnMessage(topics.FleetDeployment("dep-3"), f.deployment(t, func(d *protocol.Deployment) { d.ID, d.Seq = "dep-3", 6 }))
	if len(f.eng.started) != 2 || f.eng.started[1] != "dep-2" || f.refused != 1 {
		t.Fatalf("started %v, refused %d, want dep-1 and dep-2, one refused", f.eng.started, f.refused)
	}
}

// TestApplyListsNodesAsTheRolloutStarts: the nodes a rollout starts with
// are read by the engine as it starts it, not before: a list read before
// the start misses a node whose Hello the engine takes in between, and
// that node never joins (package rollout's TestHelloDuringStartJoins).
func TestApplyListsNodesAsTheRolloutStarts(t *testing.T) {
	f := newFixture(t, true)
	f.st.nodes = []*store.Node{{ID: "n1"}, {ID: "n2"}}
	if _, err := f.x.Apply(f.deployment(t, nil)); err != nil {
		t.Fatal(err)
	}
	if f.st.listed == 0 || f.st.listedOutside != 0 {
		t.Errorf("the nodes were read %d times, %d of them while no rollout was starting; want only as it starts", f.st.listed, f.st.listedOutside)
	}
	if !slices.Equal(f.eng.nodes, []string{"n1", "n2"}) {
		t.Errorf("the rollout started with %v, want n1 and n2", f.eng.nodes)
	}
}
