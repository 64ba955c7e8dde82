package schema

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The test files hold a bucket "items" of ten keys. Version 1 values read
// "v1-N"; step12 rewrites them to "v2-N" and adds a bucket "index", the
// kind of change a real step makes.
var bucketItems = []byte("items")

const numItems = 10

func itemKey(i int) []byte { return fmt.Appendf(nil, "k%02d", i) }

// step12 is a migration from the test layout 1 to 2.
var step12 = Step{Name: "rewrite items, add index", Migrate: func(tx *bolt.Tx) error {
	return rewrite(tx, numItems, nil)
}}

// rewrite rewrites the first n items to version 2, calling mid (when set)
// after the first half, and adds the index bucket once all are done.
func rewrite(tx *bolt.Tx, n int, mid func() error) error {
	b := tx.Bucket(bucketItems)
	for i := range n {
		if i == numItems/2 && mid != nil {
			if err := mid(); err != nil {
				return err
			}
		}
		if err := b.Put(itemKey(i), fmt.Appendf(nil, "v2-%d", i)); err != nil {
			return err
		}
	}
	_, err := tx.CreateBucket([]byte("index"))
	return err
}

var (
	v1 = Schema{What: "test file"}
	v2 = Schema{What: "test file", Steps: []Step{step12}}
)

// newV1 writes a version-1 test file (with meta/format unless keyless)
// and returns its path.
func newV1(tb testing.TB, keyless bool) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "test.db")
	db := openBolt(tb, path)
	defer db.Close()
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bucketItems)
		if err != nil {
			return err
		}
		for i := range numItems {
			if err := b.Put(itemKey(i), fmt.Appendf(nil, "v1-%d", i)); err != nil {
				return err
			}
		}
		if keyless {
			return nil
		}
		return setVersion(tx, 1)
	})
	if err != nil {
		tb.Fatal(err)
	}
	return path
}

func openBolt(tb testing.TB, path string) *bolt.DB {
	tb.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	return db
}

// contents describes every bucket and key of the file at path, and its
// version, for comparing before and after.
func contents(tb testing.TB, path string) string {
	tb.Helper()
	db := openBolt(tb, path)
	defer db.Close()
	var sb strings.Builder
	err := db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				fmt.Fprintf(&sb, "%s/%s=%q\n", name, k, v)
				return nil
			})
		})
	})
	if err != nil {
		tb.Fatal(err)
	}
	return sb.String()
}

// prepare opens path, runs s.Prepare and closes it.
func prepare(tb testing.TB, path string, s Schema) (uint64, error) {
	tb.Helper()
	db := openBolt(tb, path)
	defer db.Close()
	return s.Prepare(db, nil)
}

// versionOf returns the recorded version of the file at path.
func versionOf(tb testing.TB, path string) uint64 {
	tb.Helper()
	db := openBolt(tb, path)
	defer db.Close()
	var v uint64
	if err := db.View(func(tx *bolt.Tx) (err error) { v, err = Version(tx); return err }); err != nil {
		tb.Fatal(err)
	}
	return v
}

func fileSum(tb testing.TB, path string) [32]byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestNewFileIsStampedCurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	found, err := prepare(t, path, v2)
	if err != nil || found != 0 {
		t.Fatalf("Prepare of a new file = %d, %v; want 0, nil", found, err)
	}
	if v := versionOf(t, path); v != 2 {
		t.Fatalf("a new file is at version %d, want the current 2 (no migration)", v)
	}
}

