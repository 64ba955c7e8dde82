package admin

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"edgeota/protocol"
	"edgeota/protocol/cohort"
)

// Page sizes of the paged routes, GET /v1/nodes and GET
// /v1/rollouts/{id}/nodes.
const (
	// DefaultPageLimit is the page size when the query names none.
	DefaultPageLimit = 100
	// MaxPageLimit is the largest page size a query may ask for.
	MaxPageLimit = 1000
)

// ErrBadQuery is wrapped by the errors of [ParseNodeQuery] and
// [ParseRolloutNodeQuery]: a query parameter the gateway cannot read.
// The gateway answers such a query 400 with reason "query".
var ErrBadQuery = errors.New("bad query")

// The query parameters of the paged routes.
const (
	paramLabel  = "label"
	paramCohort = "cohort"
	paramModel  = "model"
	paramState  = "state"
	paramWave   = "wave"
	paramAfter  = "after"
	paramLimit  = "limit"
)

// NodeQuery selects a page of the node registry, GET /v1/nodes. Every
// filter that is set must hold; the zero NodeQuery is the first page of
// every node.
type NodeQuery struct {
	// Labels keeps the nodes that carry each of these labels with that
	// value (parameter label=KEY=VALUE, repeated).
	Labels map[string]string
	// Cohort keeps the nodes whose labels match this cohort expression,
	// the language of a deployment's target cohort (parameter cohort;
	// package edgeota/protocol/cohort). "" keeps every node.
	Cohort string
	// Model keeps the nodes whose running model is M (parameter model):
	// the version of the manifest it runs, as the gateway's cached models
	// know it, or 8 to 64 hex digits that start the digest of the image
	// it runs. "" keeps every node.
	Model string
	// State keeps the nodes whose last status event announced this state
	// (parameter state), such as "downloading", "trial" or "failed"; a
	// node that never posted a status event is "idle". "" keeps every
	// node.
	State string
	// After starts the page after this node id (parameter after, the
	// previous page's Next); "" starts at the first.
	After string
	// Limit is the page size (parameter limit): [DefaultPageLimit] when
	// 0, at most [MaxPageLimit].
	Limit int
}

// RolloutNodeQuery selects a page of one rollout's nodes, GET
// /v1/rollouts/{id}/nodes.
type RolloutNodeQuery struct {
	// State keeps the nodes in that state of the rollout (parameter
	// state); "" keeps every state.
	State NodeState
	// Wave keeps the nodes placed in that wave, from 1 (parameter wave);
	// 0 keeps every node, placed or not.
	Wave int
	// After starts the page after this node id (parameter after, the
	// previous page's Next); "" starts at the first.
	After string
	// Limit is the page size (parameter limit): [DefaultPageLimit] when
	// 0, at most [MaxPageLimit].
	Limit int
}

// NodePage is one page of the node registry, in node id order: the
// answer of GET /v1/nodes.
type NodePage struct {
	// Nodes are the page's nodes.
	Nodes []Node `json:"nodes"`
	// Next is the After of the next page; "" on the last page.
	Next string `json:"next"`
	// Total counts the nodes the query's filters match, on every page.
	Total int `json:"total"`
}

// RolloutNodePage is one page of a rollout's nodes, in node id order: the
// answer of GET /v1/rollouts/{id}/nodes.
type RolloutNodePage struct {
	// Nodes are the page's nodes.
	Nodes []RolloutNode `json:"nodes"`
	// Next is the After of the next page; "" on the last page.
	Next string `json:"next"`
	// Total counts the nodes the query's filters match, on every page.
	Total int `json:"total"`
}

// NodeStates lists every state a node has in a rollout.
func NodeStates() []NodeState {
	return []NodeState{NodeWaiting, NodeAssigned, NodeTrial, NodeConfirmed, NodeSucceeded, NodeFailed, NodeTimedOut,
		NodeRolledBack, NodeStuck, NodeIneligible}
}

// StatusStates lists the states a status event announces, the values of
// [NodeQuery.State] (docs/protocol.md section 4).
func StatusStates() []string {
	out := make([]string, 0, protocol.StateTrusted+1)
	for s := protocol.StateIdle; s <= protocol.StateTrusted; s++ {
		out = append(out, s.String())
	}
	return out
}

// Values is q as the query parameters of GET /v1/nodes; zero fields are
// left out.
func (q NodeQuery) Values() url.Values {
	v := url.Values{}
	for _, k := range slices.Sorted(maps.Keys(q.Labels)) {
		v.Add(paramLabel, k+"="+q.Labels[k])
	}
	setNonEmpty(v, paramCohort, q.Cohort)
	setNonEmpty(v, paramModel, q.Model)
	setNonEmpty(v, paramState, q.State)
	setPage(v, q.After, q.Limit)
	return v
}

// Values is q as the query parameters of GET /v1/rollouts/{id}/nodes;
// zero fields are left out.
func (q RolloutNodeQuery) Values() url.Values {
	v := url.Values{}
	setNonEmpty(v, paramState, string(q.State))
	if q.Wave != 0 {
		v.Set(paramWave, strconv.Itoa(q.Wave))
	}
	setPage(v, q.After, q.Limit)
	return v
}

