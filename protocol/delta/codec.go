package delta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

// lzmaDictCap is the LZMA dictionary of a chunk: the window a decoder keeps.
const lzmaDictCap = 4096

// lzmaProps are the LZMA properties of every chunk: no literal context
// (lc=0, lp=0, so the literal coder has one table of 768 probabilities) and
// no position context (pb=0: int8 weights and their differences have no
// 4-byte structure; pb=2, the LZMA default, made the corpus' deltas about 1%
// larger).
var lzmaProps = lzma.Properties{LC: 0, LP: 0, PB: 0}

// lzmaHeader returns the 13-byte classic LZMA header that a chunk omits:
// properties, dictionary size and the chunk's raw length.
func lzmaHeader(raw int) []byte {
	h := make([]byte, 0, lzma.HeaderLen)
	h = append(h, byte((lzmaProps.PB*5+lzmaProps.LP)*9+lzmaProps.LC))
	h = binary.LittleEndian.AppendUint32(h, lzmaDictCap)
	return binary.LittleEndian.AppendUint64(h, uint64(raw))
}

// compressLZMA returns raw as a headerless LZMA stream.
func compressLZMA(raw []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := lzma.WriterConfig{
		Properties: &lzmaProps,
		DictCap:    lzmaDictCap,
		Size:       int64(len(raw)),
	}.NewWriter(&buf)
	if err != nil {
		return nil, fmt.Errorf("lzma writer: %w", err)
	}
	if _, err := w.Write(raw); err != nil {
		return nil, fmt.Errorf("lzma: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("lzma: %w", err)
	}
	out := buf.Bytes()
	if len(out) < lzma.HeaderLen {
		return nil, errors.New("lzma: stream shorter than its header")
	}
	return out[lzma.HeaderLen:], nil
}

// chunkSource serves a chunk's packed bytes to a decompressor, after the
// header that the chunk omits, and counts what was taken so that unused
// bytes can be refused.
type chunkSource struct {
	head   []byte
	packed []byte
	off    int // into head, then packed
}

func (s *chunkSource) ReadByte() (byte, error) {
	if s.off < len(s.head) {
		c := s.head[s.off]
		s.off++
		return c, nil
	}
	i := s.off - len(s.head)
	if i >= len(s.packed) {
		return 0, io.ErrUnexpectedEOF
	}
	s.off++
	return s.packed[i], nil
}

func (s *chunkSource) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c, err := s.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		p[n] = c
		n++
	}
	return n, nil
}

// unused returns how many packed bytes the decompressor did not take.
func (s *chunkSource) unused() int { return len(s.head) + len(s.packed) - s.off }
