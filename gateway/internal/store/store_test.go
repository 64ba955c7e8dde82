package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"edgeota/test/testutil"
)

func TestOpenOptions(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		opts []Option
		ok   bool
	}{
		{"defaults", nil, true},
		{"all options", []Option{WithLockTimeout(time.Second), WithChunkSize(4096), WithClock(time.Now), WithLogger(nil)}, true},
		{"zero lock timeout", []Option{WithLockTimeout(0)}, false},
		{"chunk size too small", []Option{WithChunkSize(MinChunkSize - 1)}, false},
		{"chunk size too large", []Option{WithChunkSize(MaxChunkSize + 1)}, false},
	}
	for i, c := range cases {
		db, err := Open(filepath.Join(dir, fmt.Sprintf("%d.db", i)), c.opts...)
		if (err == nil) != c.ok {
			t.Errorf("%s: Open error %v, want ok %v", c.name, err, c.ok)
		}
		if err == nil {
			db.Close()
		}
	}
	if _, err := Open(filepath.Join(dir, "missing", "dir", "x.db")); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
}

func TestOpenLocked(t *testing.T) {
	_, path := openTest(t)
	const timeout = 200 * time.Millisecond
	type opened struct {
		db      *DB
		err     error
		elapsed time.Duration
	}
	done := make(chan opened, 1)
	go func() {
		start := time.Now()
		db, err := Open(path, WithLockTimeout(timeout))
		done <- opened{db, err, time.Since(start)}
	}()
	// How long Open may take is bounded by testutil's ceiling only: a
	// loaded machine stretches its retries, a bug makes it wait forever.
	o := testutil.Receive(t, "the second Open to give up", done)
	db, err, elapsed := o.db, o.err, o.elapsed
	if err == nil {
		db.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	// bbolt retries the lock every 50 ms and gives up one retry early.
	if elapsed < timeout-50*time.Millisecond {
		t.Errorf("gave up after %v, want at least %v", elapsed, timeout-50*time.Millisecond)
	}
	t.Log(err)
}

// Open deletes staging buckets, images without a model record and model
// records without an image.
func TestOpenCleansUp(t *testing.T) {
	k := testKeys(t, 1)
	db, path := openTest(t)
	rng := rand.New(rand.NewPCG(10, 10))
	keep := putImage(t, db, k, randomImage(rng, 3000), 1)
	headless := putImage(t, db, k, randomImage(rng, 3000), 2)
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		s, err := tx.Bucket(bucketStaging).CreateBucket([]byte("crashed-put"))
		if err != nil {
			return err
		}
		img, err := s.CreateBucket(bytes.Repeat([]byte{7}, 32))
		if err != nil {
			return err
		}
		if err := img.Put(make([]byte, 8), []byte("half an image")); err != nil {
			return err
		}
		if _, err := tx.Bucket(bucketImages).CreateBucket(bytes.Repeat([]byte{8}, 32)); err != nil {
			return err
		}
		return tx.Bucket(bucketImages).DeleteBucket(headless.Digest[:])
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openPath(t, path)
	if models, images, staging := bucketCounts(t, db); models != 1 || images != 1 || staging != 0 {
		t.Errorf("after Open: %d models, %d images, %d staging; want 1, 1, 0", models, images, staging)
	}
	if _, err := db.Model(keep.Digest); err != nil {
		t.Error(err)
	}
}

func TestReopenKeepsModels(t *testing.T) {
	k := testKeys(t, 1)
	clock := testutil.NewFakeClock()
	db, path := openTest(t, WithChunkSize(4096), WithClock(clock.Now))
	rng := rand.New(rand.NewPCG(11, 11))
	images := [][]byte{randomImage(rng, 10_000), randomImage(rng, 100_000)}
	var ms []*Model
	for i, img := range images {
		ms = append(ms, putImage(t, db, k, img, uint64(i+1)))
	}
	db.Close()
	// A new chunk size applies to new puts only; stored models read back.
	db = openPath(t, path, WithChunkSize(1000), WithClock(clock.Now))
	images = append(images, randomImage(rng, 5000))
	ms = append(ms, putImage(t, db, k, images[2], 3))
	for i, m := range ms {
		got, err := db.Model(m.Digest)
		if err != nil || !bytes.Equal(got.Signed, m.Signed) || got.Size != m.Size || !got.Added.Equal(m.Added) {
			t.Fatalf("model %d after reopen = %+v, %v", i, got, err)
		}
		if b := readAll(t, db, m.Digest, m.Size, 1024); !bytes.Equal(b, images[i]) {
			t.Errorf("image %d differs after reopen", i)
		}
	}
	all, err := db.Models()
	if err != nil || len(all) != 3 {
		t.Fatalf("Models = %d, %v", len(all), err)
	}
	for i := 1; i < len(all); i++ {
		if bytes.Compare(all[i-1].Digest[:], all[i].Digest[:]) >= 0 {
			t.Error("Models not sorted by digest")
		}
	}
}

func TestBackup(t *testing.T) {
	k := testKeys(t, 1)
	db, _ := openTest(t)
	rng := rand.New(rand.NewPCG(12, 12))
	image := randomImage(rng, 300_000)
	m := putImage(t, db, k, image, 1)
	if _, _, err := db.PutHello(testHello("n1"), "a"); err != nil {
		t.Fatal(err)
	}
	if err := db.Assign([]string{"n1"}, m.Signed); err != nil {
		t.Fatal(err)
	}

	// Back up while another model is being put and blocks are being read.
	var wg sync.WaitGroup
	wg.Go(func() { putImage(t, db, k, randomImage(rand.New(rand.NewPCG(13, 13)), 6<<20), 2) })
	wg.Go(func() { readAll(t, db, m.Digest, m.Size, 1024) })
	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := db.Backup(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if fi, _ := os.Stat(path); fi.Size() != n {
		t.Errorf("Backup wrote %d bytes, the file has %d", n, fi.Size())
	}

	// The copy opens with plain bbolt and holds the model...
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("backup: %v", err)
		}
		if tx.Bucket(bucketModels).Get(m.Digest[:]) == nil {
			return errors.New("model record missing")
		}
		return nil
	})
	bdb.Close()
	if err != nil {
		t.Fatal(err)
	}
	// ...and as a store, with the same model, node and assignment.
	b := openPath(t, path)
	if got := readAll(t, b, m.Digest, m.Size, 4096); !bytes.Equal(got, image) {
		t.Error("image differs in the backup")
	}
	if _, err := b.Node("n1"); err != nil {
		t.Error(err)
	}
	if got, _ := b.Assignment("n1"); !bytes.Equal(got, m.Signed) {
		t.Error("assignment missing in the backup")
	}
}

