package sign

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
)

// Algorithm is a COSE signature algorithm (RFC 9053) the contract allows
// (docs/protocol.md section 1). Its value is the one in the protected
// header's label 1.
type Algorithm int64

// The two algorithms of the contract.
const (
	// EdDSA is Ed25519 (COSE alg -8): 32-byte keys, 64-byte signatures.
	EdDSA Algorithm = -8
	// ES256 is ECDSA over P-256 with SHA-256 (COSE alg -7, contract
	// v1.3): 65-byte uncompressed keys, 64-byte r||s signatures.
	ES256 Algorithm = -7
)

// String returns "EdDSA", "ES256" or the number.
func (a Algorithm) String() string {
	switch a {
	case EdDSA:
		return "EdDSA"
	case ES256:
		return "ES256"
	}
	return fmt.Sprintf("alg %d", int64(a))
}

// KeyID identifies a public key: the first 8 bytes of SHA-256 over its raw
// form, the 32 bytes of an Ed25519 key or the 65-byte uncompressed SEC1
// point (0x04 || X || Y) of a P-256 key (docs/protocol.md section 1).
type KeyID [8]byte

// KeyIDOf returns the key id of pub, an ed25519.PublicKey or a P-256
// *ecdsa.PublicKey; the zero KeyID for anything else (see [RawPublicKey]
// for the error).
func KeyIDOf(pub crypto.PublicKey) KeyID {
	raw, _, err := RawPublicKey(pub)
	if err != nil {
		return KeyID{}
	}
	return keyIDOfRaw(raw)
}

func keyIDOfRaw(raw []byte) KeyID {
	sum := sha256.Sum256(raw)
	var k KeyID
	copy(k[:], sum[:8])
	return k
}

// String returns the key id in lowercase hex.
func (k KeyID) String() string { return hex.EncodeToString(k[:]) }

// ErrKey reports a key that is not what it should be: another type or
// curve, a wrong length, or a P-256 point that is not on the curve.
var ErrKey = errors.New("bad key")

// rawP256Size is the length of an uncompressed SEC1 P-256 point.
const rawP256Size = 1 + 2*32

// RawPublicKey returns the raw form of pub (the bytes its [KeyID] is taken
// over) and its algorithm: 32 bytes for an ed25519.PublicKey (EdDSA), the
// 65-byte uncompressed point for a P-256 *ecdsa.PublicKey (ES256). Any
// other key, curve or length, and a point not on the curve, is [ErrKey].
func RawPublicKey(pub crypto.PublicKey) ([]byte, Algorithm, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, 0, fmt.Errorf("%w: Ed25519 public key of %d bytes, want %d", ErrKey, len(k), ed25519.PublicKeySize)
		}
		return append([]byte(nil), k...), EdDSA, nil
	case *ecdsa.PublicKey:
		if k == nil || k.Curve != elliptic.P256() {
			return nil, 0, fmt.Errorf("%w: ECDSA key not on P-256", ErrKey)
		}
		raw, err := k.Bytes()
		if err != nil {
			return nil, 0, fmt.Errorf("%w: P-256 point: %v", ErrKey, err)
		}
		// Bytes checks the encoding; the parse below checks the point
		// lies on the curve.
		if _, err := ParseRawPublicKey(raw); err != nil {
			return nil, 0, err
		}
		return raw, ES256, nil
	}
	return nil, 0, fmt.Errorf("%w: %T is neither Ed25519 nor ECDSA P-256", ErrKey, pub)
}

// ParseRawPublicKey decodes the raw form [RawPublicKey] returns: 32 bytes
// are an Ed25519 key, 65 bytes starting 0x04 an uncompressed P-256 point,
// which must lie on the curve. Compressed points, the point at infinity
// and other lengths are [ErrKey].
func ParseRawPublicKey(raw []byte) (crypto.PublicKey, error) {
	switch {
	case len(raw) == ed25519.PublicKeySize:
		return ed25519.PublicKey(append([]byte(nil), raw...)), nil
	case len(raw) == rawP256Size && raw[0] == 0x04:
		k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
		if err != nil {
			return nil, fmt.Errorf("%w: P-256 point: %v", ErrKey, err)
		}
		return k, nil
	case len(raw) == rawP256Size:
		return nil, fmt.Errorf("%w: 65-byte P-256 key does not start 0x04 (uncompressed)", ErrKey)
	}
	return nil, fmt.Errorf("%w: raw public key of %d bytes, want 32 (Ed25519) or 65 (P-256, uncompressed)", ErrKey, len(raw))
}

// MarshalPrivateKey encodes an Ed25519 or P-256 private key as PKCS#8 PEM.
func MarshalPrivateKey(priv crypto.Signer) ([]byte, error) {
	if _, _, err := RawPublicKey(priv.Public()); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("sign: marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// MarshalPublicKey encodes an Ed25519 or P-256 public key as PKIX PEM.
func MarshalPublicKey(pub crypto.PublicKey) ([]byte, error) {
	if _, _, err := RawPublicKey(pub); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("sign: marshal public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePrivateKey decodes a PKCS#8 PEM private key: an ed25519.PrivateKey
// or a P-256 *ecdsa.PrivateKey.
func ParsePrivateKey(pemBytes []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%w: no PEM \"PRIVATE KEY\" block (want PKCS#8)", ErrKey)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %T is neither Ed25519 nor ECDSA P-256", ErrKey, k)
	}
	if _, _, err := RawPublicKey(s.Public()); err != nil {
		return nil, err
	}
	return s, nil
}

// ParsePublicKey decodes a PKIX PEM public key: an ed25519.PublicKey or a
// P-256 *ecdsa.PublicKey whose point lies on the curve.
func ParsePublicKey(pemBytes []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%w: no PEM \"PUBLIC KEY\" block (want PKIX)", ErrKey)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	if _, _, err := RawPublicKey(k); err != nil {
		return nil, err
	}
	return k, nil
}
