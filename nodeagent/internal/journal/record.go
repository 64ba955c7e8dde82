package journal

import (
	"encoding/binary"
	"hash/crc32"
)

// Layout of one copy of a record; doc.go describes it byte by byte.
const (
	// headerSize is the size of magic, copy tag, length, its complement and
	// sequence number.
	headerSize = 16
	// crcSize is the size of the CRC-32C that follows the payload.
	crcSize = 4
	// overhead is what a copy adds to its payload, before padding.
	overhead = headerSize + crcSize

	magic0, magic1, magic2 = 'J', 'N', 'L'
	// copyFirst and copySecond tag the two copies of a record, in the low
	// nibble of the tag byte.
	copyFirst  = 0x01
	copySecond = 0x02
	// Framing is the framing version this package writes, and the newest
	// it reads: the tag byte's high nibble holds Framing-1 (0 here).
	Framing = 1
	// erased is the value of an erased flash byte.
	erased = 0xFF
)

// castagnoli is the CRC-32C table; Go uses the CPU's CRC32 instruction for it
// where there is one.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// copySize returns the bytes one copy of a record with an n-byte payload
// occupies: header, payload and CRC, padded to a multiple of the write size w.
func copySize(n, w int) int {
	return roundUp(overhead+n, w)
}

// roundUp rounds n up to a multiple of m > 0.
func roundUp(n, m int) int {
	return (n + m - 1) / m * m
}

// encodeCopy writes the copy tagged tag of the record (seq, payload) into dst,
// which must be copySize(len(payload), w) bytes long, padding with 0xFF.
func encodeCopy(dst []byte, tag byte, seq uint64, payload []byte) {
	n := len(payload)
	dst[0], dst[1], dst[2], dst[3] = magic0, magic1, magic2, (Framing-1)<<4|tag
	binary.LittleEndian.PutUint16(dst[4:], uint16(n))
	binary.LittleEndian.PutUint16(dst[6:], ^uint16(n))
	binary.LittleEndian.PutUint64(dst[8:], seq)
	copy(dst[headerSize:], payload)
	sum := crc32.Checksum(dst[:headerSize+n], castagnoli)
	binary.LittleEndian.PutUint32(dst[headerSize+n:], sum)
	for i := overhead + n; i < len(dst); i++ {
		dst[i] = erased
	}
}

// decoded is a valid record copy found in a segment.
type decoded struct {
	tag     byte // copyFirst or copySecond
	framing int  // its framing version; above Framing, payload is not ours to read
	seq     uint64
	payload []byte // aliases the buffer that was decoded
}

// decodeCopy reports whether b starts with a valid record copy and returns
// it. It reads nothing beyond b, whatever the bytes say: the length is
// checked against MaxPayload and len(b) before the payload or CRC is touched.
// Padding is not checked: it is not covered by the CRC, so a bit error there
// is harmless.
func decodeCopy(b []byte) (decoded, bool) {
	tag := b[3] & 0x0F
	if len(b) < overhead ||
		b[0] != magic0 || b[1] != magic1 || b[2] != magic2 ||
		(tag != copyFirst && tag != copySecond) {
		return decoded{}, false
	}
	n := binary.LittleEndian.Uint16(b[4:])
	if binary.LittleEndian.Uint16(b[6:]) != ^n || int(n) > MaxPayload || overhead+int(n) > len(b) {
		return decoded{}, false
	}
	seq := binary.LittleEndian.Uint64(b[8:])
	if seq == 0 {
		return decoded{}, false
	}
	end := headerSize + int(n)
	if crc32.Checksum(b[:end], castagnoli) != binary.LittleEndian.Uint32(b[end:]) {
		return decoded{}, false
	}
	return decoded{tag: tag, framing: int(b[3]>>4) + 1, seq: seq, payload: b[headerSize:end]}, true
}

// scanSegment calls fn with every valid record copy in seg, a whole segment
// read from flash, and its offset. Copies start at multiples of the write
// size w. A valid copy is skipped as a whole; anything else, torn records,
// copies with a bit error, half-erased bytes, is stepped over one write unit
// at a time, so that the second copy of a record is found even when the
// first one is damaged.
func scanSegment(seg []byte, w int, fn func(pos int, d decoded)) {
	for pos := 0; pos+overhead <= len(seg); {
		d, ok := decodeCopy(seg[pos:])
		if !ok {
			pos += w
			continue
		}
		fn(pos, d)
		pos += copySize(len(d.payload), w)
	}
}

// cleanFrom returns the smallest multiple of the write size w from which
// every byte of seg is erased (0xFF); len(seg) when the last unit is not.
func cleanFrom(seg []byte, w int) int {
	i := len(seg)
	for i > 0 && seg[i-1] == erased {
		i--
	}
	return roundUp(i, w)
}

// isErased reports whether every byte of b is 0xFF.
func isErased(b []byte) bool {
	for _, c := range b {
		if c != erased {
			return false
		}
	}
	return true
}
