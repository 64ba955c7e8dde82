package fleet

import (
	"context"
	"fmt"
	"net"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"edgeota/firmware-sim/scenario"
	"edgeota/gateway/admin"
	"edgeota/protocol"
)

// event is something the scenario makes happen at a simulated time.
type event struct {
	at   time.Duration
	what string
	do   func() error
}

// drive plays the scenario's deployments and faults on the simulated
// clock and returns when every node has said Hello and every deployment
// ended (and every fault is past), or at the scenario's duration.
func (s *sim) drive(ctx context.Context) (bool, error) {
	var evs []event
	for i := range s.sc.Deployments {
		d := &s.sc.Deployments[i]
		seq := uint64(i + 1)
		if s.external { // above whatever this gateway applied before
			seq = uint64(time.Now().Unix())*100 + uint64(i)
		}
		evs = append(evs, event{d.At, "deployment " + d.ID, func() error { return s.deploy(ctx, d, seq) }})
	}
	lastFault := time.Duration(0)
	for i := range s.sc.Faults {
		f := s.sc.Faults[i]
		lastFault = max(lastFault, f.At+f.For)
		evs = append(evs, event{f.At, f.Kind, func() error { return s.fault(f) }})
		if f.For > 0 && f.Kind == "broker-outage" {
			evs = append(evs, event{f.At + f.For, "broker back", func() error { return s.startBroker(s.brAddr) }})
		}
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at < evs[j].at })
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	lastProgress, lastAsked := time.Now(), time.Time{}
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-tick.C:
		}
		now := s.clock.Elapsed()
		for len(evs) > 0 && evs[0].at <= now {
			ev := evs[0]
			evs = evs[1:]
			s.progress(fmt.Sprintf("t=%s: %s", now.Round(time.Second), ev.what))
			if err := ev.do(); err != nil {
				return false, fmt.Errorf("fleet: %s at %s: %w", ev.what, ev.at, err)
			}
		}
		if !s.sampled && s.heard() {
			s.sampled, s.after = true, sample()
			if w := s.opts.HeapProfile; w != nil {
				if err := pprof.WriteHeapProfile(w); err != nil {
					return false, fmt.Errorf("fleet: heap profile: %w", err)
				}
			}
		}
		if time.Since(lastProgress) >= time.Second {
			lastProgress = time.Now()
			s.progress(s.line(now))
		}
		if now >= s.sc.Duration {
			return false, nil
		}
		// Every node heard first, the rollouts next: a node heard is in
		// its rollout by the time the rollouts are read. The gateway is
		// asked at most every rolloutPoll, and only once the cheap
		// checks hold: its answer costs it and the run CPU.
		if len(evs) > 0 || now < lastFault || time.Since(lastAsked) < rolloutPoll || !s.heard() || !s.settled() {
			continue
		}
		lastAsked = time.Now()
		if s.rolloutsEnded() {
			return true, nil
		}
	}
}

// rolloutPoll is the least real time between two readings of the
// rollouts' phases by the drive loop.
const rolloutPoll = 250 * time.Millisecond

// heard reports whether every node that talks to a gateway has said Hello
// to it (a node a failed provisioning left factory-fresh never does). A
// node not heard yet is in no rollout, so the rollouts can all have ended
// without it: a run that ended then left a node whose first Hello was slow
// on its old model, or stopped it halfway through the update it was
// assigned as it joined.
func (s *sim) heard() bool {
	for _, n := range s.nodes {
		if n.prov != nil {
			if _, ok := n.prov.Current(); !ok {
				continue
			}
		}
		if !n.said.Load() {
			return false
		}
	}
	return true
}

func (s *sim) progress(line string) {
	if s.opts.Progress != nil {
		s.opts.Progress(line)
	}
}

