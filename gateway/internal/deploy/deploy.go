// Package deploy runs a gateway's deployments (docs/protocol.md section 7):
// it takes signed deployments in, from the MQTT deployment topics and the
// admin API, verifies them, records their seq and starts their rollouts on
// the rollout engine; and it feeds the engine what nodes say, with the
// manifest each node would be rolled back to.
//
// A refused deployment changes nothing, and every reason for a refusal
// wraps [ErrRefused].
package deploy

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"edgeota/gateway/internal/keyring"
	"edgeota/gateway/internal/rollout"
	"edgeota/gateway/internal/store"
	"edgeota/protocol"
)

// ErrRefused is wrapped by every reason a deployment is refused.
var ErrRefused = errors.New("deployment refused")

// ErrNoKeys says the gateway has no deployment key: every deployment is
// refused, and rollouts saved in the database cannot be verified again.
var ErrNoKeys = keyring.ErrNoDeploymentKeys

// Store is the gateway's database, as deployments use it.
type Store interface {
	DeploymentSeq() (uint64, error)
	ApplyDeployment(seq uint64, nodes []string, manifest []byte) (applied bool, err error)
	Nodes() ([]*store.Node, error)
	Model(d protocol.Digest) (*store.Model, error)
	Assignment(node string) ([]byte, error)
}

// Engine runs the rollouts (package rollout).
type Engine interface {
	Start(d *protocol.Deployment, signed []byte, m *protocol.Manifest, nodes func() ([]rollout.NodeInfo, error), prev func(rollout.NodeInfo) []byte, now time.Time) error
	Hello(n rollout.NodeInfo, prev func(rollout.NodeInfo) []byte, now time.Time) rollout.Commit
	Health(r *protocol.HealthReport, now time.Time) rollout.Commit
	Status(e *protocol.StatusEvent, now time.Time) rollout.Commit
}

// Images tells which images the gateway holds.
type Images interface {
	Size(d protocol.Digest) (int64, bool)
}

// Fetcher fetches an image from its origin in the background.
type Fetcher interface {
	Fetch(signed []byte, url string) (*protocol.Manifest, error)
}

// ManifestKeys verifies signed manifests.
type ManifestKeys interface {
	VerifyManifest(b []byte) (*protocol.Manifest, error)
}

// DeploymentKeys verifies signed deployments.
type DeploymentKeys interface {
	VerifyDeployment(b []byte) (*protocol.Deployment, error)
}

// Config configures [Deployments]. Every field but Logger and OnRefused is
// required, except DeployTrust (without it every deployment is refused).
type Config struct {
	// GatewayID is this gateway's id: a deployment naming gateways must
	// name it.
	GatewayID string
	// Topics reads the deployment topics.
	Topics protocol.Topics
	// Trust verifies manifests; DeployTrust deployments (the gateway's
	// keyring, which a trust update changes, or fixed trust stores).
	Trust       ManifestKeys
	DeployTrust DeploymentKeys
	Store       Store
	Engine      Engine
	Images      Images
	Fetcher     Fetcher
	// Now is the gateway's time.
	Now func() time.Time
	// OnRefused is called for each deployment refused.
	OnRefused func()
	// Logger receives structured logs (default: discard).
	Logger *slog.Logger
}

// Deployments takes deployments in and feeds the rollouts.
type Deployments struct {
	cfg Config
	log *slog.Logger
}

// New returns Deployments of cfg.
func New(cfg Config) *Deployments {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OnRefused == nil {
		cfg.OnRefused = func() {}
	}
	return &Deployments{cfg: cfg, log: cfg.Logger}
}

// accept checks a signed deployment: it must verify against the
// deployment keys, not be expired, name this gateway when it names
// gateways, have a seq above the highest applied, and carry a manifest
// that verifies against the manifest keys.
func (x *Deployments) accept(signed []byte) (*protocol.Deployment, *protocol.Manifest, error) {
	if x.cfg.DeployTrust == nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrRefused, ErrNoKeys)
	}
	d, err := x.cfg.DeployTrust.VerifyDeployment(signed)
	if errors.Is(err, ErrNoKeys) {
		return nil, nil, fmt.Errorf("%w: %w", ErrRefused, ErrNoKeys)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: does not verify: %w", ErrRefused, err)
	}
	if now := uint64(x.cfg.Now().Unix()); d.Expires <= now {
		return nil, nil, fmt.Errorf("%w: expired at %s", ErrRefused, time.Unix(int64(d.Expires), 0).UTC().Format(time.RFC3339))
	}
	if !d.AppliesTo(x.cfg.GatewayID) {
		return nil, nil, fmt.Errorf("%w: it names gateways %v, not this one (%s)", ErrRefused, d.Gateways, x.cfg.GatewayID)
	}
	if highest, err := x.cfg.Store.DeploymentSeq(); err != nil {
		return nil, nil, err
	} else if d.Seq <= highest {
		return nil, nil, fmt.Errorf("%w: seq %d is not above the highest applied %d", ErrRefused, d.Seq, highest)
	}
	m, err := x.cfg.Trust.VerifyManifest(d.Manifest)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: its manifest does not verify: %w", ErrRefused, err)
	}
	if len(d.RollbackManifest) > 0 {
		if _, err := x.cfg.Trust.VerifyManifest(d.RollbackManifest); err != nil {
			return nil, nil, fmt.Errorf("%w: its rollback manifest does not verify: %w", ErrRefused, err)
		}
	}
	return d, m, nil
}

