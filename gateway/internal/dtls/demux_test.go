package dtls

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"edgeota/test/testutil"
)

// handshakeRecord is a datagram whose first byte says handshake (22), as
// a ClientHello's does; garbage is one that does not.
var (
	handshakeRecord = []byte{contentHandshake, 0xfe, 0xfd, 1, 2, 3}
	garbage         = []byte{0x17, 0xfe, 0xfd, 9, 9, 9}
)

func startDemux(t *testing.T, gate func(netip.Addr) bool) (*demux, chan uint64) {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	drops := make(chan uint64, 100)
	d := newDemux(conn, gate, func(n uint64) { drops <- n })
	t.Cleanup(func() { d.Close() })
	return d, drops
}

func send(t *testing.T, from string, to net.Addr, b []byte) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(from)}, to.(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	return c
}

type accepted struct {
	pc   net.PacketConn
	addr net.Addr
	err  error
}

func acceptOne(d *demux) <-chan accepted {
	ch := make(chan accepted, 1)
	go func() {
		pc, a, err := d.Accept()
		ch <- accepted{pc, a, err}
	}()
	return ch
}

func wait[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testutil.DefaultCeiling):
		t.Fatalf("no %s", what)
		panic("unreachable")
	}
}

// TestDemuxDropsRefusedSourcesFirst: the datagrams of a source the gate
// refuses never make an association and are counted; a garbage datagram
// from a new endpoint makes none either; a handshake record does, and the
// endpoint's next datagrams reach it in order.
func TestDemuxDropsRefusedSourcesFirst(t *testing.T) {
	flooder := netip.MustParseAddr("127.0.0.2")
	d, drops := startDemux(t, func(a netip.Addr) bool { return a != flooder })
	acc := acceptOne(d)
	send(t, "127.0.0.2", d.Addr(), handshakeRecord)
	if n := wait(t, "count of dropped datagrams", drops); n != 1 {
		t.Fatalf("%d drops counted, want 1", n)
	}
	c := send(t, "127.0.0.1", d.Addr(), garbage)
	c.Write(handshakeRecord)
	c.Write([]byte{contentHandshake, 7})
	a := wait(t, "association", acc)
	if a.err != nil {
		t.Fatal(a.err)
	}
	if got := a.addr.(*net.UDPAddr).AddrPort(); got != c.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Fatalf("association of %v, want the node's %v (not the refused source's)", got, c.LocalAddr())
	}
	buf := make([]byte, 64)
	for i, want := range [][]byte{handshakeRecord, {contentHandshake, 7}} {
		n, _, err := a.pc.ReadFrom(buf)
		if err != nil || string(buf[:n]) != string(want) {
			t.Fatalf("datagram %d: %x, %v; want %x (the garbage before it made no association)", i, buf[:n], err, want)
		}
	}
}

// TestDemuxPeerDeadlineAndClose: a read deadline set while ReadFrom
// blocks wakes it with a timeout; a closed association's ReadFrom fails,
// and the endpoint's next handshake record makes a new association.
func TestDemuxPeerDeadlineAndClose(t *testing.T) {
	d, _ := startDemux(t, nil)
	acc := acceptOne(d)
	c := send(t, "127.0.0.1", d.Addr(), handshakeRecord)
	a := wait(t, "association", acc)
	buf := make([]byte, 64)
	if _, _, err := a.pc.ReadFrom(buf); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, _, err := a.pc.ReadFrom(buf)
		errc <- err
	}()
	a.pc.SetReadDeadline(time.Unix(1, 0))
	if err := wait(t, "woken read", errc); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after a past deadline: %v, want a timeout", err)
	}
	a.pc.SetReadDeadline(time.Time{})
	a.pc.Close()
	if _, _, err := a.pc.ReadFrom(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read of a closed association: %v", err)
	}
	acc = acceptOne(d)
	c.Write(handshakeRecord)
	if b := wait(t, "second association", acc); b.err != nil || b.pc == a.pc {
		t.Fatalf("after close: %v, same association %v", b.err, b.pc == a.pc)
	}
}
