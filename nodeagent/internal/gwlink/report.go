package gwlink

import (
	"bytes"
	"context"
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"edgeota/protocol"
)

// maxDocument is the largest node document: one datagram's payload
// (docs/protocol.md section 5, no Block1 uploads).
const maxDocument = 1024

// Hello posts h to /n/{node}/hello (docs/protocol.md sections 4 and 5). The
// client keeps the last Hello the gateway accepted and sends it again when
// the gateway later answers a manifest request with 4.04 (it forgot the
// node).
func (c *Client) Hello(ctx context.Context, h *protocol.Hello) error {
	body, err := c.document(protocol.ResHello, h.NodeID, h)
	if err != nil {
		return err
	}
	if err := c.post(ctx, protocol.ResHello, body); err != nil {
		return err
	}
	c.helloMu.Lock()
	c.hello = body
	c.helloMu.Unlock()
	return nil
}

// Health posts r to /n/{node}/health.
func (c *Client) Health(ctx context.Context, r *protocol.HealthReport) error {
	body, err := c.document(protocol.ResHealth, r.NodeID, r)
	if err != nil {
		return err
	}
	return c.post(ctx, protocol.ResHealth, body)
}

// Status posts e to /n/{node}/status.
func (c *Client) Status(ctx context.Context, e *protocol.StatusEvent) error {
	body, err := c.document(protocol.ResStatus, e.NodeID, e)
	if err != nil {
		return err
	}
	return c.post(ctx, protocol.ResStatus, body)
}

// document validates and encodes a node document of this client's node.
func (c *Client) document(kind protocol.NodeResource, node string, doc any) ([]byte, error) {
	if node != c.node {
		return nil, fmt.Errorf("gwlink: %s of node %q on the link of node %q", kind, node, c.node)
	}
	body, err := protocol.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("gwlink: %s: %w", kind, err)
	}
	if len(body) > maxDocument {
		return nil, fmt.Errorf("gwlink: %s of %d bytes is over %d", kind, len(body), maxDocument)
	}
	return body, nil
}

// nodePath returns the path of this client's node resource r.
func (c *Client) nodePath(r protocol.NodeResource) string { return protocol.NodePath(c.node, r) }

// post sends a CBOR document until the gateway answers 2.xx or 4.xx, ctx
// ends or the gateway stays silent for the maximum elapsed time.
func (c *Client) post(ctx context.Context, kind protocol.NodeResource, body []byte) error {
	op := "POST " + c.nodePath(kind)
	_, err := retry(ctx, c, op, c.cfg.maxElapsed, func() (struct{}, error) {
		return struct{}{}, c.postOnce(ctx, kind, body)
	})
	return err
}

// postOnce is one exchange of post.
func (c *Client) postOnce(ctx context.Context, kind protocol.NodeResource, body []byte) error {
	path := c.nodePath(kind)
	r, err := c.exchange(ctx, func(ctx context.Context, conn *udpclient.Conn) (*pool.Message, error) {
		return conn.NewPostRequest(ctx, path, message.AppCBOR, bytes.NewReader(body))
	})
	if err != nil {
		return err
	}
	if r.code>>5 == 2 {
		return nil
	}
	return c.answerError("POST "+path, r)
}

// rehello sends the last accepted Hello again, once, and reports whether
// the gateway took it.
func (c *Client) rehello(ctx context.Context) bool {
	c.helloMu.Lock()
	body := c.hello
	c.helloMu.Unlock()
	if body == nil {
		return false
	}
	err := c.postOnce(ctx, protocol.ResHello, body)
	if err != nil {
		c.log.Warn("hello sent again after 4.04 not accepted", "err", err)
		return false
	}
	c.log.Info("gateway did not know the node; hello sent again")
	return true
}
