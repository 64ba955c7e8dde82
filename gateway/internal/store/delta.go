package store

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"edgeota/protocol"
)

// Delta is a delta the gateway computed from one cached image (Base) to
// another (Target) of the same component (docs/protocol.md "Delta updates
// (v1.4)"), or the record that computing one was not worth it.
type Delta struct {
	// Base and Target are the images' digests, the delta's key.
	Base, Target protocol.Digest
	// Digest is the SHA-256 of the delta's bytes, its name on
	// /d/{hex}; zero when Stored is false.
	Digest protocol.Digest
	// Format is the delta format.
	Format uint64
	// Size is the delta's size in bytes, also when it was not stored.
	Size int64
	// Stored is false when the delta was computed but not kept: not
	// small enough to offer. Such a record keeps the pair from being
	// computed again.
	Stored bool
	// Added is when it was computed; LastUsed when a transfer of it last
	// started ([DB.TouchDelta]), or Added.
	Added, LastUsed time.Time
}

// deltaRecord is the value of deltas/<base><target>.
type deltaRecord struct {
	Digest   protocol.Digest `cbor:"1,keyasint"`
	Format   uint64          `cbor:"2,keyasint"`
	Size     uint64          `cbor:"3,keyasint"`
	Stored   bool            `cbor:"4,keyasint"`
	Added    int64           `cbor:"5,keyasint"` // Unix nanoseconds
	LastUsed int64           `cbor:"6,keyasint"`
}

func deltaKey(base, target protocol.Digest) []byte {
	k := make([]byte, 0, 64)
	return append(append(k, base[:]...), target[:]...)
}

func (r *deltaRecord) delta(k []byte) Delta {
	return Delta{Base: protocol.Digest(k[:32]), Target: protocol.Digest(k[32:]), Digest: r.Digest, Format: r.Format,
		Size: int64(r.Size), Stored: r.Stored, Added: fromUnixNano(r.Added), LastUsed: fromUnixNano(r.LastUsed)}
}

// PutDelta stores the delta data from base to target in format, or, when
// data is nil, the record that a delta of size bytes was computed and not
// kept. It fails with [ErrNotFound] when base or target is no longer
// stored (evicted while the delta was computed), and stores nothing. A
// delta already stored for the pair is replaced.
func (db *DB) PutDelta(base, target protocol.Digest, format uint64, size int64, data []byte) (Delta, error) {
	now := unixNano(db.now())
	rec := &deltaRecord{Format: format, Size: uint64(size), Added: now, LastUsed: now}
	if data != nil {
		rec.Digest, rec.Stored, rec.Size = sha256.Sum256(data), true, uint64(len(data))
	}
	key := deltaKey(base, target)
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		models := tx.Bucket(bucketModels)
		if models.Get(base[:]) == nil || models.Get(target[:]) == nil {
			return fmt.Errorf("delta %s to %s: base or target: %w", base, target, ErrNotFound)
		}
		deltas, blobs := tx.Bucket(bucketDeltas), tx.Bucket(bucketDeltaBlobs)
		if err := deleteDelta(deltas, blobs, key); err != nil {
			return err
		}
		if rec.Stored {
			if err := db.putBlob(blobs, rec.Digest, data); err != nil {
				return err
			}
		}
		v, err := encodeRecord(rec)
		if err != nil {
			return err
		}
		return deltas.Put(key, v)
	})
	if err != nil {
		return Delta{}, fmt.Errorf("store: put delta: %w", err)
	}
	return rec.delta(key), nil
}

