package journal

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
)

// MaxPayload is the largest payload [Journal.Append] accepts, in bytes.
const MaxPayload = 1024

// ErrTooLarge is returned, wrapped, by [Journal.Append] for a payload longer
// than [MaxPayload]. Nothing was written.
var ErrTooLarge = errors.New("payload too large")

// ErrRegion is returned, wrapped, by [Open] when the region or the flash
// geometry cannot hold a journal: a misaligned offset, too few blocks, or a
// write size that does not divide the erase size.
var ErrRegion = errors.New("unusable journal region")

// ErrFormatTooNew is returned, wrapped, by [Open] and [Journal.Append]
// when the region holds a record of a framing version newer than
// [Framing]: a newer node agent wrote this flash. Nothing was written.
var ErrFormatTooNew = errors.New("journal written by a newer node agent")

// Flash is the part of a NOR flash the journal uses. Erased flash reads as
// 0xFF. Implementations must not retain the slices passed to them.
type Flash interface {
	// EraseSize returns the erase-block size in bytes.
	EraseSize() int
	// WriteSize returns the write unit in bytes, a divisor of EraseSize.
	WriteSize() int
	// ReadAt reads len(p) bytes at off, with io.ReaderAt semantics.
	ReadAt(p []byte, off int64) (int, error)
	// Program writes p at off. Both are multiples of WriteSize, and every
	// unit written must be erased (all 0xFF).
	Program(off int64, p []byte) error
	// Erase sets the n bytes at off to 0xFF; both are multiples of
	// EraseSize.
	Erase(off int64, n int64) error
}

// Stats counts the flash operations one [Journal] value has issued since
// [Open]. An operation that failed, a power cut included, is counted.
type Stats struct {
	// Appends is the number of calls to [Journal.Append] that returned nil.
	Appends uint64
	// Programs is the number of Program calls, two per append.
	Programs uint64
	// BytesProgrammed is the number of bytes passed to Program, padding
	// included.
	BytesProgrammed uint64
	// Erases is the number of Erase calls, one per segment erased.
	Erases uint64
	// BlocksErased is the number of erase blocks those calls covered.
	BlocksErased uint64
}

// Journal is an append-only, power-cut-safe log of small records in a ring
// of erase blocks; only its newest record matters. It is safe for concurrent
// use. See the package documentation for the layout and the guarantees.
type Journal struct {
	mu sync.Mutex
	f  Flash

	// Geometry, fixed by Open.
	off       int64 // start of the region
	writeSize int
	segBlocks int // erase blocks per segment
	segSize   int // bytes per segment
	nseg      int // segments in the ring

	// State of the newest record.
	has     bool
	seq     uint64 // 0 when !has
	payload []byte
	// cur is the segment that holds the newest record, or where the first
	// one goes; pos is the offset in cur where the next record goes.
	cur, pos int
	// clean is an offset in cur from which every byte is known erased.
	clean int
	// stale is set when an append failed: the flash may hold the new
	// record, or garbage at pos, so it is scanned again before the next.
	stale bool

	seg   []byte // one segment, for scanning and checking
	rec   []byte // two copies of the largest record, for encoding
	stats Stats
}

// Open returns the journal that owns blocks erase blocks of f starting at
// off, which must be a multiple of the erase size. It scans the region for
// the newest valid record. A region that was never written (all 0xFF) is an
// empty journal, and anything that is not a valid record, such as what a power
// cut leaves, is ignored; only a failed read, and a record of a newer
// framing ([ErrFormatTooNew]), are errors.
//
// Records are stored in segments of whole erase blocks, each large enough for
// both copies of a [MaxPayload] record: one block when the erase size is at
// least 2096 bytes with a write size of 8 (2112 with 16), several for smaller
// blocks. blocks must make at least two segments, or Open fails with
// [ErrRegion]; blocks left over after the last whole segment are never
// touched. Only one Journal may use a region at a time.
func Open(f Flash, off int64, blocks int) (*Journal, error) {
	if f == nil {
		return nil, fmt.Errorf("journal: nil flash: %w", ErrRegion)
	}
	es, ws := f.EraseSize(), f.WriteSize()
	if es <= 0 || ws <= 0 || es%ws != 0 {
		return nil, fmt.Errorf("journal: erase size %d, write size %d: %w", es, ws, ErrRegion)
	}
	if off < 0 || off%int64(es) != 0 {
		return nil, fmt.Errorf("journal: offset %#x not aligned to erase size %d: %w", off, es, ErrRegion)
	}
	maxSpan := 2 * copySize(MaxPayload, ws)
	k := (maxSpan + es - 1) / es
	if blocks < 2*k {
		return nil, fmt.Errorf("journal: %d blocks of %d bytes, need at least %d: %w", blocks, es, 2*k, ErrRegion)
	}
	if int64(blocks) > (math.MaxInt64-off)/int64(es) {
		return nil, fmt.Errorf("journal: %d blocks at %#x overflow: %w", blocks, off, ErrRegion)
	}
	j := &Journal{
		f:         f,
		off:       off,
		writeSize: ws,
		segBlocks: k,
		segSize:   k * es,
		nseg:      blocks / k,
		seg:       make([]byte, k*es),
		rec:       make([]byte, maxSpan),
	}
	if err := j.scan(); err != nil {
		return nil, err
	}
	return j, nil
}

