// Package deltas is the gateway's side of delta updates (docs/protocol.md
// "Delta updates (v1.4)"): it computes a delta from the image a node runs
// to the image assigned to it, once per (base, target) pair however many
// nodes ask, off the request path on one bounded worker; keeps it in the
// gateway's database next to the images, bounded and evicted like them
// (a delta goes with its base or target image); indexes the stored deltas
// for the CoAP side, which serves them at /d/{hex} as it serves images;
// and attaches an offer to the signed manifest a node is answered, when
// the node applies the delta's format, runs its base, and the delta is at
// least 20% smaller than the image.
//
// A node that asks before its delta is ready is answered the plain
// manifest and registered as waiting: once the delta is stored, the
// gateway is told which nodes waited ([Config.Ready]) and notifies their
// observers, whose next answer carries the offer (a new ETag). A node
// just assigned a manifest whose delta is being computed is notified
// of the assignment only then, with the offer ([Manager.Assigned]), so
// that it does not start the full download a moment before.
package deltas

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"edgeota/gateway/internal/images"
	"edgeota/gateway/internal/metrics"
	"edgeota/gateway/internal/store"
	"edgeota/protocol"
	"edgeota/protocol/sign"
)

// Store is the gateway's database, as deltas use it.
type Store interface {
	Model(d protocol.Digest) (*store.Model, error)
	ReadAt(d protocol.Digest, p []byte, off int64) (int, error)
	PutDelta(base, target protocol.Digest, format uint64, size int64, data []byte) (store.Delta, error)
	Deltas() ([]store.Delta, error)
	ReadDeltaAt(d protocol.Digest, p []byte, off int64) (int, error)
	TouchDelta(d protocol.Digest) error
	EvictDeltas(maxBytes int64) ([]store.Delta, error)
	Node(id string) (*store.Node, error)
	Assignment(node string) ([]byte, error)
}

// Images tells which images are cached (package images).
type Images interface {
	Size(d protocol.Digest) (int64, bool)
}

// Differ computes a delta from base to target: protocol/delta's Diff.
type Differ func(base, target []byte) ([]byte, error)

// Defaults of [Config].
const (
	// DefaultMaxBytes bounds the stored deltas.
	DefaultMaxBytes = 64 << 20
	// DefaultMaxImageBytes is the largest image a delta is computed
	// from or to: computing one holds both images, the suffix array of
	// the base and the patch in memory, about 26 times the image's size
	// (docs/deltas.md, "Cost"), so about 100 MiB at this bound.
	DefaultMaxImageBytes = 4 << 20
	// DefaultQueue is how many pairs may wait for the worker; a pair
	// asked for when the queue is full is asked for again by the node's
	// next request.
	DefaultQueue = 256
)

// Config holds what a [Manager] needs. Store, Images, Diff and Format are
// required.
type Config struct {
	Store  Store
	Images Images
	// Diff computes deltas of Format.
	Diff   Differ
	Format uint64
	// MaxBytes bounds the stored deltas (least recently used evicted
	// first, [Manager.Enforce]); default [DefaultMaxBytes]. A delta
	// larger than MaxBytes is not kept nor offered.
	MaxBytes int64
	// MaxImageBytes is the largest image diffed; default
	// [DefaultMaxImageBytes].
	MaxImageBytes int64
	// Queue bounds the pairs waiting for the worker; default
	// [DefaultQueue].
	Queue int
	// ChunkCacheBytes is the memory of recently served delta chunks
	// (package images); 0: none.
	ChunkCacheBytes int64
	// Ready is told, from the worker, the nodes that waited for a delta
	// once it is computed, offered or not, so that their observers are
	// notified: with the offer, or of the assignment they were not yet
	// notified of ([Manager.Assigned]). Optional.
	Ready func(nodes []string)
	// Metrics receives the counts; optional.
	Metrics *metrics.Metrics
	// Logger receives the log; default: discard.
	Logger *slog.Logger
}

// pair is a delta's key.
type pair struct{ base, target protocol.Digest }

// state is where a pair stands.
type state uint8

const (
	queued  state = iota // waiting for or in the worker
	ready                // stored: offered
	useless              // not offered: too large, other components, too big to diff, failed
)

type entry struct {
	state   state
	offer   []byte              // the offer's CBOR, when ready
	digest  protocol.Digest     // the delta's, when ready
	waiters map[string]struct{} // nodes that asked while queued
}

// Manager keeps the deltas. It is safe for concurrent use.
type Manager struct {
	cfg   Config
	log   *slog.Logger
	blobs *images.Cache

	mu    sync.Mutex
	pairs map[pair]*entry
	queue chan pair
}

