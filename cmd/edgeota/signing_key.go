package main

import (
	"crypto"
	"fmt"

	"edgeota/cmd/edgeota/internal/hsm"
)

// keyFlagHelp is the help of every --key that signs.
const keyFlagHelp = "private key: a PKCS#8 PEM file (from edgeota keygen) or a pkcs11: URI (RFC 7512) naming a key in an HSM"

// openSigningKey opens what a signing command's --key names: a PKCS#8 PEM
// file (Ed25519 or P-256), or a pkcs11: URI naming a key that never leaves
// its token. The caller calls done when it has signed.
func openSigningKey(ref string) (key crypto.Signer, done func(), err error) {
	if !hsm.IsURI(ref) {
		k, err := readSignerFile(ref)
		return k, func() {}, err
	}
	u, err := hsm.ParseURI(ref)
	if err != nil {
		return nil, nil, usagef("--key: %v", err)
	}
	k, err := hsm.Open(u)
	if err != nil {
		return nil, nil, fmt.Errorf("--key %s: %w", u, err)
	}
	return k, func() { k.Close() }, nil
}
