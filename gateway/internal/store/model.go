package store

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"edgeota/protocol"
	"edgeota/protocol/sign"
)

// Model is a cached image and the signed manifest it is served under.
type Model struct {
	// Digest is the SHA-256 of the image, the model's key.
	Digest protocol.Digest
	// Manifest is Signed, decoded.
	Manifest *protocol.Manifest
	// Signed is the COSE_Sign1 manifest: of all the manifests put for this
	// digest, the one with the highest seq.
	Signed []byte
	// Size is the image size in bytes.
	Size int64
	// Added is when the image was stored.
	Added time.Time
	// LastUsed is when a transfer of it last started ([DB.Touch]), or Added.
	LastUsed time.Time
}

// modelRecord is the value of models/<digest>.
type modelRecord struct {
	Signed    []byte `cbor:"1,keyasint"`
	Seq       uint64 `cbor:"2,keyasint"` // seq of Signed, so a re-signed manifest compares without parsing
	Size      uint64 `cbor:"3,keyasint"`
	ChunkSize uint64 `cbor:"4,keyasint"`
	Added     int64  `cbor:"5,keyasint"` // Unix nanoseconds
	LastUsed  int64  `cbor:"6,keyasint"`
}

// model builds the Model of a record. The manifest in a record was verified
// when it was put, so it is only parsed here.
func (r *modelRecord) model(d protocol.Digest) (*Model, error) {
	m, err := parseManifest(r.Signed)
	if err != nil {
		return nil, fmt.Errorf("model %s: stored manifest: %w", d, err)
	}
	return &Model{
		Digest:   d,
		Manifest: m,
		Signed:   r.Signed,
		Size:     int64(r.Size),
		Added:    fromUnixNano(r.Added),
		LastUsed: fromUnixNano(r.LastUsed),
	}, nil
}

// parseManifest decodes a signed manifest without verifying its signature.
func parseManifest(signed []byte) (*protocol.Manifest, error) {
	e, err := sign.Parse(signed)
	if err != nil {
		return nil, err
	}
	if e.ContentType != protocol.ContentTypeManifest {
		return nil, fmt.Errorf("%w %q, want %q", sign.ErrContentType, e.ContentType, protocol.ContentTypeManifest)
	}
	return protocol.DecodeManifest(e.Payload)
}

// getModel reads and decodes models/<d>; nil when absent.
func getModel(models *bolt.Bucket, d protocol.Digest) (*modelRecord, error) {
	v := models.Get(d[:])
	if v == nil {
		return nil, nil
	}
	r := new(modelRecord)
	if err := decodeRecord(v, r); err != nil {
		return nil, fmt.Errorf("model %s: %w", d, err)
	}
	return r, nil
}

func putModel(models *bolt.Bucket, d protocol.Digest, r *modelRecord) error {
	v, err := encodeRecord(r)
	if err != nil {
		return err
	}
	return models.Put(d[:], v)
}

// Verifier verifies signed manifests: a *sign.TrustStore, or the
// gateway's keyring.
type Verifier interface {
	VerifyManifest(b []byte) (*protocol.Manifest, error)
}

