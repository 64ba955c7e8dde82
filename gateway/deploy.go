package gateway

import (
	"bytes"
	"path"
	"time"

	"edgeota/gateway/internal/store"
	"edgeota/protocol"
	"edgeota/protocol/cohort"
)

// onDeployment handles a message on a deployment topic (PROTOCOL.md
// sections 6 and 7). A deployment that does not verify against the
// deployment keys, is expired, names other gateways, or whose seq is not
// above the highest applied is refused and logged, and nothing else
// happens. A verified one assigns its manifest to every node of its cohort
// at once (and to nodes of the cohort that say Hello later); its image
// comes from the deployment's origin when the gateway does not hold it.
// An empty payload withdraws the deployment.
func (g *Gateway) onDeployment(topic string, payload []byte) {
	id := path.Base(topic)
	log := g.log.With("deployment", id, "topic", topic)
	if len(payload) == 0 {
		err := g.store.WithdrawDeployment(func(signed []byte) bool {
			d, err := g.deployTrust.VerifyDeployment(signed)
			return err == nil && d.ID == id
		})
		if err != nil {
			log.Error("withdraw deployment", "err", err)
		}
		log.Info("deployment withdrawn")
		return
	}
	if g.deployTrust == nil {
		log.Warn("deployment refused: no deployment trust key (--deploy-trust)")
		return
	}
	d, err := g.deployTrust.VerifyDeployment(payload)
	if err != nil {
		log.Warn("deployment refused: does not verify", "err", err)
		return
	}
	if d.ID != id {
		log.Warn("deployment refused: its id differs from its topic", "id", d.ID)
		return
	}
	if now := uint64(g.clock().Unix()); d.Expires <= now {
		log.Warn("deployment refused: expired", "expired", time.Unix(int64(d.Expires), 0).UTC().Format(time.RFC3339))
		return
	}
	if !d.AppliesTo(g.cfg.GatewayID) {
		log.Info("deployment refused: it names other gateways", "gateways", d.Gateways, "this", g.cfg.GatewayID)
		return
	}
	if highest, err := g.store.DeploymentSeq(); err == nil && d.Seq <= highest {
		log.Info("deployment ignored: seq not above the highest applied", "seq", d.Seq, "highest", highest)
		return
	}
	m, err := g.trust.VerifyManifest(d.Manifest)
	if err != nil {
		log.Warn("deployment refused: its manifest does not verify", "err", err)
		return
	}
	expr, err := cohort.Parse(d.Cohort)
	if err != nil {
		log.Warn("deployment refused: cohort", "err", err)
		return
	}
	if _, ok := g.index.get(m.Digest); !ok {
		if d.Origin == "" {
			log.Warn("deployment's image is not cached and it names no origin; nodes will get 4.04 until it is pushed", "digest", m.Digest.String())
		} else if _, err := g.FetchModel(g.runCtx, d.Manifest, d.Origin); err != nil {
			log.Warn("fetch from origin", "origin", d.Origin, "err", err)
		}
	}
	nodes, err := g.store.Nodes()
	if err != nil {
		log.Error("list nodes", "err", err)
		return
	}
	var targets []string
	for _, n := range nodes {
		if inCohort(n, m, expr) {
			targets = append(targets, n.ID)
		}
	}
	applied, err := g.store.ApplyDeployment(d.Seq, payload, targets, d.Manifest)
	if err != nil || !applied {
		log.Error("apply deployment", "err", err, "applied", applied)
		return
	}
	for _, id := range targets {
		g.notifyManifest(id, false, g.observers.next(id))
	}
	log.Info("deployment applied", "seq", d.Seq, "version", m.Version, "cohort", d.Cohort, "nodes", len(targets))
}

func inCohort(n *store.Node, m *protocol.Manifest, expr *cohort.Expr) bool {
	return n.Class == m.Class && n.Component == m.Component && expr.Match(n.Labels)
}

// deploymentForNewNode assigns the active deployment's manifest to a node
// that just said Hello when it belongs to the cohort and is not assigned
// it yet; it reports whether the assignment changed.
func (g *Gateway) deploymentForNewNode(node string) bool {
	if g.deployTrust == nil {
		return false
	}
	signed, err := g.store.ActiveDeployment()
	if err != nil || signed == nil {
		return false
	}
	d, err := g.deployTrust.VerifyDeployment(signed)
	if err != nil || d.Expires <= uint64(g.clock().Unix()) {
		return false
	}
	m, err := g.trust.VerifyManifest(d.Manifest)
	if err != nil {
		return false
	}
	expr, err := cohort.Parse(d.Cohort)
	if err != nil {
		return false
	}
	n, err := g.store.Node(node)
	if err != nil || !inCohort(n, m, expr) {
		return false
	}
	if cur, _ := g.store.Assignment(node); bytes.Equal(cur, d.Manifest) {
		return false
	}
	if err := g.store.Assign([]string{node}, d.Manifest); err != nil {
		g.log.Error("assign deployment to a new node", "node", node, "err", err)
		return false
	}
	return true
}
