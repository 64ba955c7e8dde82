package coapd

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sockIO is the UDP socket as the workers use it on Linux: a duplicate of
// the server's descriptor, closed by Serve only after every worker has
// returned (so no worker ever reads a descriptor number the process
// reused), the socket's family, and the socket's RawConn, whose Read
// waits in Go's network poller.
//
// With a fast wait, the socket is made blocking (O_NONBLOCK is a property
// of the open file, so the server's *net.UDPConn sees it too) with a
// receive timeout of the fast wait (SO_RCVTIMEO, which the kernel counts
// in clock ticks: 1 to 10 ms): the reader's recvmmsg then sleeps in the
// kernel until a datagram comes or the tick passes. Every other read and
// write passes MSG_DONTWAIT and stays non-blocking; the *net.UDPConn is
// only written to (Notify, deferred answers), and such a write would wait
// in the kernel rather than in the poller if the 4 MiB send buffer were
// ever full. A timer of the clock tick is used because a shorter one (a
// ppoll of 200 µs) reprograms the CPU's timer twice per wait, which under
// a hypervisor costs about as much as the whole rest of a block.
type sockIO struct {
	fd     int
	family int
	raw    syscall.RawConn
	// blocking is set when the fast wait is on.
	blocking bool
}

// setFastWait makes the socket blocking with a receive timeout of d
// (d > 0), for the reader's fast wait.
func (sio *sockIO) setFastWait(d time.Duration) error {
	if d <= 0 {
		return nil
	}
	tv := unix.NsecToTimeval(int64(max(d, time.Microsecond)))
	if err := unix.SetsockoptTimeval(sio.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("coapd: receive timeout: %w", err)
	}
	if err := unix.SetNonblock(sio.fd, false); err != nil {
		return fmt.Errorf("coapd: blocking socket: %w", err)
	}
	sio.blocking = true
	return nil
}

// wake makes a reader sleeping in a fast wait return at once (it reads no
// datagram, then finds the server's socket closed): the server is
// stopping. shutdown(SHUT_RD) on a UDP socket wakes its readers, and every
// later read returns at once with nothing.
func (sio *sockIO) wake() {
	if sio.blocking {
		_ = unix.Shutdown(sio.fd, unix.SHUT_RD)
	}
}

func newSockIO(c *net.UDPConn) (*sockIO, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("coapd: raw socket: %w", err)
	}
	sio := &sockIO{fd: -1, raw: raw, family: unix.AF_INET6}
	var derr error
	if err := raw.Control(func(fd uintptr) {
		var sa unix.Sockaddr
		if sa, derr = unix.Getsockname(int(fd)); derr != nil {
			return
		}
		if _, ok := sa.(*unix.SockaddrInet4); ok {
			sio.family = unix.AF_INET
		}
		sio.fd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, fmt.Errorf("coapd: raw socket: %w", err)
	}
	if derr != nil {
		return nil, fmt.Errorf("coapd: duplicate the socket: %w", derr)
	}
	return sio, nil
}

func (sio *sockIO) close() { unix.Close(sio.fd) }

// batchIO is one worker's batched I/O: recvmmsg and sendmmsg on the
// duplicate descriptor, always non-blocking (MSG_DONTWAIT), with the
// addresses kept as raw sockaddrs, so that nothing is allocated per
// datagram. A read that finds nothing waits either in the kernel (the
// fast wait) or in Go's network poller.
type batchIO struct {
	sio *sockIO
	// Received: headers, their vectors, buffers and source addresses.
	rh    []unix.Mmsghdr
	riov  []unix.Iovec
	rbuf  [][]byte
	rname []unix.RawSockaddrInet6
	// Queued answers.
	wh    []unix.Mmsghdr
	wiov  []unix.Iovec
	wbuf  [][]byte
	wname []unix.RawSockaddrInet6
	nout  int
	sent  int
	// Results of the calls made from the network poller's callbacks,
	// which are method values made once (a closure per read would be
	// allocated per read).
	n         int
	errno     syscall.Errno
	pollRead  func(uintptr) bool
	pollWrite func(uintptr) bool
	stay      func() bool // readWhile's
}

func newBatchIO(sio *sockIO, n, size int) *batchIO {
	b := &batchIO{sio: sio, rh: make([]unix.Mmsghdr, n), riov: make([]unix.Iovec, n), rbuf: make([][]byte, n),
		rname: make([]unix.RawSockaddrInet6, n), wh: make([]unix.Mmsghdr, n), wiov: make([]unix.Iovec, n),
		wbuf: make([][]byte, n), wname: make([]unix.RawSockaddrInet6, n)}
	for i := range b.rh {
		b.rbuf[i] = make([]byte, size)
		b.riov[i].Base = &b.rbuf[i][0]
		b.riov[i].SetLen(size)
		b.wbuf[i] = make([]byte, 0, 2048)
		b.wh[i].Hdr.Iov = &b.wiov[i]
		b.wh[i].Hdr.SetIovlen(1)
		b.wh[i].Hdr.Name = (*byte)(unsafe.Pointer(&b.wname[i]))
	}
	b.pollRead = func(uintptr) bool {
		b.n, b.errno = b.recv()
		if b.errno == unix.EAGAIN && b.stay != nil && !b.stay() {
			b.n, b.errno = 0, 0 // woken empty, and no longer wanted
			return true
		}
		return b.errno != unix.EAGAIN
	}
	b.pollWrite = func(uintptr) bool {
		b.n, b.errno = b.send()
		return b.errno != unix.EAGAIN
	}
	return b
}

// recv is one non-blocking recvmmsg. It is a raw system call: it never
// blocks, so the scheduler need not know of it.
func (b *batchIO) recv() (int, syscall.Errno) { return b.recvmmsg(unix.MSG_DONTWAIT) }