// PutModel verifies signed with trust, then stores the image read from
// image under it, and returns the stored model.
//
// Nothing is stored when the manifest does not verify (the error wraps the
// sign package's), when image is not exactly the manifest's size ([ErrSize],
// raised as soon as the stream runs longer) or does not hash to its digest
// ([ErrDigest]), or when reading image fails. The image is written to a
// staging bucket a few MiB per transaction and becomes visible, with its
// record, in one final transaction.
//
// When the digest is already stored, image is read and hashed but not
// stored again: a mismatch fails with [ErrDigest] or [ErrSize] and changes
// nothing; otherwise the existing model is returned, and signed replaces
// its manifest if its seq is higher (a re-signed manifest for the same
// image); a manifest of equal or lower seq leaves the stored one.
func (db *DB) PutModel(signed []byte, image io.Reader, trust Verifier) (*Model, error) {
	if trust == nil {
		return nil, errors.New("store: put model: no trust store")
	}
	m, err := trust.VerifyManifest(signed)
	if err != nil {
		return nil, fmt.Errorf("store: put model: verify manifest: %w", err)
	}
	signed = bytes.Clone(signed)

	// Already stored? A read transaction first: most puts of a cached image
	// change nothing and need no fsync.
	var rec *modelRecord
	var stale bool
	err = db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		rec, stale, err = mergeManifest(tx.Bucket(bucketModels), m, signed, false)
		return err
	})
	if err == nil && rec != nil {
		// Already cached: the image must still be the one the manifest
		// signs, or nothing changes (a wrong push is refused the same way
		// whether the digest is cached or not).
		err = checkStream(image, m)
	}
	if err == nil && rec != nil && stale {
		err = db.bolt.Update(func(tx *bolt.Tx) error {
			var err error
			rec, _, err = mergeManifest(tx.Bucket(bucketModels), m, signed, true)
			return err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("store: put model %s: %w", m.Digest, err)
	}
	if rec != nil {
		return db.recordModel(m.Digest, rec)
	}

	id := []byte(rand.Text())
	if err := db.stage(id, m, image); err != nil {
		db.dropStaging(id)
		return nil, fmt.Errorf("store: put model %s: %w", m.Digest, err)
	}
	rec, err = db.commitStaged(id, m, signed)
	if err != nil {
		db.dropStaging(id)
		return nil, fmt.Errorf("store: put model %s: %w", m.Digest, err)
	}
	db.log.Info("store: model stored", "digest", m.Digest, "component", m.Component, "version", m.Version, "seq", m.Seq, "size", m.Size)
	return db.recordModel(m.Digest, rec)
}

func (db *DB) recordModel(d protocol.Digest, r *modelRecord) (*Model, error) {
	mod, err := r.model(d)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return mod, nil
}

// mergeManifest reads the record of m.Digest and, when m's seq is higher
// than the stored manifest's, replaces it with signed (written only when
// write is set). It returns nil when the digest is not stored, and whether
// the stored manifest is older than m.
func mergeManifest(models *bolt.Bucket, m *protocol.Manifest, signed []byte, write bool) (*modelRecord, bool, error) {
	r, err := getModel(models, m.Digest)
	if err != nil || r == nil {
		return nil, false, err
	}
	if r.Size != m.Size {
		return nil, false, fmt.Errorf("%w: manifest says %d bytes, the stored image has %d", ErrSize, m.Size, r.Size)
	}
	if m.Seq <= r.Seq {
		return r, false, nil
	}
	r.Signed, r.Seq = signed, m.Seq
	if write {
		if err := putModel(models, m.Digest, r); err != nil {
			return nil, false, err
		}
	}
	return r, true, nil
}

// stage streams image into staging/<id>/<digest>, checking its size and
// digest against m. On error the caller drops the staging bucket.
func (db *DB) stage(id []byte, m *protocol.Manifest, image io.Reader) error {
	cs := db.chunkSize
	bufLen := db.stageBytes // a multiple of cs
	if m.Size < uint64(bufLen) {
		bufLen = int(m.Size) + 1 // room to see one byte too many
	}
	buf := make([]byte, bufLen)
	h := sha256.New()
	src := io.LimitReader(image, int64(min(m.Size, math.MaxInt64-1))+1)
	var total, next uint64 // bytes read, next chunk index
	for {
		n, rerr := io.ReadFull(src, buf)
		total += uint64(n)
		if total > m.Size {
			return fmt.Errorf("%w: image runs past the manifest's %d bytes", ErrSize, m.Size)
		}
		if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			return fmt.Errorf("read image: %w", rerr)
		}
		if n > 0 {
			h.Write(buf[:n])
			// bbolt keeps the value slices until commit: buf is reused only
			// after Update returns.
			err := db.bolt.Update(func(tx *bolt.Tx) error {
				parent, err := tx.Bucket(bucketStaging).CreateBucketIfNotExists(id)
				if err != nil {
					return err
				}
				img, err := parent.CreateBucketIfNotExists(m.Digest[:])
				if err != nil {
					return err
				}
				img.FillPercent = 1.0
				var key [8]byte
				for off := 0; off < n; off += cs {
					binary.BigEndian.PutUint64(key[:], next)
					if err := img.Put(key[:], buf[off:min(off+cs, n)]); err != nil {
						return err
					}
					next++
				}
				return img.SetSequence(total)
			})
			if err != nil {
				return fmt.Errorf("write staged chunks: %w", err)
			}
		}
		if rerr != nil { // EOF or short read: the stream ended
			break
		}
	}
	if total != m.Size {
		return fmt.Errorf("%w: image ends after %d bytes, manifest says %d", ErrSize, total, m.Size)
	}
	var sum protocol.Digest
	h.Sum(sum[:0])
	if sum != m.Digest {
		return fmt.Errorf("%w: image hashes to %s", ErrDigest, sum)
	}
	return nil
}

