package rollout

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"edgeota/protocol"
	"edgeota/protocol/cohort"
)

// Phase is the state of a rollout.
type Phase string

// Phases.
const (
	Pending    Phase = "pending"
	Running    Phase = "running" // in wave Wave+1
	Superseded Phase = "superseded"
	Completed  Phase = "completed"
	Paused     Phase = "paused"
	Aborted    Phase = "aborted"
	RolledBack Phase = "rolled-back"
)

// NodeState is the state of one node in a rollout.
type NodeState string

// Node states.
const (
	NodeWaiting    NodeState = "waiting"
	NodeAssigned   NodeState = "assigned"    // told to download
	NodeTrial      NodeState = "trial"       // booted the new image on trial
	NodeConfirmed  NodeState = "confirmed"   // confirmed, soaking
	NodeSucceeded  NodeState = "succeeded"   // confirmed, reports and soak done, gates green
	NodeFailed     NodeState = "failed"      // reverted, refused or breached a gate
	NodeTimedOut   NodeState = "timed-out"   // no progress within node_timeout
	NodeRolledBack NodeState = "rolled-back" // runs the previous manifest again
	NodeStuck      NodeState = "rollback-stuck"
	// NodeIneligible: in the cohort, but its Hello shows it does not meet
	// the manifest's requires (agent version, runtime): never assigned,
	// and outside the waves and gates.
	NodeIneligible NodeState = "ineligible"
)

func (s NodeState) done() bool {
	return s == NodeSucceeded || s == NodeFailed || s == NodeTimedOut || s == NodeRolledBack || s == NodeStuck
}

func (s NodeState) failed() bool { return s == NodeFailed || s == NodeTimedOut }

// Node is what a rollout knows and decided about one node.
type Node struct {
	ID    string    `json:"id"`
	Key   uint64    `json:"key"` // wave order (package wave)
	Wave  int       `json:"wave"`
	State NodeState `json:"state"`
	// Prev is the manifest the node ran before (signed), to roll back to;
	// PrevSeq and PrevDigest what its Hello said it ran.
	Prev       []byte          `json:"prev,omitempty"`
	PrevSeq    uint64          `json:"prev_seq"`
	PrevDigest protocol.Digest `json:"prev_digest"`
	// Since is when the node entered its state.
	Since       time.Time `json:"since"`
	AssignedAt  time.Time `json:"assigned_at"`
	ActivatedAt time.Time `json:"activated_at"`
	ConfirmedAt time.Time `json:"confirmed_at"`
	// Reports, Inferences, Errors, MaxP99 are over health reports since
	// activation; BaselineP99 is the highest p99 of the hour before it.
	Reports     uint64           `json:"reports"`
	Inferences  uint64           `json:"inferences"`
	Errors      uint64           `json:"errors"`
	MaxP99      uint64           `json:"max_p99_us"`
	BaselineP99 uint64           `json:"baseline_p99_us"`
	BaselineAt  time.Time        `json:"baseline_at"`
	Metrics     map[string]int64 `json:"metrics,omitempty"`
	BootLoop    bool             `json:"boot_loop,omitempty"`
	// Returned is set once the node was assigned back its previous
	// manifest (after failing, or in a rollback).
	Returned bool `json:"returned,omitempty"`
	// Failed stays set once the node failed or timed out, whatever it
	// does after: it counts against max_failed for good.
	Failed   bool      `json:"failed,omitempty"`
	LastSeen time.Time `json:"last_seen"`
	Reason   string    `json:"reason,omitempty"`
	// Transfer, Fetched and Fallback are what the node's latest status
	// event about this manifest said of its transfer (status key 64,
	// docs/protocol.md "Delta updates (v1.4)"): "full" or "delta" ("" when
	// none said), the bytes fetched, and why it abandoned a delta, kept
	// once said.
	Transfer string `json:"transfer,omitempty"`
	Fetched  uint64 `json:"fetched,omitempty"`
	Fallback string `json:"fallback,omitempty"`

	// c is what the node adds to its rollout's tally; inUntargeted and
	// inReady say it is in those heaps of its rollout.
	c            contrib
	inUntargeted bool
	inReady      bool
}

