package flash

import (
	"fmt"
	"sync"
)

// Sim is NOR flash held in memory, with erase counters and power-cut
// injection (see the package documentation for the fault model). It is safe
// for concurrent use.
type Sim struct {
	mu   sync.Mutex
	geo  geometry
	seed int64
	data []byte

	eraseCounts []uint64
	stats       Stats
	ops         uint64

	// cutAt is the value of ops at which power is cut; 0 means disarmed.
	cutAt   uint64
	cutMode CutMode
	// off is true from a power cut until PowerOn.
	off bool
}

// New returns an erased Sim of size bytes. The geometry defaults to 4096-byte
// erase blocks and 8-byte write units; it fails with [ErrGeometry] when the
// options do not describe a valid device.
func New(size int64, opts ...Option) (*Sim, error) {
	c := newConfig(opts)
	g, err := newGeometry(size, c)
	if err != nil {
		return nil, fmt.Errorf("flash: %w", err)
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("flash: size %d does not fit in memory: %w", size, ErrGeometry)
	}
	s := &Sim{
		geo:         g,
		seed:        c.seed,
		data:        make([]byte, size),
		eraseCounts: make([]uint64, g.blocks()),
	}
	fillErased(s.data)
	return s, nil
}

// Size returns the size of the device in bytes.
func (s *Sim) Size() int64 { return s.geo.size }

// EraseSize returns the erase-block size in bytes.
func (s *Sim) EraseSize() int { return s.geo.eraseSize }

// WriteSize returns the write unit, the granularity of Program, in bytes.
func (s *Sim) WriteSize() int { return s.geo.writeSize }

// ReadAt reads len(p) bytes at off, with [io.ReaderAt] semantics: it returns
// io.EOF with fewer bytes at the end of the device. A negative off fails
// with [ErrRange], and a read while the power is cut with [ErrPowerCut].
// Reading is not a counted operation.
func (s *Sim) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.off {
		return 0, fmt.Errorf("flash: read at %#x: %w", off, ErrPowerCut)
	}
	n, err := s.geo.checkRead(off, len(p))
	if n > 0 {
		copy(p[:n], s.data[off:])
	}
	return n, err
}

// Program writes p at off. Both must be multiples of the write unit, and
// every unit written must be fully erased; otherwise Program fails with
// [ErrAlignment], [ErrRange] or [ErrNotErased], changes nothing and counts
// nothing. Any other call is one counted operation, and may be the one a
// power cut was armed for.
func (s *Sim) Program(off int64, p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.off {
		return fmt.Errorf("flash: program at %#x: %w", off, ErrPowerCut)
	}
	if err := s.geo.checkProgram(off, len(p)); err != nil {
		return err
	}
	if len(p) == 0 {
		return nil
	}
	dst := s.data[off : off+int64(len(p))]
	if i := firstNotErased(dst); i >= 0 {
		return s.geo.notErased(off, len(p), off+int64(i))
	}
	s.ops++
	s.stats.Programs++
	if mode, cut := s.cutNow(); cut {
		if mode == CutMidway {
			n := programMidway(dst, p, s.geo.writeSize, s.rand())
			s.stats.BytesProgrammed += uint64(n)
		}
		return fmt.Errorf("flash: program %d bytes at %#x: %w", len(p), off, ErrPowerCut)
	}
	copy(dst, p)
	s.stats.BytesProgrammed += uint64(len(p))
	return nil
}

// Erase sets the n bytes at off to 0xFF. Both must be multiples of the
// erase-block size; otherwise Erase fails with [ErrAlignment] or [ErrRange],
// changes nothing and counts nothing. Any other call is one counted
// operation however many blocks it spans, and may be the one a power cut was
// armed for.
func (s *Sim) Erase(off, n int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.off {
		return fmt.Errorf("flash: erase at %#x: %w", off, ErrPowerCut)
	}
	if err := s.geo.checkErase(off, n); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	s.ops++
	s.stats.Erases++
	dst := s.data[off : off+n]
	mode, cut := s.cutNow()
	if cut && mode == CutBefore {
		return fmt.Errorf("flash: erase %d bytes at %#x: %w", n, off, ErrPowerCut)
	}
	first := int(off / int64(s.geo.eraseSize))
	for b := range int(n / int64(s.geo.eraseSize)) {
		s.eraseCounts[first+b]++
	}
	if cut {
		eraseMidway(dst, s.rand())
		return fmt.Errorf("flash: erase %d bytes at %#x: %w", n, off, ErrPowerCut)
	}
	fillErased(dst)
	return nil
}

// EraseCount returns how many erase operations block has been through,
// counting one that a power cut interrupted midway but not one cut before it
// started. Block i starts at offset i*EraseSize(). EraseCount panics if block
// is out of range.
func (s *Sim) EraseCount(block int) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eraseCounts[block]
}

// EraseCounts returns a copy of the erase counters of all blocks, indexed as
// for [Sim.EraseCount].
func (s *Sim) EraseCounts() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.eraseCounts...)
}

// Stats returns the operation counters.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Snapshot returns a copy of the contents, also while the power is cut.
func (s *Sim) Snapshot() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.data...)
}

// Clone returns an independent copy of s: geometry, seed, contents and
// counters, Ops included. The clone is powered on and has no power cut
// armed, whatever the state of s.
func (s *Sim) Clone() *Sim {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &Sim{
		geo:         s.geo,
		seed:        s.seed,
		data:        append([]byte(nil), s.data...),
		eraseCounts: append([]uint64(nil), s.eraseCounts...),
		stats:       s.stats,
		ops:         s.ops,
	}
}
