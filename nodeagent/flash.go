package nodeagent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Flash is a NOR-style flash device: erased bytes read 0xFF, programming
// only clears bits, one Program or Erase call is one flash operation.
// edgeota/firmware-sim/flash implements it in memory and on a file; a board
// port implements it on its flash driver.
type Flash interface {
	// Size is the device size in bytes.
	Size() int64
	// EraseSize is the erase-block size in bytes.
	EraseSize() int
	// WriteSize is the program granularity in bytes.
	WriteSize() int
	// ReadAt reads like io.ReaderAt.
	ReadAt(p []byte, off int64) (int, error)
	// Program writes p at off (both aligned to WriteSize) into erased units.
	Program(off int64, p []byte) error
	// Erase sets n bytes at off (both aligned to EraseSize) to 0xFF.
	Erase(off int64, n int64) error
}

// Defaults of the flash layout.
const (
	DefaultSlotSize      = 4 << 20 // bytes of image per slot
	DefaultJournalBlocks = 4       // erase blocks of the boot-state journal
	headerBytes          = 2048    // room for a slot's signed manifest
)

// Layout places the journal and the two slots on a flash device:
//
//	[journal: JournalBlocks erase blocks][slot A header][slot A data][slot B header][slot B data]
//
// A slot's header holds the signed manifest of the image in its data area.
type Layout struct {
	// JournalOff and JournalBlocks locate the boot-state journal.
	JournalOff    int64
	JournalBlocks int
	// Slots are the two image slots, A and B.
	Slots [2]SlotRegion
}

// SlotRegion locates one slot on flash.
type SlotRegion struct {
	HeaderOff, HeaderSize int64
	DataOff, DataSize     int64
}

// ErrLayout reports a flash too small or misaligned for a layout.
var ErrLayout = errors.New("flash layout")

// FlashSize returns the device size a layout with these parameters needs,
// for creating a file-backed flash.
func FlashSize(slotSize int64, eraseSize, journalBlocks int) int64 {
	e := int64(eraseSize)
	return int64(journalBlocks)*e + 2*(roundUp(headerBytes, e)+roundUp(slotSize, e))
}

// NewLayout lays out a device: journalBlocks erase blocks of journal, then
// two slots of slotSize bytes of image each (rounded up to erase blocks).
func NewLayout(f Flash, slotSize int64, journalBlocks int) (Layout, error) {
	e := int64(f.EraseSize())
	if journalBlocks < 2 {
		return Layout{}, fmt.Errorf("%w: %d journal blocks, need at least 2", ErrLayout, journalBlocks)
	}
	if slotSize <= 0 {
		return Layout{}, fmt.Errorf("%w: slot size %d", ErrLayout, slotSize)
	}
	if need := FlashSize(slotSize, f.EraseSize(), journalBlocks); f.Size() < need {
		return Layout{}, fmt.Errorf("%w: %d-byte flash is smaller than the %d bytes two %d-byte slots need", ErrLayout, f.Size(), need, slotSize)
	}
	l := Layout{JournalOff: 0, JournalBlocks: journalBlocks}
	off := int64(journalBlocks) * e
	for i := range l.Slots {
		h := roundUp(headerBytes, e)
		d := roundUp(slotSize, e)
		l.Slots[i] = SlotRegion{HeaderOff: off, HeaderSize: h, DataOff: off + h, DataSize: d}
		off += h + d
	}
	return l, nil
}

func roundUp(n, m int64) int64 { return (n + m - 1) / m * m }

// Slot header format, at the start of a slot's header region:
//
//	"EOTAHDR1" | length uint32 BE | signed manifest | CRC-32C of the previous bytes, BE
var headerMagic = []byte("EOTAHDR1")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func encodeHeader(signed []byte, writeSize int) []byte {
	n := len(headerMagic) + 4 + len(signed) + 4
	b := make([]byte, roundUp(int64(n), int64(writeSize)))
	for i := range b {
		b[i] = 0xFF
	}
	copy(b, headerMagic)
	binary.BigEndian.PutUint32(b[8:], uint32(len(signed)))
	copy(b[12:], signed)
	binary.BigEndian.PutUint32(b[12+len(signed):], crc32.Checksum(b[:12+len(signed)], castagnoli))
	return b
}

// decodeHeader returns the signed manifest of a header region, or false when
// the region holds none (erased, torn or corrupted).
func decodeHeader(b []byte) ([]byte, bool) {
	if len(b) < 16 || string(b[:8]) != string(headerMagic) {
		return nil, false
	}
	n := int(binary.BigEndian.Uint32(b[8:]))
	if n <= 0 || 12+n+4 > len(b) {
		return nil, false
	}
	if crc32.Checksum(b[:12+n], castagnoli) != binary.BigEndian.Uint32(b[12+n:]) {
		return nil, false
	}
	return append([]byte(nil), b[12:12+n]...), true
}
