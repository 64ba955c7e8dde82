package store

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"edgeota/protocol"
)

// Node is what the gateway knows of a node: its last Hello, its latest
// health report and status event, and where and when it was last heard.
type Node struct {
	// ID is the node id.
	ID string
	// Class, Labels, Component, AgentVersion, RunningSeq, RunningDigest,
	// ActiveSlot, ActiveState, EpochFloor, Other and Runtime are from the
	// last Hello (docs/protocol.md section 4).
	Class         protocol.Class
	Labels        map[string]string
	Component     string
	AgentVersion  string
	RunningSeq    uint64
	RunningDigest protocol.Digest
	ActiveSlot    protocol.Slot
	ActiveState   protocol.SlotState
	EpochFloor    uint64
	Other         *protocol.OtherSlot
	// Runtime is Hello key 64 (v1.1): the inference runtime the node
	// offers, empty when it names none (a v1 node).
	Runtime string
	// DeltaFormats is Hello key 65 (v1.4): the delta formats the node
	// applies, nil when it names none.
	DeltaFormats []uint64
	// Transfer is the latest transfer a status event reported (status
	// key 64, v1.4), nil before the first.
	Transfer *Transfer
	// LastState, LastReason and LastCode are from the latest status event;
	// zero before the first.
	LastState  protocol.State
	LastReason string
	LastCode   protocol.Reason
	// LastSeen is when the node's last Hello, report or event was stored.
	LastSeen time.Time
	// Addr is the endpoint it came from (host:port, or a PSK identity).
	Addr string
	// Health is the latest health report, nil before the first.
	Health *protocol.HealthReport
	// HealthReports and StatusEvents count what was stored, duplicates of
	// the latest (same boot count and number) excluded.
	HealthReports uint64
	StatusEvents  uint64
}

// nodeRecord is the value of nodes/<id>.
type nodeRecord struct {
	Class         protocol.Class         `cbor:"1,keyasint"`
	Labels        map[string]string      `cbor:"2,keyasint,omitempty"`
	Component     string                 `cbor:"3,keyasint"`
	AgentVersion  string                 `cbor:"4,keyasint"`
	RunningSeq    uint64                 `cbor:"5,keyasint"`
	RunningDigest protocol.Digest        `cbor:"6,keyasint"`
	ActiveSlot    protocol.Slot          `cbor:"7,keyasint"`
	ActiveState   protocol.SlotState     `cbor:"8,keyasint"`
	EpochFloor    uint64                 `cbor:"9,keyasint"`
	Other         *protocol.OtherSlot    `cbor:"10,keyasint,omitempty"`
	LastState     protocol.State         `cbor:"11,keyasint"`
	LastReason    string                 `cbor:"12,keyasint"`
	LastCode      protocol.Reason        `cbor:"13,keyasint"`
	LastSeen      int64                  `cbor:"14,keyasint"` // Unix nanoseconds
	Addr          string                 `cbor:"15,keyasint"`
	Health        *protocol.HealthReport `cbor:"16,keyasint,omitempty"`
	HealthReports uint64                 `cbor:"17,keyasint"`
	StatusEvents  uint64                 `cbor:"18,keyasint"`
	// EventBoot and EventNumber identify the latest status event.
	EventBoot   uint64 `cbor:"19,keyasint"`
	EventNumber uint64 `cbor:"20,keyasint"`
	// Runtime is absent from records written before Hello key 64 and
	// from nodes that name none.
	Runtime string `cbor:"21,keyasint,omitempty"`
	// DeltaFormats (Hello key 65) and Transfer (status key 64) are absent
	// from records written before v1.4 and from nodes that sent none.
	DeltaFormats []uint64  `cbor:"22,keyasint,omitempty"`
	Transfer     *Transfer `cbor:"23,keyasint,omitempty"`
}

// Transfer is how a node fetched, or fetches, the image of an update, as
// its latest status event with a transfer (key 64) said.
type Transfer struct {
	// Seq and Digest are the manifest seq and image digest of the status
	// event (keys 3 and 4).
	Seq    uint64          `cbor:"1,keyasint"`
	Digest protocol.Digest `cbor:"2,keyasint"`
	// State is the status event's state.
	State protocol.State `cbor:"3,keyasint"`
	// Kind, Delta, Fetched and Fallback are the transfer's keys 1 to 4.
	Kind     protocol.TransferKind `cbor:"4,keyasint"`
	Delta    protocol.Digest       `cbor:"5,keyasint,omitzero"`
	Fetched  uint64                `cbor:"6,keyasint"`
	Fallback string                `cbor:"7,keyasint,omitempty"`
}

