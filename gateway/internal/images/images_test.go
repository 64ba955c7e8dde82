package images

import (
	"bytes"
	"sync"
	"testing"

	"edgeota/gateway/internal/store"
	"edgeota/protocol"
)

// memStore is an in-memory Store that counts its reads.
type memStore struct {
	mu      sync.Mutex
	images  map[protocol.Digest][]byte
	reads   int
	touched []protocol.Digest
}

func (m *memStore) ReadAt(d protocol.Digest, p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	return copy(p, m.images[d][off:]), nil
}

func (m *memStore) Touch(d protocol.Digest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.images[d]; !ok {
		return store.ErrNotFound
	}
	m.touched = append(m.touched, d)
	return nil
}

func image(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i) ^ seed
	}
	return b
}

func TestReadAtCachesChunks(t *testing.T) {
	d1, d2 := protocol.Digest{1}, protocol.Digest{2}
	st := &memStore{images: map[protocol.Digest][]byte{d1: image(3*chunkSize+100, 1), d2: image(chunkSize, 2)}}
	c := New(st, 2*chunkSize, nil)
	c.Add(d1, int64(len(st.images[d1])))
	c.Add(d2, chunkSize)
	read := func(d protocol.Digest, off int64, n int) {
		t.Helper()
		p := make([]byte, n)
		if err := c.ReadAt(d, int64(len(st.images[d])), p, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p, st.images[d][off:off+int64(n)]) {
			t.Fatalf("%x at %d: wrong bytes", d[:1], off)
		}
	}
	// Every block of a chunk after the first comes from memory.
	for off := int64(0); off < chunkSize; off += 1024 {
		read(d1, off, 1024)
	}
	if st.reads != 1 {
		t.Fatalf("%d store reads for one chunk, want 1", st.reads)
	}
	// The last, short chunk.
	read(d1, 3*chunkSize, 100)
	// Beyond the bound the least recently used chunk goes: chunk 0 was
	// used before chunk 3, so it is read again after chunk 1 comes in.
	read(d1, chunkSize, 1024)
	read(d1, 0, 1024)
	if st.reads != 4 {
		t.Fatalf("%d store reads, want 4 (chunk 0 evicted by the bound)", st.reads)
	}
	// Remove forgets the image and its chunks.
	c.Remove(d1)
	if _, ok := c.Size(d1); ok {
		t.Fatal("removed image still indexed")
	}
	if l := c.List(); len(l) != 1 || l[0].Digest != d2 {
		t.Fatalf("list %+v", l)
	}
	read(d1, 0, 1024)
	if st.reads != 5 {
		t.Fatalf("%d store reads, want 5 (chunks of a removed image dropped)", st.reads)
	}
}

func TestNoChunkCache(t *testing.T) {
	d := protocol.Digest{1}
	st := &memStore{images: map[protocol.Digest][]byte{d: image(2048, 1)}}
	c := New(st, -1, nil)
	p := make([]byte, 1024)
	for range 2 {
		if err := c.ReadAt(d, 2048, p, 1024); err != nil {
			t.Fatal(err)
		}
	}
	if st.reads != 2 {
		t.Fatalf("%d store reads without a cache, want 2", st.reads)
	}
}

// TestFlushUsed: marks reach the store once each, and an image gone from
// the store is no error.
func TestFlushUsed(t *testing.T) {
	d, gone := protocol.Digest{1}, protocol.Digest{2}
	st := &memStore{images: map[protocol.Digest][]byte{d: image(10, 1)}}
	c := New(st, 0, nil)
	c.MarkUsed(d)
	c.MarkUsed(d)
	c.MarkUsed(gone)
	c.FlushUsed()
	c.FlushUsed()
	if len(st.touched) != 1 || st.touched[0] != d {
		t.Fatalf("touched %v, want %v once", st.touched, d)
	}
}
