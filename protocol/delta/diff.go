package delta

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"index/suffixarray"
)

// Option changes how [Diff] cuts its patch.
type Option func(*options)

type options struct {
	chunkRaw  int // records per chunk, before compression
	packedMax int // bytes per chunk after compression
}

// Default chunk sizes of [Diff].
const (
	// DefaultChunkSize is the bytes of records [Diff] puts in a chunk
	// before compressing it: the most a resumed node re-applies.
	DefaultChunkSize = 16 << 10
	// DefaultChunkPacked is the most bytes a chunk of [Diff] carries after
	// compression: the buffer a Patcher needs for one chunk.
	DefaultChunkPacked = 4 << 10
)

// WithChunkSize sets the bytes of records per chunk before compression
// (default [DefaultChunkSize], at most [MaxChunkRaw]) and the most a chunk
// may carry after compression (default [DefaultChunkPacked], at least 256,
// at most [MaxChunkPacked]). Smaller chunks cost compression, larger ones
// re-apply more after a resume.
func WithChunkSize(raw, packed int) Option {
	return func(o *options) { o.chunkRaw, o.packedMax = raw, packed }
}

// Diff computes a format-1 delta from base to target. Its size is at most
// the target's plus HeaderSize plus a few bytes per chunk, whatever the
// inputs: unrelated images cost the target stored in chunks.
func Diff(base, target []byte, opts ...Option) ([]byte, error) {
	o := options{chunkRaw: DefaultChunkSize, packedMax: DefaultChunkPacked}
	for _, f := range opts {
		f(&o)
	}
	if o.chunkRaw < 1 || o.chunkRaw > MaxChunkRaw || o.packedMax < 256 || o.packedMax > MaxChunkPacked {
		return nil, fmt.Errorf("delta: chunk sizes %d/%d out of range", o.chunkRaw, o.packedMax)
	}
	if len(base) > MaxImageSize || len(target) > MaxImageSize {
		return nil, fmt.Errorf("delta: image over %d bytes", MaxImageSize)
	}
	h := Header{
		Format:     Format1,
		Base:       sha256.Sum256(base),
		Target:     sha256.Sum256(target),
		BaseSize:   int64(len(base)),
		TargetSize: int64(len(target)),
	}
	ix, err := newIndex(base)
	if err != nil {
		return nil, err
	}
	recs := encodeRecords(base, target, matches(ix, target), o.packedMax-3*binary.MaxVarintLen64)
	return packChunks(h.appendTo(nil), recs, o, compressLZMA)
}

// op is one step of a bsdiff-style edit: copy-with-add copyLen bytes from
// the base at basePos to the target at outPos, then extraLen literal bytes
// of the target, then move the base position by seek.
type op struct {
	outPos, basePos   int
	copyLen, extraLen int
	seek              int
}

