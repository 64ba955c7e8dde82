package delta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

// workSize is the size of the Patcher's two work buffers (decoded record
// bytes, base bytes): the largest slice emit receives.
const workSize = 512

// chunkHead is a decoded chunk header.
type chunkHead struct {
	kind    byte
	raw     int   // bytes of records once decompressed
	packed  int   // bytes that follow the chunk header
	basePos int64 // base position at the chunk's first record
	outPos  int64 // target bytes before the chunk
}

// Patcher applies a format-1 patch as its bytes arrive, emitting the
// target image in order. It holds one chunk of packed bytes at most
// ([MaxChunkPacked]) plus the decompressor of that chunk; it never holds the
// base or the target.
//
// A Patcher does not verify the base image's digest (that would read the
// whole base): the caller compares [Header.Base] with the digest of the
// image it runs, with [Header.CheckBase], before it starts. A base shorter
// than the header's BaseSize is reported as ErrWrongBase when a copy reaches
// past its end. The target's digest is not computed either: the node
// verifies the rebuilt image against the signed manifest.
//
// After an error every call returns that error.
type Patcher struct {
	h    Header
	base io.ReaderAt
	emit func(p []byte) error

	at    int64 // patch offset of the next byte Write takes
	out   int64 // target bytes emitted
	last  Checkpoint
	hdr   []byte // header bytes still to match (start from offset 0)
	ch    [maxChunkHeader]byte
	chN   int
	cur   chunkHead
	in    bool // inside a chunk's packed bytes
	pack  []byte
	chOff int64 // patch offset of the current chunk
	work  [workSize]byte
	bwork [workSize]byte
	err   error
}

// NewPatcher starts applying a patch with header h at checkpoint cp; the
// zero Checkpoint starts at the patch's first byte (the header, which must
// equal h). base reads the image the patch applies to; emit receives the
// target's bytes in order, starting at cp.Out, each call's slice valid only
// during the call. An error from emit stops the Patcher and is returned,
// wrapped, by Write.
func NewPatcher(h Header, base io.ReaderAt, cp Checkpoint, emit func(p []byte) error) (*Patcher, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	if base == nil || emit == nil {
		return nil, errors.New("delta: nil base or emit")
	}
	p := &Patcher{h: h, base: base, emit: emit, at: cp.Patch, out: cp.Out, last: cp}
	switch {
	case cp == Checkpoint{}:
		p.hdr = h.appendTo(make([]byte, 0, HeaderSize))
	case cp.Patch < HeaderSize || cp.Out < 0 || cp.Out > h.TargetSize:
		return nil, fmt.Errorf("%w: checkpoint %+v outside the patch", ErrMalformed, cp)
	}
	return p, nil
}

// Last returns the last chunk boundary the Patcher passed: the checkpoint
// to journal once the target bytes before Last().Out are stored. Before the
// first chunk is complete it returns the checkpoint the Patcher started at.
func (p *Patcher) Last() Checkpoint { return p.last }

// Write feeds the patch's next bytes, starting at the checkpoint's Patch
// offset. It emits the target bytes of every chunk it completes. It returns
// len(b) or an error wrapping ErrMalformed, ErrWrongBase, the base reader's
// error or emit's error.
func (p *Patcher) Write(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	n := 0
	for n < len(b) {
		var k int
		var err error
		switch {
		case len(p.hdr) > 0:
			k = min(len(p.hdr), len(b)-n)
			if !bytes.Equal(p.hdr[:k], b[n:n+k]) {
				err = fmt.Errorf("%w: patch header differs from the header given", ErrMalformed)
				k = 0
			}
			p.hdr = p.hdr[k:]
			if len(p.hdr) == 0 {
				p.last = Checkpoint{Patch: HeaderSize}
			}
		case !p.in:
			k, err = p.chunkHeader(b[n:])
		default:
			k = min(p.cur.packed-len(p.pack), len(b)-n)
			p.pack = append(p.pack, b[n:n+k]...)
			if len(p.pack) == p.cur.packed {
				err = p.chunk()
				p.in = false
				p.pack = p.pack[:0]
				p.last = Checkpoint{Patch: p.at + int64(k), Out: p.out}
			}
		}
		n += k
		p.at += int64(k)
		if err != nil {
			p.err = err
			return n, err
		}
	}
	return n, nil
}

