package outbox

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"edgeota/gateway/internal/schema"
)

// Sentinel errors. Errors of this package read "outbox: ..." and wrap one of
// these where a caller may branch on it.
var (
	// ErrFull: the item was not queued because it cannot be admitted even
	// after dropping every health report (see the package documentation), or
	// because the writer is too far behind. The CoAP side answers 5.03 with
	// Max-Age.
	ErrFull = errors.New("outbox full")
	// ErrClosed: the outbox is closed, or closing.
	ErrClosed = errors.New("outbox closed")
	// ErrLocked: another handle, in this process or another, holds the
	// file's lock and did not release it within the lock timeout.
	ErrLocked = errors.New("outbox file is locked")
	// ErrSchemaTooNew: the file's schema version is newer than this
	// edgeota supports; a newer edgeota wrote it. Open changes nothing in
	// such a file. The error says both versions.
	ErrSchemaTooNew = schema.ErrTooNew
)

// fileSchema is the schema of the outbox file: its version history, and
// the migrations from each version to the next (package schema). Version 1
// is the layout the package documentation describes.
var fileSchema = schema.Schema{What: "outbox"}

// The reasons of ErrFull, made once so that a refusal does not allocate.
var (
	errFullEvents = fmt.Errorf("outbox: append: %w: status events fill the bounds", ErrFull)
	errFullBehind = fmt.Errorf("outbox: append: %w: too many appends wait for a commit", ErrFull)
	errFullBig    = fmt.Errorf("outbox: append: %w: the item alone exceeds MaxBytes", ErrFull)
)

// Kind is the kind of an item; each kind is a queue of its own, in the order
// of its appends, published to its own MQTT topic (docs/protocol.md section 6).
type Kind uint8

// The kinds, health and status. Each is published to its own topic
// (protocol.TopicHealth and protocol.TopicStatus, whose leaf is "events").
const (
	// KindHealth is a health report (docs/protocol.md section 4). Health reports
	// may be dropped when the outbox is full.
	KindHealth Kind = iota
	// KindStatus is a status event (docs/protocol.md section 4). Status events are
	// never dropped.
	KindStatus

	numKinds = 2
)

var kindNames = [numKinds]string{"health", "status"}

