package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"edgeota/gateway/internal/schema"
	"edgeota/protocol"
)

// setVersion writes v as the schema version of the store file at path.
func setVersion(tb testing.TB, path string, v byte) {
	tb.Helper()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	defer bdb.Close()
	if err := bdb.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("format"), []byte{v}) }); err != nil {
		tb.Fatal(err)
	}
}

func sumFile(tb testing.TB, path string) [32]byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return sha256.Sum256(b)
}

// withSchema makes s the store's schema until the test ends: how a test
// registers a migration step.
func withSchema(tb testing.TB, s schema.Schema) {
	old := fileSchema
	fileSchema = s
	tb.Cleanup(func() { fileSchema = old })
}

// fill stores a model and two nodes, and returns a description of them.
func fill(tb testing.TB, db *DB) string {
	tb.Helper()
	putImage(tb, db, testKeys(tb, 1), randomImage(rand.New(rand.NewPCG(1, 2)), 3000), 1)
	for _, id := range []string{"node-1", "node-2"} {
		if _, _, err := db.PutHello(&protocol.Hello{NodeID: id, Class: testClass, Component: "kws-model", AgentVersion: "0.1.0",
			Labels: map[string]string{"hw": "rev2"}}, "10.0.0.1:5683"); err != nil {
			tb.Fatal(err)
		}
	}
	return describe(tb, db)
}

// describe lists the store's models and nodes.
func describe(tb testing.TB, db *DB) string {
	tb.Helper()
	models, err := db.Models()
	if err != nil {
		tb.Fatal(err)
	}
	nodes, err := db.Nodes()
	if err != nil {
		tb.Fatal(err)
	}
	var sb strings.Builder
	for _, m := range models {
		fmt.Fprintf(&sb, "model %s %d %s\n", m.Digest, m.Size, m.Manifest.Version)
	}
	for _, n := range nodes {
		fmt.Fprintf(&sb, "node %s %v %s\n", n.ID, n.Labels, n.Addr)
	}
	return sb.String()
}

// TestOpenRefusesNewerSchema: a database of a newer schema version is
// refused with ErrSchemaTooNew, which says both versions, and not a byte of
// the file changes.
func TestOpenRefusesNewerSchema(t *testing.T) {
	db, path := openTest(t)
	fill(t, db)
	db.Close()
	setVersion(t, path, byte(SchemaVersion()+1))
	sum := sumFile(t, path)
	db2, err := Open(path)
	if err == nil {
		db2.Close()
		t.Fatalf("opened a database of schema version %d", SchemaVersion()+1)
	}
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open = %v, want ErrSchemaTooNew", err)
	}
	for _, part := range []string{fmt.Sprintf("gateway database has schema version %d", SchemaVersion()+1),
		fmt.Sprintf("supports versions up to %d", SchemaVersion()), "newer edgeota"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("%q does not say %q", err, part)
		}
	}
	if sumFile(t, path) != sum {
		t.Fatal("refusing a newer database changed it")
	}
	// Put the version back so the cleanup can check the file.
	setVersion(t, path, byte(SchemaVersion()))
}

// A database without meta/format (written before versions were
// recorded) is version 1 and stamped.
func TestOpenStampsUnversioned(t *testing.T) {
	db, path := openTest(t)
	want := fill(t, db)
	if err := db.bolt.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete([]byte("format")) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openPath(t, path)
	if got := describe(t, db); got != want {
		t.Fatalf("after stamping:\n%s\nwant:\n%s", got, want)
	}
	db.bolt.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get([]byte("format")); !bytes.Equal(v, []byte{byte(SchemaVersion())}) {
			t.Errorf("meta/format = %x, want %02x (version 1, migrated)", v, SchemaVersion())
		}
		return nil
	})
}

// relabel is a test-only migration from version 1 to 2: it rewrites every
// node record (labels gain v2=yes) and adds a bucket. mid, when set, runs
// after the first node.
func relabel(mid func() error) schema.Step {
	return schema.Step{Name: "relabel nodes", Migrate: func(tx *bolt.Tx) error {
		nodes := tx.Bucket(bucketNodes)
		var ids [][]byte
		nodes.ForEach(func(k, _ []byte) error { ids = append(ids, bytes.Clone(k)); return nil })
		for i, id := range ids {
			if i == 1 && mid != nil {
				if err := mid(); err != nil {
					return err
				}
			}
			var r nodeRecord
			if err := decodeRecord(nodes.Get(id), &r); err != nil {
				return err
			}
			r.Labels["v2"] = "yes"
			b, err := encodeRecord(&r)
			if err != nil {
				return err
			}
			if err := nodes.Put(id, b); err != nil {
				return err
			}
		}
		_, err := tx.CreateBucket([]byte("v2"))
		return err
	}}
}

