package rollout

import (
	"slices"
	"strings"
	"time"
)

// Page sizes of [Engine.Nodes].
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
)

// NodeQuery selects a page of one rollout's nodes, in node id order.
type NodeQuery struct {
	// State keeps the nodes in that state; "" keeps every state.
	State NodeState
	// Wave keeps the nodes placed in that wave (from 1); 0 keeps every
	// node, placed or not.
	Wave int
	// After starts the page after that node id; "" starts at the first.
	After string
	// Limit is the page size: [DefaultPageLimit] when 0, at most
	// [MaxPageLimit].
	Limit int
}

// NodePage is one page of a rollout's nodes.
type NodePage struct {
	// Nodes are the page's nodes, by id.
	Nodes []NodeView
	// Next is the After of the next page; "" on the last page.
	Next string
	// Total counts the nodes the query matches, on every page.
	Total int
}

// Nodes returns one page of the nodes of rollout id that q selects, or
// [ErrUnknown]. It costs O(n log n) in the rollout's size: it serves an
// operator's request, never a node's.
func (e *Engine) Nodes(id string, q NodeQuery, now time.Time) (NodePage, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultPageLimit
	}
	limit = min(limit, MaxPageLimit)
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.rollouts[id]
	if !ok {
		return NodePage{}, ErrUnknown
	}
	var match []*Node
	for _, n := range r.Nodes {
		if (q.State == "" || n.State == q.State) && (q.Wave == 0 || n.Wave+1 == q.Wave) {
			match = append(match, n)
		}
	}
	slices.SortFunc(match, func(a, b *Node) int { return strings.Compare(a.ID, b.ID) })
	p := NodePage{Total: len(match)}
	i, _ := slices.BinarySearchFunc(match, q.After, func(n *Node, id string) int { return strings.Compare(n.ID, id) })
	if q.After != "" && i < len(match) && match[i].ID == q.After {
		i++
	}
	for ; i < len(match) && len(p.Nodes) < limit; i++ {
		p.Nodes = append(p.Nodes, match[i].view())
	}
	if i < len(match) {
		p.Next = p.Nodes[len(p.Nodes)-1].ID
	}
	return p, nil
}

// view is the node's state for operators.
func (n *Node) view() NodeView {
	return NodeView{ID: n.ID, Wave: n.Wave + 1, State: n.State, Since: n.Since, Reason: n.Reason,
		Transfer: n.Transfer, Fetched: n.Fetched, Fallback: n.Fallback}
}