// putBlob writes data in chunks under blobs/<d>, replacing what is there.
func (db *DB) putBlob(blobs *bolt.Bucket, d protocol.Digest, data []byte) error {
	if blobs.Bucket(d[:]) != nil {
		if err := blobs.DeleteBucket(d[:]); err != nil {
			return err
		}
	}
	b, err := blobs.CreateBucket(d[:])
	if err != nil {
		return err
	}
	b.FillPercent = 1.0
	var key [8]byte
	for i, off := uint64(0), 0; off < len(data); i, off = i+1, off+db.chunkSize {
		binary.BigEndian.PutUint64(key[:], i)
		if err := b.Put(key[:], data[off:min(off+db.chunkSize, len(data))]); err != nil {
			return err
		}
	}
	return b.SetSequence(uint64(len(data)))
}

// deleteDelta deletes deltas/<key> and its chunks, when a record is there.
// A blob is shared by the pairs whose deltas have the same bytes: it goes
// with the last of them.
func deleteDelta(deltas, blobs *bolt.Bucket, key []byte) error {
	v := deltas.Get(key)
	if v == nil {
		return nil
	}
	var r deltaRecord
	if err := decodeRecord(v, &r); err != nil {
		return fmt.Errorf("delta %x: %w", key, err)
	}
	if err := deltas.Delete(key); err != nil {
		return err
	}
	if !r.Stored || blobShared(deltas, r.Digest) {
		return nil
	}
	err := blobs.DeleteBucket(r.Digest[:])
	if errors.Is(err, berrors.ErrBucketNotFound) {
		return nil
	}
	return err
}

// blobShared reports whether a record of deltas names blob d.
func blobShared(deltas *bolt.Bucket, d protocol.Digest) bool {
	shared := false
	deltas.ForEach(func(_, v []byte) error {
		var r deltaRecord
		if decodeRecord(v, &r) == nil && r.Stored && r.Digest == d {
			shared = true
			return errStop
		}
		return nil
	})
	return shared
}

var errStop = errors.New("stop")

