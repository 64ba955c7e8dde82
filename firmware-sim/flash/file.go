package flash

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// fileChunk bounds the buffer a File uses to check and erase, and the writes
// that fill a new file.
const fileChunk = 64 << 10

// File is NOR flash backed by a regular file of exactly the device size, so
// that its contents outlive the process. It enforces the same rules as
// [Sim] but cannot cut its own power. Its erase counters and [Stats] are kept
// in memory and start at zero each time the file is opened. It is safe for
// concurrent use within one process; two processes must not open the same
// file for writing.
type File struct {
	mu       sync.Mutex
	f        *os.File // nil once closed
	path     string
	geo      geometry
	readOnly bool
	sync     bool
	buf      []byte // scratch for the erased check and for erasing

	eraseCounts []uint64
	stats       Stats
	ops         uint64
}

// OpenFile opens the flash image at path for reading and writing. If there is
// no file at path, OpenFile creates one of size bytes, all erased, with mode
// 0600: it fills a temporary file next to path, flushes it and renames it into
// place, so that a crash never leaves a half-filled image behind. If the file
// exists, its size must be size, or OpenFile fails with [ErrGeometry]. The
// options set the geometry as for [New], and [WithSync] the flushing.
func OpenFile(path string, size int64, opts ...Option) (*File, error) {
	c := newConfig(opts)
	g, err := newGeometry(size, c)
	if err != nil {
		return nil, fmt.Errorf("flash: open %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createErased(path, size); err != nil {
			return nil, fmt.Errorf("flash: create %s: %w", path, err)
		}
		f, err = os.OpenFile(path, os.O_RDWR, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("flash: %w", err)
	}
	got, err := regularSize(f)
	if err == nil && got != size {
		err = fmt.Errorf("file is %d bytes, want %d: %w", got, size, ErrGeometry)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("flash: open %s: %w", path, err)
	}
	return &File{
		f:           f,
		path:        path,
		geo:         g,
		sync:        c.sync,
		buf:         make([]byte, min(size, fileChunk)),
		eraseCounts: make([]uint64, g.blocks()),
	}, nil
}

// OpenFileReadOnly opens the flash image at path for inspection. The size is
// that of the file, which must fit the geometry set by the options, or
// OpenFileReadOnly fails with [ErrGeometry]. Program and Erase fail with
// [ErrReadOnly].
func OpenFileReadOnly(path string, opts ...Option) (*File, error) {
	c := newConfig(opts)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("flash: %w", err)
	}
	size, err := regularSize(f)
	var g geometry
	if err == nil {
		g, err = newGeometry(size, c)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("flash: open %s: %w", path, err)
	}
	return &File{
		f:           f,
		path:        path,
		geo:         g,
		readOnly:    true,
		eraseCounts: make([]uint64, g.blocks()),
	}, nil
}

// regularSize returns the size of f, which must be a regular file.
func regularSize(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("not a regular file: %w", ErrGeometry)
	}
	return fi.Size(), nil
}

// createErased creates path holding size bytes of 0xFF, through a temporary
// file that is flushed and renamed into place.
func createErased(path string, size int64) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	chunk := make([]byte, min(size, fileChunk))
	fillErased(chunk)
	for done := int64(0); done < size; {
		n, err := tmp.Write(chunk[:min(size-done, int64(len(chunk)))])
		if err != nil {
			return err
		}
		done += int64(n)
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Size returns the size of the device in bytes.
func (f *File) Size() int64 { return f.geo.size }

// EraseSize returns the erase-block size in bytes.
func (f *File) EraseSize() int { return f.geo.eraseSize }

// WriteSize returns the write unit, the granularity of Program, in bytes.
func (f *File) WriteSize() int { return f.geo.writeSize }

// ReadAt reads len(p) bytes at off, with [io.ReaderAt] semantics: it returns
// io.EOF with fewer bytes at the end of the device. A negative off fails with
// [ErrRange]. Reading is not a counted operation.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		return 0, fmt.Errorf("flash: read at %#x: %w", off, fs.ErrClosed)
	}
	n, err := f.geo.checkRead(off, len(p))
	if n > 0 {
		if m, rerr := f.f.ReadAt(p[:n], off); rerr != nil {
			return m, fmt.Errorf("flash: read %d bytes at %#x: %w", n, off, rerr)
		}
	}
	return n, err
}