// deploy signs a scenario deployment and applies it through the admin API.
func (s *sim) deploy(ctx context.Context, d *scenario.Deployment, seq uint64) error {
	m := s.models[d.Model]
	issued := uint64(s.clock.Now().Unix())
	dep := &protocol.Deployment{ID: s.depID(d.ID), Seq: seq, Manifest: m.signed, Cohort: s.scopedCohort(d.Cohort), OnFailure: protocol.FailurePause,
		NodeTimeoutSeconds: uint64(d.NodeTimeout / time.Second), MaxConcurrent: d.MaxConcurrent, Issued: issued,
		Expires: issued + uint64(s.sc.Duration/time.Second) + 3600,
		Gates: protocol.Gates{MaxFailed: d.Gates.MaxFailed, MaxErrorPermille: d.Gates.MaxErrorPermille,
			MaxLatencyP99Micros: d.Gates.MaxLatencyP99Micros, MinReports: d.Gates.MinReports, MaxBootLoops: d.Gates.MaxBootLoops,
			Metrics: d.Gates.Metrics}}
	if d.OnFailure == "rollback" {
		dep.OnFailure = protocol.FailureRollback
	}
	for _, w := range d.Waves {
		dep.Waves = append(dep.Waves, protocol.Wave{BasisPoints: w.BasisPoints, BakeSeconds: w.BakeSeconds})
	}
	signed, err := s.signer.SignDeployment(dep)
	if err != nil {
		return err
	}
	_, err = s.adminAPI().PostDeployment(ctx, signed)
	return err
}

// fault makes a scenario fault strike.
func (s *sim) fault(f scenario.Fault) error {
	pick := func() []*node {
		var out []*node
		for _, i := range f.Nodes.Pick(len(s.nodes), s.rng) {
			out = append(out, s.nodes[i])
		}
		return out
	}
	switch f.Kind {
	case "power-cut":
		for _, n := range pick() {
			s.powerCut(n)
		}
	case "reboot":
		for _, n := range pick() {
			s.reboot(n)
		}
	case "link-outage":
		until := time.Now().Add(s.clock.Real(f.For)).UnixNano()
		for _, n := range pick() {
			n.heard.Store(0)
			n.linkDown.Store(until)
			n.outages.Add(1)
		}
	case "gateway-restart":
		return s.restartGateway()
	case "broker-outage":
		s.brMu.Lock()
		b := s.broker
		s.broker = nil
		s.brMu.Unlock()
		if b != nil {
			b.Close()
		}
		// Wait until the port is free again for the restart.
		for i := 0; i < 100; i++ {
			if c, err := net.Dial("tcp", s.brAddr); err != nil {
				break
			} else {
				c.Close()
			}
			time.Sleep(10 * time.Millisecond)
		}
	default:
		return fmt.Errorf("unknown fault %q", f.Kind)
	}
	return nil
}

// rollouts returns this run's rollouts, under their scenario ids.
func (s *sim) rollouts() []admin.Rollout {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	all, err := s.adminAPI().Rollouts(ctx)
	if err != nil {
		return nil
	}
	var out []admin.Rollout
	for _, r := range all {
		for _, d := range s.sc.Deployments {
			if r.ID == s.depID(d.ID) {
				r.ID = d.ID
				out = append(out, r)
			}
		}
	}
	return out
}

func (s *sim) rolloutsEnded() bool {
	rs := s.rollouts()
	if len(rs) < len(s.sc.Deployments) {
		return false
	}
	for _, r := range rs {
		if r.Phase == "running" {
			return false
		}
		if r.Phase == "completed" {
			// A completed rollout still updates the nodes that joined
			// its cohort late.
			for _, st := range []admin.NodeState{admin.NodeAssigned, admin.NodeTrial, admin.NodeConfirmed} {
				if r.Totals[string(st)] > 0 {
					return false
				}
			}
		}
		if r.Phase == "rolled-back" {
			for st, n := range r.Totals {
				if n > 0 && st != string(admin.NodeWaiting) && st != string(admin.NodeRolledBack) && st != string(admin.NodeStuck) {
					return false
				}
			}
		}
	}
	return true
}

// settled reports whether every health report the gateway accepted has
// reached the broker.
func (s *sim) settled() bool {
	acc, del := s.healthCounts()
	return del >= acc
}

