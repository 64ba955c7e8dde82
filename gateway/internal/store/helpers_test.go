package store

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"edgeota/protocol"
	"edgeota/protocol/sign"
)

// testClass is the device class of the test manifests and nodes.
var testClass = protocol.Class{0x6b, 0x77, 0x73}

// keys holds a manifest signer and the trust store that accepts it.
type keys struct {
	signer *sign.Signer
	trust  *sign.TrustStore
}

// testKeys returns keys derived from seed, so a child process of the crash
// test signs with the same key as its parent.
func testKeys(tb testing.TB, seed byte) keys {
	tb.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	s, err := sign.NewSigner(priv)
	if err != nil {
		tb.Fatal(err)
	}
	ts, err := sign.NewTrustStore(sign.RoleManifest, priv.Public().(ed25519.PublicKey))
	if err != nil {
		tb.Fatal(err)
	}
	return keys{s, ts}
}

// manifestFor returns a manifest describing image.
func manifestFor(image []byte, seq uint64) *protocol.Manifest {
	return &protocol.Manifest{
		Format: 1, Seq: seq, Component: "kws-model", Version: fmt.Sprintf("1.%d.0", seq),
		Digest: sha256.Sum256(image), Size: uint64(len(image)), Class: testClass, Epoch: 1,
	}
}

// sign signs m.
func (k keys) sign(tb testing.TB, m *protocol.Manifest) []byte {
	tb.Helper()
	b, err := k.signer.SignManifest(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// randomImage returns n bytes from rng.
func randomImage(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], rng.Uint64())
		copy(b[i:], w[:])
	}
	return b
}

// openTest opens a store in a fresh directory. At cleanup it checks the
// invariants, then closes the store.
func openTest(tb testing.TB, opts ...Option) (*DB, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "gateway.db")
	db := openPath(tb, path, opts...)
	return db, path
}

// openPath opens path, and at cleanup checks the invariants and closes it
// (a store already closed by the test is left alone).
func openPath(tb testing.TB, path string, opts ...Option) *DB {
	tb.Helper()
	db, err := Open(path, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if db.bolt.Path() == "" { // closed by the test
			return
		}
		checkInvariants(tb, db)
		if err := db.Close(); err != nil {
			tb.Error(err)
		}
	})
	return db
}

// checkInvariants checks what must hold whenever no put is running: bbolt's
// own consistency check; no staging bucket; every model record has an image
// whose chunks are contiguous from 0, all of its chunk size but the last,
// adding up to its size and hashing to its digest; every image has a
// record; the nodes bucket's sequence counts its records; every assignment
// decodes.
func checkInvariants(tb testing.TB, db *DB) {
	tb.Helper()
	err := db.bolt.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			tb.Errorf("bbolt check: %v", err)
		}
		if n, _ := bucketNames(tx.Bucket(bucketStaging)); len(n) != 0 {
			tb.Errorf("%d staging buckets left: %q", len(n), n)
		}
		images := tx.Bucket(bucketImages)
		err := tx.Bucket(bucketModels).ForEach(func(k, v []byte) error {
			d := protocol.Digest(k)
			var r modelRecord
			if err := decodeRecord(v, &r); err != nil {
				return err
			}
			if _, err := r.model(d); err != nil {
				return err
			}
			img := images.Bucket(k)
			if img == nil {
				return fmt.Errorf("model %s has no image", d)
			}
			if img.Sequence() != r.Size {
				return fmt.Errorf("model %s: image sequence %d, record size %d", d, img.Sequence(), r.Size)
			}
			h := sha256.New()
			var next, total uint64
			last := false
			if err := img.ForEach(func(ck, cv []byte) error {
				if len(ck) != 8 || binary.BigEndian.Uint64(ck) != next {
					return fmt.Errorf("model %s: chunk key %x, want index %d", d, ck, next)
				}
				if last {
					return fmt.Errorf("model %s: short chunk %d is not the last", d, next-1)
				}
				if uint64(len(cv)) != r.ChunkSize {
					last = true
				}
				if len(cv) == 0 || uint64(len(cv)) > r.ChunkSize {
					return fmt.Errorf("model %s: chunk %d has %d bytes, chunk size %d", d, next, len(cv), r.ChunkSize)
				}
				h.Write(cv)
				next++
				total += uint64(len(cv))
				return nil
			}); err != nil {
				return err
			}
			if total != r.Size {
				return fmt.Errorf("model %s: chunks hold %d bytes, record says %d", d, total, r.Size)
			}
			if got := protocol.Digest(h.Sum(nil)); got != d {
				return fmt.Errorf("model %s: chunks hash to %s", d, got)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := images.ForEachBucket(func(k []byte) error {
			if tx.Bucket(bucketModels).Get(k) == nil {
				return fmt.Errorf("image %x has no model record", k)
			}
			return nil
		}); err != nil {
			return err
		}
		if err := checkDeltas(tx); err != nil {
			return err
		}
		nodes := tx.Bucket(bucketNodes)
		if n := uint64(nodes.Stats().KeyN); nodes.Sequence() != n {
			return fmt.Errorf("nodes bucket: sequence %d, %d records (the registry's count is wrong)", nodes.Sequence(), n)
		}
		return tx.Bucket(bucketAssignments).ForEach(func(k, v []byte) error {
			_, err := decodeAssignment(v)
			return err
		})
	})
	if err != nil {
		tb.Errorf("invariants: %v", err)
	}
}