// scan reads every segment and sets the state from the newest valid record
// copy: the highest sequence number wins. On error it changes nothing; a
// copy of a newer framing anywhere is an error ([ErrFormatTooNew]).
func (j *Journal) scan() error {
	var (
		newer      int // the newest framing above ours, in segment newerSeg
		newerSeg   int
		found      bool
		seq        uint64
		payload    []byte
		cur, end   int
		curClean   int
		firstClean int
	)
	for s := range j.nseg {
		if err := j.read(j.seg, j.segOff(s)); err != nil {
			return fmt.Errorf("journal: scan segment %d: %w", s, err)
		}
		clean := cleanFrom(j.seg, j.writeSize)
		if s == 0 {
			firstClean = clean
		}
		scanSegment(j.seg, j.writeSize, func(pos int, d decoded) {
			if d.framing > Framing {
				if d.framing > newer {
					newer, newerSeg = d.framing, s
				}
				return
			}
			size := copySize(len(d.payload), j.writeSize)
			e := pos + size // after the second copy
			if d.tag == copyFirst {
				e += size // after the second copy's place
			}
			switch {
			case !found || d.seq > seq:
				found, seq, cur, end, curClean = true, d.seq, s, e, clean
				payload = append(payload[:0], d.payload...)
			case d.seq == seq && s == cur:
				end = max(end, e)
			}
		})
	}
	if newer > 0 {
		return fmt.Errorf("journal: %w: segment %d holds a record of journal framing %d, this node agent reads framings up to %d; "+
			"run the newer node agent (nothing was written)", ErrFormatTooNew, newerSeg, newer, Framing)
	}
	j.has, j.seq, j.payload, j.stale = found, seq, payload, false
	if !found {
		j.cur, j.pos, j.clean = 0, 0, firstClean
		return nil
	}
	j.cur, j.pos, j.clean = cur, min(end, j.segSize), curClean
	return nil
}

// Latest returns a copy of the newest record's payload and its sequence
// number, 1 for the first record ever appended; ok is false when the journal
// is empty. After a failed [Journal.Append] it still reports the record
// before it, until the next Append scans the flash again.
func (j *Journal) Latest() (payload []byte, seq uint64, ok bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.has {
		return nil, 0, false
	}
	p := make([]byte, len(j.payload))
	copy(p, j.payload)
	return p, j.seq, true
}

// Append durably stores payload as the newest record, with the next
// sequence number. When it returns nil, [Journal.Latest] and any later
// [Open] report the new record. When it fails, the flash holds either the
// record before it or the new one, and Open finds that one; the same Journal
// can also be used again, and scans the flash before its next append.
// A payload longer than [MaxPayload] fails with [ErrTooLarge].
func (j *Journal) Append(payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("journal: append %d bytes (max %d): %w", len(payload), MaxPayload, ErrTooLarge)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.stale {
		if err := j.scan(); err != nil {
			return err
		}
	}
	if j.seq == math.MaxUint64 {
		return fmt.Errorf("journal: append: sequence numbers exhausted")
	}
	if err := j.append(payload); err != nil {
		j.stale = true
		return err
	}
	return nil
}

// append writes the record after the newest one, or at the start of the
// next segment after erasing it. The segment holding the newest record is
// never erased, and no unit is programmed unless it reads erased.
func (j *Journal) append(payload []byte) error {
	seq := j.seq + 1
	size := copySize(len(payload), j.writeSize)
	need := 2 * size
	rec := j.rec[:need]
	encodeCopy(rec[:size], copyFirst, seq, payload)
	encodeCopy(rec[size:], copySecond, seq, payload)

	seg, pos := j.cur, j.pos
	fits, err := j.fits(need)
	if err != nil {
		return err
	}
	if !fits {
		if j.has {
			seg = (j.cur + 1) % j.nseg
		}
		pos = 0
		j.stats.Erases++
		j.stats.BlocksErased += uint64(j.segBlocks)
		if err := j.f.Erase(j.segOff(seg), int64(j.segSize)); err != nil {
			return fmt.Errorf("journal: append seq %d: erase segment %d: %w", seq, seg, err)
		}
	}
	for c := range 2 {
		at := j.segOff(seg) + int64(pos+c*size)
		j.stats.Programs++
		j.stats.BytesProgrammed += uint64(size)
		if err := j.f.Program(at, rec[c*size:(c+1)*size]); err != nil {
			return fmt.Errorf("journal: append seq %d: program copy %d at %#x: %w", seq, c+1, at, err)
		}
	}
	if !fits {
		j.cur, j.clean = seg, 0
	}
	j.has, j.seq, j.pos = true, seq, pos+need
	j.payload = append(j.payload[:0], payload...)
	j.stats.Appends++
	return nil
}

// fits reports whether need bytes at pos in the current segment are inside
// it and erased. Past the clean mark it reads them back, so that a torn
// record or other garbage is never programmed over.
func (j *Journal) fits(need int) (bool, error) {
	if j.pos+need > j.segSize {
		return false, nil
	}
	if j.pos >= j.clean {
		return true, nil
	}
	b := j.seg[:need]
	if err := j.read(b, j.segOff(j.cur)+int64(j.pos)); err != nil {
		return false, fmt.Errorf("journal: append: check segment %d: %w", j.cur, err)
	}
	return isErased(b), nil
}

// Stats returns the operation counters of this Journal value.
func (j *Journal) Stats() Stats {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.stats
}

// segOff returns the flash offset of segment s.
func (j *Journal) segOff(s int) int64 {
	return j.off + int64(s)*int64(j.segSize)
}

// read fills p from off; a short read is an error.
func (j *Journal) read(p []byte, off int64) error {
	n, err := j.f.ReadAt(p, off)
	if n == len(p) && (err == nil || errors.Is(err, io.EOF)) {
		return nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return err
}
