package provision

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/url"

	"github.com/fxamacker/cbor/v2"

	"edgeota/protocol"
	"edgeota/protocol/sign"
	"edgeota/protocol/trust"
)

// Format is the only bundle format of contract version 1 (bundle key 1).
const Format = 1

// ContentType is the protected content type of a signed bundle
// (docs/protocol.md section 1).
const ContentType = protocol.ContentTypeProvisioning

// Limits of a bundle. A signed bundle travels over BLE in chunks, so it is
// kept small.
const (
	// MaxSize bounds a signed bundle and its payload, in bytes.
	MaxSize = 4096
	// MaxKeys bounds each list of trust anchors (bundle keys 8 and 9).
	MaxKeys = 16
	// MinPSKLen and MaxPSKLen bound the DTLS pre-shared key, in bytes.
	MinPSKLen = 16
	MaxPSKLen = 64
	// MaxGatewayLen bounds the gateway URI (bundle key 7), in bytes.
	MaxGatewayLen = 255
)

// Bundle is the provisioning document an operator signs for one node
// (docs/provisioning.md, "Bundle"). Every key is critical and required.
type Bundle struct {
	// Format is key 1; always [Format].
	Format uint64 `cbor:"1,keyasint"`
	// NodeID is key 2: the node the bundle is for (docs/protocol.md section 0);
	// a node refuses a bundle naming another node.
	NodeID string `cbor:"2,keyasint"`
	// Serial is key 3: at least 1, strictly increasing per node; a node
	// refuses a serial at or below the last one it committed.
	Serial uint64 `cbor:"3,keyasint"`
	// Issued is key 4: Unix seconds when the bundle was signed.
	Issued uint64 `cbor:"4,keyasint"`
	// Labels is key 5: the node's labels for cohorts, under the rules of
	// docs/protocol.md section 0; always encoded, empty when none.
	Labels map[string]string `cbor:"5,keyasint"`
	// Component is key 6: the component the node runs (docs/protocol.md
	// section 0: fixed at provisioning).
	Component string `cbor:"6,keyasint"`
	// Gateway is key 7: the gateway's CoAP URI, coap://HOST[:PORT] or
	// coaps://HOST[:PORT] (docs/protocol.md section 5), no path or query.
	Gateway string `cbor:"7,keyasint"`
	// ManifestKeys is key 8: 1 to [MaxKeys] raw 32-byte Ed25519 public
	// keys the node trusts for manifests (docs/protocol.md section 1).
	ManifestKeys []ed25519.PublicKey `cbor:"8,keyasint"`
	// OperatorKeys is key 9: 1 to [MaxKeys] raw 32-byte Ed25519 public keys
	// the node accepts its next bundle from.
	OperatorKeys []ed25519.PublicKey `cbor:"9,keyasint"`
	// PSK is key 10: the node's DTLS pre-shared key, sealed under its
	// factory secret ([Seal]).
	PSK SealedPSK `cbor:"10,keyasint"`
	// RootKeys is key 64 (v1.3, optional): 1 to trust.MaxKeys root keys,
	// each with its algorithm, that may sign the node's first trust update
	// (docs/protocol.md "Trust update"). A node before v1.3 ignores it and
	// so refuses trust updates, as a node given no roots does.
	RootKeys []trust.Key `cbor:"64,keyasint,omitempty"`
	// RootThreshold is key 65 (v1.3, optional): how many of RootKeys must
	// sign the first trust update; absent or 0 means 1.
	RootThreshold uint64 `cbor:"65,keyasint,omitempty"`
}

// SealedPSK is a DTLS pre-shared key encrypted under a node's factory
// secret (bundle key 10, a map).
type SealedPSK struct {
	// Nonce is key 1: the 12-byte AES-GCM nonce, random per seal.
	Nonce [NonceSize]byte `cbor:"1,keyasint"`
	// Ciphertext is key 2: the encrypted key followed by the 16-byte GCM
	// tag.
	Ciphertext []byte `cbor:"2,keyasint"`
}

// The bundle's CBOR is the contract's: deterministic encoding, strict
// decoding (docs/protocol.md section 0).
var (
	encMode = protocol.EncMode()
	decMode = protocol.DecMode()
)

// Encode validates b and encodes it in Core Deterministic Encoding.
func Encode(b *Bundle) ([]byte, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	out, err := encMode.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("provision: encode: %w", err)
	}
	if len(out) > MaxSize {
		return nil, fmt.Errorf("%w: bundle of %d bytes is over the %d-byte limit", protocol.ErrInvalid, len(out), MaxSize)
	}
	return out, nil
}

