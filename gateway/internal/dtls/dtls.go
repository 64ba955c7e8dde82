// Package dtls listens for CoAP over DTLS 1.2 (go-coap's DTLS listener over
// github.com/pion/dtls) with per-node pre-shared keys (docs/protocol.md
// section 5): a node's PSK identity is its node id, and its key comes from
// the gateway's key registry.
package dtls

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	piondtls "github.com/pion/dtls/v3"
	coapnet "github.com/plgd-dev/go-coap/v3/net"

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
// the identity it presents. admit, when not nil, may refuse a source
// before any handshake work, so that a flood of ClientHellos costs no
// cryptography.
func Listen(addr string, keys Keys, admit func(src netip.Addr) bool) (net.Listener, error) {
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
	l, err := coapnet.NewDTLSListener("udp", addr, coapnet.NewDTLSServerOptions(opts...))
	if err != nil {
		return nil, err
	}
	return l, nil
}