// Everything at once, for the race detector: puts of the same and of
// different images, block reads, touches, evictions, node traffic.
func TestConcurrentUse(t *testing.T) {
	k := testKeys(t, 1)
	db, _ := openTest(t, WithChunkSize(4096))
	rng := rand.New(rand.NewPCG(14, 14))
	shared := randomImage(rng, 200_000)
	base := putImage(t, db, k, randomImage(rng, 100_000), 1)
	if err := db.Assign([]string{"n0"}, base.Signed); err != nil {
		t.Fatal(err)
	}
	var images [][]byte
	for range 4 {
		images = append(images, randomImage(rng, 50_000))
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() { putImage(t, db, k, shared, 2) }) // same digest four times
		wg.Go(func() { putImage(t, db, k, images[i], uint64(10+i)) })
		wg.Go(func() {
			id := fmt.Sprintf("n%d", i)
			if _, _, err := db.PutHello(testHello(id), "a"); err != nil {
				t.Error(err)
				return
			}
			for j := range 20 {
				if err := db.PutHealth(testHealth(id, 1, uint64(j+1)), "a"); err != nil {
					t.Error(err)
				}
				if err := db.Touch(base.Digest); err != nil {
					t.Error(err)
				}
			}
		})
		wg.Go(func() {
			for range 3 {
				readAll(t, db, base.Digest, base.Size, 1024)
			}
		})
	}
	wg.Go(func() {
		for range 10 {
			if _, err := db.Evict(150_000); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	if _, err := db.Model(base.Digest); err != nil {
		t.Errorf("assigned model evicted: %v", err)
	}
	for i := range 4 {
		n, err := db.Node(fmt.Sprintf("n%d", i))
		if err != nil || n.HealthReports != 20 {
			t.Errorf("node n%d: %+v, %v; want 20 reports", i, n, err)
		}
	}
	// The shared image may have been evicted; if not, it is whole (checked
	// at cleanup) and stored once.
	if m, err := db.Model(manifestFor(shared, 2).Digest); err == nil && m.Size != int64(len(shared)) {
		t.Errorf("shared image stored with size %d", m.Size)
	} else if err != nil && !errors.Is(err, ErrNotFound) {
		t.Error(err)
	}
}
