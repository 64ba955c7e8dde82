package flash

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// Default geometry, matching common SPI NOR parts (4 KiB sectors) and the
// 8-byte write unit of internal flash with ECC.
const (
	defaultEraseSize = 4096
	defaultWriteSize = 8
)

// erased is the value of an erased byte.
const erased = 0xFF

// An Option sets an optional parameter of [New], [OpenFile] or
// [OpenFileReadOnly]. Options that do not apply to a device are ignored:
// [WithSeed] only matters to [Sim], [WithSync] only to [File].
type Option func(*config)

type config struct {
	eraseSize int
	writeSize int
	seed      int64
	sync      bool
}

func newConfig(opts []Option) config {
	c := config{eraseSize: defaultEraseSize, writeSize: defaultWriteSize}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithEraseSize sets the erase-block size in bytes (default 4096). It must be
// a positive multiple of the write unit.
func WithEraseSize(n int) Option {
	return func(c *config) { c.eraseSize = n }
}

// WithWriteSize sets the write unit in bytes (default 8): the granularity of
// Program. It must be a power of two that divides the erase-block size, for
// example 1 for byte-writable NOR, 8 or 16 for internal flash with ECC.
func WithWriteSize(n int) Option {
	return func(c *config) { c.writeSize = n }
}

// WithSeed sets the seed of the randomness of [CutMidway] power cuts in a
// [Sim] (default 0). Equal seeds give equal results for equal operations.
func WithSeed(seed int64) Option {
	return func(c *config) { c.seed = seed }
}

// WithSync makes a [File] flush its data to stable storage (fdatasync) after
// every Program and Erase. Without it a completed operation survives the
// process being killed, since its data sits in the kernel's page cache, but
// not a crash or power loss of the host. With it an operation also survives
// those, at the cost of one disk flush per operation: milliseconds on most
// disks, which makes power-cut sweeps far slower.
func WithSync(on bool) Option {
	return func(c *config) { c.sync = on }
}

// geometry is the validated shape of a device.
type geometry struct {
	size      int64
	eraseSize int
	writeSize int
}

// newGeometry validates a device of size bytes shaped by c. Its errors wrap
// ErrGeometry and leave the "flash:" prefix to the caller.
func newGeometry(size int64, c config) (geometry, error) {
	g := geometry{size: size, eraseSize: c.eraseSize, writeSize: c.writeSize}
	switch {
	case g.writeSize <= 0 || g.writeSize&(g.writeSize-1) != 0:
		return g, fmt.Errorf("write size %d is not a power of two: %w", g.writeSize, ErrGeometry)
	case g.eraseSize <= 0 || g.eraseSize%g.writeSize != 0:
		return g, fmt.Errorf("erase size %d is not a positive multiple of write size %d: %w",
			g.eraseSize, g.writeSize, ErrGeometry)
	case size <= 0 || size%int64(g.eraseSize) != 0:
		return g, fmt.Errorf("size %d is not a positive multiple of erase size %d: %w",
			size, g.eraseSize, ErrGeometry)
	}
	return g, nil
}

// blocks returns the number of erase blocks.
func (g geometry) blocks() int {
	return int(g.size / int64(g.eraseSize))
}

// checkSpan reports whether [off, off+n) lies within the device and is
// aligned to unit, wrapping ErrRange or ErrAlignment with op and off.
func (g geometry) checkSpan(op string, off, n int64, unit int) error {
	if off < 0 || n < 0 || off > g.size || n > g.size-off {
		return fmt.Errorf("flash: %s %d bytes at %#x: %w (size %#x)", op, n, off, ErrRange, g.size)
	}
	if off%int64(unit) != 0 || n%int64(unit) != 0 {
		return fmt.Errorf("flash: %s %d bytes at %#x: %w (unit %d)", op, n, off, ErrAlignment, unit)
	}
	return nil
}

// checkProgram validates the span of a Program.
func (g geometry) checkProgram(off int64, n int) error {
	return g.checkSpan("program", off, int64(n), g.writeSize)
}

// checkErase validates the span of an Erase.
func (g geometry) checkErase(off, n int64) error {
	return g.checkSpan("erase", off, n, g.eraseSize)
}

// checkRead applies io.ReaderAt rules to a read of n bytes at off: it returns
// how many bytes can be read and io.EOF when that is fewer than n.
func (g geometry) checkRead(off int64, n int) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("flash: read at %#x: %w", off, ErrRange)
	}
	if off >= g.size {
		return 0, io.EOF
	}
	if rest := g.size - off; int64(n) > rest {
		return int(rest), io.EOF
	}
	return n, nil
}

// notErased returns a refusal naming the write unit that holds byte at, the
// absolute offset of a byte that is not erased.
func (g geometry) notErased(off int64, n int, at int64) error {
	unit := at - at%int64(g.writeSize)
	return fmt.Errorf("flash: program %d bytes at %#x: %w at %#x", n, off, ErrNotErased, unit)
}

// firstNotErased returns the index of the first byte of b that is not 0xFF,
// or -1.
func firstNotErased(b []byte) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:]) != math.MaxUint64 {
			break
		}
	}
	for ; i < len(b); i++ {
		if b[i] != erased {
			return i
		}
	}
	return -1
}

// fillErased sets every byte of b to 0xFF.
func fillErased(b []byte) {
	if len(b) == 0 {
		return
	}
	b[0] = erased
	for n := 1; n < len(b); n *= 2 {
		copy(b[n:], b[:n])
	}
}

// Stats counts the operations a device has performed.
type Stats struct {
	// Programs is the number of counted Program calls, the one a power cut
	// interrupted included.
	Programs uint64
	// Erases is the number of counted Erase calls, the one a power cut
	// interrupted included; an Erase spanning several blocks counts once.
	Erases uint64
	// BytesProgrammed is the number of bytes in write units that were fully
	// programmed. The partial unit of a [CutMidway] Program is not included.
	BytesProgrammed uint64
}
