package gateway

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"edgeota/gateway/internal/store"
)

// ErrSchemaTooNew is wrapped by [New], [Restore] and [ImportKeys] when a
// file of the data directory (gateway.db, outbox.db) has a schema version
// newer than this edgeota supports: a newer edgeota wrote it, and nothing
// in it was changed. The error says both versions.
var ErrSchemaTooNew = store.ErrSchemaTooNew

// ErrNotDatabase is wrapped by [Backup] and [Restore] for a file that is
// not a gateway database.
var ErrNotDatabase = store.ErrNotDatabase

// SchemaVersion returns the schema version of the gateway database
// (gateway.db) this edgeota writes; it opens every version up to it,
// migrating an older one in place when it starts.
func SchemaVersion() uint64 { return store.SchemaVersion() }

// DatabaseFile is the gateway database's file name in the data directory.
const DatabaseFile = "gateway.db"

// offlineLockTimeout is how long the offline commands wait for a running
// gateway's lock before they say it runs.
const offlineLockTimeout = time.Second

// Backup writes a consistent copy of the database of a gateway that is
// not running to w, and returns the file's schema version and the bytes
// written. It opens the file read-only and fails with [ErrGatewayRunning]
// while a gateway holds it (back it up through the admin API then). The
// copy is faithful whatever the version, newer than [SchemaVersion]
// included; outbox.db (forwarded reports not yet published) is not part
// of it.
func Backup(dataDir string, w io.Writer) (version uint64, n int64, err error) {
	version, n, err = store.Copy(filepath.Join(dataDir, DatabaseFile), w, offlineLockTimeout, false)
	if errors.Is(err, store.ErrLocked) {
		return 0, 0, fmt.Errorf("gateway: %w: back it up through its admin API", ErrGatewayRunning)
	}
	if err != nil {
		return version, n, fmt.Errorf("gateway: backup: %w", err)
	}
	return version, n, nil
}

// Restored says what [Restore] did.
type Restored = store.Restored

// Restore replaces the database of a gateway that is not running with a
// copy of the backup at from, after checking that from is a gateway
// database of a schema version this edgeota opens ([ErrNotDatabase],
// [ErrSchemaTooNew]); the file it replaces is kept as gateway.db.bak. The
// replacement is one atomic rename: a failure leaves the database as it
// was. It fails with [ErrGatewayRunning] while a gateway holds the
// database. It creates dataDir (mode 0700) if needed; outbox.db is left as
// it is.
func Restore(dataDir, from string) (Restored, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return Restored{}, fmt.Errorf("gateway: %w", err)
	}
	res, err := store.Restore(filepath.Join(dataDir, DatabaseFile), from, offlineLockTimeout)
	if errors.Is(err, store.ErrLocked) {
		return res, fmt.Errorf("gateway: %w: stop it before restoring", ErrGatewayRunning)
	}
	if err != nil {
		return res, fmt.Errorf("gateway: %w", err)
	}
	return res, nil
}
