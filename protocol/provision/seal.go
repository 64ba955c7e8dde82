package provision

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"edgeota/protocol"
)

// Sizes of the sealing scheme.
const (
	// NonceSize is the AES-GCM nonce size (psk key 1).
	NonceSize = 12
	// MinFactorySecretLen is the shortest factory secret accepted.
	MinFactorySecretLen = 16
	// MaxFactorySecretLen is the longest factory secret accepted.
	MaxFactorySecretLen = 64
	tagSize             = 16
)

// Key derivation constants (docs/provisioning.md, "Sealing the PSK").
const (
	hkdfSalt     = "edgeota provisioning v1"
	hkdfInfoBase = "psk-seal:"
)

// ErrSeal means a sealed PSK does not open: another factory secret, another
// node id or serial than it was sealed for, or altered bytes.
var ErrSeal = errors.New("sealed psk does not open")

// sealKey derives the AES-256 key of a node from its factory secret:
// HKDF-SHA256 with salt "edgeota provisioning v1" and info
// "psk-seal:" || node id.
func sealKey(factorySecret []byte, nodeID string) (cipher.AEAD, error) {
	if n := len(factorySecret); n < MinFactorySecretLen || n > MaxFactorySecretLen {
		return nil, fmt.Errorf("%w: factory secret of %d bytes, want %d to %d", protocol.ErrInvalid, n, MinFactorySecretLen, MaxFactorySecretLen)
	}
	if !protocol.ValidID(nodeID) {
		return nil, fmt.Errorf("%w: node id %q does not match [A-Za-z0-9._-]{1,64}", protocol.ErrInvalid, nodeID)
	}
	key, err := hkdf.Key(sha256.New, factorySecret, []byte(hkdfSalt), hkdfInfoBase+nodeID, 32)
	if err != nil {
		return nil, fmt.Errorf("provision: derive key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	return cipher.NewGCM(block)
}

// sealAAD is the additional data of a seal: the node id, a zero byte and
// the serial as 8 bytes big-endian.
func sealAAD(nodeID string, serial uint64) []byte {
	aad := make([]byte, 0, len(nodeID)+9)
	aad = append(aad, nodeID...)
	aad = append(aad, 0)
	return binary.BigEndian.AppendUint64(aad, serial)
}

// Seal encrypts a node's DTLS pre-shared key under its factory secret for
// the bundle with this node id and serial, with a random nonce.
func Seal(factorySecret []byte, nodeID string, serial uint64, psk []byte) (SealedPSK, error) {
	return sealWith(rand.Reader, factorySecret, nodeID, serial, psk)
}

func sealWith(r io.Reader, factorySecret []byte, nodeID string, serial uint64, psk []byte) (SealedPSK, error) {
	var s SealedPSK
	if n := len(psk); n < MinPSKLen || n > MaxPSKLen {
		return s, fmt.Errorf("%w: psk of %d bytes, want %d to %d", protocol.ErrInvalid, n, MinPSKLen, MaxPSKLen)
	}
	aead, err := sealKey(factorySecret, nodeID)
	if err != nil {
		return s, err
	}
	if _, err := io.ReadFull(r, s.Nonce[:]); err != nil {
		return s, fmt.Errorf("provision: nonce: %w", err)
	}
	s.Ciphertext = aead.Seal(nil, s.Nonce[:], psk, sealAAD(nodeID, serial))
	return s, nil
}

// Open decrypts a sealed PSK with the node's factory secret, for the bundle
// with this node id and serial. It fails with [ErrSeal] when the secret,
// node id or serial differ from the seal's or the bytes were altered.
func Open(factorySecret []byte, nodeID string, serial uint64, s SealedPSK) ([]byte, error) {
	aead, err := sealKey(factorySecret, nodeID)
	if err != nil {
		return nil, err
	}
	psk, err := aead.Open(nil, s.Nonce[:], s.Ciphertext, sealAAD(nodeID, serial))
	if err != nil {
		return nil, ErrSeal
	}
	if n := len(psk); n < MinPSKLen || n > MaxPSKLen {
		return nil, fmt.Errorf("%w: psk of %d bytes", ErrSeal, n)
	}
	return psk, nil
}

// OpenPSK opens the bundle's sealed PSK with the node's factory secret.
func (b *Bundle) OpenPSK(factorySecret []byte) ([]byte, error) {
	return Open(factorySecret, b.NodeID, b.Serial, b.PSK)
}
