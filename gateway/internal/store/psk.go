package store

import (
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"edgeota/protocol"
	"edgeota/protocol/provision"
)

var bucketPSKs = []byte("psks")

// ValidatePSK checks a node id and its key before they are stored.
func ValidatePSK(node string, key []byte) error {
	if !protocol.ValidID(node) {
		return fmt.Errorf("node id %q does not match [A-Za-z0-9._-]{1,64}", node)
	}
	if len(key) < provision.MinPSKLen || len(key) > provision.MaxPSKLen {
		return fmt.Errorf("node %s: key of %d bytes: want %d to %d", node, len(key), provision.MinPSKLen, provision.MaxPSKLen)
	}
	return nil
}

// PutPSKs stores nodes' DTLS pre-shared keys, replacing earlier ones, all
// in one transaction: either every key is stored or none. It returns the
// ids whose key was new or changed.
func (db *DB) PutPSKs(keys map[string][]byte) ([]string, error) {
	for node, k := range keys {
		if err := ValidatePSK(node, k); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	var changed []string
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketPSKs)
		if err != nil {
			return err
		}
		for node, k := range keys {
			if old := b.Get([]byte(node)); old != nil && string(old) == string(k) {
				continue
			}
			if err := b.Put([]byte(node), k); err != nil {
				return err
			}
			changed = append(changed, node)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: put keys: %w", err)
	}
	slices.Sort(changed)
	return changed, nil
}

// PSK returns a node's pre-shared key, or ErrNotFound.
func (db *DB) PSK(node string) ([]byte, error) {
	var out []byte
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketPSKs); b != nil {
			if v := b.Get([]byte(node)); v != nil {
				out = append([]byte(nil), v...)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: key of %s: %w", node, err)
	}
	if out == nil {
		return nil, fmt.Errorf("store: key of %s: %w", node, ErrNotFound)
	}
	return out, nil
}

// DeletePSK forgets a node's key; the node can no longer open a session.
func (db *DB) DeletePSK(node string) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPSKs)
		if b == nil || b.Get([]byte(node)) == nil {
			return ErrNotFound
		}
		return b.Delete([]byte(node))
	})
	if err != nil {
		return fmt.Errorf("store: delete key of %s: %w", node, err)
	}
	return nil
}

// PSKNodes returns the ids of the nodes that have a key, sorted.
func (db *DB) PSKNodes() ([]string, error) {
	var out []string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPSKs)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: list keys: %w", err)
	}
	return out, nil
}
