package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketAudit = []byte("audit")
	// bucketAuditLast holds, by node id, the status event of the node's
	// latest audit entry: its boot count and number, 8 bytes each.
	bucketAuditLast = []byte("audit-last")
)

// ErrAuditDuplicate says that the node's latest audit entry already
// records that status event (same boot count and number): the node posted
// it again, its answer lost or its DTLS session dropped in between, and
// no entry is added.
var ErrAuditDuplicate = errors.New("status event already in the audit log")

// MaxAuditEntries is how many audit entries the store keeps; older ones
// are dropped as new ones arrive (they also went upstream as status
// events).
const MaxAuditEntries = 100000

// AuditEntry records who provisioned which node, with what, and when: one
// per provisioning commit a node reported (status event state 9).
type AuditEntry struct {
	// Seq numbers the entries, from 1, in the order they were recorded.
	Seq uint64 `json:"seq"`
	// At is when the gateway recorded it.
	At time.Time `json:"at"`
	// Node is the node provisioned.
	Node string `json:"node"`
	// Actor is who provisioned it: the operator key id (hex) the node
	// reports (status event key 10).
	Actor string `json:"actor"`
	// Detail is the node's reason text, such as "provisioned, serial 7".
	Detail string `json:"detail,omitempty"`
	// Labels and Component are what the node said in its Hello under the
	// new configuration.
	Labels    map[string]string `json:"labels,omitempty"`
	Component string            `json:"component,omitempty"`
	// From is the endpoint the event came from; Authenticated is true when
	// it came over a DTLS session of that node.
	From          string `json:"from"`
	Authenticated bool   `json:"authenticated"`
	// BootCount and Number identify the status event that reported the
	// commit (docs/protocol.md section 4, keys 8 and 9); zero when not
	// known.
	BootCount uint64 `json:"boot_count,omitempty"`
	Number    uint64 `json:"number,omitempty"`
}

// AddAudit records an entry and returns it with its Seq. An entry of the
// status event the node's latest entry records (BootCount and Number, when
// set) is not added: the error wraps [ErrAuditDuplicate].
func (db *DB) AddAudit(e AuditEntry) (AuditEntry, error) {
	event := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, e.BootCount), e.Number)
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		last, err := tx.CreateBucketIfNotExists(bucketAuditLast)
		if err != nil {
			return err
		}
		if e.BootCount != 0 || e.Number != 0 {
			if string(last.Get([]byte(e.Node))) == string(event) {
				return ErrAuditDuplicate
			}
			if err := last.Put([]byte(e.Node), event); err != nil {
				return err
			}
		}
		b, err := tx.CreateBucketIfNotExists(bucketAudit)
		if err != nil {
			return err
		}
		e.Seq, err = b.NextSequence()
		if err != nil {
			return err
		}
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := b.Put(binary.BigEndian.AppendUint64(nil, e.Seq), v); err != nil {
			return err
		}
		if e.Seq > MaxAuditEntries { // keys are consecutive: drop the one that fell out
			return b.Delete(binary.BigEndian.AppendUint64(nil, e.Seq-MaxAuditEntries))
		}
		return nil
	})
	if err != nil {
		return AuditEntry{}, fmt.Errorf("store: add audit entry: %w", err)
	}
	return e, nil
}

// Audit returns the recorded entries, oldest first, of one node or of all
// when node is "".
func (db *DB) Audit(node string) ([]AuditEntry, error) {
	var out []AuditEntry
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var e AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			if node == "" || e.Node == node {
				out = append(out, e)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: audit: %w", err)
	}
	return out, nil
}
