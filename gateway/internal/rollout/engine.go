package rollout

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"edgeota/gateway/internal/store"
	"edgeota/protocol"
	"edgeota/protocol/cohort"
	"edgeota/protocol/wave"
)

// Store commits the engine's records: the gateway's database. One call
// is one transaction.
type Store interface {
	CommitRollouts(b store.RolloutBatch) error
}

// Notifier tells nodes that their assignment changed (their observers),
// once the assignment is durable.
type Notifier interface {
	Notify(nodes []string)
}

// Errors of the engine.
var (
	ErrUnknown = errors.New("rollout: no such rollout")
	ErrState   = errors.New("rollout: not possible in this state")
)

// Engine runs the gateway's rollouts. Its methods are safe for concurrent
// use; time is always passed in (a fake clock in tests).
//
// A method applies a node's event or an operator's command in memory and
// stages what changed: the records of the nodes it touched, the decisions
// taken, the assignments made. One committer goroutine writes what is
// staged in one transaction, with whatever other calls staged meanwhile
// (group commit), then tells the assigned nodes and the callers waiting
// on the [Commit] their call returned. Nothing a decision does is visible
// before the decision is durable: assignments are written in the same
// transaction and notified after it.
type Engine struct {
	mu       sync.Mutex
	rollouts map[string]*Rollout
	st       Store
	notify   Notifier
	publish  func(id string, status StatusView)
	log      *slog.Logger
	offline  time.Duration
	pace     time.Duration

	// The commit pipeline, under mu: what is staged, the sequence
	// numbers of the last call staged and committed, the callers waiting.
	staged     map[string]map[string][]byte
	assign     []store.Assignment
	stagedSeq  uint64
	committed  uint64
	committing bool
	waiters    []waiter
	published  map[string]*pacer
}

// Option configures an Engine.
type Option func(*Engine)

// WithPublish sets a function told each rollout's status after a change
// (the gateway publishes it, retained, on the rollout topic), at most
// once per pace interval (see [WithPublishPace]) per rollout: when changes
// come faster, the latest status is told at the end of the interval.
func WithPublish(f func(id string, st StatusView)) Option { return func(e *Engine) { e.publish = f } }