// recvmmsg reads up to a batch of datagrams.
func (b *batchIO) recvmmsg(flags int) (int, syscall.Errno) {
	for i := range b.rh {
		h := &b.rh[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.rname[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		h.Iov = &b.riov[i]
		h.SetIovlen(1)
		h.Control, h.Controllen, h.Flags = nil, 0, 0
	}
	n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(b.sio.fd), uintptr(unsafe.Pointer(&b.rh[0])), uintptr(len(b.rh)),
		uintptr(flags), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// read reads a batch of datagrams. With fast set (and the socket's fast
// wait on) it first sleeps in the kernel's recvmmsg until a datagram comes
// or the receive timeout passes, keeping its thread and its P, as a C
// server's loop does: no poller wake-up and no goroutine hand-off when the
// datagram comes. Otherwise, or when that wait ends empty, it waits in
// Go's network poller. got reports whether the fast wait returned
// datagrams, tried whether one ran to its end (a signal cuts it short).
func (b *batchIO) read(fast bool) (n int, tried, got bool, err error) {
	if fast && b.sio.blocking {
		// A raw call: the P stays with this goroutine for at most the
		// receive timeout. A signal (the scheduler's preemption, a
		// stop-the-world) interrupts it with EINTR (a socket with
		// SO_RCVTIMEO is never restarted), so the garbage collector never
		// waits on it.
		n, e := b.recvmmsg(unix.MSG_WAITFORONE)
		switch e {
		case 0:
			return n, true, true, nil
		case unix.EAGAIN:
			tried = true
		case unix.EINTR:
		default:
			return 0, false, false, e
		}
	}
	for {
		n, e := b.recv()
		switch e {
		case 0:
			return n, tried, false, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
		default:
			return 0, tried, false, e
		}
		if err := b.sio.raw.Read(b.pollRead); err != nil {
			return 0, tried, false, err
		}
		switch b.errno {
		case 0:
			return b.n, tried, false, nil
		case unix.EINTR:
			continue
		default:
			return 0, tried, false, b.errno
		}
	}
}

// readWhile reads a batch, waiting in Go's network poller while stay
// reports true; it returns 0 when the socket is empty and stay false.
func (b *batchIO) readWhile(stay func() bool) (int, error) {
	b.stay = stay
	defer func() { b.stay = nil }()
	for {
		n, e := b.recv()
		switch e {
		case 0:
			return n, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
		default:
			return 0, e
		}
		if !stay() {
			return 0, nil
		}
		if err := b.sio.raw.Read(b.pollRead); err != nil {
			return 0, err
		}
		switch b.errno {
		case 0:
			return b.n, nil
		case unix.EINTR:
		default:
			return 0, b.errno
		}
	}
}

// datagram returns the i-th datagram read and its source; ok is false
// for a source of another family than IP, and for the empty read of a
// socket shut down (wake), which has no source.
func (b *batchIO) datagram(i int) (data []byte, from netip.AddrPort, ok bool) {
	if b.rh[i].Hdr.Namelen == 0 {
		return nil, netip.AddrPort{}, false
	}
	sa := &b.rname[i]
	var port uint16
	switch sa.Family {
	case unix.AF_INET:
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port = binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&s4.Port))[:])
		from = netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), port)
	case unix.AF_INET6:
		port = binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		from = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port)
	default:
		return nil, netip.AddrPort{}, false
	}
	return b.rbuf[i][:b.rh[i].Len], from, true
}

// full reports whether the send queue is full.
func (b *batchIO) full() bool { return b.nout == len(b.wh) }

// queue adds a datagram to the send queue.
func (b *batchIO) queue(p []byte, to netip.AddrPort) {
	i := b.nout
	b.wbuf[i] = append(b.wbuf[i][:0], p...)
	b.wiov[i].Base = unsafe.SliceData(b.wbuf[i])
	b.wiov[i].SetLen(len(p))
	sa := &b.wname[i]
	*sa = unix.RawSockaddrInet6{}
	if b.sio.family == unix.AF_INET {
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		s4.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&s4.Port))[:], to.Port())
		s4.Addr = to.Addr().As4()
		b.wh[i].Hdr.Namelen = unix.SizeofSockaddrInet4
	} else {
		sa.Family = unix.AF_INET6
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], to.Port())
		sa.Addr = to.Addr().As16() // an IPv4 address as ::ffff:a.b.c.d
		b.wh[i].Hdr.Namelen = unix.SizeofSockaddrInet6
	}
	b.nout++
}

// send is one non-blocking sendmmsg of what is left of the queue.
func (b *batchIO) send() (int, syscall.Errno) {
	n, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(b.sio.fd), uintptr(unsafe.Pointer(&b.wh[b.sent])),
		uintptr(b.nout-b.sent), unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// flush sends the queue and empties it. It returns how many datagrams
// left and the first error: a datagram the kernel refuses (an address it
// cannot reach) is dropped and the rest sent; a full send buffer waits in
// the network poller.
func (b *batchIO) flush() (sent int, err error) {
	defer func() { b.nout, b.sent = 0, 0 }()
	for b.sent < b.nout {
		n, e := b.send()
		if e == unix.EAGAIN {
			if perr := b.sio.raw.Write(b.pollWrite); perr != nil {
				return sent, perr
			}
			n, e = b.n, b.errno
		}
		switch e {
		case 0:
			b.sent += n
			sent += n
		case unix.EINTR:
		default:
			if err == nil {
				err = e
			}
			b.sent++ // the datagram sendmmsg stopped at
		}
	}
	return sent, err
}
