package gwlink

import (
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"edgeota/protocol"
)

// maxManifest bounds a manifest fetched in several blocks (docs/protocol.md
// section 2: byte strings up to 64 KiB).
const maxManifest = 64 << 10

// Manifest asks the gateway once for the manifest the node should run
// (GET /n/{node}/manifest) and returns the signed manifest, nil when
// nothing is assigned, and its ETag. Transport failures and 5.03 are
// retried as for posts; a 4.04 sends the last Hello again and asks once
// more.
func (c *Client) Manifest(ctx context.Context) (signed []byte, etag []byte, err error) {
	path := c.nodePath(protocol.ResManifest)
	helloAgain := false
	r, err := retry(ctx, c, "GET "+path, c.cfg.maxElapsed, func() (response, error) {
		for {
			r, err := c.getResource(ctx, path, nil)
			if err != nil {
				return r, err
			}
			if r.code == codes.Content {
				return r, nil
			}
			if r.code == codes.NotFound && !helloAgain {
				helloAgain = true
				if c.rehello(ctx) {
					continue
				}
			}
			return r, c.answerError("GET "+path, r)
		}
	})
	if err != nil {
		return nil, nil, err
	}
	return r.signed(), r.tag(), nil
}

// signed is a manifest answer's payload, nil when empty.
func (r *response) signed() []byte {
	if len(r.body) == 0 {
		return nil
	}
	return r.body
}

// tag is the answer's ETag, or the one the gateway should have sent: the
// first 8 bytes of SHA-256 of the payload (docs/protocol.md section 5).
func (r *response) tag() []byte {
	if len(r.etag) > 0 {
		return r.etag
	}
	sum := sha256.Sum256(r.body)
	return sum[:8]
}

// Trust asks the gateway once for the trust update the node should hold
// (GET /n/{node}/trust, v1.3) and returns it, nil when there is none or
// the gateway does not serve trust updates (4.04). Transport failures and
// 5.03 are retried as for posts.
func (c *Client) Trust(ctx context.Context) (signed []byte, err error) {
	path := c.nodePath(protocol.ResTrust)
	r, err := retry(ctx, c, "GET "+path, c.cfg.maxElapsed, func() (response, error) {
		r, err := c.getResource(ctx, path, nil)
		if err != nil || r.code == codes.Content || r.code == codes.NotFound {
			return r, err
		}
		return r, c.answerError("GET "+path, r)
	})
	if err != nil || r.code == codes.NotFound {
		return nil, err
	}
	return r.signed(), nil
}

// getResource sends one GET of a node's manifest or trust update,
// conditional on etag when not nil, and fetches the further blocks of a
// document that does not fit one.
func (c *Client) getResource(ctx context.Context, path string, etag []byte) (response, error) {
	r, err := c.exchange(ctx, func(ctx context.Context, conn *udpclient.Conn) (*pool.Message, error) {
		req, err := conn.NewGetRequest(ctx, path)
		if err != nil {
			return nil, err
		}
		if etag != nil {
			if err := req.SetETag(etag); err != nil {
				conn.ReleaseMessage(req)
				return nil, err
			}
		}
		return req, nil
	})
	if err != nil || r.code != codes.Content || !r.hasBlock {
		return r, err
	}
	return c.rest(ctx, path, r)
}

// rest completes an answer that came as the first of several blocks.
func (c *Client) rest(ctx context.Context, path string, first response) (response, error) {
	szx, num, more, err := blockwise.DecodeBlockOption(first.block)
	if err != nil {
		return first, fmt.Errorf("gwlink: GET %s: answer's Block2: %w", path, err)
	}
	if num != 0 {
		return first, &transientError{fmt.Errorf("GET %s: got block %d, want 0", path, num)}
	}
	out := first
	for more {
		num++
		if int64(len(out.body)) > maxManifest {
			return first, fmt.Errorf("gwlink: GET %s: manifest over %d bytes", path, maxManifest)
		}
		r, err := c.exchange(ctx, func(ctx context.Context, conn *udpclient.Conn) (*pool.Message, error) {
			v, err := encodeBlock2(szx, num)
			if err != nil {
				return nil, err
			}
			req, err := conn.NewGetRequest(ctx, path)
			if err != nil {
				return nil, err
			}
			req.SetOptionUint32(message.Block2, v)
			return req, nil
		})
		if err != nil {
			return first, err
		}
		if r.code != codes.Content || !r.hasBlock {
			return first, &transientError{fmt.Errorf("GET %s: block %d answered %s", path, num, codeString(r.code))}
		}
		if string(r.etag) != string(first.etag) {
			return first, &transientError{fmt.Errorf("GET %s: manifest changed between blocks", path)}
		}
		var rnum int64
		if _, rnum, more, err = blockwise.DecodeBlockOption(r.block); err != nil || rnum != num {
			return first, &transientError{fmt.Errorf("GET %s: asked for block %d, got %d", path, num, rnum)}
		}
		out.body = append(out.body, r.body...)
	}
	out.hasBlock = false
	return out, nil
}
