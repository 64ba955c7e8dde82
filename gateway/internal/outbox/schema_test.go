package outbox

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"edgeota/gateway/internal/schema"
)

func fileSum(tb testing.TB, path string) [32]byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return sha256.Sum256(b)
}

// setVersion writes v as the schema version of the closed outbox at path.
func setVersion(tb testing.TB, path string, v byte) {
	tb.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte("format"), []byte{v}) }); err != nil {
		tb.Fatal(err)
	}
}

// queued opens the outbox at path, returns the payloads of every queued
// item of both kinds, and closes it.
func queued(tb testing.TB, path string) []string {
	tb.Helper()
	o, err := Open(Config{Path: path})
	if err != nil {
		tb.Fatal(err)
	}
	defer o.Close()
	return append(datas(peekAll(tb, o, KindHealth)), datas(peekAll(tb, o, KindStatus))...)
}

// fillOutbox queues three health reports and two status events in a new
// outbox and closes it.
func fillOutbox(tb testing.TB) (path string, items []string) {
	tb.Helper()
	o, path := openTest(tb, Config{})
	for i := range 3 {
		mustAppend(tb, o, KindHealth, "node-1", fmt.Appendf(nil, "health %d", i))
	}
	for i := range 2 {
		mustAppend(tb, o, KindStatus, "node-2", fmt.Appendf(nil, "status %d", i))
	}
	if err := o.Close(); err != nil {
		tb.Fatal(err)
	}
	return path, []string{"health 0", "health 1", "health 2", "status 0", "status 1"}
}

// TestOpenRefusesNewerSchema: an outbox of a newer schema version is
// refused with ErrSchemaTooNew, saying both versions, and not a byte of it
// changes; its items are still there for the newer release.
func TestOpenRefusesNewerSchema(t *testing.T) {
	path, items := fillOutbox(t)
	setVersion(t, path, 2)
	sum := fileSum(t, path)
	if o, err := Open(Config{Path: path}); err == nil {
		o.Close()
		t.Fatal("opened an outbox of schema version 2")
	} else if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), "outbox has schema version 2") ||
		!strings.Contains(err.Error(), "supports versions up to 1") {
		t.Fatalf("Open = %v, want ErrSchemaTooNew with both versions", err)
	}
	if fileSum(t, path) != sum {
		t.Fatal("refusing a newer outbox changed it")
	}
	setVersion(t, path, 1)
	if got := queued(t, path); !slices.Equal(got, items) {
		t.Fatalf("queued %q, want %q", got, items)
	}
}

// TestMigrationIsAtomic registers a migration step in the test that
// rewrites every queued item (their payloads upper-cased, the CRC
// resealed): failing or panicking half-way, it leaves the outbox and its
// version as they were; succeeding, it migrates every item.
func TestMigrationIsAtomic(t *testing.T) {
	step := func(mid func()) schema.Step {
		return schema.Step{Name: "upper-case payloads", Migrate: func(tx *bolt.Tx) error {
			n := 0
			for k := range Kind(numKinds) {
				b := tx.Bucket(kindBuckets[k])
				c := b.Cursor()
				for key, v := c.First(); key != nil; key, v = c.Next() {
					if n++; n == 3 && mid != nil {
						mid()
					}
					node, data, added, err := decodeRecord(v)
					if err != nil {
						return err
					}
					if err := b.Put(key, encodeRecord(string(node), []byte(strings.ToUpper(string(data))), added)); err != nil {
						return err
					}
				}
			}
			return nil
		}}
	}
	old := fileSchema
	t.Cleanup(func() { fileSchema = old })
	for _, tc := range []struct {
		name string
		mid  func()
	}{
		{"error", nil},
		{"panic", func() { panic("half-way bug") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fileSchema = old
			path, items := fillOutbox(t)
			sum := fileSum(t, path)
			bad := step(tc.mid)
			if tc.mid == nil {
				good := bad.Migrate
				bad.Migrate = func(tx *bolt.Tx) error {
					if err := good(tx); err != nil {
						return err
					}
					return errors.New("failure after rewriting every item")
				}
			}
			fileSchema = schema.Schema{What: "outbox", Steps: []schema.Step{bad}}
			if o, err := Open(Config{Path: path}); err == nil {
				o.Close()
				t.Fatal("Open succeeded with a failing step")
			} else if !strings.Contains(err.Error(), "still at version 1") {
				t.Fatalf("Open = %v", err)
			}
			if fileSum(t, path) != sum {
				t.Fatal("a failed migration changed the file")
			}
			fileSchema = old
			if got := queued(t, path); !slices.Equal(got, items) {
				t.Fatalf("the old schema reads %q, want %q", got, items)
			}
			fileSchema = schema.Schema{What: "outbox", Steps: []schema.Step{step(nil)}}
			got := queued(t, path)
			for i := range items {
				items[i] = strings.ToUpper(items[i])
			}
			if !slices.Equal(got, items) {
				t.Fatalf("after the migration: %q, want %q", got, items)
			}
		})
	}
}
