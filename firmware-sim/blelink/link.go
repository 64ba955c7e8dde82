package blelink

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/go-ble/ble"
)

// ErrClosed is returned by Write on a disconnected link.
var ErrClosed = errors.New("blelink: link closed")

// queueLen is how many PDUs may wait in one direction; a writer blocks
// beyond it, as an L2CAP channel out of credits would.
const queueLen = 64

// link is what both ends of a pipe share.
type link struct {
	done      chan struct{}
	closeOnce sync.Once
}

func (l *link) close() { l.closeOnce.Do(func() { close(l.done) }) }

// Conn is one end of an in-memory link. It implements [ble.Conn] and is
// safe for concurrent use.
type Conn struct {
	l      *link
	in     <-chan []byte
	out    chan<- []byte
	local  ble.Addr
	remote ble.Addr

	mu    sync.Mutex
	ctx   context.Context
	rxMTU int
	txMTU int
}

var _ ble.Conn = (*Conn)(nil)

// Pipe returns the two ends of a new link between a central at address
// centralAddr and a peripheral at peripheralAddr (MAC-style strings such
// as "0a:00:00:00:00:01").
func Pipe(centralAddr, peripheralAddr string) (central, peripheral *Conn) {
	l := &link{done: make(chan struct{})}
	c2p := make(chan []byte, queueLen)
	p2c := make(chan []byte, queueLen)
	ca, pa := ble.NewAddr(centralAddr), ble.NewAddr(peripheralAddr)
	central = &Conn{l: l, in: p2c, out: c2p, local: ca, remote: pa, ctx: context.Background(), rxMTU: ble.DefaultMTU, txMTU: ble.DefaultMTU}
	peripheral = &Conn{l: l, in: c2p, out: p2c, local: pa, remote: ca, ctx: context.Background(), rxMTU: ble.DefaultMTU, txMTU: ble.DefaultMTU}
	return central, peripheral
}

// Read returns the next PDU. It fails with [io.ErrShortBuffer] (dropping
// the PDU) when p cannot hold it, and with [io.EOF] once the link is
// closed and drained.
func (c *Conn) Read(p []byte) (int, error) {
	select {
	case b := <-c.in:
		return c.deliver(p, b)
	case <-c.l.done:
		// Deliver what was sent before the close, then EOF.
		select {
		case b := <-c.in:
			return c.deliver(p, b)
		default:
			return 0, io.EOF
		}
	}
}

func (c *Conn) deliver(p, b []byte) (int, error) {
	if len(b) > len(p) {
		return 0, io.ErrShortBuffer
	}
	return copy(p, b), nil
}

// Write sends b as one PDU. The bytes are copied: the caller may reuse b.
func (c *Conn) Write(b []byte) (int, error) {
	pdu := append([]byte(nil), b...)
	select {
	case <-c.l.done:
		return 0, ErrClosed
	default:
	}
	select {
	case c.out <- pdu:
		return len(b), nil
	case <-c.l.done:
		return 0, ErrClosed
	}
}

// Close disconnects both ends.
func (c *Conn) Close() error {
	c.l.close()
	return nil
}

// Disconnected is closed when either end closes the link.
func (c *Conn) Disconnected() <-chan struct{} { return c.l.done }

// Context returns the context set with SetContext (Background at first).
func (c *Conn) Context() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ctx
}

// SetContext sets the context that Context returns.
func (c *Conn) SetContext(ctx context.Context) {
	c.mu.Lock()
	c.ctx = ctx
	c.mu.Unlock()
}

// LocalAddr returns this end's address.
func (c *Conn) LocalAddr() ble.Addr { return c.local }

// RemoteAddr returns the other end's address.
func (c *Conn) RemoteAddr() ble.Addr { return c.remote }

// RxMTU returns the ATT MTU this end accepts.
func (c *Conn) RxMTU() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rxMTU
}

// SetRxMTU sets the ATT MTU this end accepts.
func (c *Conn) SetRxMTU(mtu int) {
	c.mu.Lock()
	c.rxMTU = mtu
	c.mu.Unlock()
}

// TxMTU returns the ATT MTU the other end accepts.
func (c *Conn) TxMTU() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.txMTU
}

// SetTxMTU sets the ATT MTU the other end accepts.
func (c *Conn) SetTxMTU(mtu int) {
	c.mu.Lock()
	c.txMTU = mtu
	c.mu.Unlock()
}

// ReadRSSI returns a fixed -40 dBm.
func (c *Conn) ReadRSSI() int { return -40 }
