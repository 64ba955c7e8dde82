package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

var keyDeploySeq = []byte("deployment-seq")

// DeploymentSeq returns the highest deployment seq the gateway applied (0
// before the first).
func (db *DB) DeploymentSeq() (uint64, error) {
	var seq uint64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyDeploySeq); len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: deployment seq: %w", err)
	}
	return seq, nil
}

// ApplyDeployment records a deployment as applied in one transaction: its
// seq becomes the highest applied, and the signed manifest is assigned to
// nodes (none when a rollout assigns them). It refuses (returning applied
// == false) a seq not above the highest.
func (db *DB) ApplyDeployment(seq uint64, nodes []string, manifest []byte) (applied bool, err error) {
	if err := validIDs(nodes); err != nil {
		return false, fmt.Errorf("store: apply deployment: %w", err)
	}
	rec, _, err := newAssignment(manifest)
	if err != nil {
		return false, fmt.Errorf("store: apply deployment: %w", err)
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		applied = false
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyDeploySeq); len(v) == 8 && binary.BigEndian.Uint64(v) >= seq {
			return nil
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], seq)
		if err := meta.Put(keyDeploySeq, b[:]); err != nil {
			return err
		}
		assignments := tx.Bucket(bucketAssignments)
		for _, id := range nodes {
			if err := assignments.Put([]byte(id), rec); err != nil {
				return err
			}
		}
		applied = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: apply deployment: %w", err)
	}
	return applied, nil
}