// CBOR major types, as the first byte of an item shifted right by 5.
const (
	majUint  = 0
	majBytes = 2
	majText  = 3
	majArray = 4
	majMap   = 5
)

var majName = [8]string{"uint", "negative int", "bstr", "tstr", "array", "map", "tag", "simple or float"}

// bundleFields names the keys of a bundle; all are required.
var bundleFields = map[uint64]struct {
	name  string
	major byte
}{
	1: {"format", majUint}, 2: {"node id", majText}, 3: {"serial", majUint}, 4: {"issued", majUint},
	5: {"labels", majMap}, 6: {"component", majText}, 7: {"gateway", majText},
	8: {"manifest keys", majArray}, 9: {"operator keys", majArray}, 10: {"psk", majMap},
}

// Decode decodes and validates the CBOR payload of a bundle strictly: no
// duplicate keys, indefinite lengths, tags or floats; every key below 64
// known and every one present; keys 64 and up ignored. It does not verify
// a signature: see [Verify].
func Decode(data []byte) (*Bundle, error) {
	if len(data) == 0 || len(data) > MaxSize {
		return nil, fmt.Errorf("%w: bundle of %d bytes, want 1 to %d", protocol.ErrMalformed, len(data), MaxSize)
	}
	if data[0]>>5 != majMap {
		return nil, fmt.Errorf("%w: bundle: want a map, got %s", protocol.ErrMalformed, majName[data[0]>>5])
	}
	var raw map[uint64]cbor.RawMessage
	if err := decMode.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%w: bundle: %v", protocol.ErrMalformed, err)
	}
	if err := checkKeys("bundle", raw, func(k uint64) (string, byte, bool) {
		f, ok := bundleFields[k]
		return f.name, f.major, ok
	}, len(bundleFields)); err != nil {
		return nil, err
	}
	b := new(Bundle)
	var manifestKeys, operatorKeys []cbor.RawMessage
	var psk map[uint64]cbor.RawMessage
	for _, d := range []struct {
		key uint64
		v   any
	}{
		{1, &b.Format}, {2, &b.NodeID}, {3, &b.Serial}, {4, &b.Issued}, {5, &b.Labels},
		{6, &b.Component}, {7, &b.Gateway}, {8, &manifestKeys}, {9, &operatorKeys}, {10, &psk},
	} {
		if err := decMode.Unmarshal(raw[d.key], d.v); err != nil {
			return nil, fmt.Errorf("%w: bundle: key %d (%s): %v", protocol.ErrMalformed, d.key, bundleFields[d.key].name, err)
		}
	}
	var err error
	if b.ManifestKeys, err = decodeKeys(8, manifestKeys); err != nil {
		return nil, err
	}
	if b.OperatorKeys, err = decodeKeys(9, operatorKeys); err != nil {
		return nil, err
	}
	if err := checkKeys("psk", psk, func(k uint64) (string, byte, bool) {
		switch k {
		case 1:
			return "nonce", majBytes, true
		case 2:
			return "ciphertext", majBytes, true
		}
		return "", 0, false
	}, 2); err != nil {
		return nil, err
	}
	var nonce []byte
	if err := decMode.Unmarshal(psk[1], &nonce); err != nil || len(nonce) != NonceSize {
		return nil, fmt.Errorf("%w: psk: key 1 (nonce): want %d bytes", protocol.ErrMalformed, NonceSize)
	}
	copy(b.PSK.Nonce[:], nonce)
	if err := decMode.Unmarshal(psk[2], &b.PSK.Ciphertext); err != nil {
		return nil, fmt.Errorf("%w: psk: key 2 (ciphertext): %v", protocol.ErrMalformed, err)
	}
	if err := decodeRoots(b, raw); err != nil {
		return nil, err
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	return b, nil
}

// checkKeys applies the key rules of docs/protocol.md section 2 to a decoded
// map: every key below 64 known (critical), of the right major type; every
// known key present (all keys of these maps are required).
func checkKeys(doc string, m map[uint64]cbor.RawMessage, field func(uint64) (string, byte, bool), required int) error {
	seen := 0
	for k, v := range m {
		name, major, ok := field(k)
		if !ok {
			if k < 64 {
				return fmt.Errorf("%w: %s: unknown critical key %d", protocol.ErrMalformed, doc, k)
			}
			continue
		}
		seen++
		if got := v[0] >> 5; got != major {
			return fmt.Errorf("%w: %s: key %d (%s): want %s, got %s", protocol.ErrMalformed, doc, k, name, majName[major], majName[got])
		}
	}
	if seen != required {
		for k := uint64(1); k < 64; k++ {
			if name, _, ok := field(k); ok && m[k] == nil {
				return fmt.Errorf("%w: %s: required key %d (%s) is missing", protocol.ErrMalformed, doc, k, name)
			}
		}
	}
	return nil
}

