package store

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"edgeota/protocol"
)

// Activity is what one node sent since the gateway last recorded it: its
// latest health report and status event, and how many of each.
type Activity struct {
	Node     string
	Addr     string
	Seen     time.Time
	Health   *protocol.HealthReport // latest, or nil
	Healths  uint64
	Status   *protocol.StatusEvent // latest, or nil
	Statuses uint64
	// Transfer is the latest transfer a status event reported (status key
	// 64), or nil: it outlives a later status event without one.
	Transfer *Transfer
}

// Record stores the activity of many nodes in one transaction: the gateway
// aggregates reports in memory and records them every second, so that
// thousands of reports a second cost one commit, not one each. Nodes that
// never said Hello are skipped.
func (db *DB) Record(acts []Activity) error {
	if len(acts) == 0 {
		return nil
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		nodes := tx.Bucket(bucketNodes)
		for _, a := range acts {
			r, err := getNode(nodes, a.Node)
			if err != nil {
				return err
			}
			if r == nil {
				continue
			}
			r.LastSeen, r.Addr = unixNano(a.Seen), a.Addr
			if a.Health != nil {
				h := *a.Health
				r.Health = &h
				r.HealthReports += a.Healths
			}
			if e := a.Status; e != nil {
				r.LastState, r.LastCode, r.LastReason = e.State, e.Code, e.Reason
				r.EventBoot, r.EventNumber = e.BootCount, e.Number
				r.StatusEvents += a.Statuses
			}
			if a.Transfer != nil {
				t := *a.Transfer
				r.Transfer = &t
			}
			if err := putNode(nodes, a.Node, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: record activity: %w", err)
	}
	return nil
}