// commitStaged moves the staged image to images/<digest> and writes the
// model record, in one transaction. When another put stored the digest
// meanwhile, it keeps that one and merges the manifest instead.
func (db *DB) commitStaged(id []byte, m *protocol.Manifest, signed []byte) (*modelRecord, error) {
	now := unixNano(db.now())
	var rec *modelRecord
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		models, images, staging := tx.Bucket(bucketModels), tx.Bucket(bucketImages), tx.Bucket(bucketStaging)
		var err error
		if rec, _, err = mergeManifest(models, m, signed, true); err != nil || rec != nil {
			if err == nil {
				err = staging.DeleteBucket(id)
			}
			return err
		}
		parent := staging.Bucket(id)
		if parent == nil {
			return errors.New("staging bucket vanished")
		}
		if images.Bucket(m.Digest[:]) != nil { // cannot happen: Open deletes orphan images
			if err := images.DeleteBucket(m.Digest[:]); err != nil {
				return err
			}
		}
		if err := parent.MoveBucket(m.Digest[:], images); err != nil {
			return fmt.Errorf("move staged image: %w", err)
		}
		if err := staging.DeleteBucket(id); err != nil {
			return err
		}
		rec = &modelRecord{Signed: signed, Seq: m.Seq, Size: m.Size, ChunkSize: uint64(db.chunkSize), Added: now, LastUsed: now}
		return putModel(models, m.Digest, rec)
	})
	return rec, err
}

// dropStaging deletes staging/<id>, if it exists, after a failed put.
func (db *DB) dropStaging(id []byte) {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketStaging).DeleteBucket(id)
		if errors.Is(err, berrors.ErrBucketNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		// Open deletes it next time.
		db.log.Error("store: cannot delete a staging bucket", "id", string(id), "err", err)
	}
}

// Model returns the model with digest d, or an error wrapping [ErrNotFound].
func (db *DB) Model(d protocol.Digest) (*Model, error) {
	var rec *modelRecord
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		rec, err = getModel(tx.Bucket(bucketModels), d)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if rec == nil {
		return nil, fmt.Errorf("store: model %s: %w", d, ErrNotFound)
	}
	return db.recordModel(d, rec)
}

// Models returns every stored model, ordered by digest.
func (db *DB) Models() ([]*Model, error) {
	var out []*Model
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketModels).ForEach(func(k, v []byte) error {
			d := protocol.Digest(k)
			var r modelRecord
			if err := decodeRecord(v, &r); err != nil {
				return fmt.Errorf("model %s: %w", d, err)
			}
			mod, err := r.model(d)
			if err != nil {
				return err
			}
			out = append(out, mod)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: models: %w", err)
	}
	return out, nil
}

