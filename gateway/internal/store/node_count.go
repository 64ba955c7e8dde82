package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The registry's size is the sequence of the nodes bucket (bbolt
// [go.etcd.io/bbolt.Bucket.Sequence]): putNode adds one in the transaction
// that creates a node, so the count commits or rolls back with the record,
// and [DB.PutHello] checks the cap in O(1) inside that transaction.
// [Open] counts the records once and corrects the sequence, so a file
// written before the count existed, or restored from a backup, starts
// right.

// WithMaxNodes bounds the node registry: a Hello from a node the registry
// does not hold, when it holds n nodes or more, is refused with
// [ErrRegistryFull] and writes nothing. Nodes already known are never
// refused, even when a smaller bound leaves more than n of them. 0, the
// default, is no bound.
func WithMaxNodes(n int) Option { return func(c *config) { c.maxNodes = max(0, n) } }

// NodeCount returns how many nodes the registry holds.
func (db *DB) NodeCount() (int, error) {
	var n uint64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketNodes).Sequence()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: node count: %w", err)
	}
	return int(n), nil
}

// registryFull reports whether a Hello from id must be refused: id is not
// in nodes and the registry holds its bound.
func (db *DB) registryFull(nodes *bolt.Bucket, id string) bool {
	return db.maxNodes > 0 && nodes.Sequence() >= uint64(db.maxNodes) && nodes.Get([]byte(id)) == nil
}

// helloRefused is the cheap check before PutHello's write transaction: a
// flood of new ids against a full registry costs read transactions only,
// never a commit. The write transaction checks again.
func (db *DB) helloRefused(id string) bool {
	if db.maxNodes == 0 {
		return false
	}
	full := false
	db.bolt.View(func(tx *bolt.Tx) error {
		full = db.registryFull(tx.Bucket(bucketNodes), id)
		return nil
	})
	return full
}

// countNodes sets the nodes bucket's sequence to the number of its
// records, when it differs ([Open]).
func (db *DB) countNodes(tx *bolt.Tx) error {
	nodes := tx.Bucket(bucketNodes)
	var n uint64
	c := nodes.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	if nodes.Sequence() == n {
		return nil
	}
	if err := nodes.SetSequence(n); err != nil {
		return fmt.Errorf("count nodes: %w", err)
	}
	return nil
}