// Rollout is the state of one deployment on this gateway: its summary
// (the fields saved as JSON in its summary record), its nodes (a record
// each) and its latest decisions (a record each); see records.go.
type Rollout struct {
	// Format is the format of the saved state, [StateFormat] when this
	// build saves it; 0 in states saved before it was recorded, which are
	// format 1.
	Format     int             `json:"format"`
	ID         string          `json:"id"`
	Seq        uint64          `json:"seq"`
	Deployment []byte          `json:"deployment"` // the signed deployment
	Manifest   []byte          `json:"manifest"`   // its signed manifest
	Version    string          `json:"version"`
	ManSeq     uint64          `json:"manifest_seq"`
	Digest     protocol.Digest `json:"digest"`
	Class      protocol.Class  `json:"class"`
	Component  string          `json:"component"`
	// Requires is the manifest's key 12; nil in states saved before the
	// gateway read it, which treat every node as eligible.
	Requires  *protocol.Requires `json:"requires,omitempty"`
	Phase     Phase              `json:"phase"`
	Wave      int                `json:"wave"` // current wave, 0-based
	WaveSince time.Time          `json:"wave_since"`
	Started   time.Time          `json:"started"`
	Updated   time.Time          `json:"updated"`
	// Nodes are the nodes of the cohort, by id; Decisions the latest
	// [maxDecisions], oldest first, DecisionSeq the number of decisions
	// ever taken (the sequence number of the latest).
	Nodes       map[string]*Node `json:"-"`
	Decisions   []Decision       `json:"-"`
	DecisionSeq uint64           `json:"-"`

	d    *protocol.Deployment
	expr *cohort.Expr
	// order holds the nodes in wave order (package wave), t counts them,
	// active holds those assigned, on trial or confirmed, untargeted and
	// ready the nodes the next wave takes and the targeted nodes waiting
	// to be assigned, each in wave order.
	order      []*Node
	t          tally
	active     map[*Node]struct{}
	untargeted nodeHeap
	ready      nodeHeap
	// What changed since the last stage (records.go): the nodes touched,
	// the decisions taken, the summary as last written.
	dirty      map[*Node]struct{}
	decided    int
	written    summaryKey
	prevs      map[[32]byte][]byte // previous manifests by hash, shared by the nodes
	newPrevs   [][32]byte
	rewriteAll bool // loaded from a legacy record: write every record again
}

// Decision is one explained decision, for the status.
type Decision struct {
	At   time.Time `json:"at"`
	Node string    `json:"node,omitempty"`
	What string    `json:"what"`
}

const maxDecisions = 200

func (r *Rollout) decide(now time.Time, node, format string, args ...any) {
	r.Decisions = append(r.Decisions, Decision{At: now, Node: node, What: fmt.Sprintf(format, args...)})
	if len(r.Decisions) > maxDecisions {
		r.Decisions = slices.Delete(r.Decisions, 0, len(r.Decisions)-maxDecisions)
	}
	r.DecisionSeq++
	r.decided++
	r.Updated = now
}

// StateFormat is the format of the records [Engine] saves (records.go):
// format 2 is a summary record, a record per node and per decision; format
// 1 was one JSON document of the whole rollout, which [Engine.Load] still
// reads and writes again as records. A format newer than StateFormat is
// refused with [ErrFormatTooNew]. A change that an older gateway would
// misread (a field it would ignore while acting on the rest) raises it.
const StateFormat = 2

// ErrFormatTooNew: a saved rollout state is of a format newer than
// [StateFormat]; a newer edgeota saved it.
var ErrFormatTooNew = errors.New("rollout: saved state of a newer format than this edgeota supports")

// NodeInfo is what the gateway knows of a node from its last Hello.
type NodeInfo struct {
	ID          string
	Class       protocol.Class
	Component   string
	Labels      map[string]string
	RunningSeq  uint64
	Running     protocol.Digest
	ActiveState protocol.SlotState
	Other       *protocol.OtherSlot
	LastSeen    time.Time
	// AgentVersion and Runtime (Hello keys 7 and 64) say whether the node
	// meets a manifest's requires.
	AgentVersion string
	Runtime      string
}

func (r *Rollout) inCohort(n NodeInfo) bool {
	return n.Class == r.Class && n.Component == r.Component && r.expr.Match(n.Labels)
}

// unmet returns why n does not meet the manifest's requires, or "".
func (r *Rollout) unmet(n NodeInfo) string {
	err := r.Requires.Met(n.AgentVersion, n.Runtime)
	if re := (*protocol.RejectError)(nil); errors.As(err, &re) {
		return re.Msg
	} else if err != nil {
		return err.Error()
	}
	return ""
}
