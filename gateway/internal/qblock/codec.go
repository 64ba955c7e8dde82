package qblock

import (
	"errors"

	"github.com/plgd-dev/go-coap/v3/message"
)

// Errors of a request's Q-Block2 options. Each says which answer the
// request gets (Code).
var (
	// ErrBadOption is a Q-Block2 option that cannot be decoded (longer
	// than 3 bytes, or SZX 7, which is BERT and not used over UDP), or
	// Q-Block2 mixed with Block2 or Block1 in one request (RFC 9177
	// section 4.1): 4.02.
	ErrBadOption = errors.New("qblock: malformed or conflicting Q-Block2 option")
	// ErrOrder is several Q-Block2 options not in strictly increasing
	// block order, or of different sizes (RFC 9177 section 4.4): 4.00.
	ErrOrder = errors.New("qblock: Q-Block2 options not increasing or of different sizes")
	// ErrPastEnd is a block number past the end of the body (RFC 7959
	// section 2.2): 4.02.
	ErrPastEnd = errors.New("qblock: block past the end of the body")
)

// Block is one Q-Block2 option (RFC 9177 section 4.2, the structure of
// RFC 7959 section 2.2): a block number, the M bit and the size exponent.
type Block struct {
	Num  uint32
	More bool
	SZX  uint8 // block size 16 << SZX, 0 to 6
}

// Size is the block size in bytes.
func (b Block) Size() int { return 16 << b.SZX }

// Value encodes b as the option's unsigned integer.
func (b Block) Value() uint32 {
	v := b.Num<<4 | uint32(b.SZX)
	if b.More {
		v |= 8
	}
	return v
}

// DecodeBlock decodes an option value: an unsigned integer of 0 to 3
// bytes whose SZX is not 7.
func DecodeBlock(v []byte) (Block, error) {
	if len(v) > 3 {
		return Block{}, ErrBadOption
	}
	var x uint32
	for _, c := range v {
		x = x<<8 | uint32(c)
	}
	if x&7 == 7 {
		return Block{}, ErrBadOption
	}
	return Block{Num: x >> 4, More: x&8 != 0, SZX: uint8(x & 7)}, nil
}

// maxOptions is how many Q-Block2 options of one request are kept; a
// datagram of 1152 bytes holds a few hundred, and a request is answered
// with at most MAX_PAYLOADS blocks anyway.
const maxOptions = 64

// Request is the Q-Block2 options of a request, decoded and checked.
type Request struct {
	n    int
	opts [maxOptions]Block
}

// SZX is the block size exponent the request asks for.
func (r *Request) SZX() uint8 { return r.opts[0].SZX }

// Options returns the decoded options, in request order.
func (r *Request) Options() []Block { return r.opts[:r.n] }

// ParseRequest decodes the Q-Block2 options of a request; ok is false
// when it has none. Options past the 64th are checked but not kept.
func ParseRequest(opts message.Options) (req Request, ok bool, err error) {
	seen := false
	var prev Block
	for _, o := range opts {
		if o.ID != message.QBlock2 {
			continue
		}
		b, err := DecodeBlock(o.Value)
		if err != nil {
			return Request{}, true, err
		}
		if seen && (b.SZX != prev.SZX || b.Num <= prev.Num) {
			return Request{}, true, ErrOrder
		}
		if req.n < maxOptions {
			req.opts[req.n] = b
			req.n++
		}
		seen, prev = true, b
	}
	if !seen {
		return Request{}, false, nil
	}
	// Q-Block and Block options never mix in one request (RFC 9177
	// section 4.1).
	if opts.HasOption(message.Block2) || opts.HasOption(message.Block1) || opts.HasOption(message.QBlock1) {
		return Request{}, true, ErrBadOption
	}
	return req, true, nil
}

// Kind is what a request asks of a body.
type Kind uint8

const (
	// Select asks for the blocks it names: each option with the M bit
	// unset names its block, one with the M bit set names its block and
	// the rest of that block's MAX_PAYLOADS_SET (RFC 9177 section 4.4).
	Select Kind = iota
	// Stream asks for the body from Plan.Start to its end: NUM 0 with
	// the M bit set (the whole body), or a 'Continue' (NUM a multiple of
	// MAX_PAYLOADS, M set): the sets before NUM were received.
	Stream
)

// Plan is what a request asks of a body of count blocks.
type Plan struct {
	Kind Kind
	// Start is the first block of a Stream.
	Start uint32
	// Nums are the blocks a Select asks for, increasing and without
	// duplicates, at most MAX_PAYLOADS of them (the first ones asked).
	Nums []uint32
}

// Plan works out what the request asks of a body of count blocks when
// MAX_PAYLOADS is maxPayloads; Nums is appended to buf.
func (r *Request) Plan(count uint32, maxPayloads int, buf []uint32) (Plan, error) {
	mp := uint32(maxPayloads)
	for _, b := range r.opts[:r.n] {
		if b.Num >= count {
			return Plan{}, ErrPastEnd
		}
	}
	if r.n == 1 && r.opts[0].More && r.opts[0].Num%mp == 0 {
		return Plan{Kind: Stream, Start: r.opts[0].Num}, nil
	}
	nums := buf[:0]
	for _, b := range r.opts[:r.n] {
		last := b.Num
		if b.More {
			last = SetLast(b.Num, count, maxPayloads)
		}
		for n := b.Num; n <= last && len(nums) < maxPayloads; n++ {
			if len(nums) > 0 && n <= nums[len(nums)-1] {
				continue // overlaps a range already named: one instance only
			}
			nums = append(nums, n)
		}
	}
	return Plan{Kind: Select, Nums: nums}, nil
}

// SetLast is the last block of the MAX_PAYLOADS_SET holding block num of
// a body of count blocks.
func SetLast(num, count uint32, maxPayloads int) uint32 {
	mp := uint32(maxPayloads)
	return min((num/mp+1)*mp, count) - 1
}

// Count is the number of blocks of size bytes a body of size bytes
// takes (at least one).
func Count(size int64, blockSize int) uint32 {
	if size <= 0 {
		return 1
	}
	return uint32((size + int64(blockSize) - 1) / int64(blockSize))
}
