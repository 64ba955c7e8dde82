//go:build !cgo

package hsm

import (
	"crypto"
	"fmt"

	"edgeota/protocol/sign"
)

// Key is a signing key inside a token; without cgo there is none.
type Key struct {
	crypto.Signer
}

// Close does nothing.
func (k *Key) Close() error { return nil }

// Open fails with ErrNoCgo: PKCS#11 modules are C libraries.
func Open(u *URI) (*Key, error) { return nil, fmt.Errorf("%w (%s)", ErrNoCgo, u) }

// Generate fails with ErrNoCgo.
func Generate(u *URI, _ sign.Algorithm) (crypto.PublicKey, error) {
	return nil, fmt.Errorf("%w (%s)", ErrNoCgo, u)
}
