// Package hsm signs with keys that never leave a PKCS#11 token (an HSM, a
// smart card, SoftHSM2): it reads the RFC 7512 URI that names the key,
// opens a logged-in session, and hands back a crypto.Signer for
// edgeota's sign.NewSigner. It also creates key pairs inside a token.
//
// Both kinds of key go over github.com/miekg/pkcs11: CKM_EDDSA and
// CKM_EC_EDWARDS_KEY_PAIR_GEN (PKCS#11 3.0) for Ed25519, CKM_ECDSA and
// CKM_EC_KEY_PAIR_GEN for P-256. github.com/ThalesGroup/crypto11 was the
// first choice and was dropped: it has no Ed25519, and it initialises each
// module in a registry of its own that it does not share, while a module
// is initialised once per process; so its P-256 keys and this package's
// Ed25519 keys of one module could not be open at the same time, as
// edgeota trust sign needs for a threshold of roots in one token. This
// package keeps one initialised module per path, counted, for all keys.
// PKCS#11 needs cgo; a binary built without it (the static packages)
// refuses a pkcs11: URI with [ErrNoCgo].
//
// The URI parser is this package's own: the one Go parser of RFC 7512
// (stefanberger/go-pkcs11uri, untagged since 2023) accepts attributes it
// does not know, which could quietly pick another key than the one meant,
// and refuses a relative pin-source path.
package hsm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Errors a caller can branch on; each error this package returns wraps
// one of them.
var (
	// ErrURI: the pkcs11: URI is malformed, has an attribute this package
	// does not know, or lacks one it needs.
	ErrURI = errors.New("bad pkcs11 URI")
	// ErrModule: the module at module-path does not load or initialise.
	ErrModule = errors.New("pkcs11 module does not load")
	// ErrToken: no token with the URI's label (or serial) is present.
	ErrToken = errors.New("pkcs11 token not found")
	// ErrPIN: the token refused the PIN, or it could not be read.
	ErrPIN = errors.New("pkcs11 PIN refused")
	// ErrNoObject: the token holds no private key the URI names.
	ErrNoObject = errors.New("pkcs11 object not found")
	// ErrExists: keygen would create a key whose label or id the token
	// already holds.
	ErrExists = errors.New("pkcs11 object already exists")
	// ErrMechanism: the token does not offer the mechanism the key needs
	// (CKM_ECDSA, CKM_EDDSA, or their key pair generation).
	ErrMechanism = errors.New("pkcs11 mechanism not supported by the token")
	// ErrKeyType: the key is neither Ed25519 nor ECDSA P-256.
	ErrKeyType = errors.New("pkcs11 key type not supported")
	// ErrNoCgo: this binary was built without cgo, which PKCS#11 needs.
	ErrNoCgo = errors.New("this edgeota was built without cgo: PKCS#11 keys need a cgo build")
)

// URI is a parsed pkcs11: URI (RFC 7512) naming one key pair.
type URI struct {
	// Token is the token label (path attribute "token").
	Token string
	// Serial is the token serial number (path attribute "serial").
	Serial string
	// Object is the key's label, CKA_LABEL (path attribute "object").
	Object string
	// ID is the key's CKA_ID (path attribute "id", percent-encoded bytes).
	ID []byte
	// ModulePath is the PKCS#11 module to load (query attribute
	// "module-path"), required.
	ModulePath string
	// PINSource is a file holding the user PIN (query attribute
	// "pin-source", "file:" prefix optional, relative to the working
	// directory when not absolute).
	PINSource string
	// PINValue is the user PIN itself (query attribute "pin-value"); a
	// PIN in a command line shows in the process list, prefer PINSource.
	PINValue string

	raw string
}

// IsURI reports whether s names a PKCS#11 key rather than a file.
func IsURI(s string) bool { return strings.HasPrefix(s, "pkcs11:") }

// String returns the URI as given, with a pin-value masked.
func (u *URI) String() string {
	if u.PINValue == "" {
		return u.raw
	}
	return strings.Replace(u.raw, "pin-value="+escapedPIN(u.raw), "pin-value=***", 1)
}

