package store

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

var bucketObservers = []byte("observers")

// Observer is a saved observation of a node's manifest resource, so that
// notifications resume after a gateway restart (RFC 7641 lets a server keep
// its observers).
type Observer struct {
	Node  string
	Addr  string // host:port of the node's endpoint
	Token []byte
}

func observerKey(node, addr string) []byte { return []byte(node + "\x00" + addr) }

// PutObserver saves an observation (replacing one of the same node and
// endpoint).
func (db *DB) PutObserver(o Observer) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketObservers)
		if err != nil {
			return err
		}
		return b.Put(observerKey(o.Node, o.Addr), o.Token)
	})
	if err != nil {
		return fmt.Errorf("store: put observer: %w", err)
	}
	return nil
}

// DeleteObserver forgets an observation.
func (db *DB) DeleteObserver(node, addr string) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketObservers); b != nil {
			return b.Delete(observerKey(node, addr))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: delete observer: %w", err)
	}
	return nil
}

// Observers returns every saved observation.
func (db *DB) Observers() ([]Observer, error) {
	var out []Observer
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketObservers)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			i := bytes.IndexByte(k, 0)
			if i < 0 {
				return nil
			}
			out = append(out, Observer{Node: string(k[:i]), Addr: string(k[i+1:]), Token: append([]byte(nil), v...)})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: observers: %w", err)
	}
	return out, nil
}