// deleteDeltasOf deletes the deltas whose base or target is d: a delta
// goes with either image.
func deleteDeltasOf(tx *bolt.Tx, d protocol.Digest) error {
	deltas, blobs := tx.Bucket(bucketDeltas), tx.Bucket(bucketDeltaBlobs)
	var keys [][]byte
	if err := deltas.ForEach(func(k, _ []byte) error {
		if bytes.Equal(k[:32], d[:]) || bytes.Equal(k[32:], d[:]) {
			keys = append(keys, bytes.Clone(k))
		}
		return nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := deleteDelta(deltas, blobs, k); err != nil {
			return err
		}
	}
	return nil
}

// Deltas returns every delta record, stored or not, ordered by base and
// target.
func (db *DB) Deltas() ([]Delta, error) {
	var out []Delta
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDeltas).ForEach(func(k, v []byte) error {
			var r deltaRecord
			if err := decodeRecord(v, &r); err != nil {
				return fmt.Errorf("delta %x: %w", k, err)
			}
			out = append(out, r.delta(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: deltas: %w", err)
	}
	return out, nil
}

// ReadDeltaAt reads the delta with digest d as [DB.ReadAt] reads an image.
func (db *DB) ReadDeltaAt(d protocol.Digest, p []byte, off int64) (int, error) {
	return db.readChunks(bucketDeltaBlobs, d, p, off)
}

// TouchDelta sets LastUsed of the deltas with digest d, and of their base
// and target images, to now; call it when a transfer starts. The base is
// no longer assigned to the nodes fetching the delta, so without this the
// image quota would evict it first, and the delta with it, while nodes
// still fetch it. It fails with [ErrNotFound] when none is stored.
func (db *DB) TouchDelta(d protocol.Digest) error {
	now := unixNano(db.now())
	err := db.bolt.Batch(func(tx *bolt.Tx) error {
		deltas := tx.Bucket(bucketDeltas)
		type kv struct {
			k []byte
			r deltaRecord
		}
		var hit []kv
		if err := deltas.ForEach(func(k, v []byte) error {
			var r deltaRecord
			if err := decodeRecord(v, &r); err != nil {
				return fmt.Errorf("delta %x: %w", k, err)
			}
			if r.Stored && r.Digest == d {
				hit = append(hit, kv{bytes.Clone(k), r})
			}
			return nil
		}); err != nil {
			return err
		}
		if len(hit) == 0 {
			return fmt.Errorf("delta %s: %w", d, ErrNotFound)
		}
		models := tx.Bucket(bucketModels)
		for _, h := range hit {
			h.r.LastUsed = now
			v, err := encodeRecord(&h.r)
			if err != nil {
				return err
			}
			if err := deltas.Put(h.k, v); err != nil {
				return err
			}
			for _, img := range []protocol.Digest{protocol.Digest(h.k[:32]), protocol.Digest(h.k[32:])} {
				r, err := getModel(models, img)
				if err != nil {
					return err
				}
				if r == nil { // deleted with its deltas: not reached
					continue
				}
				r.LastUsed = now
				if err := putModel(models, img, r); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: touch delta: %w", err)
	}
	return nil
}

// EvictDeltas deletes least recently used stored deltas until their bytes
// are at most maxBytes, and returns the deleted records, least recently
// used first. Records of deltas not kept take no room and stay.
func (db *DB) EvictDeltas(maxBytes int64) ([]Delta, error) {
	if maxBytes < 0 {
		return nil, fmt.Errorf("store: evict deltas: negative limit %d", maxBytes)
	}
	var evicted []Delta
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		evicted = nil
		deltas, blobs := tx.Bucket(bucketDeltas), tx.Bucket(bucketDeltaBlobs)
		var all []Delta
		var total int64
		if err := deltas.ForEach(func(k, v []byte) error {
			var r deltaRecord
			if err := decodeRecord(v, &r); err != nil {
				return fmt.Errorf("delta %x: %w", k, err)
			}
			if r.Stored {
				all = append(all, r.delta(k))
				total += int64(r.Size)
			}
			return nil
		}); err != nil || total <= maxBytes {
			return err
		}
		slices.SortFunc(all, func(a, b Delta) int {
			if c := a.LastUsed.Compare(b.LastUsed); c != 0 {
				return c
			}
			return cmp.Compare(string(deltaKey(a.Base, a.Target)), string(deltaKey(b.Base, b.Target)))
		})
		for _, d := range all {
			if total <= maxBytes {
				break
			}
			if err := deleteDelta(deltas, blobs, deltaKey(d.Base, d.Target)); err != nil {
				return err
			}
			total -= d.Size
			evicted = append(evicted, d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: evict deltas: %w", err)
	}
	return evicted, nil
}

// cleanDeltas deletes, at Open, the delta records whose base or target is
// no longer stored (an older release evicted it) and the chunks no record
// names.
func (db *DB) cleanDeltas(tx *bolt.Tx) error {
	models, deltas, blobs := tx.Bucket(bucketModels), tx.Bucket(bucketDeltas), tx.Bucket(bucketDeltaBlobs)
	var stale [][]byte
	named := map[protocol.Digest]bool{}
	if err := deltas.ForEach(func(k, v []byte) error {
		if len(k) != 64 || models.Get(k[:32]) == nil || models.Get(k[32:]) == nil {
			stale = append(stale, bytes.Clone(k))
			return nil
		}
		var r deltaRecord
		if err := decodeRecord(v, &r); err != nil {
			return fmt.Errorf("delta %x: %w", k, err)
		}
		if r.Stored {
			named[r.Digest] = true
		}
		return nil
	}); err != nil {
		return err
	}
	for _, k := range stale {
		if err := deltas.Delete(k); err != nil {
			return err
		}
	}
	orphans, err := bucketNames(blobs)
	if err != nil {
		return err
	}
	for _, d := range orphans {
		if !named[protocol.Digest(d)] {
			if err := blobs.DeleteBucket(d); err != nil {
				return err
			}
		}
	}
	if n := len(stale); n > 0 {
		db.log.Info("store: deleted deltas of images no longer stored", "count", n)
	}
	return nil
}
