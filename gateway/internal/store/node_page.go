package store

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// NodeQuery selects a page of the node registry for [DB.NodePage].
type NodeQuery struct {
	// Match keeps the nodes it returns true for; nil keeps every node. It
	// runs inside a read transaction and must not call the DB.
	Match func(*Node) bool
	// After starts the page after this node id; "" starts at the first.
	After string
	// Limit is the page size, at least 1 (a smaller limit reads as 1).
	Limit int
}

// NodePage is one page of the node registry, by id.
type NodePage struct {
	// Nodes are the page's nodes.
	Nodes []*Node
	// Next is the After of the next page; "" on the last page.
	Next string
	// Total counts the nodes Match keeps, on every page.
	Total int
}

// NodePage returns the page of the node registry that q selects, read in
// one transaction. Without Match the page is read from a cursor placed
// after q.After: O(Limit) record reads, and Total is a count of the keys.
// With Match every record is decoded and matched once, for Total: a scan
// of the registry. Nodes added between two pages appear when their id
// sorts after the cursor, and no node appears on two pages.
func (db *DB) NodePage(q NodeQuery) (NodePage, error) {
	limit := max(q.Limit, 1)
	var p NodePage
	// add takes a node that matches and sorts after the cursor; it
	// returns false once the page is full and the next page known.
	add := func(n *Node) bool {
		if len(p.Nodes) == limit {
			p.Next = p.Nodes[limit-1].ID
			return false
		}
		p.Nodes = append(p.Nodes, n)
		return true
	}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNodes)
		if q.Match == nil {
			p.Total = b.Stats().KeyN
			c := b.Cursor()
			k, v := c.Seek([]byte(q.After))
			if k != nil && q.After != "" && bytes.Equal(k, []byte(q.After)) {
				k, v = c.Next()
			}
			for ; k != nil; k, v = c.Next() {
				n, err := decodeNode(k, v)
				if err != nil {
					return err
				}
				if !add(n) {
					break
				}
			}
			return nil
		}
		after, full := []byte(q.After), false
		return b.ForEach(func(k, v []byte) error {
			n, err := decodeNode(k, v)
			if err != nil {
				return err
			}
			if !q.Match(n) {
				return nil
			}
			p.Total++
			if !full && bytes.Compare(k, after) > 0 {
				full = !add(n)
			}
			return nil
		})
	})
	if err != nil {
		return NodePage{}, fmt.Errorf("store: nodes: %w", err)
	}
	return p, nil
}

// decodeNode decodes the record v of nodes/<k>.
func decodeNode(k, v []byte) (*Node, error) {
	var r nodeRecord
	if err := decodeRecord(v, &r); err != nil {
		return nil, fmt.Errorf("node %s: %w", k, err)
	}
	return r.node(string(k)), nil
}