// Apply accepts a deployment and starts its rollout; the image comes from
// the deployment's origin when the gateway does not hold it. A refusal
// wraps [ErrRefused]; OnRefused is not called (the caller says where it
// came from).
func (x *Deployments) Apply(signed []byte) (*protocol.Deployment, error) {
	d, m, err := x.accept(signed)
	if err != nil {
		return nil, err
	}
	if _, ok := x.cfg.Images.Size(m.Digest); !ok {
		if d.Origin == "" {
			x.log.Warn("deployment's image is not cached and it names no origin; nodes get 4.04 until it is pushed",
				"deployment", d.ID, "digest", m.Digest.String())
		} else if _, err := x.cfg.Fetcher.Fetch(d.Manifest, d.Origin); err != nil {
			x.log.Warn("fetch from origin", "deployment", d.ID, "origin", d.Origin, "err", err)
		}
	}
	// The seq is recorded first: a deployment is applied at most once.
	if applied, err := x.cfg.Store.ApplyDeployment(d.Seq, nil, d.Manifest); err != nil {
		return nil, err
	} else if !applied {
		return nil, fmt.Errorf("%w: seq %d already applied", ErrRefused, d.Seq)
	}
	// The engine lists the nodes as it starts the rollout, so that no
	// Hello falls between the list and the start.
	list := func() ([]rollout.NodeInfo, error) {
		nodes, err := x.cfg.Store.Nodes()
		if err != nil {
			return nil, err
		}
		infos := make([]rollout.NodeInfo, len(nodes))
		for i, n := range nodes {
			infos[i] = nodeInfo(n)
		}
		return infos, nil
	}
	if err := x.cfg.Engine.Start(d, signed, m, list, x.previousManifest, x.cfg.Now()); err != nil {
		return nil, err
	}
	return d, nil
}

// OnMessage handles a message on a deployment topic (docs/protocol.md
// section 6), as the uplink hands it. A refused deployment is logged and
// counted, and nothing else happens; an empty payload withdraws a
// deployment (its retained message was cleared).
func (x *Deployments) OnMessage(topic string, payload []byte) {
	t, err := x.cfg.Topics.Parse(topic)
	if err != nil || t.Kind != protocol.TopicDeployment {
		x.log.Warn("message on a topic that is no deployment topic", "topic", topic)
		return
	}
	log := x.log.With("deployment", t.ID, "topic", topic)
	if len(payload) == 0 {
		log.Info("deployment withdrawn from MQTT (its rollout goes on unless paused or aborted: edgeota rollout abort)")
		return
	}
	d, err := x.Apply(payload)
	if err != nil {
		if errors.Is(err, ErrRefused) {
			x.cfg.OnRefused()
			log.Info("deployment not applied", "reason", err)
		} else {
			log.Error("apply deployment", "err", err)
		}
		return
	}
	if d.ID != t.ID {
		log.Warn("deployment id differs from its topic", "id", d.ID)
	}
	log.Info("deployment accepted: rollout started", "seq", d.Seq, "cohort", d.Cohort)
}

// Hello tells the rollouts that node n said Hello; what it changed is
// durable once the returned Commit is.
func (x *Deployments) Hello(n *store.Node, now time.Time) rollout.Commit {
	return x.cfg.Engine.Hello(nodeInfo(n), x.previousManifest, now)
}

// Health tells the rollouts a node's health report.
func (x *Deployments) Health(r *protocol.HealthReport, now time.Time) rollout.Commit {
	return x.cfg.Engine.Health(r, now)
}

// Status tells the rollouts a node's status event.
func (x *Deployments) Status(e *protocol.StatusEvent, now time.Time) rollout.Commit {
	return x.cfg.Engine.Status(e, now)
}

func nodeInfo(n *store.Node) rollout.NodeInfo {
	return rollout.NodeInfo{ID: n.ID, Class: n.Class, Component: n.Component, Labels: n.Labels, RunningSeq: n.RunningSeq,
		Running: n.RunningDigest, ActiveState: n.ActiveState, Other: n.Other, LastSeen: n.LastSeen,
		AgentVersion: n.AgentVersion, Runtime: n.Runtime}
}

// previousManifest returns the signed manifest a node runs now, to roll it
// back to: the cached model's manifest of its running digest, or its
// current assignment when that is what it runs.
func (x *Deployments) previousManifest(n rollout.NodeInfo) []byte {
	if n.RunningSeq == 0 {
		return nil
	}
	if m, err := x.cfg.Store.Model(n.Running); err == nil && m.Manifest.Seq == n.RunningSeq {
		return m.Signed
	}
	if a, err := x.cfg.Store.Assignment(n.ID); err == nil && a != nil {
		if m, err := x.cfg.Trust.VerifyManifest(a); err == nil && m.Seq == n.RunningSeq && m.Digest == n.Running {
			return a
		}
	}
	return nil
}
