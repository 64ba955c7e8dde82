package outbox

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"edgeota/test/testutil"
)

// openTest opens an outbox in a fresh directory with cfg (its Path set
// there) and returns it and its path.
func openTest(tb testing.TB, cfg Config) (*Outbox, string) {
	tb.Helper()
	cfg.Path = filepath.Join(tb.TempDir(), "outbox.db")
	return openPath(tb, cfg), cfg.Path
}

// openPath opens cfg.Path, and at cleanup closes it and checks the file
// (an outbox already closed by the test is only checked).
func openPath(tb testing.TB, cfg Config) *Outbox {
	tb.Helper()
	o, err := Open(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := o.Close(); err != nil {
			tb.Error(err)
		}
		checkFile(tb, cfg.Path)
	})
	return o
}

// appendWait appends and waits for done.
func appendWait(tb testing.TB, o *Outbox, kind Kind, node string, data []byte) error {
	tb.Helper()
	ch := make(chan error, 1)
	if err := o.Append(kind, node, data, func(err error) { ch <- err }); err != nil {
		return err
	}
	return testutil.Receive(tb, "the append's done call", ch)
}

// mustAppend appends and waits for done, failing the test on an error.
func mustAppend(tb testing.TB, o *Outbox, kind Kind, node string, data []byte) {
	tb.Helper()
	if err := appendWait(tb, o, kind, node, data); err != nil {
		tb.Fatalf("append %s %s %q: %v", kind, node, data, err)
	}
}

// peekAll returns every item of kind not handed out yet, in batches of 7.
func peekAll(tb testing.TB, o *Outbox, kind Kind) []Item {
	tb.Helper()
	var all []Item
	for {
		items, err := o.Peek(kind, 7)
		if err != nil {
			tb.Fatal(err)
		}
		if len(items) == 0 {
			return all
		}
		all = append(all, items...)
	}
}

// datas returns the payloads of items as strings.
func datas(items []Item) []string {
	s := make([]string, len(items))
	for i, it := range items {
		s[i] = string(it.Data)
	}
	return s
}

// checkFile opens the closed outbox file read-only and checks it: bbolt's
// consistency check, the format, every key a sequence number no greater
// than meta's sequence, every value valid.
func checkFile(tb testing.TB, path string) {
	tb.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		tb.Fatalf("check %s: %v", path, err)
	}
	defer db.Close()
	if err := db.View(func(tx *bolt.Tx) error { return checkTx(tx) }); err != nil {
		tb.Errorf("check %s: %v", path, err)
	}
}

func checkTx(tx *bolt.Tx) error {
	for err := range tx.Check() {
		return fmt.Errorf("bbolt check: %w", err)
	}
	meta := tx.Bucket(bucketMeta)
	if v, err := fileSchema.Check(tx); err != nil || v != fileSchema.Current() {
		return fmt.Errorf("schema version %d: %v", v, err)
	}
	for k := range Kind(numKinds) {
		err := tx.Bucket(kindBuckets[k]).ForEach(func(key, v []byte) error {
			seq, ok := keySeq(key)
			if !ok || seq == 0 || seq > meta.Sequence() {
				return fmt.Errorf("%s: key %x, meta sequence %d", k, key, meta.Sequence())
			}
			if _, _, _, err := decodeRecord(v); err != nil {
				return fmt.Errorf("%s/%d: %w", k, seq, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// checkAccounting checks that Stats agrees with the file; the outbox must
// be idle (no append or ack waiting).
func checkAccounting(tb testing.TB, o *Outbox) {
	tb.Helper()
	st := o.Stats()
	err := o.db.View(func(tx *bolt.Tx) error {
		var total int64
		for k := range Kind(numKinds) {
			var n int
			var size int64
			tx.Bucket(kindBuckets[k]).ForEach(func(_, v []byte) error {
				n++
				size += int64(len(v))
				return nil
			})
			if ks := st.Kind(k); ks.Depth != n || ks.Bytes != size || ks.Pending != 0 {
				return fmt.Errorf("%s: stats depth %d, bytes %d, pending %d; file holds %d items of %d bytes",
					k, ks.Depth, ks.Bytes, ks.Pending, n, size)
			}
			total += size
		}
		if st.Bytes != total {
			return fmt.Errorf("stats bytes %d, file %d", st.Bytes, total)
		}
		return nil
	})
	if err != nil {
		tb.Error(err)
	}
}
