package store

import (
	"bytes"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"edgeota/protocol"
)

// assignmentRecord is the value of assignments/<node id> and meta/standing:
// the signed manifest and what the store needs of it without parsing.
type assignmentRecord struct {
	Signed    []byte          `cbor:"1,keyasint"`
	Digest    protocol.Digest `cbor:"2,keyasint"`
	Class     protocol.Class  `cbor:"3,keyasint"`
	Component string          `cbor:"4,keyasint"`
	Seq       uint64          `cbor:"5,keyasint"`
	// Requires is the manifest's key 12; absent when it has none, and in
	// records written before the store kept it.
	Requires *protocol.Requires `cbor:"6,keyasint,omitempty"`
}

// newAssignment parses signed and returns its record, encoded.
func newAssignment(signed []byte) ([]byte, *assignmentRecord, error) {
	if len(signed) == 0 {
		return nil, nil, errors.New("empty manifest")
	}
	m, err := parseManifest(signed)
	if err != nil {
		return nil, nil, fmt.Errorf("manifest: %w", err)
	}
	a := &assignmentRecord{Signed: bytes.Clone(signed), Digest: m.Digest, Class: m.Class, Component: m.Component, Seq: m.Seq,
		Requires: m.Requires}
	v, err := encodeRecord(a)
	if err != nil {
		return nil, nil, err
	}
	return v, a, nil
}

// matches reports whether the manifest is for the node's class and
// component, and the node meets its requires as its last Hello shows them
// (agent version, runtime): a node refuses any other (docs/protocol.md
// sections 0 and 3).
func (a *assignmentRecord) matches(n *nodeRecord) bool {
	return a.Class == n.Class && a.Component == n.Component && a.Requires.Met(n.AgentVersion, n.Runtime) == nil
}

func decodeAssignment(v []byte) (*assignmentRecord, error) {
	a := new(assignmentRecord)
	if err := decodeRecord(v, a); err != nil {
		return nil, fmt.Errorf("assignment: %w", err)
	}
	return a, nil
}

// Assign makes signed the manifest each of nodeIDs should run now,
// replacing what they had. The nodes need not have said Hello yet, and the
// image need not be cached. The manifest is parsed, not verified: verifying
// it is the caller's job (nodes verify it again).
func (db *DB) Assign(nodeIDs []string, signed []byte) error {
	if err := validIDs(nodeIDs); err != nil {
		return fmt.Errorf("store: assign: %w", err)
	}
	v, a, err := newAssignment(signed)
	if err != nil {
		return fmt.Errorf("store: assign: %w", err)
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAssignments)
		for _, id := range nodeIDs {
			if bytes.Equal(b.Get([]byte(id)), v) {
				continue
			}
			if err := b.Put([]byte(id), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: assign: %w", err)
	}
	db.log.Info("store: assigned", "nodes", len(nodeIDs), "digest", a.Digest, "seq", a.Seq)
	return nil
}

// Unassign removes the assignments of nodeIDs; a node without one is left
// alone. The standing rule is not applied again until the node's next
// Hello.
func (db *DB) Unassign(nodeIDs []string) error {
	if err := validIDs(nodeIDs); err != nil {
		return fmt.Errorf("store: unassign: %w", err)
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAssignments)
		for _, id := range nodeIDs {
			if err := b.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: unassign: %w", err)
	}
	return nil
}

// Assignment returns the signed manifest assigned to the node, or nil and
// no error when it has none.
func (db *DB) Assignment(nodeID string) ([]byte, error) {
	var signed []byte
	err := db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAssignments).Get([]byte(nodeID))
		if v == nil {
			return nil
		}
		a, err := decodeAssignment(v)
		if err != nil {
			return err
		}
		signed = a.Signed
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: assignment of %s: %w", nodeID, err)
	}
	return signed, nil
}

// SetStandingRule stores signed as the standing rule: the manifest every
// node of its class and component is assigned, now and when a node says
// Hello without an assignment ([DB.PutHello]). It assigns signed to every
// such node already known, replacing their assignments, and returns the ids
// of the nodes whose assignment changed, sorted. nil clears the rule and
// leaves the assignments as they are. As with [DB.Assign], signed is parsed,
// not verified.
func (db *DB) SetStandingRule(signed []byte) ([]string, error) {
	if signed == nil {
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Delete(keyStanding)
		})
		if err != nil {
			return nil, fmt.Errorf("store: clear standing rule: %w", err)
		}
		db.log.Info("store: standing rule cleared")
		return nil, nil
	}
	v, a, err := newAssignment(signed)
	if err != nil {
		return nil, fmt.Errorf("store: standing rule: %w", err)
	}
	var changed []string
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		changed = nil
		if err := tx.Bucket(bucketMeta).Put(keyStanding, v); err != nil {
			return err
		}
		assignments := tx.Bucket(bucketAssignments)
		return tx.Bucket(bucketNodes).ForEach(func(k, nv []byte) error {
			var n nodeRecord
			if err := decodeRecord(nv, &n); err != nil {
				return fmt.Errorf("node %s: %w", k, err)
			}
			if !a.matches(&n) || bytes.Equal(assignments.Get(k), v) {
				return nil
			}
			changed = append(changed, string(k))
			return assignments.Put(k, v) // Put copies the key
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: standing rule: %w", err)
	}
	db.log.Info("store: standing rule set", "digest", a.Digest, "seq", a.Seq, "component", a.Component, "reassigned", len(changed))
	return changed, nil
}

// StandingRule returns the signed manifest of the standing rule, or nil and
// no error when there is none.
func (db *DB) StandingRule() ([]byte, error) {
	var signed []byte
	err := db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(keyStanding)
		if v == nil {
			return nil
		}
		a, err := decodeAssignment(v)
		if err != nil {
			return err
		}
		signed = a.Signed
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: standing rule: %w", err)
	}
	return signed, nil
}

// assignedDigests returns the digests that are assigned to a node or named
// by the standing rule.
func assignedDigests(tx *bolt.Tx) (map[protocol.Digest]struct{}, error) {
	inUse := make(map[protocol.Digest]struct{})
	if v := tx.Bucket(bucketMeta).Get(keyStanding); v != nil {
		a, err := decodeAssignment(v)
		if err != nil {
			return nil, fmt.Errorf("standing rule: %w", err)
		}
		inUse[a.Digest] = struct{}{}
	}
	err := tx.Bucket(bucketAssignments).ForEach(func(k, v []byte) error {
		a, err := decodeAssignment(v)
		if err != nil {
			return fmt.Errorf("node %s: %w", k, err)
		}
		inUse[a.Digest] = struct{}{}
		return nil
	})
	return inUse, err
}

// validIDs checks node ids against docs/protocol.md section 0.
func validIDs(ids []string) error {
	for _, id := range ids {
		if !protocol.ValidID(id) {
			return fmt.Errorf("node id %q does not match [A-Za-z0-9._-]{1,64}", id)
		}
	}
	return nil
}