// Program writes p at off with the rules of [Sim.Program]: it reads the
// units back (pread), refuses unless they are erased, and writes them
// (pwrite). An I/O error during the write still counts the operation.
func (f *File) Program(off int64, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.writable("program", off); err != nil {
		return err
	}
	if err := f.geo.checkProgram(off, len(p)); err != nil {
		return err
	}
	if len(p) == 0 {
		return nil
	}
	for done := 0; done < len(p); {
		chunk := f.buf[:min(len(f.buf), len(p)-done)]
		if _, err := f.f.ReadAt(chunk, off+int64(done)); err != nil {
			return fmt.Errorf("flash: program %d bytes at %#x: %w", len(p), off, err)
		}
		if i := firstNotErased(chunk); i >= 0 {
			return f.geo.notErased(off, len(p), off+int64(done+i))
		}
		done += len(chunk)
	}
	f.ops++
	f.stats.Programs++
	if _, err := f.f.WriteAt(p, off); err != nil {
		return fmt.Errorf("flash: program %d bytes at %#x: %w", len(p), off, err)
	}
	if err := f.flush(); err != nil {
		return fmt.Errorf("flash: program %d bytes at %#x: %w", len(p), off, err)
	}
	f.stats.BytesProgrammed += uint64(len(p))
	return nil
}

// Erase sets the n bytes at off to 0xFF (pwrite) with the rules of
// [Sim.Erase]. An I/O error still counts the operation and the erase
// counters.
func (f *File) Erase(off, n int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.writable("erase", off); err != nil {
		return err
	}
	if err := f.geo.checkErase(off, n); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	f.ops++
	f.stats.Erases++
	first := int(off / int64(f.geo.eraseSize))
	for b := range int(n / int64(f.geo.eraseSize)) {
		f.eraseCounts[first+b]++
	}
	fillErased(f.buf)
	for done := int64(0); done < n; {
		chunk := f.buf[:min(int64(len(f.buf)), n-done)]
		if _, err := f.f.WriteAt(chunk, off+done); err != nil {
			return fmt.Errorf("flash: erase %d bytes at %#x: %w", n, off, err)
		}
		done += int64(len(chunk))
	}
	if err := f.flush(); err != nil {
		return fmt.Errorf("flash: erase %d bytes at %#x: %w", n, off, err)
	}
	return nil
}

// writable is called with f.mu held and refuses writes to a closed or
// read-only File.
func (f *File) writable(op string, off int64) error {
	switch {
	case f.f == nil:
		return fmt.Errorf("flash: %s at %#x: %w", op, off, fs.ErrClosed)
	case f.readOnly:
		return fmt.Errorf("flash: %s at %#x: %w", op, off, ErrReadOnly)
	}
	return nil
}

// flush makes the last write durable when WithSync was given.
func (f *File) flush() error {
	if !f.sync {
		return nil
	}
	return datasync(f.f)
}

// EraseCount returns how many erase operations block has been through since
// the file was opened. Block i starts at offset i*EraseSize(). EraseCount
// panics if block is out of range.
func (f *File) EraseCount(block int) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.eraseCounts[block]
}

// EraseCounts returns a copy of the erase counters of all blocks since the
// file was opened.
func (f *File) EraseCounts() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uint64(nil), f.eraseCounts...)
}

// Stats returns the operation counters since the file was opened.
func (f *File) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Ops returns the number of counted operations since the file was opened.
func (f *File) Ops() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ops
}

// Close flushes a writable File to stable storage and closes it. Every later
// call on f fails with [fs.ErrClosed].
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		return fmt.Errorf("flash: close %s: %w", f.path, fs.ErrClosed)
	}
	var err error
	if !f.readOnly {
		err = f.f.Sync()
	}
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	f.f = nil
	if err != nil {
		return fmt.Errorf("flash: close %s: %w", f.path, err)
	}
	return nil
}