func decodeKeys(key uint64, items []cbor.RawMessage) ([]ed25519.PublicKey, error) {
	out := make([]ed25519.PublicKey, 0, len(items))
	for i, it := range items {
		var k []byte
		if it[0]>>5 != majBytes || decMode.Unmarshal(it, &k) != nil || len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: bundle: key %d (%s): item %d is not a %d-byte bstr",
				protocol.ErrMalformed, key, bundleFields[key].name, i, ed25519.PublicKeySize)
		}
		out = append(out, k)
	}
	return out, nil
}

// Validate checks the rules of the contract that CBOR types cannot express.
func (b *Bundle) Validate() error {
	if b.Format != Format {
		return fmt.Errorf("%w: bundle format %d, want %d", protocol.ErrInvalid, b.Format, Format)
	}
	if !protocol.ValidID(b.NodeID) {
		return fmt.Errorf("%w: bundle node id %q does not match [A-Za-z0-9._-]{1,64}", protocol.ErrInvalid, b.NodeID)
	}
	if b.Serial == 0 {
		return fmt.Errorf("%w: bundle serial 0; serials start at 1", protocol.ErrInvalid)
	}
	if err := protocol.ValidateLabels(b.Labels); err != nil {
		return err
	}
	if !protocol.ValidID(b.Component) {
		return fmt.Errorf("%w: bundle component %q does not match [A-Za-z0-9._-]{1,64}", protocol.ErrInvalid, b.Component)
	}
	if err := ValidateGateway(b.Gateway); err != nil {
		return err
	}
	if err := validateKeys("manifest", b.ManifestKeys); err != nil {
		return err
	}
	if err := validateKeys("operator", b.OperatorKeys); err != nil {
		return err
	}
	if err := validateRoots(b.RootKeys, b.RootThreshold); err != nil {
		return err
	}
	if n := len(b.PSK.Ciphertext); n < MinPSKLen+tagSize || n > MaxPSKLen+tagSize {
		return fmt.Errorf("%w: sealed psk of %d bytes, want %d to %d (a %d- to %d-byte key and its tag)",
			protocol.ErrInvalid, n, MinPSKLen+tagSize, MaxPSKLen+tagSize, MinPSKLen, MaxPSKLen)
	}
	return nil
}

func validateKeys(what string, keys []ed25519.PublicKey) error {
	if len(keys) == 0 || len(keys) > MaxKeys {
		return fmt.Errorf("%w: bundle has %d %s keys, want 1 to %d", protocol.ErrInvalid, len(keys), what, MaxKeys)
	}
	for i, k := range keys {
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: bundle %s key %d has %d bytes, want %d", protocol.ErrInvalid, what, i, len(k), ed25519.PublicKeySize)
		}
		for _, o := range keys[:i] {
			if bytes.Equal(o, k) {
				return fmt.Errorf("%w: bundle lists %s key %s twice", protocol.ErrInvalid, what, sign.KeyIDOf(k))
			}
		}
	}
	return nil
}

// ValidateGateway checks a gateway CoAP URI: coap:// or coaps://, a host,
// an optional port, nothing else (no user, path, query or fragment).
func ValidateGateway(s string) error {
	if s == "" || len(s) > MaxGatewayLen {
		return fmt.Errorf("%w: gateway URI must be 1 to %d bytes", protocol.ErrInvalid, MaxGatewayLen)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%w: gateway URI %q: %v", protocol.ErrInvalid, s, err)
	}
	switch {
	case u.Scheme != "coap" && u.Scheme != "coaps":
		return fmt.Errorf("%w: gateway URI %q: want coap:// or coaps://", protocol.ErrInvalid, s)
	case u.Hostname() == "" || u.Opaque != "":
		return fmt.Errorf("%w: gateway URI %q has no host", protocol.ErrInvalid, s)
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return fmt.Errorf("%w: gateway URI %q: want scheme://HOST[:PORT] only", protocol.ErrInvalid, s)
	}
	return nil
}