var errNegativeOffset = errors.New("store: read at: negative offset")

// ReadAt reads len(p) bytes of the image with digest d from offset off,
// with the semantics of [io.ReaderAt]: fewer bytes only at the end of the
// image, together with io.EOF (also for off at or past the end). It reads
// only the chunks covering the range, in one short read transaction, and
// copies them into p. It fails with [ErrNotFound] when d is not stored.
//
// This is the per-block path of image transfers. It allocates only what
// bbolt does for a read transaction, two bucket handles and a cursor (about
// 10 allocations and 570 bytes); it does not hold the transaction beyond
// the call.
func (db *DB) ReadAt(d protocol.Digest, p []byte, off int64) (int, error) {
	return db.readChunks(bucketImages, d, p, off)
}

// readChunks reads a blob stored in chunks under parent/<d>: an image, or
// a delta (delta.go).
func (db *DB) readChunks(parent []byte, d protocol.Digest, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errNegativeOffset
	}
	tx, err := db.bolt.Begin(false)
	if err != nil {
		return 0, fmt.Errorf("store: read %s: %w", d, err)
	}
	defer tx.Rollback()
	img := tx.Bucket(parent).Bucket(d[:])
	if img == nil {
		return 0, fmt.Errorf("store: read %s: %w", d, ErrNotFound)
	}
	size := int64(img.Sequence())
	if off >= size {
		return 0, io.EOF
	}
	// One cursor for every lookup: it reuses its stack, where Bucket.Get
	// would allocate one per call.
	c := img.Cursor()
	var key [8]byte
	k0, c0 := c.Seek(key[:])
	cs := int64(len(c0))
	if cs == 0 || !bytes.Equal(k0, key[:]) {
		return 0, fmt.Errorf("store: read %s: chunk 0 missing", d)
	}
	n := 0
	for n < len(p) && off < size {
		idx := off / cs
		v := c0
		if idx != 0 {
			binary.BigEndian.PutUint64(key[:], uint64(idx))
			var k []byte
			if k, v = c.Seek(key[:]); !bytes.Equal(k, key[:]) {
				v = nil
			}
		}
		within := off - idx*cs
		if within >= int64(len(v)) {
			return n, fmt.Errorf("store: read %s: chunk %d missing or short", d, idx)
		}
		k := copy(p[n:], v[within:])
		n += k
		off += int64(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Touch sets the model's LastUsed to now; call it when a transfer starts.
// Concurrent calls share transactions ([go.etcd.io/bbolt.DB.Batch]), so a
// call may wait up to bbolt's MaxBatchDelay (10 ms) before it commits.
func (db *DB) Touch(d protocol.Digest) error {
	now := unixNano(db.now())
	err := db.bolt.Batch(func(tx *bolt.Tx) error {
		models := tx.Bucket(bucketModels)
		r, err := getModel(models, d)
		if err != nil {
			return err
		}
		if r == nil {
			return fmt.Errorf("model %s: %w", d, ErrNotFound)
		}
		r.LastUsed = now
		return putModel(models, d, r)
	})
	if err != nil {
		return fmt.Errorf("store: touch: %w", err)
	}
	return nil
}

// DeleteModel deletes the model with digest d and its image. It fails with
// [ErrAssigned] while a node is assigned d or the standing rule names it,
// and with [ErrNotFound] when d is not stored.
func (db *DB) DeleteModel(d protocol.Digest) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketModels).Get(d[:]) == nil {
			return fmt.Errorf("model %s: %w", d, ErrNotFound)
		}
		inUse, err := assignedDigests(tx)
		if err != nil {
			return err
		}
		if _, ok := inUse[d]; ok {
			return fmt.Errorf("model %s: %w", d, ErrAssigned)
		}
		return deleteModel(tx, d)
	})
	if err != nil {
		return fmt.Errorf("store: delete: %w", err)
	}
	db.log.Info("store: model deleted", "digest", d)
	return nil
}