// checkDeltas checks the deltas: every record's base and target are
// stored models; every stored delta's chunks hash to its digest and add
// up to its size; every blob is named by a record.
func checkDeltas(tx *bolt.Tx) error {
	models, blobs := tx.Bucket(bucketModels), tx.Bucket(bucketDeltaBlobs)
	named := map[protocol.Digest]bool{}
	err := tx.Bucket(bucketDeltas).ForEach(func(k, v []byte) error {
		if len(k) != 64 || models.Get(k[:32]) == nil || models.Get(k[32:]) == nil {
			return fmt.Errorf("delta %x: base or target not stored", k)
		}
		var r deltaRecord
		if err := decodeRecord(v, &r); err != nil {
			return err
		}
		if !r.Stored {
			return nil
		}
		named[r.Digest] = true
		b := blobs.Bucket(r.Digest[:])
		if b == nil || b.Sequence() != r.Size {
			return fmt.Errorf("delta %s: no blob of %d bytes", r.Digest, r.Size)
		}
		h := sha256.New()
		b.ForEach(func(_, cv []byte) error { h.Write(cv); return nil })
		if got := protocol.Digest(h.Sum(nil)); got != r.Digest {
			return fmt.Errorf("delta %s: chunks hash to %s", r.Digest, got)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return blobs.ForEachBucket(func(k []byte) error {
		if !named[protocol.Digest(k)] {
			return fmt.Errorf("delta blob %x has no record", k)
		}
		return nil
	})
}

// bucketCounts returns how many models, images and staging buckets the
// store holds.
func bucketCounts(tb testing.TB, db *DB) (models, images, staging int) {
	tb.Helper()
	err := db.bolt.View(func(tx *bolt.Tx) error {
		models = tx.Bucket(bucketModels).Stats().KeyN
		i, _ := bucketNames(tx.Bucket(bucketImages))
		s, _ := bucketNames(tx.Bucket(bucketStaging))
		images, staging = len(i), len(s)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return models, images, staging
}

// putImage puts image under a manifest of seq signed by k.
func putImage(tb testing.TB, db *DB, k keys, image []byte, seq uint64) *Model {
	tb.Helper()
	m, err := db.PutModel(k.sign(tb, manifestFor(image, seq)), bytes.NewReader(image), k.trust)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// readAll reads the whole image of d through ReadAt in pieces of n bytes.
func readAll(tb testing.TB, db *DB, d protocol.Digest, size int64, n int) []byte {
	tb.Helper()
	out := make([]byte, 0, size)
	p := make([]byte, n)
	for off := int64(0); ; {
		k, err := db.ReadAt(d, p, off)
		out = append(out, p[:k]...)
		off += int64(k)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				tb.Fatalf("ReadAt(%d): %v", off, err)
			}
			return out
		}
		if off == size { // the next call must say EOF
			if k, err := db.ReadAt(d, p, off); k != 0 || err == nil {
				tb.Fatalf("ReadAt at the end = %d, %v; want 0, EOF", k, err)
			}
			return out
		}
	}
}