// TransferOf returns the transfer of status event e, nil when it carries
// none.
func TransferOf(e *protocol.StatusEvent) *Transfer {
	t := e.Transfer
	if t == nil {
		return nil
	}
	return &Transfer{Seq: e.Seq, Digest: e.Digest, State: e.State, Kind: t.Kind, Delta: t.Delta, Fetched: t.Fetched, Fallback: t.Fallback}
}

func (r *nodeRecord) node(id string) *Node {
	return &Node{
		ID:            id,
		Class:         r.Class,
		Labels:        r.Labels,
		Component:     r.Component,
		AgentVersion:  r.AgentVersion,
		RunningSeq:    r.RunningSeq,
		RunningDigest: r.RunningDigest,
		ActiveSlot:    r.ActiveSlot,
		ActiveState:   r.ActiveState,
		EpochFloor:    r.EpochFloor,
		Other:         r.Other,
		Runtime:       r.Runtime,
		DeltaFormats:  r.DeltaFormats,
		Transfer:      r.Transfer,
		LastState:     r.LastState,
		LastReason:    r.LastReason,
		LastCode:      r.LastCode,
		LastSeen:      fromUnixNano(r.LastSeen),
		Addr:          r.Addr,
		Health:        r.Health,
		HealthReports: r.HealthReports,
		StatusEvents:  r.StatusEvents,
	}
}

// getNode reads nodes/<id>; nil when absent.
func getNode(nodes *bolt.Bucket, id string) (*nodeRecord, error) {
	v := nodes.Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	r := new(nodeRecord)
	if err := decodeRecord(v, r); err != nil {
		return nil, fmt.Errorf("node %s: %w", id, err)
	}
	return r, nil
}

// putNode writes nodes/<id>, counting a new node in the registry's size
// (node_count.go).
func putNode(nodes *bolt.Bucket, id string, r *nodeRecord) error {
	v, err := encodeRecord(r)
	if err != nil {
		return err
	}
	if nodes.Get([]byte(id)) == nil {
		if err := nodes.SetSequence(nodes.Sequence() + 1); err != nil {
			return err
		}
	}
	return nodes.Put([]byte(id), v)
}

// PutHello creates or updates the node of h, from addr, and sets its
// LastSeen. A new node is refused with [ErrRegistryFull], nothing written,
// when the registry holds its bound ([WithMaxNodes]). When the node has no assignment and the standing rule's
// manifest is for its class and component, the rule is assigned to it and
// changed is true, so the caller can notify the node's observers.
// Concurrent calls share transactions, so a call may wait up to bbolt's
// MaxBatchDelay (10 ms) before it commits.
func (db *DB) PutHello(h *protocol.Hello, addr string) (n *Node, changed bool, err error) {
	if err := h.Validate(); err != nil {
		return nil, false, fmt.Errorf("store: hello: %w", err)
	}
	now := unixNano(db.now())
	labels := maps.Clone(h.Labels)
	var other *protocol.OtherSlot
	if h.Other != nil {
		o := *h.Other
		other = &o
	}
	if db.helloRefused(h.NodeID) {
		return nil, false, fmt.Errorf("store: hello from %s: %w (%d nodes)", h.NodeID, ErrRegistryFull, db.maxNodes)
	}
	full := false
	err = db.bolt.Batch(func(tx *bolt.Tx) error {
		n, changed, full = nil, false, false // Batch may run this more than once
		nodes := tx.Bucket(bucketNodes)
		r, err := getNode(nodes, h.NodeID)
		if err != nil {
			return err
		}
		if r == nil {
			// Checked here again, in the transaction: concurrent Hellos
			// passed the check above together. Refused without an error,
			// which would make Batch roll back its other Hellos.
			if db.registryFull(nodes, h.NodeID) {
				full = true
				return nil
			}
			r = new(nodeRecord)
		}
		r.Class, r.Labels, r.Component, r.AgentVersion = h.Class, labels, h.Component, h.AgentVersion
		r.RunningSeq, r.RunningDigest, r.ActiveSlot, r.ActiveState = h.RunningSeq, h.RunningDigest, h.ActiveSlot, h.ActiveState
		r.EpochFloor, r.Other, r.Runtime = h.EpochFloor, other, h.Runtime
		r.DeltaFormats = slices.Clone(h.DeltaFormats)
		r.LastSeen, r.Addr = now, addr
		if err := putNode(nodes, h.NodeID, r); err != nil {
			return err
		}
		n = r.node(h.NodeID)

		assignments := tx.Bucket(bucketAssignments)
		rule := tx.Bucket(bucketMeta).Get(keyStanding)
		if rule == nil || assignments.Get([]byte(h.NodeID)) != nil {
			return nil
		}
		a, err := decodeAssignment(rule)
		if err != nil {
			return fmt.Errorf("standing rule: %w", err)
		}
		if !a.matches(r) {
			return nil
		}
		changed = true
		return assignments.Put([]byte(h.NodeID), bytes.Clone(rule))
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: hello from %s: %w", h.NodeID, err)
	}
	if full {
		return nil, false, fmt.Errorf("store: hello from %s: %w (%d nodes)", h.NodeID, ErrRegistryFull, db.maxNodes)
	}
	if changed {
		db.log.Info("store: standing rule assigned", "node", h.NodeID)
	}
	return n, changed, nil
}

// PutHealth stores r as the latest health report of its node, counts it
// and sets LastSeen and Addr. The node must have said Hello
// ([ErrUnknownNode]). A duplicate of the latest report (same boot count and
// number, e.g. a retransmission) only refreshes LastSeen. Concurrent calls
// share transactions and may wait up to 10 ms. The gateway itself records
// health reports with the node's other activity, once a second
// ([DB.Record]): a commit per report is what it avoids.
func (db *DB) PutHealth(r *protocol.HealthReport, addr string) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("store: health report: %w", err)
	}
	now := unixNano(db.now())
	report := *r
	report.Metrics = maps.Clone(r.Metrics)
	err := db.update(r.NodeID, func(n *nodeRecord) {
		n.LastSeen, n.Addr = now, addr
		if h := n.Health; h != nil && h.BootCount == report.BootCount && h.Number == report.Number {
			return
		}
		n.Health = &report
		n.HealthReports++
	})
	if err != nil {
		return fmt.Errorf("store: health report: %w", err)
	}
	return nil
}

