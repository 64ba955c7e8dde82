package qblock

import (
	"errors"
	"slices"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/net/blockwise/qblock"
)

func TestDecodeBlock(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    []byte
		want Block
		err  error
	}{
		{"empty: NUM 0, M 0, 16 bytes", nil, Block{}, nil},
		{"0x0e: NUM 0, M 1, SZX 6", []byte{0x0e}, Block{More: true, SZX: 6}, nil},
		{"0xa6: NUM 10, M 0, SZX 6", []byte{0xa6}, Block{Num: 10, SZX: 6}, nil},
		{"0x010e: NUM 16, M 1, SZX 6", []byte{0x01, 0x0e}, Block{Num: 16, More: true, SZX: 6}, nil},
		{"three bytes: NUM 2^20-1", []byte{0xff, 0xff, 0xf6}, Block{Num: 1<<20 - 1, SZX: 6}, nil},
		{"four bytes", []byte{0, 0, 0, 6}, Block{}, ErrBadOption},
		{"SZX 7 (BERT)", []byte{0x07}, Block{}, ErrBadOption},
		{"SZX 7 with M", []byte{0x1f}, Block{}, ErrBadOption},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeBlock(tc.v)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Fatalf("DecodeBlock(%x) = %+v, %v; want %+v, %v", tc.v, got, err, tc.want, tc.err)
			}
			if err != nil {
				return
			}
			// The same value as go-coap's own RFC 9177 codec.
			var x uint32
			for _, c := range tc.v {
				x = x<<8 | uint32(c)
			}
			if got.Value() != x {
				t.Fatalf("Value() = %#x, want %#x", got.Value(), x)
			}
			szx, num, more, err := qblock.DecodeQBlockOption(x)
			if err != nil || uint8(szx) != got.SZX || uint32(num) != got.Num || more != got.More {
				t.Fatalf("go-coap decodes %#x as %v %d %v %v", x, szx, num, more, err)
			}
		})
	}
}

// qb is a Q-Block2 option of block num, M bit more, size 1024.
func qb(num uint32, more bool) message.Option {
	v := Block{Num: num, More: more, SZX: 6}.Value()
	b := []byte{byte(v >> 16), byte(v >> 8), byte(v)}
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	return message.Option{ID: message.QBlock2, Value: b}
}

func TestParseRequestAndPlan(t *testing.T) {
	path := message.Option{ID: message.URIPath, Value: []byte("m")}
	block2 := message.Option{ID: message.Block2, Value: []byte{0x06}}
	// A body of 25 blocks, MAX_PAYLOADS 10: sets 0-9, 10-19, 20-24.
	const count, mp = 25, 10
	for _, tc := range []struct {
		name  string
		opts  message.Options
		noQ   bool
		err   error
		kind  Kind
		start uint32
		nums  []uint32
	}{
		{name: "no Q-Block2", opts: message.Options{path, block2}, noQ: true},
		{name: "the whole body: 0/1", opts: message.Options{path, qb(0, true)}, kind: Stream, start: 0},
		{name: "a Continue: 10/1", opts: message.Options{path, qb(10, true)}, kind: Stream, start: 10},
		{name: "one block (a probe): 0/0", opts: message.Options{path, qb(0, false)}, kind: Select, nums: []uint32{0}},
		{name: "missing blocks 1 and 9", opts: message.Options{path, qb(1, false), qb(9, false)}, kind: Select, nums: []uint32{1, 9}},
		{name: "the rest of a set: 2/1", opts: message.Options{path, qb(2, true)}, kind: Select,
			nums: []uint32{2, 3, 4, 5, 6, 7, 8, 9}},
		{name: "the rest of the last set: 22/1", opts: message.Options{path, qb(22, true)}, kind: Select, nums: []uint32{22, 23, 24}},
		{name: "overlapping: 3/1 then 5/0, each block once", opts: message.Options{path, qb(3, true), qb(5, false), qb(12, false)},
			kind: Select, nums: []uint32{3, 4, 5, 6, 7, 8, 9, 12}},
		{name: "two Continues are a Select of at most MAX_PAYLOADS", opts: message.Options{path, qb(0, true), qb(10, true)},
			kind: Select, nums: []uint32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{name: "past the end", opts: message.Options{path, qb(25, false)}, err: ErrPastEnd},
		{name: "past the end among others", opts: message.Options{path, qb(1, false), qb(30, false)}, err: ErrPastEnd},
		{name: "a duplicate", opts: message.Options{path, qb(4, false), qb(4, false)}, err: ErrOrder},
		{name: "decreasing", opts: message.Options{path, qb(9, false), qb(1, false)}, err: ErrOrder},
		{name: "different sizes", opts: message.Options{path, qb(1, false), {ID: message.QBlock2, Value: []byte{0x25}}}, err: ErrOrder},
		{name: "with Block2", opts: message.Options{path, block2, qb(0, true)}, err: ErrBadOption},
		{name: "with Q-Block1", opts: message.Options{{ID: message.QBlock1, Value: []byte{0x06}}, path, qb(0, true)}, err: ErrBadOption},
		{name: "four bytes", opts: message.Options{path, {ID: message.QBlock2, Value: []byte{0, 0, 0, 0x0e}}}, err: ErrBadOption},
		{name: "BERT", opts: message.Options{path, {ID: message.QBlock2, Value: []byte{0x0f}}}, err: ErrBadOption},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, ok, err := ParseRequest(tc.opts)
			if ok == tc.noQ {
				t.Fatalf("ok = %v", ok)
			}
			if !ok {
				return
			}
			var p Plan
			if err == nil {
				p, err = q.Plan(count, mp, nil)
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if p.Kind != tc.kind || p.Start != tc.start || !slices.Equal(p.Nums, tc.nums) {
				t.Fatalf("plan = %+v, want kind %d start %d nums %v", p, tc.kind, tc.start, tc.nums)
			}
		})
	}
}