// matches runs the bsdiff matching loop (Colin Percival, "Naive
// differences of executable code", 2003) over the index of the base: it
// grows approximate matches around exact ones found in the suffix array,
// so that bytes that changed slightly stay in a copy whose added
// differences compress to almost nothing.
//
// One change to bsdiff: where bsdiff scores a byte that is equal in base
// and target, this loop scores a byte whose difference is small ([near]).
// A fine-tuned int8 model moves most weights by one or two: bsdiff finds no
// exact match of 9 bytes there and sends the whole image as literal bytes,
// while differences of -2..2 compress to about two bits a byte.
func matches(ix *index, nw []byte) []op {
	old := ix.old
	var ops []op
	scan, n, pos := 0, 0, 0
	lastScan, lastPos, lastOffset := 0, 0, 0
	for scan < len(nw) {
		oldScore := 0
		scan += n
		for scsc := scan; scan < len(nw); scan++ {
			pos, n = ix.search(nw[scan:])
			for ; scsc < scan+n; scsc++ {
				if scsc+lastOffset < len(old) && near(old[scsc+lastOffset], nw[scsc]) {
					oldScore++
				}
			}
			if n == oldScore && n != 0 || n > oldScore+8 {
				break
			}
			if scan+lastOffset < len(old) && near(old[scan+lastOffset], nw[scan]) {
				oldScore--
			}
		}
		if n == oldScore && scan != len(nw) {
			continue
		}
		// Extend the last match forwards and this one backwards.
		s, sf, lenf := 0, 0, 0
		for i := 0; lastScan+i < scan && lastPos+i < len(old); {
			if near(old[lastPos+i], nw[lastScan+i]) {
				s++
			}
			i++
			if s*2-i > sf*2-lenf {
				sf, lenf = s, i
			}
		}
		lenb := 0
		if scan < len(nw) {
			s, sb := 0, 0
			for i := 1; scan >= lastScan+i && pos >= i; i++ {
				if near(old[pos-i], nw[scan-i]) {
					s++
				}
				if s*2-i > sb*2-lenb {
					sb, lenb = s, i
				}
			}
		}
		if lastScan+lenf > scan-lenb {
			overlap := lastScan + lenf - (scan - lenb)
			s, ss, lens := 0, 0, 0
			for i := 0; i < overlap; i++ {
				if near(nw[lastScan+lenf-overlap+i], old[lastPos+lenf-overlap+i]) {
					s++
				}
				if near(nw[scan-lenb+i], old[pos-lenb+i]) {
					s--
				}
				if s > ss {
					ss, lens = s, i+1
				}
			}
			lenf += lens - overlap
			lenb -= lens
		}
		ops = append(ops, op{
			outPos:   lastScan,
			basePos:  lastPos,
			copyLen:  lenf,
			extraLen: scan - lenb - (lastScan + lenf),
			seek:     pos - lenb - (lastPos + lenf),
		})
		lastScan, lastPos, lastOffset = scan-lenb, pos-lenb, pos-scan
	}
	return ops
}

// near reports whether the target byte b costs little as a difference
// from the base byte a: within 4 of it, as an int8 weight nudged by a
// fine-tune. Unrelated bytes are near one time in 28.
func near(a, b byte) bool { return uint8(b-a+4) <= 8 }

// index is a base with its suffix array and, for every 2-byte prefix, the
// range of the suffix array that starts with it (so a search starts from
// about n/65536 suffixes instead of n).
type index struct {
	old    []byte
	sa     []int32
	bucket []int32 // bucket[k]: first suffix whose 2-byte prefix is >= k; bucket[65536] = len(sa)
	work   int     // bytes the searches may have compared, for tests
}

func newIndex(old []byte) (*index, error) {
	sa, err := suffixArray(old)
	if err != nil {
		return nil, err
	}
	ix := &index{old: old, sa: sa, bucket: make([]int32, 1<<16+1)}
	// A suffix of one byte x sorts first among those starting with x,
	// with the 2-byte key x<<8, so keys never decrease along sa.
	k := 0
	for i, p := range sa {
		key := int(old[p]) << 8
		if int(p)+1 < len(old) {
			key |= int(old[p+1])
		}
		for ; k <= key; k++ {
			ix.bucket[k] = int32(i)
		}
	}
	for ; k <= 1<<16; k++ {
		ix.bucket[k] = int32(len(sa))
	}
	return ix, nil
}

// search returns the position in the base and the length (at most
// maxMatch) of the longest prefix of nw found there: a binary search for
// where nw sorts among the suffixes, within the bucket of nw's first two
// bytes when that is not empty. Unlike bsdiff's, which compares only the
// common length and so lands on the shortest suffix that is a prefix of
// nw, it sorts a proper prefix first, as the suffix array does.
func (ix *index) search(nw []byte) (pos, n int) {
	st, en := 0, len(ix.sa)-1
	if en < 0 {
		return 0, 0
	}
	if len(nw) >= 2 {
		k := int(nw[0])<<8 | int(nw[1])
		if a, b := int(ix.bucket[k]), int(ix.bucket[k+1]); a < b {
			st, en = a, b-1
		}
	}
	old, sa := ix.old, ix.sa
	nw = nw[:min(len(nw), maxMatch)]
	for en-st >= 2 {
		x := st + (en-st)/2
		ix.work += len(nw)
		if bytes.Compare(old[sa[x]:min(int(sa[x])+len(nw), len(old))], nw) < 0 {
			st = x
		} else {
			en = x
		}
	}
	a, b := int(sa[st]), int(sa[en])
	x, y := matchLen(old[a:], nw), matchLen(old[b:], nw)
	ix.work += 2 * len(nw)
	if x >= y {
		return a, x
	}
	return b, y
}