func TestVersionOneIsKeptOrStamped(t *testing.T) {
	for _, keyless := range []bool{false, true} {
		t.Run(fmt.Sprintf("keyless=%v", keyless), func(t *testing.T) {
			path := newV1(t, keyless)
			before := contents(t, path)
			if found, err := prepare(t, path, v1); err != nil || found != 1 {
				t.Fatalf("Prepare = %d, %v; want 1, nil", found, err)
			}
			want := before
			if keyless {
				want = before + "meta/format=\"\\x01\"\n"
			}
			if got := contents(t, path); got != want {
				t.Fatalf("after Prepare:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestMigrate(t *testing.T) {
	for _, keyless := range []bool{false, true} {
		t.Run(fmt.Sprintf("keyless=%v", keyless), func(t *testing.T) {
			path := newV1(t, keyless)
			if found, err := prepare(t, path, v2); err != nil || found != 1 {
				t.Fatalf("Prepare = %d, %v; want 1, nil", found, err)
			}
			got := contents(t, path)
			for i := range numItems {
				if !strings.Contains(got, fmt.Sprintf("items/%s=\"v2-%d\"", itemKey(i), i)) {
					t.Errorf("item %d not migrated:\n%s", i, got)
				}
			}
			if v := versionOf(t, path); v != 2 {
				t.Errorf("version %d after the migration, want 2", v)
			}
			// Opening again runs nothing.
			before := contents(t, path)
			if found, err := prepare(t, path, v2); err != nil || found != 2 || contents(t, path) != before {
				t.Fatalf("second Prepare = %d, %v, or changed the file", found, err)
			}
		})
	}
}

// TestMigrateStepsInOrder: each step runs once, in order, and a step that
// fails leaves the versions before it committed.
func TestMigrateStepsInOrder(t *testing.T) {
	var ran []string
	mark := func(name string, err error) Step {
		return Step{Name: name, Migrate: func(tx *bolt.Tx) error {
			ran = append(ran, name)
			if err != nil {
				return err
			}
			return tx.Bucket(bucketItems).Put([]byte(name), []byte("done"))
		}}
	}
	s := Schema{What: "test file", Steps: []Step{mark("1to2", nil), mark("2to3", nil), mark("3to4", errors.New("no room")), mark("4to5", nil)}}
	path := newV1(t, false)
	_, err := prepare(t, path, s)
	if err == nil || !strings.Contains(err.Error(), "migrate schema version 3 to 4 (3to4): no room; the file is still at version 3") {
		t.Fatalf("Prepare = %v, want the failure of step 3to4", err)
	}
	if strings.Join(ran, ",") != "1to2,2to3,3to4" {
		t.Fatalf("ran %v", ran)
	}
	if v := versionOf(t, path); v != 3 {
		t.Fatalf("version %d, want 3: the steps that committed", v)
	}
	if got := contents(t, path); !strings.Contains(got, "items/2to3") || strings.Contains(got, "items/3to4") {
		t.Fatalf("contents:\n%s", got)
	}
	// The next start, with the failure fixed, goes on from 3.
	ran = nil
	s.Steps[2] = mark("3to4", nil)
	if found, err := prepare(t, path, s); err != nil || found != 3 || strings.Join(ran, ",") != "3to4,4to5" {
		t.Fatalf("Prepare = %d, %v, ran %v; want 3, nil, 3to4,4to5", found, err, ran)
	}
}

// TestFailedStepChangesNothing: a step that fails or panics after
// rewriting half of the items leaves the file as it was, version and all,
// and the same binary (or the old one) opens it.
func TestFailedStepChangesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		mid  func() error
		want string
	}{
		{"error", func() error { return errors.New("disk says no") }, "disk says no"},
		{"panic", func() error { panic("half-way bug") }, "panic: half-way bug"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := newV1(t, false)
			before := contents(t, path)
			bad := Schema{What: "test file", Steps: []Step{{Name: "half", Migrate: func(tx *bolt.Tx) error {
				return rewrite(tx, numItems, tc.mid)
			}}}}
			_, err := prepare(t, path, bad)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "still at version 1") {
				t.Fatalf("Prepare = %v, want the step's failure %q", err, tc.want)
			}
			if got := contents(t, path); got != before {
				t.Fatalf("a failed step changed the file:\n%s\nwant:\n%s", got, before)
			}
			if found, err := prepare(t, path, v1); err != nil || found != 1 {
				t.Fatalf("the old schema opens it: %d, %v", found, err)
			}
			if found, err := prepare(t, path, v2); err != nil || found != 1 || versionOf(t, path) != 2 {
				t.Fatalf("a good step then migrates it: %d, %v", found, err)
			}
		})
	}
}

// TestTooNewChangesNothing: a file of a newer version is refused with
// ErrTooNew, saying both versions, and not a byte of it changes.
func TestTooNewChangesNothing(t *testing.T) {
	path := newV1(t, false)
	if _, err := prepare(t, path, v2); err != nil {
		t.Fatal(err)
	}
	sum := fileSum(t, path)
	_, err := prepare(t, path, v1)
	if !errors.Is(err, ErrTooNew) {
		t.Fatalf("Prepare of a version-2 file by a version-1 schema = %v, want ErrTooNew", err)
	}
	for _, part := range []string{"test file has schema version 2", "supports versions up to 1", "newer edgeota", "nothing in the file was changed"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not say %q", err, part)
		}
	}
	if fileSum(t, path) != sum {
		t.Fatal("refusing a newer file changed it")
	}
}