// TestMigrationIsAtomic registers a migration step in the test: a step
// that fails or panics half-way leaves the database and its version as
// they were, and the old schema opens it; the good step then migrates it.
func TestMigrationIsAtomic(t *testing.T) {
	for _, tc := range []struct {
		name string
		mid  func() error
	}{
		{"error", func() error { return errors.New("half-way failure") }},
		{"panic", func() error { panic("half-way bug") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, path := openTest(t)
			want := fill(t, db)
			db.Close()
			sum := sumFile(t, path)

			real, cur := fileSchema, SchemaVersion()
			with := func(step schema.Step) schema.Schema {
				return schema.Schema{What: "gateway database", Steps: append(slices.Clone(real.Steps), step)}
			}
			withSchema(t, with(relabel(tc.mid)))
			if db, err := Open(path); err == nil {
				db.Close()
				t.Fatal("Open succeeded with a failing step")
			} else if !strings.Contains(err.Error(), fmt.Sprintf("migrate schema version %d to %d (relabel nodes)", cur, cur+1)) ||
				!strings.Contains(err.Error(), fmt.Sprintf("still at version %d", cur)) {
				t.Fatalf("Open = %v", err)
			}
			if sumFile(t, path) != sum {
				t.Fatal("a failed migration changed the file")
			}
			fileSchema = real
			db = openPath(t, path)
			if got := describe(t, db); got != want {
				t.Fatalf("the old schema reads:\n%s\nwant:\n%s", got, want)
			}
			db.Close()

			fileSchema = with(relabel(nil))
			db = openPath(t, path)
			got := describe(t, db)
			if wantV2 := strings.ReplaceAll(want, "map[hw:rev2]", "map[hw:rev2 v2:yes]"); got != wantV2 {
				t.Fatalf("after the migration:\n%s\nwant:\n%s", got, wantV2)
			}
			db.bolt.View(func(tx *bolt.Tx) error {
				if v, _ := schema.Version(tx); v != cur+1 || tx.Bucket([]byte("v2")) == nil {
					t.Errorf("version %d, bucket v2 %v", v, tx.Bucket([]byte("v2")) != nil)
				}
				return nil
			})
		})
	}
}

