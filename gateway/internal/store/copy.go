package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Copy writes a consistent copy of the gateway database at path to w, from
// one read transaction, without opening the file for writing, and returns
// the file's schema version and the bytes written. It opens the file with
// bbolt's read-only open, which shares it with other readers but waits at
// most lockTimeout for a writer (a running gateway) and then fails with
// [ErrLocked]. It fails with [ErrNotDatabase] for a file that is no bbolt
// file or lacks the store's buckets, and with [ErrSchemaTooNew] for a
// newer schema when refuseNewer is set; otherwise it copies a file of any
// version faithfully, and the caller compares the version with
// [SchemaVersion]. Nothing is written to w before these checks pass.
func Copy(path string, w io.Writer, lockTimeout time.Duration, refuseNewer bool) (version uint64, n int64, err error) {
	if lockTimeout <= 0 {
		return 0, 0, fmt.Errorf("store: copy %s: lock timeout %v is not positive", path, lockTimeout)
	}
	bdb, err := openReadOnly(path, lockTimeout)
	if err != nil {
		return 0, 0, fmt.Errorf("store: copy %s: %w", path, err)
	}
	defer bdb.Close()
	err = bdb.View(func(tx *bolt.Tx) error {
		if version, err = fileSchema.Check(tx); err != nil && (refuseNewer || !errors.Is(err, ErrSchemaTooNew)) {
			return err
		}
		if version == 0 {
			return fmt.Errorf("%w: the file holds no bucket", ErrNotDatabase)
		}
		if version <= fileSchema.Current() {
			for _, name := range topBuckets {
				if tx.Bucket(name) == nil {
					return fmt.Errorf("%w: no bucket %s", ErrNotDatabase, name)
				}
			}
		}
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return version, n, fmt.Errorf("store: copy %s: %w", path, err)
	}
	return version, n, nil
}

// openReadOnly opens path with bbolt's read-only open, telling a file that
// is no bbolt database ([ErrNotDatabase]) and a writer that holds it
// ([ErrLocked]) from other errors.
func openReadOnly(path string, lockTimeout time.Duration) (*bolt.DB, error) {
	if fi, err := os.Stat(path); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() || fi.Size() == 0 {
		return nil, fmt.Errorf("%w: an empty file or no regular file", ErrNotDatabase)
	}
	bdb, err := bolt.Open(path, 0, &bolt.Options{ReadOnly: true, Timeout: lockTimeout, NoStatistics: true})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("%w: a writer (a running gateway?) held it for the whole %v lock timeout", ErrLocked, lockTimeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return nil, fmt.Errorf("%w: %v", ErrNotDatabase, err)
	case err != nil:
		return nil, err
	}
	return bdb, nil
}
