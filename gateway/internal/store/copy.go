package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
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
	version, n, err = copyDB(path, w, lockTimeout, refuseNewer)
	if err != nil {
		return version, n, fmt.Errorf("store: copy %s: %w", path, err)
	}
	return version, n, nil
}

// copyDB is [Copy] without its checks of the arguments and the prefix of
// its errors.
func copyDB(path string, w io.Writer, lockTimeout time.Duration, refuseNewer bool) (version uint64, n int64, err error) {
	bdb, err := openReadOnly(path, lockTimeout)
	if err != nil {
		return 0, 0, err
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
	return version, n, err
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
	case errors.As(err, new(*fs.PathError)):
		return nil, err // opening or locking the file
	case err != nil:
		// bbolt's checks of the meta pages and the size (ErrInvalid,
		// ErrVersionMismatch, ErrChecksum, "file size too small").
		return nil, fmt.Errorf("%w: %v", ErrNotDatabase, err)
	}
	return bdb, nil
}

// Restored says what [Restore] did.
type Restored struct {
	// Version is the schema version of the restored file; [Open] migrates
	// it when it is older than [SchemaVersion].
	Version uint64
	// Bytes is the size of the restored file.
	Bytes int64
	// Previous is where the file it replaced was kept (path + ".bak"); ""
	// when there was none.
	Previous string
}

// Restore replaces the gateway database at path with a copy of the one at
// from, for a gateway that is not running. It first takes path's lock
// (bbolt's shared lock), failing with [ErrLocked] when a writer, a running
// gateway, holds it past lockTimeout; it checks that from is a gateway
// database of a schema version this build opens ([ErrNotDatabase],
// [ErrSchemaTooNew]) while copying it, from one read transaction, into a
// temporary file beside path; it keeps the file it replaces as
// path+".bak" (replacing an older one); then it renames the copy over path
// and syncs the directory. Until that rename path is unchanged, and a
// failure at any step leaves it so.
func Restore(path, from string, lockTimeout time.Duration) (Restored, error) {
	var res Restored
	fail := func(err error) (Restored, error) { return Restored{}, fmt.Errorf("store: restore %s: %w", path, err) }
	if lockTimeout <= 0 {
		return fail(fmt.Errorf("lock timeout %v is not positive", lockTimeout))
	}
	// Hold the current file, so that no gateway opens it meanwhile. A
	// file that is no database (the reason for a restore, maybe) has no
	// gateway running on it: it is kept byte for byte.
	var cur *bolt.DB
	_, statErr := os.Stat(path)
	switch {
	case statErr == nil:
		var err error
		cur, err = openReadOnly(path, lockTimeout)
		switch {
		case errors.Is(err, ErrNotDatabase):
		case err != nil:
			return fail(err)
		default:
			defer cur.Close()
		}
	case !errors.Is(statErr, os.ErrNotExist):
		return fail(statErr)
	}

	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, base+".restore-*")
	if err != nil {
		return fail(err)
	}
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if res.Version, res.Bytes, err = copyDB(from, tmp, lockTimeout, true); err != nil {
		return fail(fmt.Errorf("%s: %w", from, err))
	}
	if err := syncClose(tmp); err != nil {
		return fail(err)
	}

	if statErr == nil {
		res.Previous = path + ".bak"
		if err := keep(cur, path, res.Previous); err != nil {
			return fail(fmt.Errorf("keep the previous database: %w", err))
		}
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fail(err)
	}
	tmp = nil
	if err := syncDir(dir); err != nil {
		return fail(err)
	}
	return res, nil
}

// keep writes a copy of the database at path (held open as cur, or nil
// for a file that is no database, copied byte for byte) to bak, through a
// temporary file renamed into place.
func keep(cur *bolt.DB, path, bak string) (err error) {
	f, err := os.CreateTemp(filepath.Dir(bak), filepath.Base(bak)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if cur != nil {
		err = cur.View(func(tx *bolt.Tx) error {
			_, err := tx.WriteTo(f)
			return err
		})
	} else {
		var src *os.File
		if src, err = os.Open(path); err == nil {
			_, err = io.Copy(f, src)
			src.Close()
		}
	}
	if err != nil {
		return err
	}
	if err := syncClose(f); err != nil {
		return err
	}
	return os.Rename(f.Name(), bak)
}

// syncClose flushes f to disk and closes it.
func syncClose(f *os.File) error {
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncDir flushes the directory entries of dir.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
