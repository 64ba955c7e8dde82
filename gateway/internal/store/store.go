package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/fxamacker/cbor/v2"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"edgeota/gateway/internal/schema"
)

// Sentinel errors. Errors of this package read "store: ..." and wrap one of
// these where a caller may branch on it.
var (
	// ErrNotFound: no model with that digest, or no such record.
	ErrNotFound = errors.New("not found")
	// ErrDigest: the image does not hash to the manifest's digest.
	ErrDigest = errors.New("image digest does not match the manifest")
	// ErrSize: the image is longer or shorter than the manifest's size.
	ErrSize = errors.New("image size does not match the manifest")
	// ErrAssigned: the model is assigned to a node or named by the standing
	// rule, so it is not deleted.
	ErrAssigned = errors.New("model is assigned")
	// ErrUnknownNode: the node never said Hello.
	ErrUnknownNode = errors.New("unknown node")
	// ErrRegistryFull: a Hello from a new node, refused because the node
	// registry holds its bound ([WithMaxNodes]).
	ErrRegistryFull = errors.New("node registry full")
	// ErrLocked: another handle, in this process or another, holds the
	// file's lock and did not release it within the lock timeout.
	ErrLocked = errors.New("database file is locked")
	// ErrSchemaTooNew: the file's schema version is newer than this
	// edgeota supports; a newer edgeota wrote it. [Open] and [Copy] change
	// nothing in such a file. The error says both versions.
	ErrSchemaTooNew = schema.ErrTooNew
	// ErrNotDatabase: the file is not a gateway database: not a bbolt
	// file, or a bbolt file without the store's buckets.
	ErrNotDatabase = errors.New("not a gateway database")
)

// fileSchema is the schema of the store's file: its version history, and
// the migrations from each version to the next (package schema). Version 1
// is the layout the package documentation describes.
var fileSchema = schema.Schema{What: "gateway database", Steps: []schema.Step{
	{Name: "rollouts: a bucket per rollout, one record per node", Migrate: migrateRolloutsToBuckets},
}}

// SchemaVersion returns the schema version of the files this build writes,
// the newest it opens.
func SchemaVersion() uint64 { return fileSchema.Current() }

// recordFormat is the first byte of every record.
const recordFormat = 1

// Bucket and key names; see the package documentation.
var (
	bucketMeta        = []byte("meta")
	bucketModels      = []byte("models")
	bucketImages      = []byte("images")
	bucketStaging     = []byte("staging")
	bucketNodes       = []byte("nodes")
	bucketAssignments = []byte("assignments")
	bucketDeltas      = []byte("deltas")
	bucketDeltaBlobs  = []byte("deltablobs")

	keyStanding = []byte("standing")
)

var topBuckets = [][]byte{bucketMeta, bucketModels, bucketImages, bucketStaging, bucketNodes, bucketAssignments,
	bucketDeltas, bucketDeltaBlobs}

// Defaults and bounds of the options.
const (
	// DefaultLockTimeout is how long [Open] waits for the file lock.
	DefaultLockTimeout = time.Second
	// DefaultChunkSize is the size of image chunks.
	DefaultChunkSize = 64 << 10
	// MinChunkSize and MaxChunkSize bound [WithChunkSize].
	MinChunkSize = 16
	MaxChunkSize = 4 << 20
)

// stageTarget is about how many image bytes one staging transaction writes:
// big enough that fsyncs do not dominate, small enough that a 100 MiB image
// never makes one huge transaction.
const stageTarget = 4 << 20

// Option configures [Open].
type Option func(*config)

type config struct {
	lockTimeout time.Duration
	chunkSize   int
	clock       func() time.Time
	logger      *slog.Logger
	maxNodes    int
}

// WithLockTimeout sets how long [Open] waits for the file lock before it
// fails with [ErrLocked]; it must be positive (bbolt would wait forever on
// 0). Default [DefaultLockTimeout].
func WithLockTimeout(d time.Duration) Option { return func(c *config) { c.lockTimeout = d } }

// WithChunkSize sets the size of the chunks images are stored in, from
// [MinChunkSize] to [MaxChunkSize]. It applies to models put from now on;
// models already stored keep theirs. Default [DefaultChunkSize].
func WithChunkSize(n int) Option { return func(c *config) { c.chunkSize = n } }

// WithClock sets the clock of Added, LastUsed and LastSeen. Default
// time.Now.
func WithClock(now func() time.Time) Option { return func(c *config) { c.clock = now } }

// WithLogger sets the logger. Default: a logger that discards.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// DB is the gateway's store. Its methods are safe for concurrent use.
type DB struct {
	bolt       *bolt.DB
	chunkSize  int
	stageBytes int // a multiple of chunkSize
	now        func() time.Time
	log        *slog.Logger
	maxNodes   int // 0: no bound
}

