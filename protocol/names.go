package protocol

import (
	"encoding/hex"
	"fmt"
)

// Name limits of docs/protocol.md section 0.
const (
	MaxIDLen         = 64 // node, gateway and deployment ids, components
	MaxLabelKeyLen   = 32
	MaxLabelValueLen = 64
)

// ValidID reports whether s is a valid node id, gateway id, deployment id or
// component: `[A-Za-z0-9._-]{1,64}` (section 0).
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// ValidLabelKey reports whether s is a valid label key: `[a-z0-9_.-]{1,32}`.
func ValidLabelKey(s string) bool {
	if len(s) == 0 || len(s) > MaxLabelKeyLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// ValidLabelValue reports whether s is a valid label value:
// `[A-Za-z0-9_.:/-]{1,64}`.
func ValidLabelValue(s string) bool {
	if len(s) == 0 || len(s) > MaxLabelValueLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '_' && c != '.' && c != ':' && c != '/' && c != '-' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// ValidateLabels checks every key and value of a label set (section 0).
func ValidateLabels(labels map[string]string) error {
	for k, v := range labels {
		if !ValidLabelKey(k) {
			return fmt.Errorf("%w: label key %q does not match [a-z0-9_.-]{1,32}", ErrInvalid, k)
		}
		if !ValidLabelValue(v) {
			return fmt.Errorf("%w: label %s: value %q does not match [A-Za-z0-9_.:/-]{1,64}", ErrInvalid, k, v)
		}
	}
	return nil
}

// Digest is a SHA-256 digest (manifest key 5, Hello key 5, status key 4).
// Its text form is lowercase hex (section 0).
type Digest [32]byte

// String returns the digest in lowercase hex.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// IsZero reports whether d is all zero bytes, which Hello uses for "no image".
func (d Digest) IsZero() bool { return d == Digest{} }

// ETag returns the first 8 bytes of the digest, the ETag of an image resource
// (section 5).
func (d Digest) ETag() []byte { return append([]byte(nil), d[:8]...) }

// ParseDigest parses 64 hex digits (either case) into a Digest.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	if len(s) != 64 {
		return d, fmt.Errorf("%w: digest %q: want 64 hex digits", ErrInvalid, s)
	}
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		return d, fmt.Errorf("%w: digest %q: %v", ErrInvalid, s, err)
	}
	return d, nil
}

// Class is a device class UUID (manifest key 7, Hello key 2). Its text form
// is the canonical 8-4-4-4-12 lowercase UUID string.
type Class [16]byte

// String returns the UUID form of c.
func (c Class) String() string {
	var b [36]byte
	hex.Encode(b[0:8], c[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], c[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], c[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], c[8:10])
	b[23] = '-'
	hex.Encode(b[24:], c[10:])
	return string(b[:])
}

// ParseClass parses a UUID in its 36-character 8-4-4-4-12 form (either case).
func ParseClass(s string) (Class, error) {
	var c Class
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return c, fmt.Errorf("%w: class %q: want a UUID such as 6ba7b810-9dad-11d1-80b4-00c04fd430c8", ErrInvalid, s)
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	if _, err := hex.Decode(c[:], []byte(h)); err != nil {
		return c, fmt.Errorf("%w: class %q: %v", ErrInvalid, s, err)
	}
	return c, nil
}
