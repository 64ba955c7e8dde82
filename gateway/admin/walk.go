package admin

import (
	"context"
	"fmt"
	"iter"
)

// AllNodes walks every page of the node registry that q selects, from
// q.After on, in node id order, q.Limit nodes per request. It yields an
// error once and stops when a request fails. Nodes that say Hello during
// the walk are yielded when their id sorts after the page being read;
// no node is yielded twice.
func (c *Client) AllNodes(ctx context.Context, q NodeQuery) iter.Seq2[Node, error] {
	return walk(func(after string) ([]Node, string, error) {
		q.After = after
		p, err := c.Nodes(ctx, q)
		return p.Nodes, p.Next, err
	}, q.After, func(n Node) string { return n.ID })
}

// AllRolloutNodes walks every page of rollout id's nodes that q selects,
// from q.After on, in node id order, q.Limit nodes per request. It
// yields an error once and stops when a request fails ([ErrNotFound]
// when there is no such rollout).
func (c *Client) AllRolloutNodes(ctx context.Context, id string, q RolloutNodeQuery) iter.Seq2[RolloutNode, error] {
	return walk(func(after string) ([]RolloutNode, string, error) {
		q.After = after
		p, err := c.RolloutNodes(ctx, id, q)
		return p.Nodes, p.Next, err
	}, q.After, func(n RolloutNode) string { return n.ID })
}

// walk yields the items of page(after) and of the pages after it, until
// a page's next is "". A page whose next does not sort after its cursor
// would loop: it ends the walk with an error.
func walk[T any](page func(after string) ([]T, string, error), after string, id func(T) string) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		for {
			items, next, err := page(after)
			if err != nil {
				yield(zero, err)
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			if next <= after {
				yield(zero, fmt.Errorf("admin API: page after %q names next %q, not after it", after, next))
				return
			}
			after = next
		}
	}
}
