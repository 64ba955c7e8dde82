// Package dtls listens for CoAP over DTLS 1.2 (github.com/pion/dtls over a
// socket reader of its own that drops a flooding source's datagrams first) with per-node pre-shared keys (docs/protocol.md
// section 5): a node's PSK identity is its node id, and its key comes from
// the gateway's key registry.
package dtls

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	piondtls "github.com/pion/dtls/v3"

	"edgeota/gateway/internal/store"
)

// CipherSuites are the PSK suites the gateway offers: AES-128-CCM-8, the
// one RFC 7252 section 9.1.3.1 and RFC 7925 make mandatory for CoAP, then
// AES-128-GCM and AES-128-CCM.
var CipherSuites = []piondtls.CipherSuiteID{
	piondtls.TLS_PSK_WITH_AES_128_CCM_8,
	piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256,
	piondtls.TLS_PSK_WITH_AES_128_CCM,
}

// ErrUnknownIdentity is what a handshake with an identity that has no key
// fails with.
var ErrUnknownIdentity = errors.New("no key for that identity")

// ErrRefused is what a handshake from a source that admit refused fails
// with.
var ErrRefused = errors.New("over the source's request rate")

// Keys is the key registry: the gateway's database.
type Keys interface {
	// PSK returns the key of a node, store.ErrNotFound when it has none.
	PSK(node string) ([]byte, error)
}

// Listen listens on the UDP address addr. A client's key is keys' key of
// the identity it presents. gate, when not nil, is asked for every
// datagram before pion's DTLS sees it: a datagram of a source it refuses
// is dropped at the cost of a table look-up, and dropped is told how many
// once per batch read. admit, when not nil, may refuse a source before
// any handshake work, so that a flood of ClientHellos costs no
// cryptography.
func Listen(addr string, keys Keys, admit, gate func(src netip.Addr) bool, dropped func(n uint64)) (net.Listener, error) {
	opts := []piondtls.ServerOption{
		piondtls.WithPSK(func(identity []byte) ([]byte, error) {
			k, err := keys.PSK(string(identity))
			if errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("%w %q", ErrUnknownIdentity, identity)
			}
			return k, err
		}),
		piondtls.WithPSKIdentityHint([]byte("edgeota")),
		piondtls.WithCipherSuites(CipherSuites...),
		piondtls.WithExtendedMasterSecret(piondtls.RequestExtendedMasterSecret),
	}
	if admit != nil {
		opts = append(opts, piondtls.WithOnConnectionAttempt(func(a net.Addr) error {
			ua, ok := a.(*net.UDPAddr)
			if !ok || admit(ua.AddrPort().Addr().Unmap()) {
				return nil
			}
			return ErrRefused
		}))
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	_ = conn.SetReadBuffer(4 << 20)
	_ = conn.SetWriteBuffer(4 << 20)
	d := newDemux(conn, gate, dropped)
	l, err := piondtls.NewListenerWithOptions(d, opts...)
	if err != nil {
		d.Close()
		return nil, err
	}
	return l, nil
}
