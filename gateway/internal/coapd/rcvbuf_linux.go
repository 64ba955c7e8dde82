package coapd

import (
	"net"

	"golang.org/x/sys/unix"
)

// raiseReadBuffer sets the socket's receive buffer to n bytes: past the
// system's net.core.rmem_max with SO_RCVBUFFORCE when the process may
// (CAP_NET_ADMIN), else as far as SO_RCVBUF goes (the kernel caps it at
// rmem_max).
func raiseReadBuffer(conn *net.UDPConn, n int) {
	if rc, err := conn.SyscallConn(); err == nil {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
		}); err == nil && serr == nil {
			return
		}
	}
	_ = conn.SetReadBuffer(n)
}