// New returns a Manager of the deltas cfg.Store holds.
func New(cfg Config) (*Manager, error) {
	if cfg.Store == nil || cfg.Images == nil || cfg.Diff == nil || cfg.Format == 0 {
		return nil, errors.New("deltas: store, images, diff and format are required")
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.MaxImageBytes <= 0 {
		cfg.MaxImageBytes = DefaultMaxImageBytes
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, pairs: map[pair]*entry{}, queue: make(chan pair, cfg.Queue)}
	m.blobs = images.New(blobStore{cfg.Store}, cfg.ChunkCacheBytes, cfg.Logger)
	ds, err := cfg.Store.Deltas()
	if err != nil {
		return nil, fmt.Errorf("deltas: %w", err)
	}
	for _, d := range ds {
		m.loaded(d)
	}
	m.gauge()
	return m, nil
}

// loaded files a stored delta record.
func (m *Manager) loaded(d store.Delta) {
	p := pair{d.Base, d.Target}
	if !d.Stored || d.Format != m.cfg.Format {
		m.pairs[p] = &entry{state: useless}
		return
	}
	o := protocol.DeltaOffer{Format: d.Format, Base: d.Base, Delta: d.Digest, Size: uint64(d.Size)}
	b, err := o.MarshalCBOR()
	if err != nil {
		m.pairs[p] = &entry{state: useless}
		return
	}
	m.pairs[p] = &entry{state: ready, offer: b, digest: d.Digest}
	m.blobs.Add(d.Digest, d.Size)
}

// Blobs returns the stored deltas as the CoAP side serves them, by their
// digests.
func (m *Manager) Blobs() *images.Cache { return m.blobs }

// Offer returns what node n is answered for the signed manifest
// assigned to it: signed itself, or signed with a delta offer in its
// unprotected header. When the node could take a delta that is not
// computed yet, the pair is queued for the worker and n waits for it; this
// never blocks.
func (m *Manager) Offer(n *store.Node, signed []byte) []byte {
	out, _ := m.attach(n, signed)
	return out
}

// attach is Offer, and reports whether n waits for its delta: it is
// told when the delta is computed, whatever the result.
func (m *Manager) attach(n *store.Node, signed []byte) ([]byte, bool) {
	if len(signed) == 0 || n == nil || n.RunningDigest.IsZero() || !applies(n, m.cfg.Format) {
		return signed, false
	}
	e, err := sign.Parse(signed)
	if err != nil {
		return signed, false
	}
	man, err := protocol.DecodeManifest(e.Payload)
	if err != nil || man.Digest == n.RunningDigest {
		return signed, false
	}
	p := pair{n.RunningDigest, man.Digest}
	m.mu.Lock()
	x := m.pairs[p]
	if x == nil {
		if !m.eligible(p) {
			m.mu.Unlock()
			return signed, false
		}
		select {
		case m.queue <- p:
			x = &entry{state: queued, waiters: map[string]struct{}{}}
			m.pairs[p] = x
		default: // full: the node's next request asks again
			m.mu.Unlock()
			return signed, false
		}
	}
	switch x.state {
	case queued:
		x.waiters[n.ID] = struct{}{}
		m.mu.Unlock()
		return signed, true
	case ready:
		offer := x.offer
		m.mu.Unlock()
		out, err := sign.WithUnprotected(signed, protocol.DeltaOfferLabel, offer)
		if err != nil {
			m.log.Warn("attach delta offer", "node", n.ID, "err", err)
			return signed, false
		}
		if m.cfg.Metrics != nil {
			m.cfg.Metrics.DeltaOffers.Inc()
		}
		return out, false
	}
	m.mu.Unlock()
	return signed, false
}

// eligible reports whether a delta of p could be computed: both images
// cached and not too big. Called with mu held.
func (m *Manager) eligible(p pair) bool {
	bs, ok := m.cfg.Images.Size(p.base)
	if !ok || bs > m.cfg.MaxImageBytes {
		return false
	}
	ts, ok := m.cfg.Images.Size(p.target)
	return ok && ts <= m.cfg.MaxImageBytes
}

func applies(n *store.Node, f uint64) bool {
	for _, g := range n.DeltaFormats {
		if g == f {
			return true
		}
	}
	return false
}

// Assigned queues the deltas the nodes just assigned a manifest could
// take, so that they are computed before the nodes ask: the rollout's and
// the operator's assignments call it. It returns the nodes that now wait
// for a delta being computed: their observers are best notified once it is
// ([Config.Ready] names them, whatever the computation's result), so that
// the notification carries the offer; the others at once.
func (m *Manager) Assigned(nodes []string) (waiting []string) {
	for _, id := range nodes {
		n, err := m.cfg.Store.Node(id)
		if err != nil {
			continue
		}
		if n.RunningDigest.IsZero() || !applies(n, m.cfg.Format) {
			continue
		}
		signed, err := m.cfg.Store.Assignment(id)
		if err != nil {
			continue
		}
		if _, waits := m.attach(n, signed); waits {
			waiting = append(waiting, id)
		}
	}
	return waiting
}

// Run computes the queued deltas, one at a time, until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-m.queue:
			m.compute(p)
		}
	}
}

