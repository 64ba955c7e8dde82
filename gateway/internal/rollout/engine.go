package rollout

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"edgeota/protocol"
	"edgeota/protocol/cohort"
	"edgeota/protocol/wave"
)

// Saver persists a rollout's state before the engine acts on it.
type Saver interface {
	PutRollout(id string, state []byte) error
}

// Assigner makes the gateway offer a signed manifest to nodes (and tells
// their observers).
type Assigner interface {
	Assign(nodes []string, signed []byte) error
}

// Errors of the engine.
var (
	ErrUnknown = errors.New("rollout: no such rollout")
	ErrState   = errors.New("rollout: not possible in this state")
)

// Engine runs the gateway's rollouts. Its methods are safe for concurrent
// use; time is always passed in (a fake clock in tests).
type Engine struct {
	mu       sync.Mutex
	rollouts map[string]*Rollout
	save     Saver
	assign   Assigner
	publish  func(id string, status StatusView)
	log      *slog.Logger
	offline  time.Duration
}

// Option configures an Engine.
type Option func(*Engine)

// WithPublish sets a function told each rollout's status after a change
// (the gateway publishes it, retained, on the rollout topic).
func WithPublish(f func(id string, st StatusView)) Option { return func(e *Engine) { e.publish = f } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// WithOfflineAfter sets after how long without a message a node shows as
// offline in the status (default 3 minutes).
func WithOfflineAfter(d time.Duration) Option { return func(e *Engine) { e.offline = d } }

// NewEngine returns an engine that persists with save and assigns with
// assign.
func NewEngine(save Saver, assign Assigner, opts ...Option) *Engine {
	e := &Engine{rollouts: map[string]*Rollout{}, save: save, assign: assign, log: slog.New(slog.DiscardHandler),
		offline: 3 * time.Minute}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Load restores saved rollouts; verify re-verifies each deployment.
func (e *Engine) Load(states map[string][]byte, verify func(signed []byte) (*protocol.Deployment, error)) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, b := range states {
		r, err := restore(b)
		if err != nil {
			return err
		}
		if r.d, err = verify(r.Deployment); err != nil {
			return fmt.Errorf("rollout %s: %w", id, err)
		}
		if r.expr, err = cohort.Parse(r.d.Cohort); err != nil {
			return fmt.Errorf("rollout %s: %w", id, err)
		}
		e.rollouts[id] = r
	}
	return nil
}

// persist saves r; the caller acts only when it succeeds.
func (e *Engine) persist(r *Rollout, now time.Time) error {
	r.Updated = now
	b, err := r.Marshal()
	if err != nil {
		return err
	}
	if err := e.save.PutRollout(r.ID, b); err != nil {
		return err
	}
	if e.publish != nil {
		e.publish(r.ID, r.view(now, e.offline))
	}
	return nil
}

// Start begins a rollout of a verified deployment over the known nodes.
// nodes lists them; Start calls it while it takes no Hello, so that a
// node is either in the list or has its Hello taken once the rollout
// exists, and joins it then. (A list read before Start missed a node whose
// Hello the engine took between the list and the start, with no rollout
// to join yet: that node never joined.) prev returns the signed manifest
// a node runs now (nil when unknown). A running rollout of the same
// component with a lower seq is superseded.
func (e *Engine) Start(d *protocol.Deployment, signed []byte, m *protocol.Manifest, nodes func() ([]NodeInfo, error), prev func(NodeInfo) []byte, now time.Time) error {
	expr, err := cohort.Parse(d.Cohort)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if old, ok := e.rollouts[d.ID]; ok && old.Seq >= d.Seq {
		return fmt.Errorf("%w: rollout %s already at seq %d", ErrState, d.ID, old.Seq)
	}
	known, err := nodes()
	if err != nil {
		return fmt.Errorf("rollout %s: list the nodes: %w", d.ID, err)
	}
	r := &Rollout{ID: d.ID, Seq: d.Seq, Deployment: signed, Manifest: d.Manifest, Version: m.Version, ManSeq: m.Seq,
		Digest: m.Digest, Class: m.Class, Component: m.Component, Requires: m.Requires, Phase: Running, Started: now, WaveSince: now,
		Nodes: map[string]*Node{}, d: d, expr: expr}
	for _, other := range e.rollouts {
		if other.Component == r.Component && other.ID != r.ID && (other.Phase == Running || other.Phase == Paused || other.Phase == Pending) {
			other.Phase = Superseded
			other.decide(now, "", "superseded by deployment %s seq %d", d.ID, d.Seq)
			if err := e.persist(other, now); err != nil {
				return err
			}
		}
	}
	for _, n := range known {
		if r.inCohort(n) {
			r.addNode(n, prev(n), now)
		}
	}
	r.decide(now, "", "started: %s %s seq %d to %q (%d nodes, %d ineligible), %d waves", m.Component, m.Version, m.Seq, d.Cohort,
		len(r.Nodes), len(r.Nodes)-len(r.eligible()), len(d.Waves))
	e.rollouts[d.ID] = r
	return e.step(r, now)
}

func (r *Rollout) addNode(n NodeInfo, prev []byte, now time.Time) *Node {
	x := &Node{ID: n.ID, Key: wave.Key(r.ID, n.ID), Wave: -1, State: NodeWaiting, Since: now,
		PrevSeq: n.RunningSeq, PrevDigest: n.Running, Prev: prev}
	if n.RunningSeq == r.ManSeq && n.Running == r.Digest && n.ActiveState == protocol.SlotConfirmed {
		x.State, x.Reason, x.Wave = NodeSucceeded, "already runs this manifest", r.Wave
	} else if why := r.unmet(n); why != "" {
		x.State, x.Reason = NodeIneligible, why
	}
	r.Nodes[n.ID] = x
	return x
}

// step applies timeouts, successes, gates, advancing and targeting to one
// rollout, persisting before any assignment.
//
// A completed rollout still follows the nodes that joined its cohort after
// it completed (timeouts, soaks, a failed node given back what it ran);
// its phase no longer changes.
func (e *Engine) step(r *Rollout, now time.Time) error {
	if r.Phase != Running && r.Phase != RolledBack && r.Phase != Completed {
		return e.persist(r, now)
	}
	d := r.d
	var reassign []*Node // nodes to give their previous manifest back
	for _, n := range r.ordered() {
		switch n.State {
		case NodeAssigned, NodeTrial:
			if now.Sub(n.AssignedAt) > time.Duration(d.NodeTimeoutSeconds)*time.Second {
				r.setState(n, NodeTimedOut, now, fmt.Sprintf("no progress within node_timeout %ds", d.NodeTimeoutSeconds))
			}
		case NodeConfirmed:
			if why := r.nodeGate(n, true); why != "" {
				r.setState(n, NodeFailed, now, why)
				continue
			}
			bake := time.Duration(d.Waves[max(n.Wave, 0)].BakeSeconds) * time.Second
			if min := minReports(d); n.Reports >= min && now.Sub(n.ConfirmedAt) >= bake {
				r.setState(n, NodeSucceeded, now, fmt.Sprintf("confirmed, %d reports, soaked %v", n.Reports, bake))
			}
		}
	}
	if r.Phase == Running {
		if red := r.deploymentGate(); red != "" {
			if d.OnFailure == protocol.FailureRollback {
				r.Phase = RolledBack
				r.decide(now, "", "gate red (%s): rolling back every touched node", red)
			} else {
				r.Phase = Paused
				r.decide(now, "", "gate red (%s): paused", red)
			}
		}
	}
	// A failed or timed-out node gets back what it ran, and is never
	// offered this manifest again; in a rollback, every touched node does.
	for _, n := range r.ordered() {
		if n.Returned || n.State == NodeWaiting || n.State == NodeIneligible {
			continue
		}
		if n.State.failed() || (r.Phase == RolledBack && n.State != NodeRolledBack && n.State != NodeStuck) {
			reassign = append(reassign, n)
		}
	}
	var assign []*Node
	for r.Phase == Running {
		assign = append(assign, r.target(now)...)
		w := r.Wave
		r.advance(now)
		if r.Wave == w {
			break
		}
	}
	// Persist, then act.
	groups := map[string][]string{}
	var manifests = map[string][]byte{}
	for _, n := range reassign {
		back := n.Prev
		if len(back) == 0 {
			back = d.RollbackManifest
		}
		if len(back) == 0 {
			n.Returned = true
			r.setState(n, NodeStuck, now, n.Reason+"; no previous manifest known and no rollback_manifest: left as it is")
			continue
		}
		n.Returned = true
		if !n.State.failed() {
			n.Reason = "rolling back"
		}
		k := string(back)
		groups[k] = append(groups[k], n.ID)
		manifests[k] = back
	}
	if err := e.persist(r, now); err != nil {
		return err
	}
	for k, ids := range groups {
		if err := e.assign.Assign(ids, manifests[k]); err != nil {
			return err
		}
	}
	if len(assign) > 0 {
		ids := make([]string, len(assign))
		for i, n := range assign {
			ids[i] = n.ID
		}
		if err := e.assign.Assign(ids, r.Manifest); err != nil {
			return err
		}
	}
	return nil
}

func minReports(d *protocol.Deployment) uint64 {
	if d.Gates.MinReports != nil {
		return *d.Gates.MinReports
	}
	return 0
}

func (r *Rollout) setState(n *Node, s NodeState, now time.Time, why string) {
	n.State, n.Since, n.Reason = s, now, why
	if s.failed() {
		n.Failed = true
	}
	r.decide(now, n.ID, "%s: %s", s, why)
}

// target places nodes in the current wave until it has taken enough of
// the current cohort (docs/protocol.md section 7: wave k has taken enough when
// max(1, ceil(bp_k x N / 10000)) nodes have been targeted), taking untargeted
// nodes in wave order, so a node that joins later takes its place by the
// same rule; then it assigns targeted waiting nodes within max_concurrent
// downloads and returns them (already marked).
func (r *Rollout) target(now time.Time) []*Node {
	ns := r.eligible()
	want := wave.Target(uint32(r.d.Waves[r.Wave].BasisPoints), len(ns))
	targeted, busy := 0, 0
	for _, x := range ns {
		if x.Wave >= 0 {
			targeted++
		}
		if x.State == NodeAssigned {
			busy++
		}
	}
	for _, x := range ns {
		if targeted >= want {
			break
		}
		if x.Wave < 0 {
			x.Wave = r.Wave
			targeted++
		}
	}
	var out []*Node
	for _, x := range ns {
		if x.Wave < 0 || x.State != NodeWaiting {
			continue
		}
		if busy >= int(r.d.MaxConcurrent) {
			break
		}
		busy++
		x.State, x.Since, x.AssignedAt, x.Reason = NodeAssigned, now, now, ""
		r.decide(now, x.ID, "assigned in wave %d", x.Wave+1)
		out = append(out, x)
	}
	return out
}

// advance moves to the next wave (or completes) when every node the
// current wave targeted is done, one of them was activated, and the gates
// are green (checked by the caller).
func (r *Rollout) advance(now time.Time) {
	activated, pending := 0, 0
	for _, x := range r.Nodes {
		if x.Wave < 0 || x.Wave > r.Wave {
			continue
		}
		if !x.State.done() {
			pending++
		}
		if !x.ActivatedAt.IsZero() || x.State == NodeSucceeded {
			activated++
		}
	}
	if pending > 0 {
		return
	}
	want := wave.Target(uint32(r.d.Waves[r.Wave].BasisPoints), len(r.eligible()))
	targeted := 0
	for _, x := range r.Nodes {
		if x.Wave >= 0 && x.Wave <= r.Wave {
			targeted++
		}
	}
	if targeted < want {
		return // still nodes to take in this wave
	}
	if activated == 0 {
		if len(r.Nodes) == 0 {
			return
		}
		return // a wave with no activated node never advances
	}
	if r.Wave == len(r.d.Waves)-1 {
		r.Phase = Completed
		r.decide(now, "", "completed: every wave done, gates green")
		return
	}
	r.Wave++
	r.WaveSince = now
	r.decide(now, "", "advanced to wave %d (%s%%)", r.Wave+1, percent(r.d.Waves[r.Wave].BasisPoints))
}

func percent(bp uint64) string {
	if bp%100 == 0 {
		return fmt.Sprint(bp / 100)
	}
	return fmt.Sprintf("%d.%02d", bp/100, bp%100)
}

// nodeGate returns why a node breaches a per-node gate, or "". final
// judges the error rate too (over every report since activation).
func (r *Rollout) nodeGate(n *Node, final bool) string {
	g := r.d.Gates
	if b := g.MaxLatencyP99Micros; b != nil && n.MaxP99 > *b {
		return fmt.Sprintf("p99 %dus over max_latency_p99 %dus", n.MaxP99, *b)
	}
	if b := g.MaxLatencyRegressionPermille; b != nil && n.BaselineP99 > 0 && n.MaxP99*1000 > n.BaselineP99**b {
		return fmt.Sprintf("p99 %dus is %.2fx the %dus before, over max_latency_regression %.3f", n.MaxP99,
			float64(n.MaxP99)/float64(n.BaselineP99), n.BaselineP99, float64(*b)/1000)
	}
	for name, bound := range g.Metrics {
		if v, ok := n.Metrics[name]; ok && v > bound {
			return fmt.Sprintf("metric %s %d over %d", name, v, bound)
		}
	}
	if b := g.MaxErrorPermille; final && b != nil && n.Inferences > 0 && n.Errors*1000 > *b*n.Inferences {
		return fmt.Sprintf("%d errors in %d inferences, over max_error_rate %s", n.Errors, n.Inferences, permille(*b))
	}
	return ""
}

func permille(v uint64) string { return fmt.Sprintf("%d.%03d", v/1000, v%1000) }

// deploymentGate returns why a deployment-level gate is red, or "".
func (r *Rollout) deploymentGate() string {
	failed, loops := 0, 0
	for _, n := range r.Nodes {
		if n.Failed {
			failed++
		}
		if n.BootLoop {
			loops++
		}
	}
	g := r.d.Gates
	if g.MaxFailed != nil && uint64(failed) > *g.MaxFailed {
		return fmt.Sprintf("%d nodes failed or timed out, over max_failed %d", failed, *g.MaxFailed)
	}
	if g.MaxBootLoops != nil && uint64(loops) > *g.MaxBootLoops {
		return fmt.Sprintf("%d nodes reverted for boot loops, over max_boot_loops %d", loops, *g.MaxBootLoops)
	}
	return ""
}

// Hello takes a node's Hello: a node new to the cohort of its home
// rollout ([Engine.home]) joins it, by the wave rule when the rollout runs,
// at once when it completed; a node's running manifest advances or fails
// its state.
func (e *Engine) Hello(n NodeInfo, prev func(NodeInfo) []byte, now time.Time) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	home := e.home(n)
	for _, r := range e.sorted() {
		if r.Phase != Running && r.Phase != RolledBack && r.Phase != Paused && r.Phase != Completed {
			continue
		}
		x, ok := r.Nodes[n.ID]
		if ok && x.State == NodeIneligible {
			if r != home || r.unmet(n) != "" {
				x.LastSeen = now
				continue
			}
			// It meets the requires now (a newer agent, another
			// runtime): it joins as a node new to the cohort.
			delete(r.Nodes, n.ID)
			ok = false
		}
		if ok && x.State == NodeWaiting {
			if why := r.unmet(n); why != "" {
				x.State, x.Wave, x.Since, x.Reason, x.LastSeen = NodeIneligible, -1, now, why, now
				r.decide(now, n.ID, "%s: %s", NodeIneligible, why)
				if err := e.step(r, now); err != nil {
					return err
				}
				continue
			}
		}
		if !ok {
			if r != home {
				continue
			}
			if r.Phase == Running {
				r.addNode(n, prev(n), now)
				r.decide(now, n.ID, "joined the cohort")
				if err := e.step(r, now); err != nil {
					return err
				}
			} else if err := e.joinCompleted(r, n, prev(n), now); err != nil {
				return err
			}
			continue
		}
		x.LastSeen = now
		runsNew := n.RunningSeq == r.ManSeq && n.Running == r.Digest
		runsPrev := n.RunningSeq == x.PrevSeq && n.Running == x.PrevDigest
		changed := true
		switch {
		case r.Phase == RolledBack && runsPrev && n.ActiveState == protocol.SlotConfirmed && x.State != NodeWaiting:
			r.setState(x, NodeRolledBack, now, fmt.Sprintf("runs seq %d again", n.RunningSeq))
		case (x.State == NodeAssigned || x.State == NodeTrial) && runsNew && n.ActiveState == protocol.SlotTrial:
			if x.ActivatedAt.IsZero() {
				x.ActivatedAt = now
			}
			changed = x.State != NodeTrial
			x.State, x.Since = NodeTrial, now
		case (x.State == NodeAssigned || x.State == NodeTrial) && runsNew && n.ActiveState == protocol.SlotConfirmed:
			if x.ActivatedAt.IsZero() {
				x.ActivatedAt = now
			}
			x.ConfirmedAt = now
			r.setState(x, NodeConfirmed, now, "confirmed the new manifest; soaking")
		case x.State == NodeTrial && runsPrev:
			r.setState(x, NodeFailed, now, fmt.Sprintf("fell back to seq %d", n.RunningSeq))
			if err := e.step(r, now); err != nil {
				return err
			}
			continue
		default:
			changed = false
		}
		if changed {
			if err := e.step(r, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// home is the rollout a node belongs with: the newest (by start) running
// or completed rollout whose cohort it matches, nil when none does. A node
// new to it joins it. A rollout rolled back, aborted or paused takes no one,
// so a node of its cohort goes to the newest completed one that matches:
// the manifest last proven on that cohort.
func (e *Engine) home(n NodeInfo) *Rollout {
	var best *Rollout
	for _, r := range e.rollouts {
		if (r.Phase != Running && r.Phase != Completed) || !r.inCohort(n) {
			continue
		}
		if best == nil || r.Started.After(best.Started) || (r.Started.Equal(best.Started) && r.ID > best.ID) {
			best = r
		}
	}
	return best
}

// joinCompleted takes into a completed rollout a node that joined its
// cohort since (a new node, one provisioned with new labels): its waves and
// gates already proved the manifest, so the node is assigned it at once,
// in the last wave, and followed as any node is. A node that runs a newer
// seq is left alone; one that runs this manifest counts as succeeded.
func (e *Engine) joinCompleted(r *Rollout, n NodeInfo, prev []byte, now time.Time) error {
	if n.RunningSeq > r.ManSeq {
		return nil
	}
	x := r.addNode(n, prev, now)
	if x.State == NodeIneligible {
		r.decide(now, n.ID, "joined the cohort after completion; %s: %s", NodeIneligible, x.Reason)
		return e.persist(r, now)
	}
	x.Wave = len(r.d.Waves) - 1
	if x.State == NodeSucceeded {
		r.decide(now, n.ID, "joined the cohort after completion; already runs this manifest")
		return e.persist(r, now)
	}
	x.State, x.Since, x.AssignedAt = NodeAssigned, now, now
	r.decide(now, n.ID, "joined the cohort after completion: assigned")
	if err := e.persist(r, now); err != nil {
		return err
	}
	return e.assign.Assign([]string{n.ID}, r.Manifest)
}

// following reports whether a completed rollout still follows a node that
// joined it late: one assigned, on trial or soaking.
func (r *Rollout) following() bool {
	for _, x := range r.Nodes {
		if x.State == NodeAssigned || x.State == NodeTrial || x.State == NodeConfirmed {
			return true
		}
	}
	return false
}

// Status takes a node's status event about a rollout's manifest.
func (e *Engine) Status(ev *protocol.StatusEvent, now time.Time) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.sorted() {
		x, ok := r.Nodes[ev.NodeID]
		if !ok {
			continue
		}
		x.LastSeen = now
		if ev.Seq != r.ManSeq || (r.Phase != Running && r.Phase != Paused && r.Phase != Completed) {
			continue
		}
		switch ev.State {
		case protocol.StateReverted:
			if x.State == NodeFailed {
				continue
			}
			x.BootLoop = ev.Code == protocol.ReasonBootLoop
			if x.ActivatedAt.IsZero() {
				x.ActivatedAt = now
			}
			r.setState(x, NodeFailed, now, "reverted ("+explain(ev)+")")
		case protocol.StateFailed:
			if x.State != NodeAssigned {
				continue
			}
			r.setState(x, NodeFailed, now, "refused or failed the update ("+explain(ev)+")")
		case protocol.StateTrial:
			if x.State != NodeAssigned {
				continue
			}
			x.ActivatedAt = now
			x.State, x.Since = NodeTrial, now
		default:
			continue
		}
		if err := e.step(r, now); err != nil {
			return err
		}
	}
	return nil
}

// Health takes a node's health report: before activation it feeds the
// node's p99 baseline, after it the gates. In a rollback it tells that a
// node given its previous manifest back runs it again: a node that never
// activated the rolled-back manifest has nothing to announce by a Hello.
func (e *Engine) Health(rep *protocol.HealthReport, now time.Time) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.sorted() {
		x, ok := r.Nodes[rep.NodeID]
		if ok && r.Phase == RolledBack && x.Returned && x.PrevSeq != 0 && rep.RunningSeq == x.PrevSeq &&
			x.State != NodeWaiting && x.State != NodeRolledBack && x.State != NodeStuck {
			x.LastSeen = now
			r.setState(x, NodeRolledBack, now, fmt.Sprintf("runs seq %d again (health report)", rep.RunningSeq))
			if err := e.step(r, now); err != nil {
				return err
			}
			continue
		}
		if !ok || (r.Phase != Running && r.Phase != Paused && r.Phase != Completed) {
			continue
		}
		x.LastSeen = now
		if x.ActivatedAt.IsZero() || rep.RunningSeq != r.ManSeq {
			if rep.RunningSeq == x.PrevSeq {
				if now.Sub(x.BaselineAt) > time.Hour {
					x.BaselineP99 = 0
				}
				if x.BaselineP99 == 0 {
					x.BaselineAt = now
				}
				x.BaselineP99 = max(x.BaselineP99, rep.LatencyP99Micros)
			}
			continue
		}
		if x.State != NodeTrial && x.State != NodeConfirmed {
			continue
		}
		x.Reports++
		x.Inferences += rep.Inferences
		x.Errors += rep.Errors
		x.MaxP99 = max(x.MaxP99, rep.LatencyP99Micros)
		for k, v := range rep.Metrics {
			if x.Metrics == nil {
				x.Metrics = map[string]int64{}
			}
			x.Metrics[k] = max(x.Metrics[k], v)
		}
		if why := r.nodeGate(x, false); why != "" {
			r.setState(x, NodeFailed, now, why)
			if err := e.step(r, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// Tick applies time: timeouts, soaks, bakes.
func (e *Engine) Tick(now time.Time) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.sorted() {
		if r.Phase == Running || (r.Phase == Completed && r.following()) {
			if err := e.step(r, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// Pause stops a rollout from assigning nodes; Resume goes on; Abort ends it
// without rolling back.
func (e *Engine) Pause(id string, now time.Time) error {
	return e.control(id, now, []Phase{Running}, Paused, "paused by the operator")
}

// Resume resumes a paused rollout.
func (e *Engine) Resume(id string, now time.Time) error {
	return e.control(id, now, []Phase{Paused}, Running, "resumed by the operator")
}

// Abort ends a running or paused rollout; nodes keep what they run.
func (e *Engine) Abort(id string, now time.Time) error {
	return e.control(id, now, []Phase{Running, Paused}, Aborted, "aborted by the operator")
}

// control moves rollout id from one of the phases from to phase to, and
// steps it (which saves it).
func (e *Engine) control(id string, now time.Time, from []Phase, to Phase, why string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.rollouts[id]
	if !ok {
		return ErrUnknown
	}
	if !slices.Contains(from, r.Phase) {
		return fmt.Errorf("%w: %s is %s", ErrState, id, r.Phase)
	}
	r.Phase = to
	r.decide(now, "", "%s", why)
	return e.step(r, now)
}

func (e *Engine) sorted() []*Rollout {
	out := make([]*Rollout, 0, len(e.rollouts))
	for _, r := range e.rollouts {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// explain is a status event's reason code and text, without saying the
// code twice when the text starts with it.
func explain(ev *protocol.StatusEvent) string {
	code := ev.Code.String()
	if ev.Reason == "" {
		return code
	}
	if strings.HasPrefix(ev.Reason, code) {
		return ev.Reason
	}
	return code + ": " + ev.Reason
}
