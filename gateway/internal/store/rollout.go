package store

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	bolt "go.etcd.io/bbolt"
)

var bucketRollouts = []byte("rollouts")

// keyLegacyRollout is where schema version 2 keeps, inside a rollout's
// bucket, the whole-rollout record an older gateway wrote (schema version
// 1 kept it as the value rollouts/<id>), until the rollout engine writes
// the rollout again in records.
var keyLegacyRollout = []byte(LegacyRolloutKey)

// LegacyRolloutKey is the key of the legacy record in a rollout's bucket;
// a commit that writes the rollout in records deletes it (a nil record).
const LegacyRolloutKey = "legacy"

// RolloutWrite is what one commit changes in one rollout's records (opaque
// records owned by the rollout engine, under keys it chooses).
type RolloutWrite struct {
	// ID is the rollout (deployment) id.
	ID string
	// Records are the records to put, by key; a nil value deletes its key.
	Records map[string][]byte
}

// RolloutBatch is what the rollout engine commits in one transaction: its
// records, and the assignments its decisions made, so that no assignment
// is ever visible to a node before the decision that made it is durable.
type RolloutBatch struct {
	Rollouts []RolloutWrite
	Assign   []Assignment
}

// Assignment assigns one signed manifest to nodes, as [DB.Assign] does.
type Assignment struct {
	Nodes  []string
	Signed []byte
}

// CommitRollouts writes b in one transaction, at once: the rollout engine
// batches itself (everything staged while a commit is written goes into
// the next), so bbolt's Batch, which waits up to 10 ms to gather calls,
// would only add that wait to every node's answer.
func (db *DB) CommitRollouts(b RolloutBatch) error {
	type assignment struct {
		nodes []string
		v     []byte
	}
	as := make([]assignment, 0, len(b.Assign))
	for _, a := range b.Assign {
		if err := validIDs(a.Nodes); err != nil {
			return fmt.Errorf("store: commit rollouts: %w", err)
		}
		v, _, err := newAssignment(a.Signed)
		if err != nil {
			return fmt.Errorf("store: commit rollouts: %w", err)
		}
		as = append(as, assignment{a.Nodes, v})
	}
	for _, w := range b.Rollouts {
		if w.ID == "" || len(w.ID) > bolt.MaxKeySize {
			return fmt.Errorf("store: commit rollouts: rollout id %q", w.ID)
		}
		for k := range w.Records {
			if k == "" || len(k) > bolt.MaxKeySize {
				return fmt.Errorf("store: commit rollouts: record key of %d bytes", len(k))
			}
		}
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		all, err := tx.CreateBucketIfNotExists(bucketRollouts)
		if err != nil {
			return err
		}
		for _, w := range b.Rollouts {
			rb, err := all.CreateBucketIfNotExists([]byte(w.ID))
			if err != nil {
				return fmt.Errorf("rollout %s: %w", w.ID, err)
			}
			// Put in key order: neighbouring records share pages.
			for _, k := range slices.Sorted(maps.Keys(w.Records)) {
				if v := w.Records[k]; v == nil {
					err = rb.Delete([]byte(k))
				} else {
					err = rb.Put([]byte(k), v)
				}
				if err != nil {
					return fmt.Errorf("rollout %s: %w", w.ID, err)
				}
			}
		}
		ab := tx.Bucket(bucketAssignments)
		for _, a := range as {
			for _, id := range a.nodes {
				if bytes.Equal(ab.Get([]byte(id)), a.v) {
					continue
				}
				if err := ab.Put([]byte(id), a.v); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: commit rollouts: %w", err)
	}
	return nil
}

// RolloutRecords are one rollout's records as [DB.CommitRollouts] left
// them. Legacy, when not nil, is the whole-rollout record an older gateway
// wrote, which the rollout engine reads and writes again as records.
type RolloutRecords struct {
	ID      string
	Records map[string][]byte
	Legacy  []byte
}

// Rollouts returns the records of every rollout, by id order.
func (db *DB) Rollouts() ([]RolloutRecords, error) {
	var out []RolloutRecords
	err := db.bolt.View(func(tx *bolt.Tx) error {
		all := tx.Bucket(bucketRollouts)
		if all == nil {
			return nil
		}
		return all.ForEach(func(id, v []byte) error {
			rb := all.Bucket(id)
			if rb == nil {
				return fmt.Errorf("rollout %q is not a bucket", id)
			}
			r := RolloutRecords{ID: string(id), Records: map[string][]byte{}}
			err := rb.ForEach(func(k, v []byte) error {
				if bytes.Equal(k, keyLegacyRollout) {
					r.Legacy = bytes.Clone(v)
				} else {
					r.Records[string(k)] = bytes.Clone(v)
				}
				return nil
			})
			out = append(out, r)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: rollouts: %w", err)
	}
	return out, nil
}

// migrateRolloutsToBuckets is schema step 1 -> 2: the value rollouts/<id>
// (one record of the whole rollout) becomes rollouts/<id>/legacy, inside a
// bucket per rollout where the engine now writes one record per node.
func migrateRolloutsToBuckets(tx *bolt.Tx) error {
	all := tx.Bucket(bucketRollouts)
	if all == nil {
		return nil
	}
	old := map[string][]byte{}
	err := all.ForEach(func(k, v []byte) error {
		if v != nil {
			old[string(k)] = bytes.Clone(v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for id, v := range old {
		if err := all.Delete([]byte(id)); err != nil {
			return err
		}
		rb, err := all.CreateBucket([]byte(id))
		if err != nil {
			return err
		}
		if err := rb.Put(keyLegacyRollout, v); err != nil {
			return err
		}
	}
	return nil
}
