// Package journal keeps the node agent's boot state on NOR flash as a
// journal of small opaque records, so that a power cut at any moment leaves
// either the last record acknowledged or the one being written: never an
// older one, never nothing.
//
// The agent encodes its state (active and pending slot, trial boot count,
// epoch floor, installed sequence, download checkpoint, ...) into one record
// of at most [MaxPayload] bytes and appends it; only the newest record
// matters. [Open] scans the region and finds the newest valid record,
// [Journal.Latest] returns it, and [Journal.Append] writes the next one. The
// flash is anything that satisfies [Flash]; the simulator in
// edgeota/firmware-sim/flash does, and so would a board's driver.
//
// # Record layout
//
// A record is written as two copies, one right after the other, identical
// but for their copy tag and so their CRC. Each copy starts at a multiple of the
// write size and is laid out as follows (multi-byte fields little-endian):
//
//	offset  size  field
//	0       3     magic "JNL" (0x4A 0x4E 0x4C)
//	3       1     tag: low nibble 1 first copy, 2 second copy; high nibble
//	              the framing version minus 1 (0: tags 0x01 and 0x02)
//	4       2     payload length n, 0 to 1024
//	6       2     bitwise complement of n
//	8       8     sequence number, 1 for the first record, never 0
//	16      n     payload
//	16+n    4     CRC-32C (Castagnoli) of bytes 0 to 16+n-1
//	20+n    p     0xFF padding up to a multiple of the write size
//
// A copy therefore takes 20+n bytes rounded up to the write size, and a
// record twice that. A copy is valid when its magic and tag match, the
// length agrees with its complement, is at most 1024 and fits in the segment,
// the sequence number is not 0 and the CRC matches. The padding is not
// covered and not checked: a bit error there is harmless. The length is
// checked before anything it points to is read, so no contents, however
// garbled, make the scanner read outside the segment.
//
// # Framing version
//
// The tag's high nibble is the version of this framing ([Framing], 1). A
// later framing keeps the first 16 bytes and the CRC-32C after the payload
// as they are here and raises the version, so that this one still finds
// its records, by the same checks, and refuses the flash
// ([ErrFormatTooNew]) instead of taking it for blank and writing over it.
// What the payload holds is versioned by its owner: the node agent's boot
// state carries its own format.
//
// # Why torn and half-erased data is never taken for a record
//
// An interrupted Program leaves a prefix of the copy written and the rest
// erased or partly programmed (bits that should be 0 still 1); an interrupted
// Erase leaves bytes erased, unchanged, or with bits set. In both cases what
// is left is either an intact old record, which has a lower sequence number
// than the newest, or bytes whose CRC-32C no longer matches except with
// probability about 2^-32 per candidate position. Erased flash (0xFF) and
// zeroed flash never match the magic. The length complement rejects most
// garbled lengths before the CRC is computed.
//
// # Segments and the ring
//
// The region is divided into segments of whole erase blocks, each large
// enough for one record of [MaxPayload] bytes: one erase block when the
// erase size is at least 2112 bytes (2096 with 8-byte write units), several
// for smaller blocks; blocks after the last whole segment are never touched.
// There must be at least two segments.
//
// Records are appended one after the other in the current segment. When the
// next record does not fit, or the space it needs is not erased (a torn
// append before the last reboot left garbage there), the journal moves to
// the next segment in the ring: it erases it, then writes the record at its
// start. The segment that holds the newest record is never erased, so a cut
// during the erase or the writes leaves that record intact. Moving always to
// the next segment spreads erases evenly: after any number of appends that
// were not interrupted, the erase counts of the blocks differ by at most one. A unit is never
// programmed twice without an erase: the journal only programs units it knows
// or checked to be erased.
//
// # Recovery
//
// [Open] reads every segment and takes the highest sequence number that has
// at least one valid copy. Its segment becomes the current one and the next
// record goes after that record's second copy. Open never writes. Sequence
// numbers grow by one per successful append. When an append failed and its
// record did not survive, the next append reuses its number, which is safe
// because the torn copies are invalid and stay so: the journal never
// programs over them.
//
// A [Journal] whose Append failed may be used again once the flash works
// (after a reboot, power on): it scans the flash before its next append,
// exactly as Open does.
//
// # Bit errors
//
// Because a record has two copies and the reader accepts a record with at
// least one valid copy, a single bit flipped anywhere in the newest record
// does not lose it. The scanner steps over a damaged copy one write unit at
// a time, so it finds the second copy even when the first one's length is
// garbled. If both copies are damaged the record is lost and the journal
// falls back to the record before it, which is the limit of this scheme: it
// detects any corruption with CRC-32C but corrects only what a second copy
// can. An older record is never preferred while the newest has one valid
// copy.
//
// The CRC protects against accidents, not against an attacker: a payload
// that deliberately embeds a valid record copy could be picked up by the
// scanner when the copy around it is damaged.
package journal