// WithPublishPace sets the least interval between two statuses told for
// one rollout (default 500 ms: at most 2 per second).
func WithPublishPace(d time.Duration) Option { return func(e *Engine) { e.pace = d } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// WithOfflineAfter sets after how long without a message a node shows as
// offline in the status (default 3 minutes).
func WithOfflineAfter(d time.Duration) Option { return func(e *Engine) { e.offline = d } }

// NewEngine returns an engine that commits to st and notifies assigned
// nodes with n.
func NewEngine(st Store, n Notifier, opts ...Option) *Engine {
	e := &Engine{rollouts: map[string]*Rollout{}, st: st, notify: n, log: slog.New(slog.DiscardHandler),
		offline: 3 * time.Minute, pace: 500 * time.Millisecond, staged: map[string]map[string][]byte{},
		published: map[string]*pacer{}}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Load restores saved rollouts; verify re-verifies each deployment. A
// rollout saved in format 1 is written again in records, before Load
// returns.
func (e *Engine) Load(saved []store.RolloutRecords, verify func(signed []byte) (*protocol.Deployment, error), now time.Time) error {
	e.mu.Lock()
	for _, rec := range saved {
		r, err := restore(rec)
		if err != nil {
			e.mu.Unlock()
			return err
		}
		if r.d, err = verify(r.Deployment); err != nil {
			e.mu.Unlock()
			return fmt.Errorf("rollout %s: %w", rec.ID, err)
		}
		if r.expr, err = cohort.Parse(r.d.Cohort); err != nil {
			e.mu.Unlock()
			return fmt.Errorf("rollout %s: %w", rec.ID, err)
		}
		for _, n := range r.Nodes {
			// LastSeen is not saved: a node counts as seen at the load
			// until it is heard again.
			n.LastSeen = now
		}
		r.index()
		if !r.rewriteAll {
			clear(r.dirty)
			r.written = r.summaryKey()
		}
		e.rollouts[rec.ID] = r
	}
	c, err := e.stageLocked()
	e.mu.Unlock()
	if err != nil {
		return err
	}
	return c.Wait()
}

// Start begins a rollout of a verified deployment over the known nodes
// and returns once its start is durable. nodes lists them; Start calls it
// while it takes no Hello, so that a node is either in the list or has
// its Hello taken once the rollout exists, and joins it then. (A list read
// before Start missed a node whose Hello the engine took between the list
// and the start, with no rollout to join yet: that node never joined.)
// prev returns the signed manifest a node runs now (nil when unknown). A
// running rollout of the same component with a lower seq is superseded.
func (e *Engine) Start(d *protocol.Deployment, signed []byte, m *protocol.Manifest, nodes func() ([]NodeInfo, error), prev func(NodeInfo) []byte, now time.Time) error {
	expr, err := cohort.Parse(d.Cohort)
	if err != nil {
		return err
	}
	c, err := e.start(d, signed, m, expr, nodes, prev, now)
	if err != nil {
		return err
	}
	return c.Wait()
}

func (e *Engine) start(d *protocol.Deployment, signed []byte, m *protocol.Manifest, expr *cohort.Expr, nodes func() ([]NodeInfo, error), prev func(NodeInfo) []byte, now time.Time) (Commit, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if old, ok := e.rollouts[d.ID]; ok && old.Seq >= d.Seq {
		return Commit{}, fmt.Errorf("%w: rollout %s already at seq %d", ErrState, d.ID, old.Seq)
	}
	known, err := nodes()
	if err != nil {
		return Commit{}, fmt.Errorf("rollout %s: list the nodes: %w", d.ID, err)
	}
	r := &Rollout{ID: d.ID, Seq: d.Seq, Deployment: signed, Manifest: d.Manifest, Version: m.Version, ManSeq: m.Seq,
		Digest: m.Digest, Class: m.Class, Component: m.Component, Requires: m.Requires, Phase: Running, Started: now, WaveSince: now,
		Updated: now, Nodes: map[string]*Node{}, d: d, expr: expr, prevs: map[[32]byte][]byte{}}
	r.written.phase = "-" // nothing written yet
	for _, other := range e.sorted() {
		if other.Component == r.Component && other.ID != r.ID && (other.Phase == Running || other.Phase == Paused || other.Phase == Pending) {
			other.Phase = Superseded
			other.decide(now, "", "superseded by deployment %s seq %d", d.ID, d.Seq)
		}
	}
	if old, ok := e.rollouts[d.ID]; ok {
		// A newer seq of the same deployment id replaces its rollout:
		// its records go, the new ones are written in their place.
		r.DecisionSeq = old.DecisionSeq
		for _, n := range old.order {
			delete(old.Nodes, n.ID)
			old.dirty[n] = struct{}{}
		}
		recs, err := old.stage()
		if err != nil {
			return Commit{}, err
		}
		if recs == nil {
			recs = map[string][]byte{}
		}
		for i := range old.Decisions {
			recs[decisionKey(old.DecisionSeq-uint64(i))] = nil
		}
		if e.staged[d.ID] == nil {
			e.staged[d.ID] = map[string][]byte{}
		}
		maps.Copy(e.staged[d.ID], recs)
	}
	for _, n := range known {
		if r.inCohort(n) {
			r.Nodes[n.ID] = r.newNode(n, prev(n), now)
		}
	}
	r.index()
	r.decide(now, "", "started: %s %s seq %d to %q (%d nodes, %d ineligible), %d waves", m.Component, m.Version, m.Seq, d.Cohort,
		len(r.Nodes), r.t.states[NodeIneligible], len(d.Waves))
	e.rollouts[d.ID] = r
	e.step(r, now, true)
	return e.stageLocked()
}

// newNode is a node new to the rollout, not yet in it.
func (r *Rollout) newNode(n NodeInfo, prev []byte, now time.Time) *Node {
	x := &Node{ID: n.ID, Key: wave.Key(r.ID, n.ID), Wave: -1, State: NodeWaiting, Since: now, LastSeen: now,
		PrevSeq: n.RunningSeq, PrevDigest: n.Running}
	r.setPrev(x, prev)
	if n.RunningSeq == r.ManSeq && n.Running == r.Digest && n.ActiveState == protocol.SlotConfirmed {
		x.State, x.Reason, x.Wave = NodeSucceeded, "already runs this manifest", r.Wave
	} else if why := r.unmet(n); why != "" {
		x.State, x.Reason = NodeIneligible, why
	}
	return x
}

// addNode adds a node that joins the rollout.
func (r *Rollout) addNode(n NodeInfo, prev []byte, now time.Time) *Node {
	x := r.newNode(n, prev, now)
	r.insert(x)
	return x
}

// step applies timeouts, successes, gates, advancing and targeting to one
// rollout, and stages the assignments they make. full judges every node
// assigned, on trial or confirmed (a tick, a start, an operator's
// command); otherwise step judges the nodes the call touched, and its
// work does not grow with the rollout's size.
//
// A completed rollout still follows the nodes that joined its cohort after
// it completed (timeouts, soaks, a failed node given back what it ran);
// its phase no longer changes.
func (e *Engine) step(r *Rollout, now time.Time, full bool) {
	if r.Phase != Running && r.Phase != RolledBack && r.Phase != Completed {
		return
	}
	d := r.d
	judge := r.changed()
	if full {
		judge = r.activeNodes()
	}
	for _, n := range judge {
		r.judge(n, now)
	}
	if r.Phase == Running {
		if red := r.deploymentGate(); red != "" {
			if d.OnFailure == protocol.FailureRollback {
				r.Phase = RolledBack
				r.decide(now, "", "gate red (%s): rolling back every touched node", red)
				full = true
			} else {
				r.Phase = Paused
				r.decide(now, "", "gate red (%s): paused", red)
			}
		}
	}
	// A failed or timed-out node gets back what it ran, and is never
	// offered this manifest again; in a rollback, every touched node does.
	candidates := r.changed()
	if full {
		candidates = r.order
	}
	var reassign []*Node
	for _, n := range candidates {
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
	groups := map[string][]string{}
	var keys []string
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
		r.touch(n)
		k := string(back)
		if groups[k] == nil {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], n.ID)
	}
	for _, k := range keys {
		e.stageAssign(groups[k], []byte(k))
	}
	if len(assign) > 0 {
		ids := make([]string, len(assign))
		for i, n := range assign {
			ids[i] = n.ID
		}
		e.stageAssign(ids, r.Manifest)
	}
}

// judge applies time to one node: its timeout, a confirmed node's gates
// and the end of its soak.
func (r *Rollout) judge(n *Node, now time.Time) {
	d := r.d
	switch n.State {
	case NodeAssigned, NodeTrial:
		if now.Sub(n.AssignedAt) > time.Duration(d.NodeTimeoutSeconds)*time.Second {
			r.setState(n, NodeTimedOut, now, fmt.Sprintf("no progress within node_timeout %ds", d.NodeTimeoutSeconds))
		}
	case NodeConfirmed:
		if why := r.nodeGate(n, true); why != "" {
			r.setState(n, NodeFailed, now, why)
			return
		}
		bake := time.Duration(d.Waves[max(n.Wave, 0)].BakeSeconds) * time.Second
		if min := minReports(d); n.Reports >= min && now.Sub(n.ConfirmedAt) >= bake {
			r.setState(n, NodeSucceeded, now, fmt.Sprintf("confirmed, %d reports, soaked %v", n.Reports, bake))
		}
	}
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
	r.touch(n)
	r.decide(now, n.ID, "%s: %s", s, why)
}

// target places nodes in the current wave until it has taken enough of
// the current cohort (docs/protocol.md section 7: wave k has taken enough when
// max(1, ceil(bp_k x N / 10000)) nodes have been targeted), taking untargeted
// nodes in wave order, so a node that joins later takes its place by the
// same rule; then it assigns targeted waiting nodes, in wave order, within
// max_concurrent downloads and returns them (already marked).
func (r *Rollout) target(now time.Time) []*Node {
	want := wave.Target(uint32(r.d.Waves[r.Wave].BasisPoints), r.t.eligible())
	for r.t.targeted() < want {
		x := r.untargetedNext()
		if x == nil {
			break
		}
		x.Wave = r.Wave
		r.touch(x)
	}
	var out []*Node
	for r.t.states[NodeAssigned] < int(r.d.MaxConcurrent) {
		x := r.readyNext()
		if x == nil {
			break
		}
		x.State, x.Since, x.AssignedAt, x.Reason = NodeAssigned, now, now, ""
		r.touch(x)
		r.decide(now, x.ID, "assigned in wave %d", x.Wave+1)
		out = append(out, x)
	}
	return out
}

// advance moves to the next wave (or completes) when every node the
// current wave targeted is done, one of them was activated, and the gates
// are green (checked by the caller).
func (r *Rollout) advance(now time.Time) {
	w := r.t.upTo(r.Wave)
	if w.pending > 0 {
		return
	}
	if w.targeted < wave.Target(uint32(r.d.Waves[r.Wave].BasisPoints), r.t.eligible()) {
		return // still nodes to take in this wave
	}
	if w.activated == 0 {
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
	g := r.d.Gates
	if g.MaxFailed != nil && uint64(r.t.failed) > *g.MaxFailed {
		return fmt.Sprintf("%d nodes failed or timed out, over max_failed %d", r.t.failed, *g.MaxFailed)
	}
	if g.MaxBootLoops != nil && uint64(r.t.loops) > *g.MaxBootLoops {
		return fmt.Sprintf("%d nodes reverted for boot loops, over max_boot_loops %d", r.t.loops, *g.MaxBootLoops)
	}
	return ""
}

// Hello takes a node's Hello: a node new to the cohort of its home
// rollout ([Engine.home]) joins it, by the wave rule when the rollout runs,
// at once when it completed; a node's running manifest advances or fails
// its state.
func (e *Engine) Hello(n NodeInfo, prev func(NodeInfo) []byte, now time.Time) Commit {
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
			r.remove(x)
			ok = false
		}
		if ok && x.State == NodeWaiting {
			if why := r.unmet(n); why != "" {
				x.State, x.Wave, x.Since, x.Reason, x.LastSeen = NodeIneligible, -1, now, why, now
				r.touch(x)
				r.decide(now, n.ID, "%s: %s", NodeIneligible, why)
				e.step(r, now, false)
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
				e.step(r, now, false)
			} else {
				e.joinCompleted(r, n, prev(n), now)
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
			// A trial Hello after the trial status event changes nothing.
			changed = x.State != NodeTrial
			if changed {
				if x.ActivatedAt.IsZero() {
					x.ActivatedAt = now
				}
				x.State, x.Since = NodeTrial, now
				r.touch(x)
			}
		case (x.State == NodeAssigned || x.State == NodeTrial) && runsNew && n.ActiveState == protocol.SlotConfirmed:
			if x.ActivatedAt.IsZero() {
				x.ActivatedAt = now
			}
			x.ConfirmedAt = now
			r.setState(x, NodeConfirmed, now, "confirmed the new manifest; soaking")
		case x.State == NodeTrial && runsPrev:
			r.setState(x, NodeFailed, now, fmt.Sprintf("fell back to seq %d", n.RunningSeq))
		default:
			changed = false
		}
		if changed {
			e.step(r, now, false)
		}
	}
	return e.stage()
}

// stage stages what the call changed and returns its Commit; a staging
// error (a record that does not encode) is the Commit's. e.mu is held.
func (e *Engine) stage() Commit {
	c, err := e.stageLocked()
	if err != nil {
		e.log.Error("rollout: stage", "err", err)
		return failed(err)
	}
	return c
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
func (e *Engine) joinCompleted(r *Rollout, n NodeInfo, prev []byte, now time.Time) {
	if n.RunningSeq > r.ManSeq {
		return
	}
	x := r.addNode(n, prev, now)
	if x.State == NodeIneligible {
		r.decide(now, n.ID, "joined the cohort after completion; %s: %s", NodeIneligible, x.Reason)
		return
	}
	x.Wave = len(r.d.Waves) - 1
	if x.State == NodeSucceeded {
		r.touch(x)
		r.decide(now, n.ID, "joined the cohort after completion; already runs this manifest")
		return
	}
	x.State, x.Since, x.AssignedAt = NodeAssigned, now, now
	r.touch(x)
	r.decide(now, n.ID, "joined the cohort after completion: assigned")
	e.stageAssign([]string{n.ID}, r.Manifest)
}

// Status takes a node's status event about a rollout's manifest.
func (e *Engine) Status(ev *protocol.StatusEvent, now time.Time) Commit {
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
		if x.noteTransfer(ev.Transfer) {
			r.touch(x)
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
			r.touch(x)
		default:
			continue
		}
		e.step(r, now, false)
	}
	return e.stage()
}

// noteTransfer records the transfer of a status event about the
// rollout's manifest, and reports whether the node changed. A fallback
// reason is kept through the later events of the full download, which say
// none.
func (n *Node) noteTransfer(t *protocol.Transfer) bool {
	if t == nil {
		return false
	}
	kind, fallback := t.Kind.String(), t.Fallback
	if fallback == "" && t.Kind == protocol.TransferFull {
		fallback = n.Fallback
	}
	if n.Transfer == kind && n.Fetched == t.Fetched && n.Fallback == fallback {
		return false
	}
	n.Transfer, n.Fetched, n.Fallback = kind, t.Fetched, fallback
	return true
}

// Health takes a node's health report: before activation it feeds the
// node's p99 baseline, after it the gates. In a rollback it tells that a
// node given its previous manifest back runs it again: a node that never
// activated the rolled-back manifest has nothing to announce by a Hello.
func (e *Engine) Health(rep *protocol.HealthReport, now time.Time) Commit {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.sorted() {
		x, ok := r.Nodes[rep.NodeID]
		if ok && r.Phase == RolledBack && x.Returned && x.PrevSeq != 0 && rep.RunningSeq == x.PrevSeq &&
			x.State != NodeWaiting && x.State != NodeRolledBack && x.State != NodeStuck {
			x.LastSeen = now
			r.setState(x, NodeRolledBack, now, fmt.Sprintf("runs seq %d again (health report)", rep.RunningSeq))
			e.step(r, now, false)
			continue
		}
		if !ok || (r.Phase != Running && r.Phase != Paused && r.Phase != Completed) {
			continue
		}
		x.LastSeen = now
		if x.ActivatedAt.IsZero() || rep.RunningSeq != r.ManSeq {
			if rep.RunningSeq == x.PrevSeq {
				p99, at := x.BaselineP99, x.BaselineAt
				if now.Sub(x.BaselineAt) > time.Hour {
					x.BaselineP99 = 0
				}
				if x.BaselineP99 == 0 {
					x.BaselineAt = now
				}
				x.BaselineP99 = max(x.BaselineP99, rep.LatencyP99Micros)
				if x.BaselineP99 != p99 || !x.BaselineAt.Equal(at) {
					r.touch(x) // a steady baseline writes nothing
				}
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
		r.touch(x)
		if why := r.nodeGate(x, false); why != "" {
			r.setState(x, NodeFailed, now, why)
		}
		e.step(r, now, false)
	}
	return e.stage()
}

// Tick applies time: timeouts, soaks, bakes. Its work grows with the
// nodes assigned, on trial or confirmed, not with the rollouts' sizes.
func (e *Engine) Tick(now time.Time) Commit {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.sorted() {
		if r.Phase == Running || (r.Phase == Completed && len(r.active) > 0) {
			e.step(r, now, true)
		}
	}
	return e.stage()
}

// Pause stops a rollout from assigning nodes; Resume goes on; Abort ends it
// without rolling back. Each returns once the change is durable.
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
// steps it.
func (e *Engine) control(id string, now time.Time, from []Phase, to Phase, why string) error {
	e.mu.Lock()
	r, ok := e.rollouts[id]
	if !ok {
		e.mu.Unlock()
		return ErrUnknown
	}
	if !slices.Contains(from, r.Phase) {
		e.mu.Unlock()
		return fmt.Errorf("%w: %s is %s", ErrState, id, r.Phase)
	}
	r.Phase = to
	r.decide(now, "", "%s", why)
	e.step(r, now, true)
	c := e.stage()
	e.mu.Unlock()
	return c.Wait()
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