// healthCounts returns how many distinct health reports the gateway
// accepted, and how many of those reached the broker.
func (s *sim) healthCounts() (accepted, delivered int) {
	accepted, delivered, _ = s.health.counts()
	return accepted, delivered
}

// line is a one-line progress report.
func (s *sim) line(now time.Duration) string {
	counts := map[string]int{}
	for _, n := range s.nodes {
		n.mu.Lock()
		a := n.agent
		n.mu.Unlock()
		name := "none"
		if a != nil {
			if run := a.Device().Running(); run != nil {
				name = s.byDigest[run.Manifest.Digest]
				if run.Trial {
					name += "(trial)"
				}
			}
		}
		counts[name]++
	}
	var parts []string
	for k, v := range counts {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	var rs []string
	for _, r := range s.rollouts() {
		rs = append(rs, fmt.Sprintf("%s %s wave %d/%d", r.ID, r.Phase, r.Wave, len(r.Waves)))
	}
	acc, del := s.healthCounts()
	return fmt.Sprintf("t=%s  nodes: %s  rollouts: %s  health %d/%d delivered", now.Round(time.Second),
		strings.Join(parts, ", "), strings.Join(rs, "; "), del, acc)
}

// result gathers what happened.
func (s *sim) result() *scenario.Result {
	r := &scenario.Result{Seed: s.seed, SimElapsed: s.clock.Elapsed()}
	for _, n := range s.nodes {
		nr := scenario.NodeResult{ID: n.id, Labels: n.labels, State: "none", Unbootable: int(n.unboot.Load()), PowerCuts: int(n.cuts.Load()),
			LinkOutages: int(n.outages.Load()), HeardAfterOutage: int(n.heard.Load())}
		nr.Link = n.relay.Stats()
		if nr.LinkOutages > 0 {
			nr.OutageDropped = nr.Link.Up.Outage + nr.Link.Down.Outage
		}
		nr.Download = time.Duration(n.dlTook.Load())
		nr.Confirmed = time.Duration(n.confirmed.Load())
		if t := n.transfer.Load(); t != nil {
			nr.Transfer, nr.Fallback = t.Kind.String(), t.Fallback
		}
		nr.Fetched = n.fetched.Load()
		n.mu.Lock()
		a := n.agent
		n.mu.Unlock()
		if a != nil {
			if run := a.Device().Running(); run != nil {
				nr.Model = s.byDigest[run.Manifest.Digest]
				nr.State = "confirmed"
				if run.Trial {
					nr.State = "trial"
				}
			}
			nr.Boots = a.Device().BootCount()
		}
		r.Nodes = append(r.Nodes, nr)
	}
	for _, ro := range s.rollouts() {
		rr := scenario.RolloutResult{ID: ro.ID, Phase: string(ro.Phase)}
		switch ro.Phase {
		case "completed", "aborted", "rolled-back", "superseded":
			rr.Elapsed = ro.Updated.Sub(ro.Started)
		}
		for name, m := range s.models {
			if m.m.Digest.String() == ro.Digest {
				rr.Model = name
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
		for n, err := range s.adminAPI().AllRolloutNodes(ctx, s.depID(ro.ID), admin.RolloutNodeQuery{Limit: admin.MaxPageLimit}) {
			if err != nil {
				s.log.Warn("the rollout's nodes", "rollout", ro.ID, "err", err)
				break
			}
			if n.State != "waiting" {
				rr.Touched++
				rr.MaxWave = max(rr.MaxWave, n.Wave)
			}
			switch n.State {
			case "succeeded":
				rr.Succeeded++
			case "failed", "timed-out":
				rr.Failed++
			}
		}
		cancel()
		r.Rollouts = append(r.Rollouts, rr)
	}
	r.HealthAccepted, r.HealthDelivered = s.healthCounts()
	_, _, r.HealthDuplicates = s.health.counts()
	if s.air != nil {
		s.provisionResult(r)
	}
	return r
}
