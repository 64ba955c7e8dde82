package trust

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"fmt"

	"github.com/fxamacker/cbor/v2"

	"edgeota/protocol"
	"edgeota/protocol/sign"
)

// Format is the only trust update format of contract version 1.3 (key 1).
const Format = 1

// ContentType is the protected content type of a signed update
// (docs/protocol.md section 1).
const ContentType = protocol.ContentTypeTrust

// Limits of an update.
const (
	// MaxKeys bounds each set of keys (keys 4, 5 and 6). A node keeps its
	// manifest and root keys in its boot-state journal, whose records are
	// small; a rotation needs two keys of a role at once, rarely more.
	MaxKeys = 4
	// MaxSize bounds a signed update (all its envelopes) and its payload,
	// in bytes.
	MaxSize = 4096
)

// Algorithms of a key (COSE algorithm identifiers, RFC 9053, as package
// sign names them), as key 1 of a key map holds them.
const (
	// AlgEdDSA is Ed25519: the public key is its 32 raw bytes.
	AlgEdDSA = int64(sign.EdDSA)
	// AlgES256 is ECDSA P-256 with SHA-256: the public key is its 65-byte
	// uncompressed point (0x04 || X || Y).
	AlgES256 = int64(sign.ES256)
)

// Key is a public key with its algorithm (a key map: `{1: alg, 2: public
// key bstr}`). The algorithm is bound to the key: a key is only ever
// trusted for its own algorithm.
type Key struct {
	// Alg is key 1: the COSE algorithm the key verifies ([AlgEdDSA] or
	// [AlgES256]).
	Alg int64 `cbor:"1,keyasint" json:"alg"`
	// Public is key 2: the raw public key, as the algorithm defines it
	// (Ed25519: 32 bytes; P-256: the 65-byte uncompressed point).
	Public []byte `cbor:"2,keyasint" json:"public"`
}

// KeyOf returns the key entry of a public key: an ed25519.PublicKey or a
// P-256 *ecdsa.PublicKey.
func KeyOf(pub crypto.PublicKey) (Key, error) {
	raw, alg, err := sign.RawPublicKey(pub)
	if err != nil {
		return Key{}, err
	}
	return Key{Alg: int64(alg), Public: raw}, nil
}

// public parses the key and checks that its form is the one its
// algorithm defines.
func (k Key) public() (crypto.PublicKey, error) {
	if k.Alg != AlgEdDSA && k.Alg != AlgES256 {
		return nil, fmt.Errorf("%w: key algorithm %d is not supported (want EdDSA -8 or ES256 -7)", protocol.ErrInvalid, k.Alg)
	}
	pub, err := sign.ParseRawPublicKey(k.Public)
	if err != nil {
		return nil, fmt.Errorf("%w: %s key: %v", protocol.ErrInvalid, sign.Algorithm(k.Alg), err)
	}
	if _, alg, _ := sign.RawPublicKey(pub); int64(alg) != k.Alg {
		return nil, fmt.Errorf("%w: a %s key of %d bytes under algorithm %s: the algorithm does not match the key",
			protocol.ErrInvalid, alg, len(k.Public), sign.Algorithm(k.Alg))
	}
	return pub, nil
}

// Validate checks that the key parses (a P-256 point on the curve) and
// is of its algorithm.
func (k Key) Validate() error {
	_, err := k.public()
	return err
}

// ID returns the key id of the key (docs/protocol.md section 1): SHA-256
// over its raw bytes, first 8 bytes.
func (k Key) ID() sign.KeyID {
	sum := sha256.Sum256(k.Public)
	var id sign.KeyID
	copy(id[:], sum[:8])
	return id
}

// String names the key by its algorithm and id.
func (k Key) String() string { return sign.Algorithm(k.Alg).String() + " " + k.ID().String() }

// Equal reports whether two entries are the same key.
func (k Key) Equal(o Key) bool { return k.Alg == o.Alg && bytes.Equal(k.Public, o.Public) }

// Store returns a trust store of role holding keys, which must be valid.
// Each key verifies only its own algorithm.
func Store(role sign.Role, keys []Key) (*sign.TrustStore, error) {
	pubs := make([]crypto.PublicKey, 0, len(keys))
	for _, k := range keys {
		pub, err := k.public()
		if err != nil {
			return nil, err
		}
		pubs = append(pubs, pub)
	}
	return sign.NewTrustStore(role, pubs...)
}