func escapedPIN(raw string) string {
	_, q, _ := strings.Cut(raw, "?")
	for _, a := range strings.Split(q, "&") {
		if v, ok := strings.CutPrefix(a, "pin-value="); ok {
			return v
		}
	}
	return ""
}

// ParseURI parses a pkcs11: URI. Path attributes: token, serial, object,
// id, type (only "private"); query attributes: module-path (required),
// pin-source, pin-value. Any other attribute, vendor ones (x-...)
// included, is refused: ignoring one could select another key than the
// one meant. A token (or serial) and an object (or id) are required.
func ParseURI(s string) (*URI, error) {
	rest, ok := strings.CutPrefix(s, "pkcs11:")
	if !ok {
		return nil, fmt.Errorf("%w: %q does not start with \"pkcs11:\"", ErrURI, s)
	}
	u := &URI{raw: s}
	path, query, _ := strings.Cut(rest, "?")
	seen := map[string]bool{}
	attrs := func(part, sep, where string, set func(name, value string) error) error {
		if part == "" {
			return nil
		}
		for _, a := range strings.Split(part, sep) {
			name, v, ok := strings.Cut(a, "=")
			if !ok || name == "" {
				return fmt.Errorf("%w: %s attribute %q is not name=value", ErrURI, where, a)
			}
			if seen[name] {
				return fmt.Errorf("%w: attribute %q given twice", ErrURI, name)
			}
			seen[name] = true
			val, err := pctDecode(v)
			if err != nil {
				return fmt.Errorf("%w: attribute %q: %v", ErrURI, name, err)
			}
			if err := set(name, val); err != nil {
				return err
			}
		}
		return nil
	}
	err := attrs(path, ";", "path", func(name, v string) error {
		switch name {
		case "token":
			u.Token = v
		case "serial":
			u.Serial = v
		case "object":
			u.Object = v
		case "id":
			u.ID = []byte(v)
		case "type":
			if v != "private" {
				return fmt.Errorf("%w: type=%s: a signing key is type=private", ErrURI, v)
			}
		default:
			return fmt.Errorf("%w: unknown path attribute %q (known: token, serial, object, id, type)", ErrURI, name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = attrs(query, "&", "query", func(name, v string) error {
		switch name {
		case "module-path":
			u.ModulePath = v
		case "pin-source":
			u.PINSource = strings.TrimPrefix(v, "file:")
		case "pin-value":
			u.PINValue = v
		default:
			return fmt.Errorf("%w: unknown query attribute %q (known: module-path, pin-source, pin-value)", ErrURI, name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch {
	case u.ModulePath == "":
		return nil, fmt.Errorf("%w: no module-path (the PKCS#11 library, e.g. ?module-path=/usr/lib/softhsm/libsofthsm2.so)", ErrURI)
	case u.Token == "" && u.Serial == "":
		return nil, fmt.Errorf("%w: no token (or serial) naming the token", ErrURI)
	case u.Object == "" && len(u.ID) == 0:
		return nil, fmt.Errorf("%w: no object (or id) naming the key", ErrURI)
	case u.PINSource != "" && u.PINValue != "":
		return nil, fmt.Errorf("%w: both pin-source and pin-value", ErrURI)
	}
	return u, nil
}

// pctDecode undoes RFC 3986 percent-encoding; other bytes pass as they
// are.
func pctDecode(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
			return "", fmt.Errorf("bad percent-encoding at %q", s[i:])
		}
		b.WriteByte(byte(unhex(s[i+1])<<4 | unhex(s[i+2])))
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// PIN returns the user PIN: pin-value, or the first line of the
// pin-source file. A token that needs no login gets "".
func (u *URI) PIN() (string, error) {
	if u.PINSource == "" {
		return u.PINValue, nil
	}
	b, err := os.ReadFile(filepath.Clean(u.PINSource))
	if err != nil {
		return "", fmt.Errorf("%w: pin-source: %v", ErrPIN, err)
	}
	pin, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSuffix(pin, "\r"), nil
}