// Open opens or creates the store at path (mode 0600), migrates a file of
// an older schema version to the current one (each step one transaction:
// a step that fails or is cut leaves the file as it was), creates the
// buckets it lacks, and deletes what crashed puts left in staging. It
// fails with [ErrLocked] when another handle holds the file for longer
// than the lock timeout, and with [ErrSchemaTooNew], changing nothing,
// when a newer edgeota wrote the file.
func Open(path string, opts ...Option) (*DB, error) {
	c := config{lockTimeout: DefaultLockTimeout, chunkSize: DefaultChunkSize, clock: time.Now}
	for _, o := range opts {
		o(&c)
	}
	if c.lockTimeout <= 0 {
		return nil, fmt.Errorf("store: open %s: lock timeout %v is not positive", path, c.lockTimeout)
	}
	if c.chunkSize < MinChunkSize || c.chunkSize > MaxChunkSize {
		return nil, fmt.Errorf("store: open %s: chunk size %d is outside [%d, %d]", path, c.chunkSize, MinChunkSize, MaxChunkSize)
	}
	if c.clock == nil {
		c.clock = time.Now
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: c.lockTimeout, NoStatistics: true,
		// The freelist is rebuilt at open instead of written by every
		// commit: a commit writes only the pages it changed.
		NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("store: open %s: %w: another handle held it for the whole %v lock timeout", path, ErrLocked, c.lockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db := &DB{
		bolt:       bdb,
		chunkSize:  c.chunkSize,
		stageBytes: max(1, stageTarget/c.chunkSize) * c.chunkSize,
		now:        c.clock,
		log:        c.logger,
		maxNodes:   c.maxNodes,
	}
	if _, err := fileSchema.Prepare(bdb, c.logger); err != nil {
		bdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := bdb.Update(db.initTx); err != nil {
		bdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return db, nil
}

// initTx creates the buckets, counts the nodes, and deletes staging buckets and image
// buckets no model record points to.
func (db *DB) initTx(tx *bolt.Tx) error {
	for _, name := range topBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}

	if err := db.countNodes(tx); err != nil {
		return err
	}

	staging := tx.Bucket(bucketStaging)
	stale, err := bucketNames(staging)
	if err != nil {
		return err
	}
	for _, id := range stale {
		if err := staging.DeleteBucket(id); err != nil {
			return fmt.Errorf("delete staging bucket %s: %w", id, err)
		}
	}
	if len(stale) > 0 {
		db.log.Warn("store: deleted staging buckets of interrupted model puts", "count", len(stale))
	}

	// A model is one transaction (record + image), so neither of these should
	// ever exist; clean them anyway rather than serve a half model.
	models, images := tx.Bucket(bucketModels), tx.Bucket(bucketImages)
	orphans, err := bucketNames(images)
	if err != nil {
		return err
	}
	for _, d := range orphans {
		if models.Get(d) == nil {
			db.log.Error("store: deleting an image without a model record", "digest", fmt.Sprintf("%x", d))
			if err := images.DeleteBucket(d); err != nil {
				return err
			}
		}
	}
	var headless [][]byte
	if err := models.ForEach(func(k, _ []byte) error {
		if images.Bucket(k) == nil {
			headless = append(headless, bytes.Clone(k))
		}
		return nil
	}); err != nil {
		return err
	}
	for _, d := range headless {
		db.log.Error("store: deleting a model record without an image", "digest", fmt.Sprintf("%x", d))
		if err := models.Delete(d); err != nil {
			return err
		}
	}
	return db.cleanDeltas(tx)
}

// bucketNames returns copies of the names of b's sub-buckets.
func bucketNames(b *bolt.Bucket) ([][]byte, error) {
	var names [][]byte
	err := b.ForEachBucket(func(k []byte) error {
		names = append(names, bytes.Clone(k))
		return nil
	})
	return names, err
}

// Close closes the file, waiting for running transactions.
func (db *DB) Close() error {
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Backup writes a consistent copy of the whole file to w from one read
// transaction, while the store keeps serving, and returns the bytes
// written. The copy opens with bbolt (or [Open]) like the original.
func (db *DB) Backup(w io.Writer) (int64, error) {
	var n int64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("store: backup: %w", err)
	}
	return n, nil
}

// Record encoding: a format byte, then CBOR.
var (
	recEnc cbor.EncMode
	recDec cbor.DecMode
)

func init() {
	var err error
	if recEnc, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
	if recDec, err = (cbor.DecOptions{}).DecMode(); err != nil {
		panic(err)
	}
}

// encodeRecord returns the format byte followed by v in CBOR.
func encodeRecord(v any) ([]byte, error) {
	b, err := recEnc.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode record: %w", err)
	}
	return append([]byte{recordFormat}, b...), nil
}

// decodeRecord decodes a record written by encodeRecord. b may point into
// the mmap: the decoder copies what it keeps.
func decodeRecord(b []byte, v any) error {
	if len(b) == 0 || b[0] != recordFormat {
		return fmt.Errorf("record format %x, want %d", b[:min(len(b), 1)], recordFormat)
	}
	if err := recDec.Unmarshal(b[1:], v); err != nil {
		return fmt.Errorf("decode record: %w", err)
	}
	return nil
}

// unixNano and fromUnixNano store times as Unix nanoseconds, 0 for the zero
// time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