// Update is the trust update document (docs/protocol.md "Trust update").
// Every key below 64 is critical; all are required.
type Update struct {
	// Format is key 1; always [Format].
	Format uint64 `cbor:"1,keyasint"`
	// Version is key 2: at least 1, strictly increasing; a holder refuses
	// a version at or below the one it holds (replay, downgrade).
	Version uint64 `cbor:"2,keyasint"`
	// Issued is key 3: Unix seconds when the update was signed.
	Issued uint64 `cbor:"3,keyasint"`
	// ManifestKeys is key 4: the whole new set of manifest keys, 1 to
	// [MaxKeys].
	ManifestKeys []Key `cbor:"4,keyasint"`
	// DeploymentKeys is key 5: the whole new set of deployment keys, 0 to
	// [MaxKeys] (gateways; nodes ignore it).
	DeploymentKeys []Key `cbor:"5,keyasint"`
	// RootKeys is key 6: the whole new set of root keys, 1 to [MaxKeys]:
	// the keys that may sign the next update.
	RootKeys []Key `cbor:"6,keyasint"`
	// Threshold is key 7: how many distinct roots of RootKeys must sign
	// the next update, 1 to len(RootKeys).
	Threshold uint64 `cbor:"7,keyasint"`
}

// Anchor returns what the holder of this update checks the next one
// against.
func (u *Update) Anchor() Anchor {
	return Anchor{Version: u.Version, Roots: cloneKeys(u.RootKeys), Threshold: u.Threshold}
}

// Validate checks the rules of the contract that CBOR types cannot
// express.
func (u *Update) Validate() error {
	if u.Format != Format {
		return fmt.Errorf("%w: trust update format %d, want %d", protocol.ErrInvalid, u.Format, Format)
	}
	if u.Version == 0 {
		return fmt.Errorf("%w: trust update version 0; versions start at 1", protocol.ErrInvalid)
	}
	if len(u.ManifestKeys) == 0 {
		return fmt.Errorf("%w: trust update has no manifest key: it would leave its holder unable to verify any manifest", protocol.ErrInvalid)
	}
	if len(u.RootKeys) == 0 {
		return fmt.Errorf("%w: trust update has no root key: nothing could sign the next one", protocol.ErrInvalid)
	}
	for _, set := range []struct {
		name string
		keys []Key
	}{{"manifest", u.ManifestKeys}, {"deployment", u.DeploymentKeys}, {"root", u.RootKeys}} {
		if err := validateSet(set.name, set.keys); err != nil {
			return err
		}
	}
	if u.Threshold == 0 || u.Threshold > uint64(len(u.RootKeys)) {
		return fmt.Errorf("%w: trust update threshold %d, want 1 to %d (its root keys)", protocol.ErrInvalid, u.Threshold, len(u.RootKeys))
	}
	return nil
}

func validateSet(name string, keys []Key) error {
	if len(keys) > MaxKeys {
		return fmt.Errorf("%w: trust update has %d %s keys, at most %d", protocol.ErrInvalid, len(keys), name, MaxKeys)
	}
	for i, k := range keys {
		if err := k.Validate(); err != nil {
			return fmt.Errorf("%s key %d: %w", name, i, err)
		}
		for _, o := range keys[:i] {
			if o.ID() == k.ID() {
				return fmt.Errorf("%w: trust update lists %s key %s twice", protocol.ErrInvalid, name, k.ID())
			}
		}
	}
	return nil
}

var (
	encMode = protocol.EncMode()
	decMode = protocol.DecMode()
)

// Encode validates u and encodes it in Core Deterministic Encoding.
func Encode(u *Update) ([]byte, error) {
	if err := u.Validate(); err != nil {
		return nil, err
	}
	c := *u
	if c.DeploymentKeys == nil {
		c.DeploymentKeys = []Key{}
	}
	out, err := encMode.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("trust: encode: %w", err)
	}
	if len(out) > MaxSize {
		return nil, fmt.Errorf("%w: trust update of %d bytes is over the %d-byte limit", protocol.ErrInvalid, len(out), MaxSize)
	}
	return out, nil
}

// CBOR major types, as the first byte of an item shifted right by 5.
const (
	majUint  = 0
	majNeg   = 1
	majBytes = 2
	majArray = 4
	majMap   = 5
	majTag   = 6
)

var majName = [8]string{"uint", "negative int", "bstr", "tstr", "array", "map", "tag", "simple or float"}

type field struct {
	name  string
	major byte
}

// updateFields names the keys of an update; all are required.
var updateFields = map[uint64]field{
	1: {"format", majUint}, 2: {"version", majUint}, 3: {"issued", majUint},
	4: {"manifest keys", majArray}, 5: {"deployment keys", majArray}, 6: {"root keys", majArray},
	7: {"threshold", majUint},
}

