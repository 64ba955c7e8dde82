//go:build !linux

package coapd

import (
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// sockIO is the UDP socket as the workers use it elsewhere than on
// Linux: golang.org/x/net's batched I/O, one datagram per call where the
// system has no recvmmsg, and no fast wait.
type sockIO struct {
	conn batchConn
}

// batchConn is the batched I/O of golang.org/x/net's ipv4 and ipv6
// PacketConn.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

func newSockIO(c *net.UDPConn) (*sockIO, error) {
	if la, ok := c.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() != nil {
		return &sockIO{conn: ipv4.NewPacketConn(c)}, nil
	}
	return &sockIO{conn: ipv6.NewPacketConn(c)}, nil
}

func (sio *sockIO) close() {}

// setFastWait does nothing here: no fast wait.
func (sio *sockIO) setFastWait(time.Duration) error { return nil }

func (sio *sockIO) wake() {}

// batchIO is one worker's batched I/O.
type batchIO struct {
	sio   *sockIO
	rmsgs []ipv4.Message
	wmsgs []ipv4.Message
	wbufs [][]byte
	nout  int
}

func newBatchIO(sio *sockIO, n, size int) *batchIO {
	b := &batchIO{sio: sio, rmsgs: make([]ipv4.Message, n), wmsgs: make([]ipv4.Message, n), wbufs: make([][]byte, n)}
	for i := range b.rmsgs {
		b.rmsgs[i].Buffers = [][]byte{make([]byte, size)}
		b.wbufs[i] = make([]byte, 0, 2048)
		b.wmsgs[i].Buffers = make([][]byte, 1)
	}
	return b
}

// read reads a batch, waiting in Go's network poller (no fast wait here).
func (b *batchIO) read(bool) (n int, tried, got bool, err error) {
	n, err = b.sio.conn.ReadBatch(b.rmsgs, 0)
	return n, false, false, err
}

// readWhile reads a batch; here it waits in the poller like read (a
// helper stays awake once woken).
func (b *batchIO) readWhile(func() bool) (int, error) {
	n, _, _, err := b.read(false)
	return n, err
}

func (b *batchIO) datagram(i int) ([]byte, netip.AddrPort, bool) {
	m := &b.rmsgs[i]
	ua, ok := m.Addr.(*net.UDPAddr)
	if !ok {
		return nil, netip.AddrPort{}, false
	}
	ap := ua.AddrPort()
	return m.Buffers[0][:m.N], netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

func (b *batchIO) full() bool { return b.nout == len(b.wmsgs) }

func (b *batchIO) queue(p []byte, to netip.AddrPort) {
	i := b.nout
	b.wbufs[i] = append(b.wbufs[i][:0], p...)
	b.wmsgs[i].Buffers[0] = b.wbufs[i]
	b.wmsgs[i].Addr = net.UDPAddrFromAddrPort(to)
	b.nout++
}

func (b *batchIO) flush() (int, error) {
	sent := 0
	defer func() { b.nout = 0 }()
	for sent < b.nout {
		k, err := b.sio.conn.WriteBatch(b.wmsgs[sent:b.nout], 0)
		if err != nil || k == 0 {
			return sent, err
		}
		sent += k
	}
	return sent, nil
}
