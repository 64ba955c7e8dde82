// Package schema versions the gateway's bbolt files and migrates them in
// place: the store's database (gateway.db) and the uplink's outbox
// (outbox.db) each record the version of their layout, and a newer edgeota
// brings an older file up to its own version before it reads it.
//
// # The version
//
// A file's schema version is the value of the key "format" in its
// top-level bucket "meta": an unsigned integer, big-endian, in as few bytes
// as it needs (one byte, 0x01, for version 1). Version 1 is the layout of
// the releases before migrations existed, which already wrote meta/format
// = 1; a file that has buckets but no meta/format is taken as version 1 and
// stamped. A file with no bucket at all is new: it is stamped with the
// current version and needs no migration.
//
// # Migrations
//
// A [Schema] lists its [Step]s in order: Steps[0] turns version 1 into 2,
// Steps[1] turns 2 into 3, and so on, so the current version is
// len(Steps)+1. [Schema.Prepare] runs the steps a file needs one after the
// other, each in its own bbolt read-write transaction that also writes the
// next version. A bbolt transaction is atomic: a step that returns an
// error, panics, or is cut by a crash or a power loss before its commit
// leaves the file exactly as the previous commit left it, readable by the
// release that wrote it; the next start runs the step again.
//
// # Newer files
//
// A file whose version is above the current one was written by a newer
// edgeota. Prepare refuses it with an error that wraps [ErrTooNew] and
// says both versions, before any write: nothing in the file is changed,
// and the newer release still opens it.
package schema

import (
	"errors"
	"fmt"
	"log/slog"

	bolt "go.etcd.io/bbolt"
)

// ErrTooNew is wrapped by the error of [Schema.Prepare] and [Version] for a
// file whose schema version is newer than this edgeota supports: a newer
// edgeota wrote it, and only that release or a later one opens it.
var ErrTooNew = errors.New("schema version is newer than this edgeota supports")

// ErrCorrupt is wrapped for a meta/format value that is no version: empty,
// longer than 8 bytes, or 0.
var ErrCorrupt = errors.New("schema version is corrupt")

// Where the version lives; see the package documentation.
var (
	bucketMeta = []byte("meta")
	keyFormat  = []byte("format")
)

// Step is one migration, from a version to the next.
type Step struct {
	// Name says what the step changes, for the log.
	Name string
	// Migrate rewrites the layout of version N into that of version N+1,
	// within tx, the transaction that also records N+1. It returns an
	// error to leave the file unchanged.
	Migrate func(tx *bolt.Tx) error
}

// Schema is the version history of one kind of file.
type Schema struct {
	// What names the kind of file in errors and logs ("gateway
	// database").
	What string
	// Steps migrate version i+1 to i+2, in order.
	Steps []Step
}

// Current returns the version this binary writes: len(Steps)+1.
func (s Schema) Current() uint64 { return uint64(len(s.Steps)) + 1 }

// Version returns the schema version recorded in tx: 0 when the file has
// no bucket at all (a new file), 1 when it has buckets but no meta/format.
// It fails, wrapping [ErrCorrupt], on a value that is no version.
func Version(tx *bolt.Tx) (uint64, error) {
	v, _, err := read(tx)
	return v, err
}

// read is [Version], and whether meta/format holds it.
func read(tx *bolt.Tx) (v uint64, recorded bool, err error) {
	var b []byte
	if meta := tx.Bucket(bucketMeta); meta != nil {
		b = meta.Get(keyFormat)
	}
	if b == nil {
		empty := true
		if err := tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil }); err != nil {
			return 0, false, err
		}
		if empty {
			return 0, false, nil
		}
		return 1, false, nil
	}
	if len(b) == 0 || len(b) > 8 {
		return 0, true, fmt.Errorf("%w: meta/format is %d bytes", ErrCorrupt, len(b))
	}
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	if v == 0 {
		return 0, true, fmt.Errorf("%w: meta/format is 0", ErrCorrupt)
	}
	return v, true, nil
}

// encode returns v in as few big-endian bytes as it needs.
func encode(v uint64) []byte {
	var b []byte
	for ; v > 0; v >>= 8 {
		b = append([]byte{byte(v)}, b...)
	}
	return b
}

// setVersion writes v as the file's version, creating meta if needed.
func setVersion(tx *bolt.Tx, v uint64) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", bucketMeta, err)
	}
	return meta.Put(keyFormat, encode(v))
}

// Check returns the version recorded in tx (as [Version]), failing with
// an error that wraps [ErrTooNew] when it is above the current one. It
// never writes, so it serves a read-only transaction too.
func (s Schema) Check(tx *bolt.Tx) (uint64, error) {
	v, _, err := s.check(tx)
	return v, err
}

func (s Schema) check(tx *bolt.Tx) (uint64, bool, error) {
	v, recorded, err := read(tx)
	if err != nil {
		return 0, recorded, fmt.Errorf("%s: %w", s.What, err)
	}
	if v > s.Current() {
		return v, recorded, fmt.Errorf("%w: the %s has schema version %d and this edgeota supports versions up to %d; "+
			"a newer edgeota wrote it, so run that release or a later one (nothing in the file was changed)",
			ErrTooNew, s.What, v, s.Current())
	}
	return v, recorded, nil
}

// Prepare brings the file of db to the current version, and returns the
// version it found (0 for a new file). It stamps a new file with the
// current version, and a version-1 file without meta/format with 1; it
// runs the steps an older file needs, each in its own transaction that
// records the version it reached, logging each; it refuses a newer file
// ([ErrTooNew]) without writing. When a step fails, the file keeps the
// version of the last step that committed, and the error names the step.
func (s Schema) Prepare(db *bolt.DB, log *slog.Logger) (found uint64, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var recorded bool
	if err := db.View(func(tx *bolt.Tx) error {
		found, recorded, err = s.check(tx)
		return err
	}); err != nil {
		return found, err
	}
	cur := s.Current()
	if found == 0 || !recorded {
		stamp := max(found, 1)
		if found == 0 {
			stamp = cur
		}
		if err := db.Update(func(tx *bolt.Tx) error { return setVersion(tx, stamp) }); err != nil {
			return found, fmt.Errorf("%s: record schema version %d: %w", s.What, stamp, err)
		}
		if found == 0 {
			return 0, nil
		}
	}
	for v := found; v < cur; v++ {
		if err := s.step(db, v); err != nil {
			return found, err
		}
		log.Info("schema: migrated", "file", s.What, "from", v, "to", v+1, "step", s.Steps[v-1].Name)
	}
	return found, nil
}

// step runs Steps[from-1] and records from+1, in one transaction. A panic
// of the step is turned into its error, after bbolt rolled the
// transaction back.
func (s Schema) step(db *bolt.DB, from uint64) error {
	st := s.Steps[from-1]
	err := db.Update(func(tx *bolt.Tx) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		if v, err := Version(tx); err != nil {
			return err
		} else if v != from {
			return fmt.Errorf("the file is at version %d, not %d", v, from)
		}
		if err := st.Migrate(tx); err != nil {
			return err
		}
		return setVersion(tx, from+1)
	})
	if err != nil {
		return fmt.Errorf("%s: migrate schema version %d to %d (%s): %w; the file is still at version %d",
			s.What, from, from+1, st.Name, err, from)
	}
	return nil
}