// Decode decodes and validates the CBOR payload of an update strictly: no
// duplicate keys, indefinite lengths, tags or floats; every key below 64
// known and every one present; keys 64 and up ignored. It verifies no
// signature: see [Anchor.Check].
func Decode(data []byte) (*Update, error) {
	if len(data) == 0 || len(data) > MaxSize {
		return nil, fmt.Errorf("%w: trust update of %d bytes, want 1 to %d", protocol.ErrMalformed, len(data), MaxSize)
	}
	if data[0]>>5 != majMap {
		return nil, fmt.Errorf("%w: trust update: want a map, got %s", protocol.ErrMalformed, majName[data[0]>>5])
	}
	var raw map[uint64]cbor.RawMessage
	if err := decMode.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%w: trust update: %v", protocol.ErrMalformed, err)
	}
	if err := checkKeys("trust update", raw, updateFields); err != nil {
		return nil, err
	}
	u := new(Update)
	for _, d := range []struct {
		key uint64
		v   *uint64
	}{{1, &u.Format}, {2, &u.Version}, {3, &u.Issued}, {7, &u.Threshold}} {
		if err := decMode.Unmarshal(raw[d.key], d.v); err != nil {
			return nil, fmt.Errorf("%w: trust update: key %d (%s): %v", protocol.ErrMalformed, d.key, updateFields[d.key].name, err)
		}
	}
	var err error
	if u.ManifestKeys, err = decodeKeys(4, raw[4]); err != nil {
		return nil, err
	}
	if u.DeploymentKeys, err = decodeKeys(5, raw[5]); err != nil {
		return nil, err
	}
	if u.RootKeys, err = decodeKeys(6, raw[6]); err != nil {
		return nil, err
	}
	if err := u.Validate(); err != nil {
		return nil, err
	}
	return u, nil
}

var keyFields = map[uint64]field{1: {"alg", majNeg}, 2: {"public key", majBytes}}

func decodeKeys(key uint64, b cbor.RawMessage) ([]Key, error) {
	var items []cbor.RawMessage
	if err := decMode.Unmarshal(b, &items); err != nil {
		return nil, fmt.Errorf("%w: trust update: key %d (%s): %v", protocol.ErrMalformed, key, updateFields[key].name, err)
	}
	if len(items) > MaxKeys {
		return nil, fmt.Errorf("%w: trust update: key %d (%s): %d keys, at most %d", protocol.ErrInvalid, key, updateFields[key].name, len(items), MaxKeys)
	}
	out := make([]Key, 0, len(items))
	for i, it := range items {
		doc := fmt.Sprintf("trust update: key %d (%s): item %d", key, updateFields[key].name, i)
		if it[0]>>5 != majMap {
			return nil, fmt.Errorf("%w: %s: want a map, got %s", protocol.ErrMalformed, doc, majName[it[0]>>5])
		}
		var m map[uint64]cbor.RawMessage
		if err := decMode.Unmarshal(it, &m); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", protocol.ErrMalformed, doc, err)
		}
		if err := checkKeys(doc, m, keyFields); err != nil {
			return nil, err
		}
		var k Key
		if err := decMode.Unmarshal(m[1], &k.Alg); err != nil {
			return nil, fmt.Errorf("%w: %s: alg: %v", protocol.ErrMalformed, doc, err)
		}
		if err := decMode.Unmarshal(m[2], &k.Public); err != nil {
			return nil, fmt.Errorf("%w: %s: public key: %v", protocol.ErrMalformed, doc, err)
		}
		out = append(out, k)
	}
	return out, nil
}

// checkKeys applies the key rules of docs/protocol.md section 2 to a
// decoded map: every key below 64 known (critical), of the right major
// type; every known key present (all keys of these maps are required). An
// algorithm (a key map's key 1) is a COSE algorithm: a negative integer,
// or an unsigned one for algorithms not yet defined here.
func checkKeys(doc string, m map[uint64]cbor.RawMessage, fields map[uint64]field) error {
	for k, v := range m {
		f, ok := fields[k]
		if !ok {
			if k < 64 {
				return fmt.Errorf("%w: %s: unknown critical key %d", protocol.ErrMalformed, doc, k)
			}
			continue
		}
		got := v[0] >> 5
		if got != f.major && !(f.major == majNeg && got == majUint) {
			return fmt.Errorf("%w: %s: key %d (%s): want %s, got %s", protocol.ErrMalformed, doc, k, f.name, majName[f.major], majName[got])
		}
	}
	for k := uint64(1); k < 64; k++ {
		if f, ok := fields[k]; ok && m[k] == nil {
			return fmt.Errorf("%w: %s: required key %d (%s) is missing", protocol.ErrMalformed, doc, k, f.name)
		}
	}
	return nil
}

func cloneKeys(ks []Key) []Key {
	out := make([]Key, len(ks))
	for i, k := range ks {
		out[i] = Key{Alg: k.Alg, Public: append([]byte(nil), k.Public...)}
	}
	return out
}