// compute computes, stores and files the delta of p, and tells the
// waiting nodes when it is offered.
func (m *Manager) compute(p pair) {
	result, d, err := m.diff(p)
	if err != nil {
		m.log.Warn("delta not computed", "base", p.base.String(), "target", p.target.String(), "err", err)
	}
	if result != "" && m.cfg.Metrics != nil {
		m.cfg.Metrics.DeltasComputed.WithLabelValues(result).Inc()
	}
	m.mu.Lock()
	x := m.pairs[p]
	if x == nil { // an image was evicted meanwhile
		m.mu.Unlock()
		return
	}
	waiters := x.waiters
	x.waiters = nil
	if result == "offered" {
		m.loaded(d)
	} else {
		x.state = useless
	}
	m.mu.Unlock()
	if result == "offered" {
		m.gauge()
		m.log.Info("delta computed", "base", p.base.String(), "target", p.target.String(), "delta", d.Digest.String(),
			"size", d.Size, "waiting_nodes", len(waiters))
	}
	if m.cfg.Ready != nil && len(waiters) > 0 {
		nodes := make([]string, 0, len(waiters))
		for id := range waiters {
			nodes = append(nodes, id)
		}
		m.cfg.Ready(nodes)
	}
}

// diff computes and stores the delta of p. result is the metric's label,
// "" when nothing was computed.
func (m *Manager) diff(p pair) (result string, d store.Delta, err error) {
	bm, err := m.cfg.Store.Model(p.base)
	if err != nil {
		return "", d, err
	}
	tm, err := m.cfg.Store.Model(p.target)
	if err != nil {
		return "", d, err
	}
	if bm.Manifest.Component != tm.Manifest.Component {
		return "", d, fmt.Errorf("base is of component %q, target of %q", bm.Manifest.Component, tm.Manifest.Component)
	}
	base, err := m.read(p.base, bm.Size)
	if err != nil {
		return "", d, err
	}
	target, err := m.read(p.target, tm.Size)
	if err != nil {
		return "", d, err
	}
	start := time.Now()
	data, err := m.cfg.Diff(base, target)
	if m.cfg.Metrics != nil {
		m.cfg.Metrics.DeltaSeconds.Observe(time.Since(start).Seconds())
	}
	if err != nil {
		return "failed", d, fmt.Errorf("diff: %w", err)
	}
	// Not at least 20% smaller, or larger than the whole bound: such a
	// delta would be evicted at the next Enforce and computed again at
	// the node's next request, for ever. Only its record is kept, so that
	// the pair is computed once.
	if int64(len(data))*5 > tm.Size*4 || int64(len(data)) > m.cfg.MaxBytes {
		_, err := m.cfg.Store.PutDelta(p.base, p.target, m.cfg.Format, int64(len(data)), nil)
		return "too_large", d, err
	}
	d, err = m.cfg.Store.PutDelta(p.base, p.target, m.cfg.Format, int64(len(data)), data)
	if err != nil {
		return "failed", d, err
	}
	return "offered", d, nil
}

func (m *Manager) read(d protocol.Digest, size int64) ([]byte, error) {
	b := make([]byte, size)
	if _, err := m.cfg.Store.ReadAt(d, b, 0); err != nil {
		return nil, fmt.Errorf("read image %s: %w", d, err)
	}
	return b, nil
}

// ForgetImage forgets the deltas from or to image d, which the store
// deleted with the image.
func (m *Manager) ForgetImage(d protocol.Digest) {
	m.mu.Lock()
	var gone []protocol.Digest
	for p, x := range m.pairs {
		if p.base == d || p.target == d {
			if x.state == ready {
				gone = append(gone, x.digest)
			}
			delete(m.pairs, p)
		}
	}
	m.mu.Unlock()
	for _, g := range gone {
		m.dropBlob(g)
	}
	m.gauge()
}

// dropBlob forgets blob g unless another pair still offers it.
func (m *Manager) dropBlob(g protocol.Digest) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range m.pairs {
		if x.state == ready && x.digest == g {
			return
		}
	}
	m.blobs.Remove(g)
}

// Enforce records the deltas' last use and evicts the least recently
// used beyond MaxBytes; the housekeeping calls it.
func (m *Manager) Enforce() {
	m.blobs.FlushUsed()
	evicted, err := m.cfg.Store.EvictDeltas(m.cfg.MaxBytes)
	if err != nil {
		m.log.Error("delta eviction", "err", err)
	}
	for _, d := range evicted {
		m.mu.Lock()
		delete(m.pairs, pair{d.Base, d.Target})
		m.mu.Unlock()
		m.dropBlob(d.Digest)
		m.log.Info("evicted delta", "delta", d.Digest.String(), "base", d.Base.String(), "target", d.Target.String())
	}
	m.gauge()
}

// gauge sets the delta cache size.
func (m *Manager) gauge() {
	if m.cfg.Metrics == nil {
		return
	}
	var n int64
	for _, b := range m.blobs.List() {
		n += b.Size
	}
	m.cfg.Metrics.DeltaCacheBytes.Set(float64(n))
}

// blobStore reads deltas as package images reads images.
type blobStore struct{ st Store }

func (b blobStore) ReadAt(d protocol.Digest, p []byte, off int64) (int, error) {
	return b.st.ReadDeltaAt(d, p, off)
}

func (b blobStore) Touch(d protocol.Digest) error { return b.st.TouchDelta(d) }
