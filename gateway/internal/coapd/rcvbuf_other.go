//go:build !linux

package coapd

import "net"

// raiseReadBuffer sets the socket's receive buffer to n bytes, as far as
// the system allows.
func raiseReadBuffer(conn *net.UDPConn, n int) { _ = conn.SetReadBuffer(n) }