// String returns "health" or "status".
func (k Kind) String() string {
	if k.valid() {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

func (k Kind) valid() bool { return k < numKinds }

// Item is a queued health report or status event, as [Outbox.Peek] returns
// it.
type Item struct {
	// Seq is the item's sequence number: unique in the file, increasing
	// with the order of appends over both kinds and across reopens.
	Seq uint64
	// Kind is its kind.
	Kind Kind
	// Node is the node id it was appended with.
	Node string
	// Data is the payload as appended: the CBOR document the node sent. It
	// is the caller's copy.
	Data []byte
	// Added is when it was appended, by Config.Clock.
	Added time.Time
}

// Defaults of [Config].
const (
	DefaultMaxItems       = 1_000_000
	DefaultMaxBytes       = 256 << 20
	DefaultCommitInterval = 2 * time.Millisecond
	DefaultCommitBatch    = 2048
	DefaultLockTimeout    = time.Second
)

// maxBehindBatches bounds the appends that wait for a commit, in
// CommitBatch units (see errFullBehind); maxBehindBytes bounds their bytes.
const (
	maxBehindBatches = 8
	maxBehindBytes   = 32 << 20
)

// Config configures [Open]. Its zero value, with a Path, works.
type Config struct {
	// Path is the bbolt file, which the outbox has to itself. It is created
	// with mode 0600 if missing.
	Path string
	// LockTimeout is how long Open waits for the file lock before it fails
	// with ErrLocked. Default DefaultLockTimeout.
	LockTimeout time.Duration
	// MaxItems bounds the items queued, both kinds together. Default
	// DefaultMaxItems.
	MaxItems int
	// MaxBytes bounds the stored size of the items queued, both kinds
	// together: payload, node id and 14 bytes of header each. Default
	// DefaultMaxBytes.
	MaxBytes int64
	// CommitInterval is the longest the writer lingers, after the first
	// request of a commit arrived, for more appends to share the commit
	// (see the package documentation); negative: never linger. Default
	// DefaultCommitInterval.
	CommitInterval time.Duration
	// CommitBatch is the most appends one commit carries. Default
	// DefaultCommitBatch.
	CommitBatch int
	// OnDrop, if set, is called by the writer goroutine after a commit that
	// dropped n > 0 health reports under the full policy, before the done
	// callbacks of that commit. It must not block or call the Outbox.
	OnDrop func(n int)
	// Clock gives the Added time of items and the now of OldestAge.
	// Default time.Now.
	Clock func() time.Time
	// Logger receives corruption, commit failures and the start of drops.
	// Default: a logger that discards.
	Logger *slog.Logger
}

// Outbox is the durable queue. Its methods are safe for concurrent use.
type Outbox struct {
	db         *bolt.DB
	maxItems   int
	maxBytes   int64
	linger     time.Duration // <= 0: none
	batchMax   int
	maxBehind  int
	behindByte int64
	onDrop     func(int)
	now        func() time.Time
	log        *slog.Logger

	wake    chan struct{} // a token tells the writer to look at the queues
	stopped chan struct{} // closed when the writer returned

	mu        sync.Mutex
	appendQ   []appendReq // accepted, not yet taken by the writer
	appendQB  int64       // their stored bytes
	ackQ      []*ackReq
	firstAt   time.Time // when the oldest request in appendQ or ackQ arrived
	target    int       // appends of the last commit; the linger ends when as many wait
	closing   bool
	kinds     [numKinds]kindState
	dropped   uint64
	rejected  uint64
	corrupt   uint64
	commits   uint64
	appCommit uint64 // commits that carried appends

	// Owned by the writer goroutine.
	seq      uint64 // the last sequence number committed
	dropping bool   // the last commit dropped health reports

	peek [numKinds]struct {
		mu    sync.Mutex
		after uint64 // Peek returns items with a greater Seq
	}

	closeOnce sync.Once
	closeErr  error
}

// kindState is the accounting of one kind, under Outbox.mu. items and
// bytes change only in the writer goroutine.
type kindState struct {
	items     int       // committed
	bytes     int64     // committed
	pendItems int       // accepted, not yet committed
	pendBytes int64     // accepted, not yet committed
	oldest    time.Time // Added of the oldest committed item
	appended  uint64    // committed since Open
	acked     uint64    // deleted by Ack since Open
}

// Bucket and key names; see the package documentation.
var (
	bucketMeta = []byte("meta")
	// The buckets keep the names of the contract's topic leafs, which
	// outbox files already hold.
	kindBuckets = [numKinds][]byte{[]byte("health"), []byte("events")}
)

// Open opens or creates the outbox file, checks every queued item (a
// corrupted one is logged and deleted), and starts the writer goroutine
// that [Outbox.Close] stops. The time it takes grows with the items queued:
// it reads them all once. It fails with [ErrLocked] when another handle
// holds the file for longer than the lock timeout. It migrates a file of an
// older schema version first (package schema: each step one transaction),
// and refuses one of a newer version with [ErrSchemaTooNew], changing
// nothing.
func Open(cfg Config) (*Outbox, error) {
	if cfg.Path == "" {
		return nil, errors.New("outbox: open: no path")
	}
	o := &Outbox{
		maxItems: orDefault(cfg.MaxItems, DefaultMaxItems),
		maxBytes: orDefault(cfg.MaxBytes, DefaultMaxBytes),
		linger:   orDefault(cfg.CommitInterval, DefaultCommitInterval),
		batchMax: orDefault(cfg.CommitBatch, DefaultCommitBatch),
		onDrop:   cfg.OnDrop,
		now:      cfg.Clock,
		log:      cfg.Logger,
		wake:     make(chan struct{}, 1),
		stopped:  make(chan struct{}),
		target:   1,
	}
	lockTimeout := orDefault(cfg.LockTimeout, DefaultLockTimeout)
	switch {
	case o.maxItems < 0 || o.maxBytes < 0 || o.batchMax < 0 || lockTimeout < 0:
		return nil, fmt.Errorf("outbox: open %s: negative MaxItems, MaxBytes, CommitBatch or LockTimeout", cfg.Path)
	case o.maxBytes < recordOverhead+1:
		return nil, fmt.Errorf("outbox: open %s: MaxBytes %d holds no item", cfg.Path, o.maxBytes)
	}
	o.maxBehind = maxBehindBatches * o.batchMax
	o.behindByte = min(o.maxBytes, maxBehindBytes)
	if o.now == nil {
		o.now = time.Now
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{
		Timeout:      lockTimeout,
		NoStatistics: true,
		FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("outbox: open %s: %w: another handle held it for the whole %v lock timeout", cfg.Path, ErrLocked, lockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: open %s: %w", cfg.Path, err)
	}
	o.db = db
	if _, err := fileSchema.Prepare(db, o.log); err != nil {
		db.Close()
		return nil, fmt.Errorf("outbox: open %s: %w", cfg.Path, err)
	}
	if err := db.Update(o.initTx); err != nil {
		db.Close()
		return nil, fmt.Errorf("outbox: open %s: %w", cfg.Path, err)
	}
	go o.run()
	return o, nil
}

// orDefault returns v, or def if v is zero.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// initTx creates the buckets, reads every item to set up the accounting
// and the sequence, and deletes corrupted items.
func (o *Outbox) initTx(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", bucketMeta, err)
	}
	o.seq = meta.Sequence()
	for k := range Kind(numKinds) {
		b, err := tx.CreateBucketIfNotExists(kindBuckets[k])
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", kindBuckets[k], err)
		}
		var bad [][]byte
		ks := &o.kinds[k]
		c := b.Cursor()
		for key, v := c.First(); key != nil; key, v = c.Next() {
			seq, ok := keySeq(key)
			_, _, added, err := decodeRecord(v)
			if !ok || err != nil {
				o.log.Error("outbox: deleting a corrupted item", "kind", k, "key", fmt.Sprintf("%x", key), "err", err)
				bad = append(bad, append([]byte(nil), key...))
				continue
			}
			if ks.items == 0 {
				ks.oldest = added
			}
			ks.items++
			ks.bytes += int64(len(v))
			o.seq = max(o.seq, seq)
		}
		for _, key := range bad {
			if err := b.Delete(key); err != nil {
				return err
			}
		}
		o.corrupt += uint64(len(bad))
	}
	return meta.SetSequence(o.seq)
}

// Close stops taking appends and acks, commits every append and ack
// already accepted (their callbacks run before it returns), stops the
// writer and closes the file. Later calls return the first call's result.
func (o *Outbox) Close() error {
	o.closeOnce.Do(func() {
		o.mu.Lock()
		o.closing = true
		o.mu.Unlock()
		o.signal()
		<-o.stopped
		if err := o.db.Close(); err != nil {
			o.closeErr = fmt.Errorf("outbox: close: %w", err)
		}
	})
	return o.closeErr
}

// signal hands the writer a wake-up token, unless one is waiting already.
func (o *Outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// KindStats is the state of one kind.
type KindStats struct {
	// Depth is the number of committed items queued.
	Depth int
	// Bytes is their stored size (see Config.MaxBytes).
	Bytes int64
	// OldestAge is the age of the oldest committed item, by Config.Clock;
	// 0 when there is none.
	OldestAge time.Duration
	// Pending is the number of appends accepted and not yet committed.
	Pending int
	// Appended counts the appends committed since Open, and Acked the items
	// Ack deleted since Open.
	Appended, Acked uint64
}

// Stats is a snapshot of the outbox's state and counters. Counters start
// at zero at Open.
type Stats struct {
	// Health and Status are the state of each kind.
	Health, Status KindStats
	// Bytes is the stored size of every committed item.
	Bytes int64
	// Appended and Acked are the sums over the kinds.
	Appended, Acked uint64
	// DroppedHealth counts health reports dropped under the full policy.
	DroppedHealth uint64
	// Rejected counts the appends refused with ErrFull.
	Rejected uint64
	// Corrupt counts the items found corrupted (by Open or Peek) and
	// deleted.
	Corrupt uint64
	// Commits counts the transactions the writer committed (appends, acks
	// or both), and AvgBatch is the mean number of appends of those that
	// carried appends.
	Commits  uint64
	AvgBatch float64
}

// Kind returns the state of kind k.
func (s Stats) Kind(k Kind) KindStats {
	if k == KindHealth {
		return s.Health
	}
	return s.Status
}

// Stats returns a snapshot of the state and counters.
func (o *Outbox) Stats() Stats {
	now := o.now()
	o.mu.Lock()
	defer o.mu.Unlock()
	var s Stats
	for k := range Kind(numKinds) {
		ks := &o.kinds[k]
		st := KindStats{Depth: ks.items, Bytes: ks.bytes, Pending: ks.pendItems, Appended: ks.appended, Acked: ks.acked}
		if ks.items > 0 {
			st.OldestAge = max(0, now.Sub(ks.oldest))
		}
		if k == KindHealth {
			s.Health = st
		} else {
			s.Status = st
		}
		s.Bytes += st.Bytes
		s.Appended += st.Appended
		s.Acked += st.Acked
	}
	s.DroppedHealth, s.Rejected, s.Corrupt, s.Commits = o.dropped, o.rejected, o.corrupt, o.commits
	if o.appCommit > 0 {
		s.AvgBatch = float64(s.Appended) / float64(o.appCommit)
	}
	return s
}
