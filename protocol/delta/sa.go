package delta

import (
	"encoding/binary"
	"errors"
)

// saWriter decodes what (*suffixarray.Index).Write writes, keeping the
// suffix array: the data length as a varint in 10 bytes, the data, then
// chunks of (a varint in 10 bytes giving the chunk's size including those
// 10 bytes, uvarints of suffix positions).
type saWriter struct {
	sa    []int32
	state int
	buf   [binary.MaxVarintLen64]byte
	k     int   // bytes in buf
	skip  int64 // data bytes still to skip
	left  int64 // bytes left in the current chunk
	acc   uint64
	shift uint
	err   error
}

const (
	saLength = iota
	saData
	saChunkSize
	saChunk
)

func (w *saWriter) Write(p []byte) (int, error) {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if w.err != nil {
			return 0, w.err
		}
		switch w.state {
		case saLength, saChunkSize:
			w.buf[w.k] = c
			w.k++
			if w.k < len(w.buf) {
				continue
			}
			w.k = 0
			v, n := binary.Varint(w.buf[:])
			if n <= 0 || v < 0 {
				w.err = errors.New("bad length")
				continue
			}
			if w.state == saLength {
				if v != int64(cap(w.sa)) {
					w.err = errors.New("data length differs")
				}
				w.skip, w.state = v, saData
				if v == 0 {
					w.state = saChunkSize
				}
				continue
			}
			w.left, w.state = v-int64(len(w.buf)), saChunk
			if w.left <= 0 {
				w.err = errors.New("empty chunk")
			}
		case saData:
			k := min(int64(len(p)-i), w.skip)
			i += int(k) - 1
			w.skip -= k
			if w.skip == 0 {
				w.state = saChunkSize
			}
		case saChunk:
			w.acc |= uint64(c&0x7f) << w.shift
			w.shift += 7
			if c&0x80 == 0 {
				if w.acc >= uint64(cap(w.sa)) || len(w.sa) == cap(w.sa) {
					w.err = errors.New("suffix out of range")
					continue
				}
				w.sa = append(w.sa, int32(w.acc))
				w.acc, w.shift = 0, 0
			} else if w.shift > 35 {
				w.err = errors.New("suffix varint too long")
				continue
			}
			w.left--
			if w.left == 0 {
				if w.shift != 0 {
					w.err = errors.New("chunk ends inside a varint")
				}
				w.state = saChunkSize
			}
		}
	}
	return len(p), w.err
}