// maxMatch bounds the length of a match search looks for, and so the
// bytes one comparison reads: a longer match is found again, aligned, by
// the next search. Without it, bsdiff's loop is quadratic on periodic data
// (every suffix of "abcabc..." shares a long prefix with every other).
const maxMatch = 4096

func matchLen(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// record is one encoded record with where it starts.
type record struct {
	basePos, outPos int64
	raw             []byte
}

// encodeRecords turns ops into records of at most limit copy-plus-extra
// bytes each, so that any record fits a stored chunk.
func encodeRecords(old, nw []byte, ops []op, limit int) []record {
	var recs []record
	for _, o := range ops {
		bp, out := o.basePos, o.outPos
		cl, el := o.copyLen, o.extraLen
		for {
			c := min(cl, limit)
			e := min(el, limit-c)
			seek := 0
			if c == cl && e == el {
				seek = o.seek
			}
			raw := binary.AppendUvarint(nil, uint64(c))
			raw = binary.AppendUvarint(raw, uint64(e))
			raw = binary.AppendVarint(raw, int64(seek))
			for i := 0; i < c; i++ {
				raw = append(raw, nw[out+i]-old[bp+i])
			}
			raw = append(raw, nw[out+c:out+c+e]...)
			recs = append(recs, record{basePos: int64(bp), outPos: int64(out), raw: raw})
			bp += c
			out += c + e
			cl -= c
			el -= e
			if cl == 0 && el == 0 {
				break
			}
		}
	}
	return recs
}

// packChunks appends records to p in chunks: as many records as fit
// o.chunkRaw, compressed with compress when that is smaller, and fewer
// records when the result exceeds o.packedMax.
func packChunks(p []byte, recs []record, o options, compress func([]byte) ([]byte, error)) ([]byte, error) {
	var raw []byte
	ratio := 0.0 // packed/raw of the last chunk compressed
	for i := 0; i < len(recs); {
		// Aim at what fits, given how well the last chunk compressed.
		limit := o.chunkRaw
		if ratio > 0 {
			limit = min(limit, int(float64(o.packedMax)/ratio*0.95))
		}
		j, size := i, 0
		for j < len(recs) && (j == i || size+len(recs[j].raw) <= limit) {
			size += len(recs[j].raw)
			j++
		}
		for {
			raw = raw[:0]
			for _, r := range recs[i:j] {
				raw = append(raw, r.raw...)
			}
			kind, data := byte(kindStored), raw
			if compress != nil {
				c, err := compress(raw)
				if err != nil {
					return nil, err
				}
				if len(c) < len(raw) {
					kind, data = kindLZMA, c
				}
				ratio = max(float64(len(c))/float64(len(raw)), 0.01)
			}
			if len(data) <= o.packedMax {
				p = append(p, kind)
				p = binary.AppendUvarint(p, uint64(len(raw)))
				p = binary.AppendUvarint(p, uint64(len(data)))
				p = binary.AppendUvarint(p, uint64(recs[i].basePos))
				p = binary.AppendUvarint(p, uint64(recs[i].outPos))
				p = append(p, data...)
				break
			}
			if j-i == 1 {
				return nil, errors.New("delta: a record does not fit a chunk")
			}
			// Keep the share of records that should fit, at least one.
			want := len(raw) * o.packedMax / len(data) * 9 / 10
			k, size := i, 0
			for k < j-1 && (k == i || size+len(recs[k].raw) <= want) {
				size += len(recs[k].raw)
				k++
			}
			j = k
		}
		i = j
	}
	return p, nil
}

// suffixArray returns the suffix array of b, built by index/suffixarray
// (SA-IS) and read back from the index's serialisation, the one form in
// which the package hands it out.
func suffixArray(b []byte) ([]int32, error) {
	w := &saWriter{sa: make([]int32, 0, len(b))}
	if err := suffixarray.New(b).Write(w); err != nil {
		return nil, fmt.Errorf("delta: suffix array: %w", err)
	}
	if w.err != nil || len(w.sa) != len(b) || w.state != saChunkSize || w.k != 0 {
		return nil, fmt.Errorf("delta: suffix array: unexpected serialisation (%v)", w.err)
	}
	return w.sa, nil
}
