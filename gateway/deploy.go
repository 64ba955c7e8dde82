package gateway

import (
	"errors"
	"fmt"
	"path"
	"time"

	"edgeota/gateway/internal/rollout"
	"edgeota/gateway/internal/store"
	"edgeota/protocol"
)

// ErrDeployment is wrapped by every reason a deployment is refused.
var ErrDeployment = errors.New("deployment refused")

// acceptDeployment checks a signed deployment (docs/protocol.md section 7, and
// the uplink issue): it must verify against the deployment keys, not be
// expired, name this gateway when it names gateways, have a seq above the
// highest applied, and carry a manifest that verifies against the manifest
// keys. A refused deployment changes nothing.
func (g *Gateway) acceptDeployment(signed []byte) (*protocol.Deployment, *protocol.Manifest, error) {
	if g.deployTrust == nil {
		return nil, nil, fmt.Errorf("%w: this gateway has no deployment key (--deploy-trust)", ErrDeployment)
	}
	d, err := g.deployTrust.VerifyDeployment(signed)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: does not verify: %w", ErrDeployment, err)
	}
	if now := uint64(g.clock().Unix()); d.Expires <= now {
		return nil, nil, fmt.Errorf("%w: expired at %s", ErrDeployment, time.Unix(int64(d.Expires), 0).UTC().Format(time.RFC3339))
	}
	if !d.AppliesTo(g.cfg.GatewayID) {
		return nil, nil, fmt.Errorf("%w: it names gateways %v, not this one (%s)", ErrDeployment, d.Gateways, g.cfg.GatewayID)
	}
	if highest, err := g.store.DeploymentSeq(); err != nil {
		return nil, nil, err
	} else if d.Seq <= highest {
		return nil, nil, fmt.Errorf("%w: seq %d is not above the highest applied %d", ErrDeployment, d.Seq, highest)
	}
	m, err := g.trust.VerifyManifest(d.Manifest)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: its manifest does not verify: %w", ErrDeployment, err)
	}
	if len(d.RollbackManifest) > 0 {
		if _, err := g.trust.VerifyManifest(d.RollbackManifest); err != nil {
			return nil, nil, fmt.Errorf("%w: its rollback manifest does not verify: %w", ErrDeployment, err)
		}
	}
	return d, m, nil
}

// applyDeployment accepts a deployment and starts its rollout; the image
// comes from the deployment's origin when the gateway does not hold it.
func (g *Gateway) applyDeployment(signed []byte) (*protocol.Deployment, error) {
	d, m, err := g.acceptDeployment(signed)
	if err != nil {
		return nil, err
	}
	if _, ok := g.index.get(m.Digest); !ok {
		if d.Origin == "" {
			g.log.Warn("deployment's image is not cached and it names no origin; nodes get 4.04 until it is pushed",
				"deployment", d.ID, "digest", m.Digest.String())
		} else if _, err := g.FetchModel(g.runCtx, d.Manifest, d.Origin); err != nil {
			g.log.Warn("fetch from origin", "deployment", d.ID, "origin", d.Origin, "err", err)
		}
	}
	// The seq is recorded first: a deployment is applied at most once.
	if applied, err := g.store.ApplyDeployment(d.Seq, nil, d.Manifest); err != nil {
		return nil, err
	} else if !applied {
		return nil, fmt.Errorf("%w: seq %d already applied", ErrDeployment, d.Seq)
	}
	nodes, err := g.store.Nodes()
	if err != nil {
		return nil, err
	}
	infos := make([]rollout.NodeInfo, len(nodes))
	for i, n := range nodes {
		infos[i] = nodeInfo(n)
	}
	if err := g.rollouts.Start(d, signed, m, infos, g.previousManifest, g.clock()); err != nil {
		return nil, err
	}
	return d, nil
}

// onDeployment handles a message on a deployment topic (docs/protocol.md
// section 6). A refused deployment is logged and nothing else happens; an
// empty payload withdraws a deployment (its retained message was cleared).
func (g *Gateway) onDeployment(topic string, payload []byte) {
	id := path.Base(topic)
	log := g.log.With("deployment", id, "topic", topic)
	if len(payload) == 0 {
		log.Info("deployment withdrawn from MQTT (its rollout goes on unless paused or aborted: edgeota rollout abort)")
		return
	}
	d, err := g.applyDeployment(payload)
	if err != nil {
		if errors.Is(err, ErrDeployment) {
			g.metrics.refused.WithLabelValues("deployment").Inc()
			log.Info("deployment not applied", "reason", err)
		} else {
			log.Error("apply deployment", "err", err)
		}
		return
	}
	if d.ID != id {
		log.Warn("deployment id differs from its topic", "id", d.ID)
	}
	log.Info("deployment accepted: rollout started", "seq", d.Seq, "cohort", d.Cohort)
}

func nodeInfo(n *store.Node) rollout.NodeInfo {
	return rollout.NodeInfo{ID: n.ID, Class: n.Class, Component: n.Component, Labels: n.Labels, RunningSeq: n.RunningSeq,
		Running: n.RunningDigest, ActiveState: n.ActiveState, Other: n.Other, LastSeen: n.LastSeen}
}

// previousManifest returns the signed manifest a node runs now, to roll it
// back to: the cached model's manifest of its running digest, or its
// current assignment when that is what it runs.
func (g *Gateway) previousManifest(n rollout.NodeInfo) []byte {
	if n.RunningSeq == 0 {
		return nil
	}
	if m, err := g.store.Model(n.Running); err == nil && m.Manifest.Seq == n.RunningSeq {
		return m.Signed
	}
	if a, err := g.store.Assignment(n.ID); err == nil && a != nil {
		if m, err := g.trust.VerifyManifest(a); err == nil && m.Seq == n.RunningSeq && m.Digest == n.Running {
			return a
		}
	}
	return nil
}

// assigner assigns manifests for the rollout engine and notifies the
// nodes' observers.
type assigner struct{ g *Gateway }

func (a assigner) Assign(nodes []string, signed []byte) error {
	if err := a.g.store.Assign(nodes, signed); err != nil {
		return err
	}
	for _, id := range nodes {
		a.g.notifyManifest(id, false, a.g.observers.next(id))
	}
	return nil
}
