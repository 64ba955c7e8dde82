package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

var bucketRollouts = []byte("rollouts")

// PutRollout stores the state of a rollout (an opaque record owned by the
// rollout engine), durably, before the engine acts on it.
func (db *DB) PutRollout(id string, state []byte) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketRollouts)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), state)
	})
	if err != nil {
		return fmt.Errorf("store: put rollout %s: %w", id, err)
	}
	return nil
}

// Rollouts returns the stored state of every rollout, by id.
func (db *DB) Rollouts() (map[string][]byte, error) {
	out := map[string][]byte{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRollouts)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			out[string(k)] = append([]byte(nil), v...)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: rollouts: %w", err)
	}
	return out, nil
}
