package coapd

import (
	"net"
	"net/netip"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// FuzzDatagram feeds arbitrary datagrams to the endpoint: it must never
// panic, and a handler only ever sees requests with a path.
func FuzzDatagram(f *testing.F) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Fatal(err)
	}
	defer conn.Close()
	s := New(conn, HandlerFunc(func(w *Response, r *Request) {
		if r.Path == "" || r.Path[0] != '/' {
			panic("handler got a request without a path")
		}
		if v, err := r.Msg.Options.GetUint32(message.QBlock2); err == nil {
			// An RFC 9177 burst: the answer and up to 15 followers, or
			// no answer at all (a late Continue).
			if v&8 != 0 && v>>4 == 10 {
				w.NoResponse()
				return
			}
			w.Code = codes.Content
			w.SetUint32(message.QBlock2, v)
			w.Payload = w.Buffer(64)
			w.Follow(int(v>>4)&15, func(i int, w *Response) {
				w.Code = codes.Content
				w.SetUint32(message.QBlock2, uint32(i+1)<<4|v&7)
				w.Payload = w.Buffer(int(16 << (v & 7)))
			}, nil, nil)
			return
		}
		if _, _, _, err := r.Block2(); err != nil {
			w.Code = codes.BadOption
			return
		}
		w.Code = codes.Content
		w.SetBytes(message.ETag, []byte("12345678"))
		w.SetUint32(message.Block2, 0x16)
		w.Payload = w.Buffer(64)
	}))
	for _, seed := range [][]byte{
		{0x40, 0x01, 0x00, 0x01, 0xb1, 'm'},
		{0x50, 0x02, 0x12, 0x34, 0xb1, 'n', 0x11, 0x3c, 0xff, 0xa0},
		{0x41, 0x01, 0x00, 0x02, 0xaa, 0xb1, 'm', 0xd1, 0x0a, 0x16},
		{0x60, 0x00, 0x00, 0x03},
		{0x50, 0x01, 0x00, 0x05, 0xb1, 'm', 0xd1, 0x07, 0x0e},                   // NON GET /m Q-Block2 0/1/1024
		{0x40, 0x01, 0x00, 0x06, 0xb1, 'm', 0xd1, 0x07, 0xae},                   // CON GET /m Q-Block2 10/1/1024
		{0x41, 0x01, 0x00, 0x07, 0xaa, 0xb1, 'm', 0xd1, 0x07, 0xf6, 0x01, 0x06}, // Q-Block2 15/0, 0/0
		{0x40, 0x02, 0x00, 0x08, 0xb1, 'n', 0x81, 0x06},                         // POST /n Q-Block1 0/0/1024
		{0x49, 0x01, 0x00, 0x04},
		{},
	} {
		f.Add(seed)
	}
	ws := &workerState{in: make([]byte, s.maxSize+1), out: make([]byte, 2048), opts: make(message.Options, 0, 32)}
	ws.resp.buf = make([]byte, 256)
	from := netip.MustParseAddrPort("127.0.0.1:9")
	f.Fuzz(func(t *testing.T, b []byte) {
		s.handleDatagram(ws, b, from)
	})
}
