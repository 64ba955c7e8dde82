package gwlink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"edgeota/protocol"
)

// Image reads an image from the gateway, block by block; it is the node
// agent's ImageSource. It is safe for concurrent use.
type Image struct {
	c      *Client
	path   string
	digest protocol.Digest
	etag   []byte
	size   int64
	szx    atomic.Uint32         // Block2 SZX asked for; lowered when the gateway answers smaller blocks
	last   atomic.Pointer[block] // the last block fetched, for reads that end inside it

	qmu sync.Mutex // a Q-Block2 transfer: one reader at a time
	q   *qwindow
}

// Image returns the image of the given digest and size at its default path
// (protocol.ImagePath).
func (c *Client) Image(digest protocol.Digest, size int64) *Image {
	return c.ImageAt(protocol.ImagePath(digest), digest, size)
}

// ImageFor returns the image a manifest names, at its location.
func (c *Client) ImageFor(m *protocol.Manifest) *Image {
	return c.ImageAt(m.ImagePath(), m.Digest, int64(m.Size))
}

// ImageAt returns the image of the given digest and size at a CoAP path.
func (c *Client) ImageAt(path string, digest protocol.Digest, size int64) *Image {
	im := &Image{c: c, path: path, digest: digest, etag: digest.ETag(), size: size}
	im.szx.Store(uint32(c.cfg.szx()))
	return im
}

// Size returns the image size given when the Image was made.
func (im *Image) Size() int64 { return im.size }

// ReadAt reads len(p) bytes of the image at off, as io.ReaderAt does: past
// the image size it returns io.EOF, and io.ErrUnexpectedEOF when the
// gateway's image ends first. It reads in Q-Block2 bursts when the gateway
// has them, else one request per block; either way a read may start at
// any offset (a download resumes where it stopped). 4.04 is
// ErrNotCached and an ETag other than the digest's ErrImageChanged; 5.03
// waits and transport failures are retried until ctx ends.
func (im *Image) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("gwlink: read of %s at negative offset %d", im.path, off)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off >= im.size {
		return 0, io.EOF
	}
	want, eof := p, false
	if rest := im.size - off; int64(len(p)) > rest {
		want, eof = p[:rest], true
	}
	if im.c.qblockOn() {
		n, err := im.readBurst(ctx, want, off)
		if !errors.Is(err, errNoQBlock) {
			if err == nil && eof {
				err = io.EOF
			}
			return n, err
		}
		im.c.noQBlock()
	}
	n := 0
	for n < len(want) {
		pos := off + int64(n)
		b := im.last.Load()
		if b == nil || pos < b.off || pos >= b.off+int64(len(b.data)) {
			fetched, err := im.block(ctx, pos)
			if err != nil {
				return n, err
			}
			b = &fetched
			im.last.Store(b)
		}
		end := b.off + int64(len(b.data))
		if pos >= end {
			return n, io.ErrUnexpectedEOF
		}
		n += copy(want[n:], b.data[pos-b.off:])
		if !b.more && n < len(want) {
			return n, io.ErrUnexpectedEOF
		}
	}
	if eof {
		return n, io.EOF
	}
	return n, nil
}

// readBurst reads want at off with Q-Block2, retrying as ReadAt says.
func (im *Image) readBurst(ctx context.Context, want []byte, off int64) (int, error) {
	n := 0
	_, err := retry(ctx, im.c, "GET "+im.path, 0, func() (struct{}, error) {
		k, err := im.readQ(ctx, want[n:], off+int64(n))
		n += k
		if err != nil {
			im.c.log.Debug("Q-Block2 read", "path", im.path, "at", off+int64(n), "err", err)
		}
		return struct{}{}, err
	})
	return n, err
}

// block is a piece of the image: data at off, and whether more follows.
type block struct {
	off  int64
	data []byte
	more bool
}

// block fetches the block that holds pos, retrying as ReadAt says. A
// returned block starts at or before pos, and holds pos unless it is the
// last one.
func (im *Image) block(ctx context.Context, pos int64) (block, error) {
	return retry(ctx, im.c, "GET "+im.path, 0, func() (block, error) {
		for {
			szx := blockwise.SZX(im.szx.Load())
			b, smaller, err := im.fetch(ctx, szx, pos)
			if err != nil || !smaller {
				return b, err
			}
			// The gateway answered with blocks smaller than asked, and not
			// the one holding pos: ask again at its size.
		}
	})
}

// fetch sends one GET for the block of size szx holding pos. smaller
// reports an answer at a smaller size that does not hold pos; im.szx is
// then lowered to it.
func (im *Image) fetch(ctx context.Context, szx blockwise.SZX, pos int64) (b block, smaller bool, err error) {
	num := pos / szx.Size()
	op := "GET " + im.path
	r, err := im.c.exchange(ctx, func(ctx context.Context, conn *udpclient.Conn) (*pool.Message, error) {
		v, err := encodeBlock2(szx, num)
		if err != nil {
			return nil, err
		}
		req, err := conn.NewGetRequest(ctx, im.path)
		if err != nil {
			return nil, err
		}
		req.SetOptionUint32(message.Block2, v)
		return req, nil
	})
	if err != nil {
		return block{}, false, err
	}
	return im.answer(op, szx, pos, r)
}

// answer reads the gateway's answer r to a GET of the block of size szx
// holding pos: the block, or smaller when it is a block of a smaller size
// that does not hold pos (im.szx is then lowered to it), or an error. A
// block returned starts at or before pos and holds pos unless it is the
// last one.
func (im *Image) answer(op string, szx blockwise.SZX, pos int64, r response) (b block, smaller bool, err error) {
	num := pos / szx.Size()
	switch {
	case r.code == codes.Content:
	case r.code == codes.NotFound:
		return block{}, false, fmt.Errorf("%w: %s", ErrNotCached, im.path)
	default:
		return block{}, false, im.c.answerError(op, r)
	}
	if !bytes.Equal(r.etag, im.etag) {
		return block{}, false, fmt.Errorf("%w: block %d of %s has ETag %x, want %x", ErrImageChanged, num, im.path, r.etag, im.etag)
	}
	if !r.hasBlock {
		// The whole image in one answer.
		return block{off: 0, data: r.body}, false, nil
	}
	rszx, rnum, more, err := blockwise.DecodeBlockOption(r.block)
	if err != nil {
		return block{}, false, fmt.Errorf("gwlink: %s: answer's Block2: %w", op, err)
	}
	if rszx < szx {
		im.szx.CompareAndSwap(uint32(szx), uint32(rszx))
	}
	b = block{off: rnum * rszx.Size(), data: r.body, more: more}
	if b.off <= pos && (pos < b.off+int64(len(b.data)) || !more) {
		return b, false, nil
	}
	if rszx < szx {
		return block{}, true, nil
	}
	return block{}, false, fmt.Errorf("gwlink: %s: asked for block %d of %d bytes, got block %d of %d bytes", op, num, szx.Size(), rnum, rszx.Size())
}
