// Package images is the gateway's in-memory view of its cached images, as
// the CoAP side serves them (docs/protocol.md section 5): an index of the
// images and their sizes, so that serving a block costs no database lookup
// beyond reading its chunk; a cache of recently read chunks shared by every
// transfer of an image, so that a fleet fetching one model reads each chunk
// from the database once; and the marks of images whose transfer started,
// written to the database in one pass ([Cache.FlushUsed]) so that the block
// path never writes.
package images

import (
	"container/list"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"edgeota/gateway/internal/store"
	"edgeota/protocol"
)

// Store is where the images are: the gateway's database.
type Store interface {
	// ReadAt reads image bytes at off into p.
	ReadAt(d protocol.Digest, p []byte, off int64) (int, error)
	// Touch records that image d was used now (least-recently-used
	// eviction); store.ErrNotFound for an image no longer there.
	Touch(d protocol.Digest) error
}

// Image is an indexed image.
type Image struct {
	Digest protocol.Digest
	Size   int64
}

// chunkSize is the unit of the chunk cache: 64 blocks of 1 KiB.
const chunkSize = 64 << 10

type chunkKey struct {
	digest protocol.Digest
	index  int64
}

type chunk struct {
	key  chunkKey
	data []byte
}

// Cache indexes the images and caches their chunks. It is safe for
// concurrent use.
type Cache struct {
	st  Store
	log *slog.Logger

	mu    sync.RWMutex
	index map[protocol.Digest]int64

	chunkMu sync.Mutex
	max     int64
	used    int64
	lru     *list.List
	chunks  map[chunkKey]*list.Element

	usedMu sync.Mutex
	marked map[protocol.Digest]bool
}

// New returns an empty cache of st's images that keeps at most
// chunkBytes of chunks in memory (0 or negative: none). log receives the
// failures of [Cache.FlushUsed] (nil: discard).
func New(st Store, chunkBytes int64, log *slog.Logger) *Cache {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cache{st: st, log: log, index: map[protocol.Digest]int64{}, max: chunkBytes, lru: list.New(),
		chunks: map[chunkKey]*list.Element{}, marked: map[protocol.Digest]bool{}}
}

// Size returns the size of image d, and whether it is indexed.
func (c *Cache) Size(d protocol.Digest) (int64, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n, ok := c.index[d]
	return n, ok
}

// Add indexes image d of size bytes.
func (c *Cache) Add(d protocol.Digest, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.index[d] = size
}

// Remove forgets image d and its chunks (evicted or deleted).
func (c *Cache) Remove(d protocol.Digest) {
	c.mu.Lock()
	delete(c.index, d)
	c.mu.Unlock()
	c.chunkMu.Lock()
	defer c.chunkMu.Unlock()
	for e := c.lru.Front(); e != nil; {
		next := e.Next()
		if ch := e.Value.(*chunk); ch.key.digest == d {
			c.lru.Remove(e)
			delete(c.chunks, ch.key)
			c.used -= int64(len(ch.data))
		}
		e = next
	}
}

// List returns the indexed images, ordered by digest.
func (c *Cache) List() []Image {
	c.mu.RLock()
	out := make([]Image, 0, len(c.index))
	for d, n := range c.index {
		out = append(out, Image{d, n})
	}
	c.mu.RUnlock()
	slices.SortFunc(out, func(a, b Image) int { return strings.Compare(a.Digest.String(), b.Digest.String()) })
	return out
}

// ReadAt copies bytes of image d, of size bytes, at off into p (p must not
// cross a chunk boundary: a block of at most 1 KiB at a multiple of its
// size never does), reading the chunk from the store on a miss.
func (c *Cache) ReadAt(d protocol.Digest, size int64, p []byte, off int64) error {
	k := chunkKey{d, off / chunkSize}
	c.chunkMu.Lock()
	if e, ok := c.chunks[k]; ok {
		c.lru.MoveToFront(e)
		data := e.Value.(*chunk).data
		copy(p, data[off-k.index*chunkSize:])
		c.chunkMu.Unlock()
		return nil
	}
	c.chunkMu.Unlock()
	start := k.index * chunkSize
	data := make([]byte, min(chunkSize, size-start))
	if _, err := c.st.ReadAt(d, data, start); err != nil {
		return err
	}
	copy(p, data[off-start:])
	if c.max <= 0 {
		return nil
	}
	c.chunkMu.Lock()
	defer c.chunkMu.Unlock()
	if _, ok := c.chunks[k]; ok {
		return nil
	}
	c.chunks[k] = c.lru.PushFront(&chunk{key: k, data: data})
	c.used += int64(len(data))
	for c.used > c.max {
		e := c.lru.Back()
		old := e.Value.(*chunk)
		c.lru.Remove(e)
		delete(c.chunks, old.key)
		c.used -= int64(len(old.data))
	}
	return nil
}

// MarkUsed records, in memory, that a transfer of d started.
func (c *Cache) MarkUsed(d protocol.Digest) {
	c.usedMu.Lock()
	c.marked[d] = true
	c.usedMu.Unlock()
}

// FlushUsed writes the marks of [Cache.MarkUsed] to the store.
func (c *Cache) FlushUsed() {
	c.usedMu.Lock()
	ds := c.marked
	c.marked = map[protocol.Digest]bool{}
	c.usedMu.Unlock()
	for d := range ds {
		if err := c.st.Touch(d); err != nil && !errors.Is(err, store.ErrNotFound) {
			c.log.Warn("touch model", "digest", d.String(), "err", err)
		}
	}
}
