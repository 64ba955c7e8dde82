package trust

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"

	"edgeota/protocol"
	"edgeota/protocol/sign"
)

// Refusals of [Anchor.Check], besides package sign's envelope errors and
// protocol.ErrMalformed and protocol.ErrInvalid.
var (
	// ErrNoRoot: the holder has no root key, so it accepts no trust
	// update (a node provisioned before v1.3, a gateway without
	// --trust-root).
	ErrNoRoot = errors.New("no root key: trust updates are refused")
	// ErrThreshold: fewer distinct roots signed than the holder's
	// threshold asks.
	ErrThreshold = errors.New("not enough root signatures")
	// ErrVersion: the version is not above the holder's (a replay or a
	// downgrade).
	ErrVersion = errors.New("trust version not above the current one")
)

// Anchor is what a holder of trust checks the next update against.
type Anchor struct {
	// Version is the version of the update the holder applied last, 0
	// when none.
	Version uint64
	// Roots are the root keys that may sign the next update; none means
	// every update is refused ([ErrNoRoot]).
	Roots []Key
	// Threshold is how many distinct Roots must sign; 0 counts as 1.
	Threshold uint64
}

// Check verifies a signed update against the anchor and decodes it. It
// refuses, each time with nothing to change for the caller:
//   - an anchor without roots ([ErrNoRoot]);
//   - input that is neither a tagged COSE_Sign1 nor an array of them, or
//     envelopes over different payloads (protocol.ErrMalformed, or package
//     sign's errors);
//   - an envelope by a key that is not a current root, with another
//     algorithm than that root's, another content type, or a bad
//     signature (package sign's errors): a removed root is an unknown
//     key;
//   - fewer distinct roots than the threshold ([ErrThreshold]);
//   - a payload that does not decode or breaks a rule ([Decode]);
//   - a version at or below the anchor's ([ErrVersion]).
//
// It returns the update and the ids of the roots that signed it, in the
// order of the envelopes.
func (a Anchor) Check(signed []byte) (*Update, []sign.KeyID, error) {
	if len(a.Roots) == 0 {
		return nil, nil, ErrNoRoot
	}
	roots, err := Store(sign.RoleRoot, a.Roots)
	if err != nil {
		return nil, nil, fmt.Errorf("trust: the current roots: %w", err)
	}
	envs, err := Split(signed)
	if err != nil {
		return nil, nil, err
	}
	var payload []byte
	kids := make([]sign.KeyID, 0, len(envs))
	for i, b := range envs {
		e, err := roots.Verify(b)
		if err != nil {
			return nil, nil, fmt.Errorf("trust update signature %d of %d: %w", i+1, len(envs), err)
		}
		if i == 0 {
			payload = e.Payload
		} else if !bytes.Equal(payload, e.Payload) {
			return nil, nil, fmt.Errorf("%w: trust update signature %d signs another payload than the first", protocol.ErrMalformed, i+1)
		}
		for _, k := range kids {
			if k == e.KeyID {
				return nil, nil, fmt.Errorf("%w: trust update signed twice by root %s", protocol.ErrInvalid, k)
			}
		}
		kids = append(kids, e.KeyID)
	}
	if need := max(a.Threshold, 1); uint64(len(kids)) < need {
		return nil, nil, fmt.Errorf("%w: %d of the %d roots signed, the threshold is %d", ErrThreshold, len(kids), len(a.Roots), need)
	}
	u, err := Decode(payload)
	if err != nil {
		return nil, nil, err
	}
	if u.Version <= a.Version {
		return nil, nil, fmt.Errorf("%w: version %d, the current one is %d", ErrVersion, u.Version, a.Version)
	}
	return u, kids, nil
}

// Split returns the COSE_Sign1 envelopes of a signed update: itself when
// it is one tagged COSE_Sign1, the items of a CBOR array of 1 to [MaxKeys]
// of them otherwise. It checks bounds and shapes, not signatures.
func Split(signed []byte) ([][]byte, error) {
	if len(signed) == 0 || len(signed) > MaxSize {
		return nil, fmt.Errorf("%w: signed trust update of %d bytes, want 1 to %d", protocol.ErrMalformed, len(signed), MaxSize)
	}
	if signed[0]>>5 != majArray {
		return [][]byte{signed}, nil
	}
	var items []cbor.RawMessage
	if err := envMode.Unmarshal(signed, &items); err != nil {
		return nil, fmt.Errorf("%w: array of signatures: %v", protocol.ErrMalformed, err)
	}
	if len(items) == 0 || len(items) > MaxKeys {
		return nil, fmt.Errorf("%w: array of %d signatures, want 1 to %d", protocol.ErrMalformed, len(items), MaxKeys)
	}
	out := make([][]byte, len(items))
	for i, it := range items {
		if it[0]>>5 != majTag {
			return nil, fmt.Errorf("%w: signature %d is not a tagged COSE_Sign1", sign.ErrNotTagged, i+1)
		}
		out[i] = it
	}
	return out, nil
}

// envMode decodes the outer array: its items are tagged envelopes, which
// package sign then parses strictly.
var envMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		MaxNestedLevels:  protocol.MaxDepth,
		MaxArrayElements: protocol.MaxEntries,
		MaxMapPairs:      protocol.MaxEntries,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

// Sign encodes u and signs it with each signer, which should hold
// distinct root keys: one signer gives one tagged COSE_Sign1, several a
// CBOR array of them over the same payload (for a threshold of roots).
func Sign(u *Update, signers ...*sign.Signer) ([]byte, error) {
	if len(signers) == 0 || len(signers) > MaxKeys {
		return nil, fmt.Errorf("trust: %d signers, want 1 to %d", len(signers), MaxKeys)
	}
	payload, err := Encode(u)
	if err != nil {
		return nil, err
	}
	envs := make([]cbor.RawMessage, len(signers))
	for i, s := range signers {
		if envs[i], err = s.Sign(ContentType, payload); err != nil {
			return nil, err
		}
	}
	out := []byte(envs[0])
	if len(envs) > 1 {
		if out, err = encMode.Marshal(envs); err != nil {
			return nil, fmt.Errorf("trust: encode signatures: %w", err)
		}
	}
	if len(out) > MaxSize {
		return nil, fmt.Errorf("%w: signed trust update of %d bytes is over the %d-byte limit", protocol.ErrInvalid, len(out), MaxSize)
	}
	return out, nil
}

// Inspect returns the update inside a signed one and the key ids its
// envelopes name, without verifying anything: for tools that show it.
func Inspect(signed []byte) (*Update, []sign.KeyID, error) {
	envs, err := Split(signed)
	if err != nil {
		return nil, nil, err
	}
	kids := make([]sign.KeyID, 0, len(envs))
	var u *Update
	for _, b := range envs {
		e, err := sign.Parse(b)
		if err != nil {
			return nil, nil, err
		}
		if e.ContentType != ContentType {
			return nil, nil, fmt.Errorf("%w %q, want %q", sign.ErrContentType, e.ContentType, ContentType)
		}
		if u == nil {
			if u, err = Decode(e.Payload); err != nil {
				return nil, nil, err
			}
		}
		kids = append(kids, e.KeyID)
	}
	return u, kids, nil
}