// PutStatus stores the state, reason code and reason of e as the node's
// latest, counts it and sets LastSeen and Addr. The node must have said
// Hello ([ErrUnknownNode]). A duplicate of the latest event (same boot
// count and number) only refreshes LastSeen. Concurrent calls share
// transactions. The gateway itself records status events with the node's
// other activity, once a second ([DB.Record]).
func (db *DB) PutStatus(e *protocol.StatusEvent, addr string) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("store: status event: %w", err)
	}
	now := unixNano(db.now())
	err := db.update(e.NodeID, func(n *nodeRecord) {
		n.LastSeen, n.Addr = now, addr
		if n.StatusEvents > 0 && n.EventBoot == e.BootCount && n.EventNumber == e.Number {
			return
		}
		n.LastState, n.LastCode, n.LastReason = e.State, e.Code, e.Reason
		n.EventBoot, n.EventNumber = e.BootCount, e.Number
		n.StatusEvents++
		if t := TransferOf(e); t != nil {
			n.Transfer = t
		}
	})
	if err != nil {
		return fmt.Errorf("store: status event: %w", err)
	}
	return nil
}

// update applies fn to the record of an existing node in a batched
// transaction. fn must depend only on the record it is given: Batch may run
// it more than once.
func (db *DB) update(id string, fn func(*nodeRecord)) error {
	return db.bolt.Batch(func(tx *bolt.Tx) error {
		nodes := tx.Bucket(bucketNodes)
		r, err := getNode(nodes, id)
		if err != nil {
			return err
		}
		if r == nil {
			return fmt.Errorf("node %s: %w", id, ErrUnknownNode)
		}
		fn(r)
		return putNode(nodes, id, r)
	})
}

// Node returns the node with that id, or an error wrapping [ErrNotFound].
func (db *DB) Node(id string) (*Node, error) {
	var r *nodeRecord
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		r, err = getNode(tx.Bucket(bucketNodes), id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if r == nil {
		return nil, fmt.Errorf("store: node %s: %w", id, ErrNotFound)
	}
	return r.node(id), nil
}

// Nodes returns every known node, sorted by id.
func (db *DB) Nodes() ([]*Node, error) {
	var out []*Node
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
			var r nodeRecord
			if err := decodeRecord(v, &r); err != nil {
				return fmt.Errorf("node %s: %w", k, err)
			}
			out = append(out, r.node(string(k)))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: nodes: %w", err)
	}
	return out, nil
}