func TestSetLastAndCount(t *testing.T) {
	for _, tc := range []struct {
		num, count uint32
		mp         int
		want       uint32
	}{
		{0, 25, 10, 9}, {9, 25, 10, 9}, {10, 25, 10, 19}, {20, 25, 10, 24}, {0, 1, 10, 0}, {3, 4, 1, 3},
	} {
		if got := SetLast(tc.num, tc.count, tc.mp); got != tc.want {
			t.Errorf("SetLast(%d, %d, %d) = %d, want %d", tc.num, tc.count, tc.mp, got, tc.want)
		}
	}
	for _, tc := range []struct {
		size int64
		bs   int
		want uint32
	}{{0, 1024, 1}, {1, 1024, 1}, {1024, 1024, 1}, {1025, 1024, 2}, {100_000, 1024, 98}, {100_000, 64, 1563}} {
		if got := Count(tc.size, tc.bs); got != tc.want {
			t.Errorf("Count(%d, %d) = %d, want %d", tc.size, tc.bs, got, tc.want)
		}
	}
}

// FuzzParseRequest: any Q-Block2 option values parse without panic, and
// a plan never names a block past the end, twice, out of order, or more
// than MAX_PAYLOADS blocks.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte{0x0e}, []byte{}, uint16(25), uint8(10))
	f.Add([]byte{0x16}, []byte{0x96}, uint16(25), uint8(10))
	f.Add([]byte{0xa6}, []byte{0xa6}, uint16(5), uint8(1))
	f.Add([]byte{0xff, 0xff, 0xfe}, []byte{0x07}, uint16(65535), uint8(255))
	f.Fuzz(func(t *testing.T, a, b []byte, count uint16, mp uint8) {
		if count == 0 || mp == 0 {
			return
		}
		opts := message.Options{{ID: message.QBlock2, Value: a}}
		if len(b) > 0 {
			opts = append(opts, message.Option{ID: message.QBlock2, Value: b})
		}
		q, ok, err := ParseRequest(opts)
		if !ok {
			t.Fatal("a Q-Block2 option was not seen")
		}
		if err != nil {
			return
		}
		p, err := q.Plan(uint32(count), int(mp), nil)
		if err != nil {
			return
		}
		if p.Kind == Stream && (p.Start >= uint32(count) || p.Start%uint32(mp) != 0) {
			t.Fatalf("stream from %d", p.Start)
		}
		if len(p.Nums) > int(mp) {
			t.Fatalf("%d blocks", len(p.Nums))
		}
		for i, n := range p.Nums {
			if n >= uint32(count) || i > 0 && n <= p.Nums[i-1] {
				t.Fatalf("nums %v", p.Nums)
			}
		}
	})
}