// chunkHeader takes bytes of a chunk header from b and returns how many.
func (p *Patcher) chunkHeader(b []byte) (int, error) {
	if p.out == p.h.TargetSize {
		return 0, fmt.Errorf("%w: %d bytes after the end at patch offset %d", ErrMalformed, len(b), p.at)
	}
	if p.chN == 0 {
		p.chOff = p.at
	}
	for i, c := range b {
		p.ch[p.chN] = c
		p.chN++
		h, ok, err := parseChunkHead(p.ch[:p.chN])
		if err != nil {
			return i + 1, fmt.Errorf("%w: chunk at patch offset %d: %w", ErrMalformed, p.chOff, err)
		}
		if !ok {
			continue
		}
		if err := p.checkHead(h); err != nil {
			return i + 1, fmt.Errorf("%w: chunk at patch offset %d: %w", ErrMalformed, p.chOff, err)
		}
		p.cur, p.in, p.chN = h, true, 0
		if cap(p.pack) < h.packed {
			// Sized to the largest chunk seen (at most MaxChunkPacked),
			// not to the largest allowed: patches of small chunks keep
			// a small buffer.
			p.pack = make([]byte, 0, h.packed)
		}
		return i + 1, nil
	}
	return len(b), nil
}

// parseChunkHead decodes a chunk header from b; ok is false while b is a
// prefix of one.
func parseChunkHead(b []byte) (h chunkHead, ok bool, err error) {
	h.kind = b[0]
	if h.kind != kindStored && h.kind != kindLZMA {
		return h, false, fmt.Errorf("unknown chunk kind %d", h.kind)
	}
	var v [4]uint64
	off := 1
	for i := range v {
		x, k := binary.Uvarint(b[off:])
		if k == 0 {
			if len(b) >= maxChunkHeader {
				return h, false, errors.New("chunk header too long")
			}
			return h, false, nil
		}
		if k < 0 || k > 1 && b[off+k-1] == 0 {
			return h, false, errors.New("chunk header varint overflows or is not minimal")
		}
		v[i] = x
		off += k
	}
	if v[0] < 1 || v[0] > MaxChunkRaw {
		return h, false, fmt.Errorf("raw length %d out of range 1..%d", v[0], MaxChunkRaw)
	}
	if v[1] < 1 || v[1] > MaxChunkPacked {
		return h, false, fmt.Errorf("packed length %d out of range 1..%d", v[1], MaxChunkPacked)
	}
	if v[2] > MaxImageSize || v[3] > MaxImageSize {
		return h, false, errors.New("chunk position out of range")
	}
	h.raw, h.packed, h.basePos, h.outPos = int(v[0]), int(v[1]), int64(v[2]), int64(v[3])
	if h.kind == kindStored && h.raw != h.packed {
		return h, false, fmt.Errorf("stored chunk with raw length %d and packed length %d", h.raw, h.packed)
	}
	return h, true, nil
}

// checkHead checks a chunk header against the patch's header and the
// Patcher's position.
func (p *Patcher) checkHead(h chunkHead) error {
	if h.basePos > p.h.BaseSize {
		return fmt.Errorf("base position %d past the base size %d", h.basePos, p.h.BaseSize)
	}
	if h.outPos != p.out {
		return fmt.Errorf("chunk starts at target offset %d, expected %d", h.outPos, p.out)
	}
	return nil
}

// chunk decodes the buffered chunk and emits its target bytes.
func (p *Patcher) chunk() error {
	h := p.cur
	var src io.Reader
	var lz *chunkSource
	if h.kind == kindStored {
		src = bytes.NewReader(p.pack)
	} else {
		lz = &chunkSource{head: lzmaHeader(h.raw), packed: p.pack}
		r, err := lzma.ReaderConfig{DictCap: lzmaDictCap}.NewReader(lz)
		if err != nil {
			return fmt.Errorf("%w: chunk at patch offset %d: %w", ErrMalformed, p.chOff, err)
		}
		src = r
	}
	rr := &rawReader{r: src, left: h.raw}
	pos, start := h.basePos, p.out
	for rr.left > 0 {
		var err error
		if pos, err = p.record(rr, pos); err != nil {
			if errors.Is(err, ErrWrongBase) || errors.Is(err, errEmit) {
				return err
			}
			return fmt.Errorf("%w: chunk at patch offset %d: %w", ErrMalformed, p.chOff, err)
		}
	}
	if lz != nil {
		var one [1]byte
		if k, err := src.Read(one[:]); k != 0 || err != io.EOF {
			return fmt.Errorf("%w: chunk at patch offset %d: decompresses past its raw length", ErrMalformed, p.chOff)
		}
		if u := lz.unused(); u != 0 {
			return fmt.Errorf("%w: chunk at patch offset %d: %d packed bytes unused", ErrMalformed, p.chOff, u)
		}
	}
	if p.out == start {
		return fmt.Errorf("%w: chunk at patch offset %d produces no target bytes", ErrMalformed, p.chOff)
	}
	return nil
}

// errEmit marks an error returned by emit or the base reader, passed on
// without ErrMalformed.
var errEmit = errors.New("apply")