func setNonEmpty(v url.Values, key, value string) {
	if value != "" {
		v.Set(key, value)
	}
}

func setPage(v url.Values, after string, limit int) {
	setNonEmpty(v, paramAfter, after)
	if limit != 0 {
		v.Set(paramLimit, strconv.Itoa(limit))
	}
}

// ParseNodeQuery reads the query parameters of GET /v1/nodes. A
// parameter it does not know, one given twice (label aside), a label
// that is not KEY=VALUE or names a key twice, a cohort expression that
// does not parse, a model that is neither, an unknown state, or a limit
// that is not a number from 0 to [MaxPageLimit] is an error wrapping
// [ErrBadQuery].
func ParseNodeQuery(v url.Values) (NodeQuery, error) {
	var q NodeQuery
	if err := known(v, paramLabel, paramCohort, paramModel, paramState, paramAfter, paramLimit); err != nil {
		return q, err
	}
	for _, kv := range v[paramLabel] {
		k, val, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return q, fmt.Errorf("%w: label %q: want KEY=VALUE", ErrBadQuery, kv)
		}
		if _, dup := q.Labels[k]; dup {
			return q, fmt.Errorf("%w: label %q given twice", ErrBadQuery, k)
		}
		if q.Labels == nil {
			q.Labels = map[string]string{}
		}
		q.Labels[k] = val
	}
	q.Cohort = v.Get(paramCohort)
	if q.Cohort != "" {
		if _, err := cohort.Parse(q.Cohort); err != nil {
			return q, fmt.Errorf("%w: cohort: %w", ErrBadQuery, err)
		}
	}
	q.Model = v.Get(paramModel)
	if strings.TrimSpace(q.Model) != q.Model || (v.Has(paramModel) && q.Model == "") {
		return q, fmt.Errorf("%w: model %q: want a version or 8 to 64 hex digits of a digest", ErrBadQuery, q.Model)
	}
	q.State = v.Get(paramState)
	if v.Has(paramState) && !slices.Contains(StatusStates(), q.State) {
		return q, fmt.Errorf("%w: state %q: want one of %s", ErrBadQuery, q.State, strings.Join(StatusStates(), ", "))
	}
	var err error
	q.After, q.Limit, err = parsePage(v)
	return q, err
}

// ParseRolloutNodeQuery reads the query parameters of GET
// /v1/rollouts/{id}/nodes. A parameter it does not know or given twice,
// an unknown state, a wave that is not a number from 0, or a limit that
// is not a number from 0 to [MaxPageLimit] is an error wrapping
// [ErrBadQuery].
func ParseRolloutNodeQuery(v url.Values) (RolloutNodeQuery, error) {
	var q RolloutNodeQuery
	if err := known(v, paramState, paramWave, paramAfter, paramLimit); err != nil {
		return q, err
	}
	if v.Has(paramState) {
		q.State = NodeState(v.Get(paramState))
		if !slices.Contains(NodeStates(), q.State) {
			names := make([]string, 0, len(NodeStates()))
			for _, s := range NodeStates() {
				names = append(names, string(s))
			}
			return q, fmt.Errorf("%w: state %q: want one of %s", ErrBadQuery, q.State, strings.Join(names, ", "))
		}
	}
	if v.Has(paramWave) {
		w, err := strconv.Atoi(v.Get(paramWave))
		if err != nil || w < 0 {
			return q, fmt.Errorf("%w: wave %q: want a wave number from 1 (0 for every wave)", ErrBadQuery, v.Get(paramWave))
		}
		q.Wave = w
	}
	var err error
	q.After, q.Limit, err = parsePage(v)
	return q, err
}

// known refuses a parameter outside names, and one of names given more
// than once (label aside).
func known(v url.Values, names ...string) error {
	for k, vs := range v {
		if !slices.Contains(names, k) {
			return fmt.Errorf("%w: unknown parameter %q: want %s", ErrBadQuery, k, strings.Join(names, ", "))
		}
		if len(vs) > 1 && k != paramLabel {
			return fmt.Errorf("%w: parameter %q given %d times", ErrBadQuery, k, len(vs))
		}
	}
	return nil
}

func parsePage(v url.Values) (after string, limit int, err error) {
	after = v.Get(paramAfter)
	if v.Has(paramLimit) {
		limit, err = strconv.Atoi(v.Get(paramLimit))
		if err != nil || limit < 0 || limit > MaxPageLimit {
			return "", 0, fmt.Errorf("%w: limit %q: want a page size from 1 to %d (0 for %d)", ErrBadQuery, v.Get(paramLimit), MaxPageLimit, DefaultPageLimit)
		}
	}
	return after, limit, nil
}

// PageLimit is the page size of a query's limit: [DefaultPageLimit] for 0,
// at most [MaxPageLimit].
func PageLimit(limit int) int {
	if limit <= 0 {
		return DefaultPageLimit
	}
	return min(limit, MaxPageLimit)
}
