package gateway_test

import (
	"bytes"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"edgeota/gateway"
	"edgeota/protocol"
)

// BenchmarkDTLSHandshake is one node opening a DTLS session (PSK,
// AES-128-CCM-8, with the cookie exchange) and closing it: the gateway's
// and the client's cost together, on loopback.
func BenchmarkDTLSHandshake(b *testing.B) {
	e := newEnv(b, opts{keys: map[string][]byte{"node-a": keyA}})
	b.ReportAllocs()
	for b.Loop() {
		c, err := e.dialDTLS("node-a", keyA)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkBlockTransfer fetches a 256 KiB image block by block (1 KiB,
// lock-step, as a node does) over plain UDP and over DTLS, side by side
// in one run: the ratio is the cost of DTLS per block.
func BenchmarkBlockTransfer(b *testing.B) {
	e := newEnv(b, opts{keys: map[string][]byte{"node-a": keyA}, limits: benchLimits()})
	md := e.model(1, 256<<10)
	if err := e.push(md.signed, md.image); err != nil {
		b.Fatalf("push: %v", err)
	}
	sec, err := e.dialDTLS("node-a", keyA)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		c    *udpClient.Conn
	}{{"udp", e.dial()}, {"dtls", sec}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(md.image)))
			b.ReportAllocs()
			for b.Loop() {
				if got := fetchB(b, tc.c, md); !bytes.Equal(got, md.image) {
					b.Fatal("image differs")
				}
			}
		})
	}
}

func benchLimits() gateway.Limits { return gateway.Limits{SourceRate: -1, NodeRate: -1} }

func fetchB(b *testing.B, c *udpClient.Conn, md model) []byte {
	out := make([]byte, 0, len(md.image))
	for n := int64(0); ; n++ {
		req, _ := c.NewGetRequest(b.Context(), protocol.ImagePath(md.m.Digest))
		v, _ := blockwise.EncodeBlockOption(blockwise.SZX1024, n, false)
		req.SetOptionUint32(message.Block2, v)
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		if resp.Code() != codes.Content {
			b.Fatalf("block %d: %v", n, resp.Code())
		}
		body, _ := resp.ReadBody()
		out = append(out, body...)
		bv, _ := resp.Options().GetUint32(message.Block2)
		if _, _, more, _ := blockwise.DecodeBlockOption(bv); !more {
			return out
		}
	}
}
