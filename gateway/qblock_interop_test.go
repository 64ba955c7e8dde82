package gateway_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"edgeota/protocol"
)

// TestGoCoAPQBlock2Client fetches an image from the gateway with go-coap's
// own RFC 9177 client (options.WithQBlockwise), an implementation
// independent of the gateway's, and checks every byte: with Q-Block only
// (non-confirmable and confirmable requests), and with Q-Block negotiated
// by go-coap's probe of /.well-known/core. Every block it gets carries
// Q-Block2, never Block2.
func TestGoCoAPQBlock2Client(t *testing.T) {
	e := newEnv(t, opts{})
	md := e.model(7, 100_000) // 98 blocks of 1024: ten sets
	if err := e.push(md.signed, md.image); err != nil {
		t.Fatalf("push: %v", err)
	}
	for _, tc := range []struct {
		name string
		mode options.QBlockwiseMode
		typ  message.Type
	}{
		{"only, non-confirmable", options.QBlockwiseOnly, message.NonConfirmable},
		{"only, confirmable", options.QBlockwiseOnly, message.Confirmable},
		{"negotiated", options.QBlockwiseAuto, message.NonConfirmable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var qblocks, plain int
			c, err := udp.Dial(e.coap, options.WithQBlockwise(tc.mode),
				options.WithBlockwise(true, blockwise.SZX1024, time.Minute), options.WithErrors(func(error) {}),
				options.WithRequestMonitor(func(_ *udpClient.Conn, m *pool.Message) (bool, error) {
					if m.HasOption(message.QBlock2) {
						qblocks++
					}
					if m.HasOption(message.Block2) {
						plain++
					}
					return false, nil
				}))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			req, err := c.NewGetRequest(ctx, protocol.ImagePath(md.m.Digest))
			if err != nil {
				t.Fatal(err)
			}
			req.SetType(tc.typ)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			if resp.Code() != codes.Content {
				t.Fatalf("get: %v", resp.Code())
			}
			body, err := resp.ReadBody()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(body, md.image) {
				t.Fatalf("image differs: %d bytes of %d", len(body), len(md.image))
			}
			if qblocks == 0 || plain != 0 {
				t.Fatalf("requests with Q-Block2: %d, with Block2: %d", qblocks, plain)
			}
		})
	}
}