// TestCopy: Copy writes a database that Open reads as the original, and
// refuses what is not a gateway database, a newer schema (when asked) and
// a file a running gateway holds.
func TestCopy(t *testing.T) {
	dir := t.TempDir()
	db, path := openTest(t)
	want := fill(t, db)
	db.Close()

	newer := filepath.Join(dir, "newer.db")
	copyFile(t, path, newer)
	setVersion(t, newer, byte(SchemaVersion()+1))
	text := filepath.Join(dir, "text.db")
	os.WriteFile(text, bytes.Repeat([]byte("not a database\n"), 1000), 0o600)
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)
	bare := filepath.Join(dir, "bare.db") // a bbolt file of something else: an outbox's layout
	bdb, _ := bolt.Open(bare, 0o600, nil)
	bdb.Update(func(tx *bolt.Tx) error {
		for _, b := range []string{"meta", "health", "events"} {
			tx.CreateBucket([]byte(b))
		}
		return tx.Bucket([]byte("meta")).Put([]byte("format"), []byte{1})
	})
	bdb.Close()
	running := filepath.Join(dir, "running.db")
	copyFile(t, path, running)
	held := openPath(t, running)
	_ = held

	for _, tc := range []struct {
		name        string
		path        string
		refuseNewer bool
		want        error
		version     uint64
	}{
		{"a gateway database", path, true, nil, SchemaVersion()},
		{"newer, copied", newer, false, nil, SchemaVersion() + 1},
		{"newer, refused", newer, true, ErrSchemaTooNew, SchemaVersion() + 1},
		{"not a bbolt file", text, true, ErrNotDatabase, 0},
		{"empty file", empty, true, ErrNotDatabase, 0},
		{"a bbolt file of something else", bare, true, ErrNotDatabase, 1},
		{"gateway running", running, true, ErrLocked, 0},
		{"missing", filepath.Join(dir, "missing.db"), true, fs.ErrNotExist, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			v, n, err := Copy(tc.path, &buf, 100*time.Millisecond, tc.refuseNewer)
			if tc.want != nil {
				if !errors.Is(err, tc.want) || buf.Len() != 0 {
					t.Fatalf("Copy = %v with %d bytes written, want %v and none", err, buf.Len(), tc.want)
				}
				if v != tc.version {
					t.Errorf("version %d, want %d", v, tc.version)
				}
				t.Log(err)
				return
			}
			if err != nil || v != tc.version || n != int64(buf.Len()) {
				t.Fatalf("Copy = %d, %d, %v (%d bytes written)", v, n, err, buf.Len())
			}
			out := filepath.Join(t.TempDir(), "copy.db")
			os.WriteFile(out, buf.Bytes(), 0o600)
			if tc.version > SchemaVersion() {
				if _, err := Open(out); !errors.Is(err, ErrSchemaTooNew) {
					t.Fatalf("the copy of a newer database opens: %v", err)
				}
				return
			}
			c := openPath(t, out)
			if got := describe(t, c); got != want {
				t.Fatalf("the copy holds:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func copyFile(tb testing.TB, from, to string) {
	tb.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// TestRestore: Restore puts a copy of a gateway database in place and
// keeps the one it replaces as .bak; it refuses what is no gateway
// database, a newer schema and a database a running gateway holds,
// leaving the current file as it was.
func TestRestore(t *testing.T) {
	src := t.TempDir()
	db, good := openTest(t)
	want := fill(t, db)
	db.Close()
	newer := filepath.Join(src, "newer.db")
	copyFile(t, good, newer)
	setVersion(t, newer, byte(SchemaVersion()+1))
	text := filepath.Join(src, "text.db")
	os.WriteFile(text, bytes.Repeat([]byte("not a database\n"), 1000), 0o600)

	// current makes the data directory's file: a database with one other
	// model, or garbage, or nothing.
	type current int
	const (
		none current = iota
		database
		garbage
	)
	for _, tc := range []struct {
		name    string
		from    string
		current current
		running bool
		want    error
	}{
		{"into an empty directory", good, none, false, nil},
		{"over a database", good, database, false, nil},
		{"over a corrupt file", good, garbage, false, nil},
		{"not a bbolt file", text, database, false, ErrNotDatabase},
		{"newer schema", newer, database, false, ErrSchemaTooNew},
		{"missing", filepath.Join(src, "missing.db"), database, false, fs.ErrNotExist},
		{"gateway running", good, database, true, ErrLocked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "gateway.db")
			switch tc.current {
			case database:
				c, err := Open(path)
				if err != nil {
					t.Fatal(err)
				}
				putImage(t, c, testKeys(t, 1), randomImage(rand.New(rand.NewPCG(9, 9)), 100), 9)
				c.Close()
			case garbage:
				os.WriteFile(path, []byte("garbage"), 0o600)
			}
			if tc.running {
				openPath(t, path)
			}
			var before [32]byte
			if tc.current != none {
				before = sumFile(t, path)
			}
			res, err := Restore(path, tc.from, 100*time.Millisecond)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("Restore = %v, want %v", err, tc.want)
				}
				t.Log(err)
				if sumFile(t, path) != before {
					t.Fatal("a refused restore changed the database")
				}
				if entries, _ := os.ReadDir(dir); len(entries) != 1 {
					t.Fatalf("a refused restore left files: %v", entries)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Version != SchemaVersion() || res.Bytes == 0 {
				t.Errorf("Restore = %+v", res)
			}
			r := openPath(t, path)
			if got := describe(t, r); got != want {
				t.Fatalf("restored:\n%s\nwant:\n%s", got, want)
			}
			if tc.current == none {
				if res.Previous != "" {
					t.Errorf("Previous %q with no previous file", res.Previous)
				}
				return
			}
			if res.Previous != path+".bak" {
				t.Fatalf("Previous %q", res.Previous)
			}
			if tc.current == garbage {
				if b, _ := os.ReadFile(res.Previous); string(b) != "garbage" {
					t.Fatalf(".bak holds %q", b)
				}
				return
			}
			bak := openPath(t, res.Previous)
			if ms, _ := bak.Models(); len(ms) != 1 || ms[0].Manifest.Seq != 9 {
				t.Fatalf(".bak holds %d models, want the previous one", len(ms))
			}
		})
	}
}
