// Package delta computes and applies format-1 deltas: patches that rebuild
// a target image from a base image the node already runs, streamed in
// order with a small, fixed amount of RAM, resumable after a power cut.
//
// The operator signs only the full image. A delta is never trusted: the
// header binds it to a base and a target digest, every length and offset in
// it is checked before use, and the node verifies the rebuilt image against
// the signed manifest as after a full download (chunks carry no checksum:
// damaged compressed bytes that still decode rebuild a wrong image, which
// that check refuses). A bad delta can waste airtime, never install
// anything.
//
// The package is pure: no files, sockets, goroutines or clocks.
//
// # Format 1
//
// The normative definition, byte for byte, is docs/deltas.md, "Format 1"
// (part of the contract of docs/protocol.md v1.4); this is a summary.
//
// A patch is a [Header] of [HeaderSize] bytes followed by chunks.
//
// The header (big-endian) is the magic "EDLT", the format number (1 byte,
// [Format1]), a flags byte (zero), the base size and the target size
// (8 bytes each, at most [MaxImageSize]) and the SHA-256 digests of the base
// and of the target (32 bytes each).
//
// A chunk is a chunk header, then its packed bytes. The chunk header is a
// kind byte (0 stored, 1 LZMA) and four minimal uvarints: the raw length
// (1..[MaxChunkRaw]: the bytes of records the chunk holds), the packed
// length (1..[MaxChunkPacked]; equal to the raw length when stored), the
// base position at the chunk's first record and the target offset of its
// first byte (which must be the number of target bytes before it). A
// stored chunk carries its records as they are; an LZMA chunk carries them
// as a raw LZMA stream (the 13-byte .lzma header is left out: its values are
// fixed, lc=0 lp=0 pb=0 and a 4096-byte dictionary, and the size is the raw
// length), compressed on its own: the compressor starts afresh in every
// chunk. A chunk must produce at least one target byte; the chunks end when
// the target is complete, and a byte after that is an error.
//
// The records are bsdiff's control triples, kept in sequence (the
// "sequential" layout of detools rather than bsdiff's three separate
// streams): a copy length, an extra length (uvarints) and a seek (a zigzag
// varint), then copy-length bytes that are added, modulo 256, to the base
// bytes at the base position, then extra-length bytes copied as they are;
// then the base position moves on by the copy length plus the seek. A
// record never crosses a chunk's end, so every chunk boundary is a
// [Checkpoint]: the chunk header carries the base and target positions, and
// no decompressor or record state crosses it. A node journals [Patcher.Last]
// and resumes with [NewPatcher] at that checkpoint, fetching the patch again
// from its Patch offset.
//
// # Diff
//
// [Diff] sorts the suffixes of the base with the standard library's
// index/suffixarray (SA-IS, linear time; the suffix array is read back from
// the index's serialisation, [suffixarray.Index.Write], the one form in which
// the package hands it out) and runs bsdiff's matching loop over it (Colin
// Percival, "Naive differences of executable code", 2003): exact matches
// found by binary search over the suffix array are extended both ways into
// approximate ones, so a weight nudged by one stays inside a copy as a small
// difference instead of breaking it. Records are packed into chunks of up
// to [DefaultChunkSize] raw bytes, each compressed with LZMA and kept stored
// when that does not make it smaller, and split further when a chunk would
// exceed [DefaultChunkPacked] packed bytes. Unrelated images therefore cost
// the target stored plus the header and about 16 bytes per 4 KiB.
//
// # Compressor
//
// LZMA comes from github.com/ulikunitz/xz/lzma (pure Go, maintained), with
// a 4096-byte dictionary and no literal or position context (lc=0, lp=0,
// pb=0): the decoder's state is the dictionary plus 2614 16-bit
// probabilities. On the corpus of docs/deltas.md (the same records and
// chunks under each compressor) LZMA is within 2% of the smallest on a
// retrained head (4.6% of the image), an inserted operator and unrelated
// images; zstd (klauspost/compress, 4 KiB window) is 13% smaller on a full
// fine-tune and flate 1% smaller on the first two, but their decoders need
// a larger window or tables of 16 KiB and more, past a node's budget. A
// chunk is stored when LZMA does not make it smaller.
//
// # RAM on the node
//
// A microcontroller-class implementation of this format (a push-mode LZMA
// decoder that consumes each CoAP block as it arrives, as the LZMA SDK's
// LzmaDec_DecodeToDic does) needs, beyond the block buffer: the 4096-byte
// dictionary, 5228 bytes of probabilities, about 50 bytes of range-decoder
// and match state, a 41-byte chunk-header buffer and about 40 bytes of
// chunk and record counters, a 256-byte buffer of base bytes and a 256-byte
// buffer of target bytes for the flash writer: about 9,965 bytes (9.7 KiB),
// under the 16 KiB target. Copy bytes are read from the dictionary and added to the
// base bytes in place; a stored chunk needs no decoder at all.
//
// This Go [Patcher] cannot suspend a pull-mode decoder in the middle of a
// chunk without a goroutine, so it buffers one chunk's packed bytes (at most
// [MaxChunkPacked], [DefaultChunkPacked] for patches [Diff] makes; its
// buffer is the size of the largest chunk seen) and decodes the chunk once
// it is complete: it holds 15-19 KiB of live heap while it applies, about
// 13 KiB of it the LZMA library's decoder (BenchmarkDeltaCorpus reports it, and the bytes the LZMA
// library allocates, short-lived, as it decodes).
package delta
