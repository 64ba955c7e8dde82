package gateway

import (
	"container/list"
	"sync"

	"edgeota/protocol"
)

// chunkSize is the unit of the block cache: 64 blocks of 1 KiB.
const chunkSize = 64 << 10

type chunkKey struct {
	digest protocol.Digest
	index  int64
}

type chunk struct {
	key  chunkKey
	data []byte
}

// blockCache keeps recently served image chunks in memory, shared by every
// transfer of the same image: a fleet fetching one model reads each chunk
// from the database once. Bounded by bytes, least recently used out.
type blockCache struct {
	mu    sync.Mutex
	max   int64
	used  int64
	lru   *list.List
	items map[chunkKey]*list.Element
}

func newBlockCache(maxBytes int64) *blockCache {
	return &blockCache{max: maxBytes, lru: list.New(), items: map[chunkKey]*list.Element{}}
}

// readAt copies image bytes at off into p (p must not cross a chunk
// boundary), loading the chunk with load on a miss.
func (c *blockCache) readAt(d protocol.Digest, size int64, p []byte, off int64, load func(p []byte, off int64) (int, error)) error {
	k := chunkKey{d, off / chunkSize}
	c.mu.Lock()
	if e, ok := c.items[k]; ok {
		c.lru.MoveToFront(e)
		data := e.Value.(*chunk).data
		copy(p, data[off-k.index*chunkSize:])
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	start := k.index * chunkSize
	data := make([]byte, min(chunkSize, size-start))
	if _, err := load(data, start); err != nil {
		return err
	}
	copy(p, data[off-start:])
	if c.max <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[k]; ok {
		return nil
	}
	c.items[k] = c.lru.PushFront(&chunk{key: k, data: data})
	c.used += int64(len(data))
	for c.used > c.max {
		e := c.lru.Back()
		old := e.Value.(*chunk)
		c.lru.Remove(e)
		delete(c.items, old.key)
		c.used -= int64(len(old.data))
	}
	return nil
}

// drop forgets every chunk of an image (evicted or deleted).
func (c *blockCache) drop(d protocol.Digest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := c.lru.Front(); e != nil; {
		next := e.Next()
		if ch := e.Value.(*chunk); ch.key.digest == d {
			c.lru.Remove(e)
			delete(c.items, ch.key)
			c.used -= int64(len(ch.data))
		}
		e = next
	}
}
