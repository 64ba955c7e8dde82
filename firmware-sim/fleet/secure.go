package fleet

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-ble/ble"

	"edgeota/firmware-sim/blelink"
	"edgeota/firmware-sim/scenario"
	"edgeota/gateway/admin"
	"edgeota/gateway/provisioner"
	"edgeota/nodeagent"
	"edgeota/nodeagent/provisioning"
	"edgeota/protocol/provision"
)

// Provisioning over BLE (provision: ble).
const (
	// provisioners is how many technicians provision nodes at once, each
	// one node after the other.
	provisioners = 4
	// provisionTries bounds the attempts per node; each retry signs a
	// bundle with a higher serial, so that a commit whose answer was lost
	// does not make the next attempt a replay.
	provisionTries = 3
	// provisionTimeout bounds one attempt: scan, connect, GATT, commit.
	provisionTimeout = 20 * time.Second
	// helloTimeout bounds the wait, after the last commit, for every
	// provisioned node's first Hello.
	helloTimeout = time.Minute
)

// advertise puts a factory-fresh node on the air: its provisioning service
// (go-ble's ATT server over a blelink connection), which commits a bundle
// into the node's memory and hands it to the node's supervisor.
func (s *sim) advertise(ctx context.Context, n *node, secret []byte, i int) error {
	onCommit, commits := provisioning.CommitChannel()
	svc, err := provisioning.New(provisioning.Config{NodeID: n.id, Class: simClass, AgentVersion: nodeagent.AgentVersion,
		RunningVersion: n.runningVersion, FactorySecret: secret,
		FactoryKeys: []ed25519.PublicKey{s.operator.Public().(ed25519.PublicKey)},
		Store:       &provisioning.MemStore{}, OnCommit: onCommit, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("fleet: %s: %w", n.id, err)
	}
	n.secret, n.prov, n.commits = secret, svc, commits
	n.bleAddr = fmt.Sprintf("0b:00:00:00:%02x:%02x", (i+1)>>8, (i+1)&0xff)
	n.stopAdv, err = s.air.Advertise(blelink.Peripheral{Addr: n.bleAddr, Name: n.id,
		Services: []ble.UUID{ble.MustParse(provision.ServiceUUID)},
		Accept: func(c ble.Conn) {
			if err := svc.ServeConn(ctx, c); err != nil && ctx.Err() == nil {
				s.log.Warn("provisioning service", "node", n.id, "err", err)
			}
		}})
	if err != nil {
		return fmt.Errorf("fleet: %s: %w", n.id, err)
	}
	return nil
}

// runningVersion is the version of the model the node runs, "" for none:
// what its provisioning service reads.
func (n *node) runningVersion() string {
	n.mu.Lock()
	a := n.agent
	n.mu.Unlock()
	if a != nil {
		if r := a.Device().Running(); r != nil {
			return r.Manifest.Version
		}
	}
	return ""
}

// provisionAll provisions every node over BLE, [provisioners] at a time,
// then waits until each provisioned node has said Hello to its gateway
// (or helloTimeout), so that the deployments find them with their labels.
// A node that cannot be provisioned stays factory-fresh; the provisioned
// expectation reports it.
func (s *sim) provisionAll(ctx context.Context) error {
	start := time.Now()
	work := make(chan *node)
	var wg sync.WaitGroup
	var done, failed atomic.Int32
	var lastLine atomic.Int64
	lastLine.Store(start.UnixNano())
	for range provisioners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range work {
				if err := s.provision(ctx, n); err != nil {
					failed.Add(1)
					s.log.Warn("provisioning failed", "node", n.id, "err", err)
				}
				k := done.Add(1)
				if now := time.Now().UnixNano(); now-lastLine.Load() >= int64(time.Second) {
					lastLine.Store(now)
					s.progress(fmt.Sprintf("provisioning over BLE: %d of %d nodes", k, len(s.nodes)))
				}
			}
		}()
	}
	for _, n := range s.nodes {
		select {
		case work <- n:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	s.provElapsed = time.Since(start)
	s.progress(fmt.Sprintf("provisioned %d of %d nodes over BLE in %v (%d technicians)",
		len(s.nodes)-int(failed.Load()), len(s.nodes), s.provElapsed.Round(time.Millisecond), provisioners))

	deadline := time.Now().Add(helloTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		waiting := 0
		for _, n := range s.nodes {
			if _, ok := n.prov.Current(); ok && !n.said.Load() {
				waiting++
			}
		}
		if waiting == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			s.progress(fmt.Sprintf("%d provisioned nodes did not say Hello within %v; going on", waiting, helloTimeout))
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// provision provisions one node as a technician would with `edgeota
// provision apply`: scan for it, connect, send its signed bundle, commit.
func (s *sim) provision(ctx context.Context, n *node) error {
	var err error
	for serial := uint64(1); serial <= provisionTries; serial++ {
		var signed []byte
		if signed, err = s.bundle(n, serial); err != nil {
			return err
		}
		actx, cancel := context.WithTimeout(ctx, provisionTimeout)
		var cli ble.Client
		if cli, err = provisioner.Connect(actx, s.air, n.bleAddr); err == nil {
			_, err = provisioner.Provision(actx, cli, signed, provisioner.Options{})
		}
		cancel()
		if _, ok := n.prov.Current(); ok {
			return nil // committed, even if the answer was lost
		}
		if err == nil || ctx.Err() != nil {
			return err
		}
	}
	return fmt.Errorf("%d attempts: %w", provisionTries, err)
}

// bundle is the node's provisioning bundle, signed by the operator: its
// labels, the simulator's component, its gateway (the end of its radio
// link), the manifest key, the operator key, and its PSK sealed under its
// factory secret.
func (s *sim) bundle(n *node, serial uint64) ([]byte, error) {
	sealed, err := provision.Seal(n.secret, n.id, serial, n.psk)
	if err != nil {
		return nil, err
	}
	labels := n.labels
	if labels == nil {
		labels = map[string]string{}
	}
	return provision.Sign(&provision.Bundle{Format: provision.Format, NodeID: n.id, Serial: serial, Issued: uint64(time.Now().Unix()),
		Labels: labels, Component: simComponent, Gateway: s.gatewayURI(n),
		ManifestKeys: []ed25519.PublicKey{s.key.Public().(ed25519.PublicKey)},
		OperatorKeys: []ed25519.PublicKey{s.operator.Public().(ed25519.PublicKey)}, PSK: sealed}, s.operator)
}

// provisionResult fills in, for provision: ble, whether each node was
// provisioned, the labels the gateway's registry holds for it and its
// entries in the gateway's audit log.
func (s *sim) provisionResult(r *scenario.Result) {
	r.ProvisionElapsed = s.provElapsed
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	var nodes []admin.Node
	for n, err := range s.adminAPI().AllNodes(ctx, admin.NodeQuery{Limit: admin.MaxPageLimit}) {
		if err != nil {
			s.log.Warn("the gateway's nodes", "err", err)
			break
		}
		nodes = append(nodes, n)
	}
	audit, err := s.adminAPI().Audit(ctx, "")
	if err != nil {
		s.log.Warn("the gateway's audit log", "err", err)
	}
	byID := make(map[string]*scenario.NodeResult, len(r.Nodes))
	for i := range r.Nodes {
		byID[r.Nodes[i].ID] = &r.Nodes[i]
	}
	for i, n := range s.nodes {
		_, r.Nodes[i].Provisioned = n.prov.Current()
	}
	for _, v := range nodes {
		if nr := byID[v.ID]; nr != nil {
			nr.Registered = v.Labels
			if nr.Registered == nil {
				nr.Registered = map[string]string{}
			}
		}
	}
	for _, a := range audit {
		if nr := byID[a.Node]; nr != nil {
			nr.Audit = append(nr.Audit, scenario.AuditEntry{Actor: a.Actor, Labels: a.Labels, Authenticated: a.Authenticated})
		}
	}
}
