package store

import (
	"fmt"
	"maps"
	"slices"

	bolt "go.etcd.io/bbolt"

	"edgeota/protocol"
)

// HelloChanges reports whether [DB.PutHello] of h would change what the
// database holds beyond the node's LastSeen and Addr: false when the node
// is known and its record already holds every field of h, and the
// standing rule has nothing to assign it. A Hello that changes nothing
// else needs no commit: the caller records LastSeen and Addr with the
// node's other activity (package activity), once a second. It only reads.
func (db *DB) HelloChanges(h *protocol.Hello) (bool, error) {
	changes := true
	err := db.bolt.View(func(tx *bolt.Tx) error {
		r, err := getNode(tx.Bucket(bucketNodes), h.NodeID)
		if err != nil || r == nil || !r.holds(h) {
			return err
		}
		if rule := tx.Bucket(bucketMeta).Get(keyStanding); rule != nil && tx.Bucket(bucketAssignments).Get([]byte(h.NodeID)) == nil {
			a, err := decodeAssignment(rule)
			if err != nil {
				return fmt.Errorf("standing rule: %w", err)
			}
			if a.matches(r) {
				return nil // the rule would be assigned
			}
		}
		changes = false
		return nil
	})
	if err != nil {
		return true, fmt.Errorf("store: hello from %s: %w", h.NodeID, err)
	}
	return changes, nil
}

// holds reports whether the record holds every field of h that
// [DB.PutHello] stores, LastSeen and Addr aside.
func (r *nodeRecord) holds(h *protocol.Hello) bool {
	sameOther := (r.Other == nil && h.Other == nil) || (r.Other != nil && h.Other != nil && *r.Other == *h.Other)
	return sameOther && r.Class == h.Class && maps.Equal(r.Labels, h.Labels) && r.Component == h.Component &&
		r.AgentVersion == h.AgentVersion && r.RunningSeq == h.RunningSeq && r.RunningDigest == h.RunningDigest &&
		r.ActiveSlot == h.ActiveSlot && r.ActiveState == h.ActiveState && r.EpochFloor == h.EpochFloor && r.Runtime == h.Runtime &&
		slices.Equal(r.DeltaFormats, h.DeltaFormats)
}