// Sign encodes b and signs it with an operator key as a tagged COSE_Sign1
// of content type [ContentType]. The key is an ed25519.PrivateKey or any
// crypto.Signer of an Ed25519 key, such as one in a PKCS#11 token (a
// node's operator keys are Ed25519).
func Sign(b *Bundle, operator crypto.Signer) ([]byte, error) {
	if _, ok := operator.Public().(ed25519.PublicKey); !ok {
		return nil, fmt.Errorf("%w: an operator key must be Ed25519, not %T", sign.ErrKey, operator.Public())
	}
	payload, err := Encode(b)
	if err != nil {
		return nil, err
	}
	s, err := sign.NewSigner(operator)
	if err != nil {
		return nil, err
	}
	out, err := s.Sign(ContentType, payload)
	if err != nil {
		return nil, err
	}
	if len(out) > MaxSize {
		return nil, fmt.Errorf("%w: signed bundle of %d bytes is over the %d-byte limit", protocol.ErrInvalid, len(out), MaxSize)
	}
	return out, nil
}

// ErrRole means Verify was given a trust store of another role than
// [sign.RoleOperator].
var ErrRole = errors.New("provision: trust store is not an operator store")

// Verify checks a signed bundle against an operator trust store (tagged
// COSE_Sign1, EdDSA, a known kid, content type [ContentType], a valid
// signature; the errors of package sign) and decodes its payload strictly.
// It returns the bundle and the id of the key that signed it.
//
// It does not check the bundle against a node (node id, serial): that is
// the node's part.
func Verify(signed []byte, trust *sign.TrustStore) (*Bundle, sign.KeyID, error) {
	if trust == nil || trust.Role() != sign.RoleOperator {
		return nil, sign.KeyID{}, ErrRole
	}
	if len(signed) > MaxSize {
		return nil, sign.KeyID{}, fmt.Errorf("%w: signed bundle of %d bytes is over the %d-byte limit", sign.ErrMalformed, len(signed), MaxSize)
	}
	env, err := trust.Verify(signed)
	if err != nil {
		return nil, sign.KeyID{}, err
	}
	b, err := Decode(env.Payload)
	if err != nil {
		return nil, sign.KeyID{}, err
	}
	return b, env.KeyID, nil
}

// decodeRoots reads the optional keys 64 (root keys: an array of key maps
// {1: alg, 2: public key}) and 65 (their threshold, uint).
func decodeRoots(b *Bundle, raw map[uint64]cbor.RawMessage) error {
	if r, ok := raw[65]; ok {
		if r[0]>>5 != majUint || decMode.Unmarshal(r, &b.RootThreshold) != nil {
			return fmt.Errorf("%w: bundle: key 65 (root threshold): want uint", protocol.ErrMalformed)
		}
	}
	r, ok := raw[64]
	if !ok {
		return nil
	}
	var items []cbor.RawMessage
	if r[0]>>5 != majArray || decMode.Unmarshal(r, &items) != nil {
		return fmt.Errorf("%w: bundle: key 64 (root keys): want an array", protocol.ErrMalformed)
	}
	for i, it := range items {
		var m map[uint64]cbor.RawMessage
		if it[0]>>5 != majMap || decMode.Unmarshal(it, &m) != nil {
			return fmt.Errorf("%w: bundle: key 64 (root keys): item %d is not a map", protocol.ErrMalformed, i)
		}
		if err := checkKeys(fmt.Sprintf("bundle: root key %d", i), m, func(k uint64) (string, byte, bool) {
			switch k {
			case 1:
				return "alg", 1, true // a negative integer
			case 2:
				return "public key", majBytes, true
			}
			return "", 0, false
		}, 2); err != nil {
			return err
		}
		var k trust.Key
		if decMode.Unmarshal(m[1], &k.Alg) != nil || decMode.Unmarshal(m[2], &k.Public) != nil {
			return fmt.Errorf("%w: bundle: root key %d", protocol.ErrMalformed, i)
		}
		b.RootKeys = append(b.RootKeys, k)
	}
	return nil
}

func validateRoots(roots []trust.Key, threshold uint64) error {
	if len(roots) == 0 {
		if threshold != 0 {
			return fmt.Errorf("%w: bundle has a root threshold of %d and no root keys", protocol.ErrInvalid, threshold)
		}
		return nil
	}
	if len(roots) > trust.MaxKeys {
		return fmt.Errorf("%w: bundle has %d root keys, at most %d", protocol.ErrInvalid, len(roots), trust.MaxKeys)
	}
	for i, k := range roots {
		if err := k.Validate(); err != nil {
			return fmt.Errorf("bundle root key %d: %w", i, err)
		}
		for _, o := range roots[:i] {
			if o.ID() == k.ID() {
				return fmt.Errorf("%w: bundle lists root key %s twice", protocol.ErrInvalid, k.ID())
			}
		}
	}
	if threshold > uint64(len(roots)) {
		return fmt.Errorf("%w: bundle root threshold %d, but %d root keys", protocol.ErrInvalid, threshold, len(roots))
	}
	return nil
}
