package delta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"edgeota/protocol"
)

// Format1 is the number of the format this package writes and reads: a
// bsdiff-style sequential patch in independently compressed chunks. It is
// the number a node lists in its Hello (key 65) and the gateway puts in a
// delta offer (docs/protocol.md).
const Format1 uint64 = 1

// HeaderSize is the size in bytes of a format-1 header, the most
// [ParseHeader] reads.
const HeaderSize = 4 + 1 + 1 + 8 + 8 + 32 + 32

// MaxImageSize bounds the base and target sizes a header may declare (1 GiB).
const MaxImageSize = 1 << 30

// MaxChunkPacked bounds the bytes a chunk may carry after its chunk header:
// a [Patcher] refuses a larger chunk, so its buffer never exceeds it.
const MaxChunkPacked = 8 << 10

// MaxChunkRaw bounds the bytes of records a chunk may decompress to, so a
// small chunk cannot expand without limit.
const MaxChunkRaw = 64 << 10

// maxChunkHeader is the longest chunk header: the kind byte and four
// uvarints (raw length, packed length, base position, output position).
const maxChunkHeader = 1 + 4*binary.MaxVarintLen64

// magic opens every patch.
var magic = [4]byte{'E', 'D', 'L', 'T'}

// Chunk kinds (the first byte of a chunk header).
const (
	// kindStored: the records follow uncompressed.
	kindStored = 0
	// kindLZMA: the records follow as a raw LZMA stream (no .lzma header)
	// with the properties of lzmaProps and a 4 KiB dictionary.
	kindLZMA = 1
)

// Sentinel errors. Every failure of [ParseHeader] and of a [Patcher] wraps
// exactly one of them, with a reason in the message.
var (
	// ErrMalformed means the patch breaks the format: a bad magic or
	// format, a length or offset out of range, a chunk that does not
	// decompress to what its header says, bytes after the end.
	ErrMalformed = errors.New("malformed delta")
	// ErrWrongBase means the patch was computed from another base image
	// than the one the caller holds.
	ErrWrongBase = errors.New("delta for another base")
	// ErrTruncated means the patch ended before the target was complete.
	ErrTruncated = errors.New("truncated delta")
)

// Header is the fixed-size start of a patch. It binds the patch to one base
// image and one target image by digest and size.
//
// Layout (HeaderSize bytes, big-endian): magic "EDLT", format (1 byte),
// flags (1 byte, zero), base size (8), target size (8), base SHA-256 (32),
// target SHA-256 (32).
type Header struct {
	// Format is the format number, [Format1].
	Format uint64
	// Base is the SHA-256 digest of the image the patch applies to.
	Base protocol.Digest
	// Target is the SHA-256 digest of the image the patch rebuilds. A
	// node compares it with the signed manifest's digest before applying
	// and verifies the rebuilt image against the manifest afterwards.
	Target protocol.Digest
	// BaseSize is the size of the base image in bytes.
	BaseSize int64
	// TargetSize is the size of the target image in bytes.
	TargetSize int64
}

// MarshalBinary returns the HeaderSize bytes of h.
func (h Header) MarshalBinary() ([]byte, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	return h.appendTo(make([]byte, 0, HeaderSize)), nil
}

func (h Header) appendTo(b []byte) []byte {
	b = append(b, magic[:]...)
	b = append(b, byte(h.Format), 0)
	b = binary.BigEndian.AppendUint64(b, uint64(h.BaseSize))
	b = binary.BigEndian.AppendUint64(b, uint64(h.TargetSize))
	b = append(b, h.Base[:]...)
	return append(b, h.Target[:]...)
}

// check reports whether h is a header this package can apply.
func (h Header) check() error {
	if h.Format != Format1 {
		return fmt.Errorf("%w: format %d, want %d", ErrMalformed, h.Format, Format1)
	}
	if h.BaseSize < 0 || h.BaseSize > MaxImageSize {
		return fmt.Errorf("%w: base size %d out of range", ErrMalformed, h.BaseSize)
	}
	if h.TargetSize < 0 || h.TargetSize > MaxImageSize {
		return fmt.Errorf("%w: target size %d out of range", ErrMalformed, h.TargetSize)
	}
	return nil
}

// ParseHeader decodes the header at the start of patch p. It reads at most
// HeaderSize bytes; a shorter p is ErrTruncated.
func ParseHeader(p []byte) (Header, error) {
	if len(p) < HeaderSize {
		return Header{}, fmt.Errorf("%w: header needs %d bytes, have %d", ErrTruncated, HeaderSize, len(p))
	}
	if !bytes.Equal(p[:4], magic[:]) {
		return Header{}, fmt.Errorf("%w: bad magic %x", ErrMalformed, p[:4])
	}
	if p[5] != 0 {
		return Header{}, fmt.Errorf("%w: unknown flags %#x", ErrMalformed, p[5])
	}
	h := Header{Format: uint64(p[4])}
	bs := binary.BigEndian.Uint64(p[6:])
	ts := binary.BigEndian.Uint64(p[14:])
	if bs > MaxImageSize || ts > MaxImageSize {
		return Header{}, fmt.Errorf("%w: image size over %d bytes", ErrMalformed, MaxImageSize)
	}
	h.BaseSize, h.TargetSize = int64(bs), int64(ts)
	copy(h.Base[:], p[22:54])
	copy(h.Target[:], p[54:86])
	if err := h.check(); err != nil {
		return Header{}, err
	}
	return h, nil
}

// Checkpoint is a place where a [Patcher] may start: a chunk boundary,
// where no decompressor or record state is carried over.
type Checkpoint struct {
	// Patch is the offset in the patch (header included) of the chunk.
	Patch int64
	// Out is the number of target bytes the chunks before it produce.
	Out int64
}