// record applies one record from rr with the base at pos and returns the
// base position after it.
//
// A record is: copy length (uvarint), extra length (uvarint), seek (zigzag
// varint), then copy-length bytes to add to the base's bytes at pos, then
// extra-length literal bytes. The base position moves by copy length plus
// seek.
func (p *Patcher) record(rr *rawReader, pos int64) (int64, error) {
	cl, err := binary.ReadUvarint(rr)
	if err != nil {
		return 0, fmt.Errorf("copy length: %w", err)
	}
	el, err := binary.ReadUvarint(rr)
	if err != nil {
		return 0, fmt.Errorf("extra length: %w", err)
	}
	seek, err := binary.ReadVarint(rr)
	if err != nil {
		return 0, fmt.Errorf("seek: %w", err)
	}
	if cl > uint64(rr.left) || el > uint64(rr.left)-cl {
		return 0, fmt.Errorf("record of %d+%d bytes crosses the chunk's end", cl, el)
	}
	if int64(cl) > p.h.BaseSize-pos {
		return 0, fmt.Errorf("copy of %d bytes at base offset %d past the base size %d", cl, pos, p.h.BaseSize)
	}
	if int64(cl+el) > p.h.TargetSize-p.out {
		return 0, fmt.Errorf("record of %d bytes at target offset %d past the target size %d", cl+el, p.out, p.h.TargetSize)
	}
	// The base position after the record, checked before any of its
	// bytes is emitted (pos+cl is at most BaseSize, 2^30: a seek near
	// the int64 limits wraps below 0 and is refused).
	np := pos + int64(cl) + seek
	if np < 0 || np > p.h.BaseSize {
		return 0, fmt.Errorf("seek %d to base offset %d outside 0..%d", seek, np, p.h.BaseSize)
	}
	for left := int(cl); left > 0; {
		k := min(left, workSize)
		d := p.work[:k]
		if _, err := io.ReadFull(rr, d); err != nil {
			return 0, fmt.Errorf("copy bytes: %w", err)
		}
		bb := p.bwork[:k]
		if m, err := p.base.ReadAt(bb, pos); m < k {
			if err == io.EOF || err == nil {
				return 0, fmt.Errorf("%w: base ends before offset %d, header says %d bytes", ErrWrongBase, pos+int64(m), p.h.BaseSize)
			}
			return 0, fmt.Errorf("%w: read base at %d: %w", errEmit, pos, err)
		}
		for i := range d {
			d[i] += bb[i]
		}
		if err := p.put(d); err != nil {
			return 0, err
		}
		pos += int64(k)
		left -= k
	}
	for left := int(el); left > 0; {
		k := min(left, workSize)
		d := p.work[:k]
		if _, err := io.ReadFull(rr, d); err != nil {
			return 0, fmt.Errorf("extra bytes: %w", err)
		}
		if err := p.put(d); err != nil {
			return 0, err
		}
		left -= k
	}
	return np, nil
}

func (p *Patcher) put(d []byte) error {
	if err := p.emit(d); err != nil {
		return fmt.Errorf("%w: emit at target offset %d: %w", errEmit, p.out, err)
	}
	p.out += int64(len(d))
	return nil
}

// Close checks that the patch ended where its header says: every target
// byte emitted and no chunk left incomplete. Otherwise it returns an error
// wrapping ErrTruncated (or the Patcher's earlier error).
func (p *Patcher) Close() error {
	if p.err != nil {
		return p.err
	}
	switch {
	case len(p.hdr) > 0:
		return fmt.Errorf("%w: patch ends inside its header", ErrTruncated)
	case p.in || p.chN > 0:
		return fmt.Errorf("%w: patch ends inside the chunk at offset %d", ErrTruncated, p.chOff)
	case p.out < p.h.TargetSize:
		return fmt.Errorf("%w: patch ends after %d of %d target bytes", ErrTruncated, p.out, p.h.TargetSize)
	}
	return nil
}

// rawReader reads a chunk's records and refuses to read past its raw
// length.
type rawReader struct {
	r    io.Reader
	left int
	one  [1]byte
}

var errChunkEnd = errors.New("record crosses the chunk's end")

func (r *rawReader) ReadByte() (byte, error) {
	if _, err := r.Read(r.one[:]); err != nil {
		return 0, err
	}
	return r.one[0], nil
}

func (r *rawReader) Read(b []byte) (int, error) {
	if r.left == 0 {
		return 0, errChunkEnd
	}
	if len(b) > r.left {
		b = b[:r.left]
	}
	n, err := io.ReadFull(r.r, b)
	r.left -= n
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = errors.New("chunk data ends before its raw length")
	}
	return n, err
}