// deleteModel deletes the model d, its image, and the deltas from or to
// it (delta.go).
func deleteModel(tx *bolt.Tx, d protocol.Digest) error {
	if err := tx.Bucket(bucketModels).Delete(d[:]); err != nil {
		return err
	}
	if err := deleteDeltasOf(tx, d); err != nil {
		return err
	}
	err := tx.Bucket(bucketImages).DeleteBucket(d[:])
	if errors.Is(err, berrors.ErrBucketNotFound) {
		return nil
	}
	return err
}

// CacheBytes returns the total image bytes of the stored models (images
// being staged are not counted).
func (db *DB) CacheBytes() (int64, error) {
	var total int64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		total, err = cacheBytes(tx)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: cache bytes: %w", err)
	}
	return total, nil
}

func cacheBytes(tx *bolt.Tx) (int64, error) {
	var total int64
	err := tx.Bucket(bucketModels).ForEach(func(k, v []byte) error {
		var r modelRecord
		if err := decodeRecord(v, &r); err != nil {
			return fmt.Errorf("model %x: %w", k, err)
		}
		total += int64(r.Size)
		return nil
	})
	return total, err
}

// Evict deletes least recently used models until the stored image bytes
// are at most maxBytes, and returns the digests it deleted, least recently
// used first. A model assigned to a node or named by the standing rule is
// never evicted, so the total may stay above maxBytes; that is not an
// error. A transfer of an evicted image fails with [ErrNotFound] at its
// next block: call [DB.Touch] when a transfer starts.
func (db *DB) Evict(maxBytes int64) ([]protocol.Digest, error) {
	if maxBytes < 0 {
		return nil, fmt.Errorf("store: evict: negative limit %d", maxBytes)
	}
	var evicted []protocol.Digest
	var freed int64
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		evicted, freed = nil, 0
		type cand struct {
			d    protocol.Digest
			size int64
			used int64
		}
		var all []cand
		var total int64
		err := tx.Bucket(bucketModels).ForEach(func(k, v []byte) error {
			var r modelRecord
			if err := decodeRecord(v, &r); err != nil {
				return fmt.Errorf("model %x: %w", k, err)
			}
			all = append(all, cand{protocol.Digest(k), int64(r.Size), r.LastUsed})
			total += int64(r.Size)
			return nil
		})
		if err != nil || total <= maxBytes {
			return err
		}
		inUse, err := assignedDigests(tx)
		if err != nil {
			return err
		}
		slices.SortFunc(all, func(a, b cand) int {
			if a.used != b.used {
				return cmp.Compare(a.used, b.used)
			}
			return bytes.Compare(a.d[:], b.d[:])
		})
		for _, c := range all {
			if total <= maxBytes {
				break
			}
			if _, ok := inUse[c.d]; ok {
				continue
			}
			if err := deleteModel(tx, c.d); err != nil {
				return err
			}
			total -= c.size
			freed += c.size
			evicted = append(evicted, c.d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: evict: %w", err)
	}
	if len(evicted) > 0 {
		db.log.Info("store: models evicted", "count", len(evicted), "bytes", freed, "limit", maxBytes)
	}
	return evicted, nil
}

// checkStream reads image to its end and checks its size and SHA-256
// against the manifest, storing nothing.
func checkStream(image io.Reader, m *protocol.Manifest) error {
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(image, int64(m.Size)+1))
	if err != nil {
		return fmt.Errorf("read image: %w", err)
	}
	if n != int64(m.Size) {
		return fmt.Errorf("%w: image of %d bytes or more, manifest says %d", ErrSize, n, m.Size)
	}
	if !bytes.Equal(h.Sum(nil), m.Digest[:]) {
		return fmt.Errorf("%w", ErrDigest)
	}
	return nil
}
