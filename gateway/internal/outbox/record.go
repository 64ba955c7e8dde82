package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// Value format 1 (the value of <kind bucket>/<seq>):
//
//	[0]        format byte, 1
//	[1:9]      Added, Unix nanoseconds, big-endian int64
//	[9]        n, the length of the node id (1..255)
//	[10:10+n]  node id
//	[10+n:L-4] the payload, as appended
//	[L-4:L]    CRC-32C (Castagnoli) of bytes [0:L-4], big-endian
const (
	// recordFormat is the first byte of every value.
	recordFormat = 1
	// recordOverhead is the size of a value with an empty node id and
	// payload.
	recordOverhead = 1 + 8 + 1 + 4
	// MaxNodeLen is the longest node id [Outbox.Append] takes.
	MaxNodeLen = 255
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt is what decodeRecord returns for a value this package did not
// write (bit rot, a torn page on a file system that allows one).
var errCorrupt = errors.New("corrupted value")

// recordSize is the stored size of an item: what Config.MaxBytes and
// Stats.Bytes count.
func recordSize(node string, data []byte) int64 {
	return int64(recordOverhead + len(node) + len(data))
}

// encodeRecord returns a new value holding node, data and added; it does not
// retain data.
func encodeRecord(node string, data []byte, added time.Time) []byte {
	v := make([]byte, 0, recordSize(node, data))
	v = append(v, recordFormat)
	v = binary.BigEndian.AppendUint64(v, uint64(added.UnixNano()))
	v = append(v, byte(len(node)))
	v = append(v, node...)
	v = append(v, data...)
	return binary.BigEndian.AppendUint32(v, crc32.Checksum(v, castagnoli))
}

// decodeRecord checks v and returns its parts. node and data alias v, which
// may point into the mmap: callers copy what they keep.
func decodeRecord(v []byte) (node, data []byte, added time.Time, err error) {
	if len(v) < recordOverhead {
		return nil, nil, time.Time{}, fmt.Errorf("%w: %d bytes", errCorrupt, len(v))
	}
	if v[0] != recordFormat {
		return nil, nil, time.Time{}, fmt.Errorf("%w: format %d, this build reads %d", errCorrupt, v[0], recordFormat)
	}
	body, sum := v[:len(v)-4], binary.BigEndian.Uint32(v[len(v)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, nil, time.Time{}, fmt.Errorf("%w: checksum mismatch", errCorrupt)
	}
	n := int(body[9])
	if n == 0 || 10+n > len(body) {
		return nil, nil, time.Time{}, fmt.Errorf("%w: node id length %d in %d bytes", errCorrupt, n, len(v))
	}
	added = time.Unix(0, int64(binary.BigEndian.Uint64(body[1:9])))
	return body[10 : 10+n], body[10+n:], added, nil
}

// addedOf returns the Added time of a value without checking it (it was
// checked when read at Open or by Peek); the zero time if v is too short.
func addedOf(v []byte) time.Time {
	if len(v) < recordOverhead {
		return time.Time{}
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v[1:9])))
}

// seqKey returns the key of seq: 8 bytes, big-endian, so that bbolt's byte
// order is sequence order.
func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
}

// keySeq is the inverse of seqKey; ok is false for a key of another length.
func keySeq(k []byte) (seq uint64, ok bool) {
	if len(k) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(k), true
}
