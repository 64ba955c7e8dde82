package gwlink

import (
	"bytes"
	"context"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/net/blockwise/qblock"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"edgeota/protocol"
)

// answerDatagram encodes a CoAP answer as the gateway would send it: code,
// payload, ETag and Block2 when given.
func answerDatagram(tb testing.TB, code codes.Code, payload, etag []byte, block2 *uint32) []byte {
	tb.Helper()
	m := pool.NewMessage(context.Background())
	m.SetCode(code)
	m.SetType(message.Acknowledgement)
	m.SetMessageID(1)
	m.SetToken([]byte{1, 2, 3, 4})
	if etag != nil {
		m.SetOptionBytes(message.ETag, etag)
	}
	if block2 != nil {
		m.SetOptionUint32(message.Block2, *block2)
	}
	if payload != nil {
		m.SetBody(bytes.NewReader(payload))
	}
	b, err := m.MarshalWithEncoder(coder.DefaultCoder)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// FuzzAnswer feeds arbitrary datagrams, as a broken or hostile gateway
// could send them, through the node's reading of an answer (go-coap's
// decoding, then readResponse) and its reading of an answer to an image
// block request: no panic, and a block it accepts starts at or before the
// position asked for and holds it unless it is the image's last.
func FuzzAnswer(f *testing.F) {
	digest := protocol.Digest{1, 2, 3}
	etag := digest.ETag()
	for _, seed := range []struct {
		code    codes.Code
		payload []byte
		etag    []byte
		block   int64 // -1: no Block2
		more    bool
	}{
		{codes.Content, make([]byte, 64), etag, 2, true},
		{codes.Content, make([]byte, 10), etag, 5, false},
		{codes.Content, make([]byte, 100), etag, -1, false},
		{codes.Content, make([]byte, 64), []byte{9, 9}, 0, true},
		{codes.NotFound, nil, nil, -1, false},
		{codes.ServiceUnavailable, []byte("busy"), nil, -1, false},
		{codes.TooManyRequests, nil, nil, -1, false},
		{codes.Forbidden, []byte("not yours"), nil, -1, false},
	} {
		var b2 *uint32
		if seed.block >= 0 {
			v, err := blockwise.EncodeBlockOption(blockwise.SZX64, seed.block, seed.more)
			if err != nil {
				f.Fatal(err)
			}
			b2 = &v
		}
		f.Add(answerDatagram(f, seed.code, seed.payload, seed.etag, b2), uint32(130), uint8(blockwise.SZX64))
	}
	c := &Client{cfg: defaultConfig()}
	f.Fuzz(func(t *testing.T, datagram []byte, pos uint32, szx uint8) {
		m := pool.NewMessage(context.Background())
		if _, err := m.UnmarshalWithDecoder(coder.DefaultCoder, datagram); err != nil {
			return
		}
		r, err := readResponse(m)
		if err != nil {
			return
		}
		_, _, _ = r.signed(), r.tag(), r.diagnostic()
		_ = blockMore(r.block)
		_ = c.answerError("GET /m/x", r)

		asked := blockwise.SZX(szx % uint8(blockwise.SZXBERT))
		im := &Image{c: c, path: protocol.ImagePath(digest), digest: digest, etag: etag, size: 1 << 20}
		im.szx.Store(uint32(asked))
		p := int64(pos % (1 << 20))
		b, smaller, err := im.answer("GET "+im.path, asked, p, r)
		if err != nil || smaller {
			if smaller && blockwise.SZX(im.szx.Load()) >= asked {
				t.Fatalf("a smaller block did not lower the size asked for (%v)", asked)
			}
			return
		}
		if b.off > p || (p >= b.off+int64(len(b.data)) && b.more) {
			t.Fatalf("block at %d of %d bytes (more %v) for position %d", b.off, len(b.data), b.more, p)
		}
	})
}

// FuzzQBlockAnswer feeds arbitrary datagrams, as a broken or hostile
// gateway could send them on a Q-Block2 transfer's token, through the
// node's reading of them (go-coap's decoding, readQAnswer, takeQ) into a
// window at base: no panic, the window only ever holds blocks inside it
// and the image, and a block it holds has the image's length for its
// number and the payload that came.
func FuzzQBlockAnswer(f *testing.F) {
	digest := protocol.Digest{4, 5, 6}
	etag := digest.ETag()
	const size = 5000 // 79 blocks of 64 bytes, the last of 8
	for _, seed := range []struct {
		num     int64
		more    bool
		payload int
		etag    []byte
		code    codes.Code
	}{
		{0, true, 64, etag, codes.Content},
		{78, false, 8, etag, codes.Content},
		{21, true, 64, etag, codes.Content},     // past the window
		{3, true, 63, etag, codes.Content},      // short
		{4, true, 64, []byte{1}, codes.Content}, // other ETag
		{0, false, 0, nil, codes.BadOption},
		{0, false, 0, nil, codes.BadRequest},
		{0, false, 0, nil, codes.ServiceUnavailable},
	} {
		m := pool.NewMessage(context.Background())
		m.SetCode(seed.code)
		m.SetType(message.NonConfirmable)
		m.SetMessageID(9)
		m.SetToken([]byte{7, 7})
		if seed.etag != nil {
			m.SetOptionBytes(message.ETag, seed.etag)
		}
		if seed.code == codes.Content {
			v, err := qblock.EncodeQBlockOption(blockwise.SZX64, seed.num, seed.more)
			if err != nil {
				f.Fatal(err)
			}
			m.SetOptionUint32(message.QBlock2, v)
			m.SetOptionUint32(message.Size2, size)
			m.SetBody(bytes.NewReader(make([]byte, seed.payload)))
		}
		b, err := m.MarshalWithEncoder(coder.DefaultCoder)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(0))
	}
	c := &Client{cfg: defaultConfig()}
	_ = c.cfg.validate()
	f.Fuzz(func(t *testing.T, datagram []byte, base uint8) {
		m := pool.NewMessage(context.Background())
		if _, err := m.UnmarshalWithDecoder(coder.DefaultCoder, datagram); err != nil {
			return
		}
		a, err := readQAnswer(m)
		if err != nil {
			return
		}
		im := &Image{c: c, path: protocol.ImagePath(digest), digest: digest, etag: etag, size: size}
		im.szx.Store(uint32(blockwise.SZX64))
		q := im.newWindow(blockwise.SZX64)
		q.reset(int64(base) % q.count)
		if err := im.takeQ(q, a); err != nil {
			if q.have != 0 {
				t.Fatalf("a refused answer left blocks in the window: %b", q.have)
			}
			return
		}
		for i := int64(0); i < 64; i++ {
			if q.have&(1<<uint(i)) == 0 {
				continue
			}
			num := q.base + i
			if i >= 2*q.w || num >= q.count {
				t.Fatalf("block %d held outside the window at %d (%d blocks)", num, q.base, q.count)
			}
			if got := q.buf[i*q.bs : i*q.bs+q.blockLen(num, size)]; !bytes.Equal(got, a.body) {
				t.Fatalf("block %d holds %d bytes other than the payload's %d", num, len(got), len(a.body))
			}
		}
	})
}