func TestCorruptVersion(t *testing.T) {
	for _, v := range [][]byte{{}, {0}, {0, 0}, bytes.Repeat([]byte{1}, 9)} {
		t.Run(fmt.Sprintf("%x", v), func(t *testing.T) {
			path := newV1(t, false)
			db := openBolt(t, path)
			if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyFormat, v) }); err != nil {
				t.Fatal(err)
			}
			db.Close()
			if _, err := prepare(t, path, v2); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Prepare = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestEncodeVersion(t *testing.T) {
	for _, tc := range []struct {
		v    uint64
		want []byte
	}{{1, []byte{1}}, {255, []byte{0xff}}, {256, []byte{1, 0}}, {1 << 40, []byte{1, 0, 0, 0, 0, 0}}} {
		if got := encode(tc.v); !bytes.Equal(got, tc.want) {
			t.Errorf("encode(%d) = %x, want %x", tc.v, got, tc.want)
		}
		path := filepath.Join(t.TempDir(), "x.db")
		db := openBolt(t, path)
		if err := db.Update(func(tx *bolt.Tx) error { return setVersion(tx, tc.v) }); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if got := versionOf(t, path); got != tc.v {
			t.Errorf("version %d read back as %d", tc.v, got)
		}
	}
}

// The crash test runs a migration in a child process (this test binary,
// running only TestMigrateCrashChild), which stops half-way through the
// step's transaction and tells the parent; the parent kills it with
// SIGKILL there, then checks that the file is the version-1 file it was,
// and that the migration then runs to the end.
const crashEnv = "EDGEOTA_SCHEMA_CRASH_CHILD" // the file's path

// TestMigrateCrashChild is the child process of TestMigrateCrash.
func TestMigrateCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("child process of TestMigrateCrash")
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		fmt.Println("open", err)
		return
	}
	s := Schema{What: "test file", Steps: []Step{{Name: "half", Migrate: func(tx *bolt.Tx) error {
		return rewrite(tx, numItems, func() error {
			fmt.Println("half-way")
			io.Copy(io.Discard, os.Stdin) // until killed
			return errors.New("stdin closed before the kill")
		})
	}}}}
	_, err = s.Prepare(db, nil)
	fmt.Println("done", err)
}

func TestMigrateCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a child process")
	}
	path := newV1(t, false)
	before := contents(t, path)
	cmd := exec.Command(os.Args[0], "-test.run=^TestMigrateCrashChild$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // held open: the child waits on it
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "half-way" {
		if strings.HasPrefix(sc.Text(), "done") || strings.HasPrefix(sc.Text(), "open") {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child: %s", sc.Text())
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	cmd.Wait()
	if got := contents(t, path); got != before {
		t.Fatalf("a migration killed half-way changed the file:\n%s\nwant:\n%s", got, before)
	}
	if found, err := prepare(t, path, v2); err != nil || found != 1 || versionOf(t, path) != 2 {
		t.Fatalf("after the crash, the migration = %d, %v", found, err)
	}
}
