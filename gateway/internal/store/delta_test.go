package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"edgeota/protocol"
)

// TestDeltas: a delta is stored beside the images and read back in
// blocks; a record of a delta not kept takes no room; a delta goes with
// its base or its target image (evicted or deleted); a pair whose image
// went meanwhile is refused; the least recently used go beyond the bound.
func TestDeltas(t *testing.T) {
	db, path := openTest(t, WithChunkSize(1000))
	k := testKeys(t, 1)
	rng := rand.New(rand.NewPCG(3, 3))
	a, b, c := randomImage(rng, 5000), randomImage(rng, 6000), randomImage(rng, 7000)
	ma, mb, mc := putImage(t, db, k, a, 1), putImage(t, db, k, b, 2), putImage(t, db, k, c, 3)
	data := randomImage(rng, 2500)
	ab, err := db.PutDelta(ma.Digest, mb.Digest, 1, 0, data)
	if err != nil {
		t.Fatal(err)
	}
	if ab.Digest != sha256.Sum256(data) || ab.Size != 2500 || !ab.Stored {
		t.Fatalf("stored %+v", ab)
	}
	p := make([]byte, 2500)
	for off := 0; off < 2500; off += 256 { // blocks that cross chunks
		n, err := db.ReadDeltaAt(ab.Digest, p[off:min(off+256, 2500)], int64(off))
		if err != nil || n != min(256, 2500-off) {
			t.Fatalf("ReadDeltaAt(%d) = %d, %v", off, n, err)
		}
	}
	if !bytes.Equal(p, data) {
		t.Fatal("delta read back differs")
	}
	if _, err := db.PutDelta(mb.Digest, mc.Digest, 1, 6900, nil); err != nil { // too large: a record only
		t.Fatal(err)
	}
	if _, err := db.PutDelta(ma.Digest, protocol.Digest{9}, 1, 0, data); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delta to an image not stored: %v", err)
	}
	ds, _ := db.Deltas()
	if len(ds) != 2 {
		t.Fatalf("deltas %+v", ds)
	}
	// Evicting stored deltas leaves the records of those not kept.
	if ev, err := db.EvictDeltas(0); err != nil || len(ev) != 1 || ev[0].Digest != ab.Digest {
		t.Fatalf("EvictDeltas(0) = %+v, %v", ev, err)
	}
	if _, err := db.ReadDeltaAt(ab.Digest, p, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("evicted delta read: %v", err)
	}
	// A delta goes with its base image.
	if _, err := db.PutDelta(ma.Digest, mb.Digest, 1, 0, data); err != nil {
		t.Fatal(err)
	}
	if err := db.TouchDelta(ab.Digest); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteModel(ma.Digest); err != nil {
		t.Fatal(err)
	}
	if ds, _ := db.Deltas(); len(ds) != 1 || ds[0].Base != mb.Digest {
		t.Fatalf("after deleting the base: %+v", ds)
	}
	// ... and with its target, evicted by the image quota.
	if _, err := db.Evict(0); err != nil {
		t.Fatal(err)
	}
	if ds, _ := db.Deltas(); len(ds) != 0 {
		t.Fatalf("after evicting the images: %+v", ds)
	}
	// A release that knows no deltas deletes an image and leaves its
	// deltas: the next Open deletes them.
	md, me := putImage(t, db, k, a, 4), putImage(t, db, k, b, 5)
	de, err := db.PutDelta(md.Digest, me.Digest, 1, 0, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketModels).Delete(md.Digest[:]); err != nil {
			return err
		}
		return tx.Bucket(bucketImages).DeleteBucket(md.Digest[:])
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openPath(t, path)
	if ds, _ := db.Deltas(); len(ds) != 0 {
		t.Fatalf("deltas of a deleted image survived Open: %+v", ds)
	}
	if _, err := db.ReadDeltaAt(de.Digest, p, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("blob of a deleted image's delta survived Open: %v", err)
	}
}

// TestTouchDeltaKeepsItsImages: a delta being fetched counts as a use of
// its base and target images, so that the image quota evicts other images
// first: the base is no longer assigned to the nodes fetching the delta,
// and evicting it would take the delta.
func TestTouchDeltaKeepsItsImages(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	db, _ := openTest(t, WithClock(func() time.Time { return now }))
	k := testKeys(t, 1)
	rng := rand.New(rand.NewPCG(4, 4))
	ma := putImage(t, db, k, randomImage(rng, 5000), 1) // the base, oldest
	now = now.Add(time.Minute)
	mb := putImage(t, db, k, randomImage(rng, 5000), 2) // the target
	now = now.Add(time.Minute)
	mc := putImage(t, db, k, randomImage(rng, 5000), 3) // another image
	ab, err := db.PutDelta(ma.Digest, mb.Digest, 1, 0, randomImage(rng, 500))
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	if err := db.TouchDelta(ab.Digest); err != nil {
		t.Fatal(err)
	}
	ev, err := db.Evict(10000) // room for two of the three images
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != 1 || ev[0] != mc.Digest {
		t.Fatalf("evicted %v, want only the image no delta uses (%s)", ev, mc.Digest)
	}
	if ds, _ := db.Deltas(); len(ds) != 1 || !ds[0].Stored {
		t.Fatalf("deltas after eviction: %+v", ds)
	}
}
