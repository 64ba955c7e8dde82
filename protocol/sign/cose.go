package sign

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"

	"edgeota/protocol"
)

// Verification failures. Each error a [TrustStore] returns wraps exactly one.
var (
	// ErrNotTagged: the input is not a tagged COSE_Sign1 (CBOR tag 18).
	ErrNotTagged = errors.New("not a tagged COSE_Sign1")
	// ErrMalformed: the envelope or its protected header does not decode,
	// or the payload is detached.
	ErrMalformed = errors.New("malformed COSE_Sign1")
	// ErrAlgorithm: the protected header names no algorithm, one the
	// contract does not allow (EdDSA and ES256 only), or another one than
	// the algorithm of the key its kid names (docs/protocol.md section 1).
	ErrAlgorithm = errors.New("wrong algorithm")
	// ErrUnknownKey: no trusted key has the envelope's kid.
	ErrUnknownKey = errors.New("unknown kid")
	// ErrContentType: the protected content type is not the expected one.
	ErrContentType = errors.New("wrong content type")
	// ErrSignature: the signature does not verify under the key.
	ErrSignature = errors.New("bad signature")
)

// Signer signs documents with one key, Ed25519 (EdDSA) or ECDSA P-256
// (ES256), held in memory or behind any crypto.Signer such as a PKCS#11
// token: the private key never needs to leave it.
type Signer struct {
	kid    KeyID
	alg    Algorithm
	signer cose.Signer
}

// NewSigner returns a Signer for priv: an ed25519.PrivateKey, a P-256
// *ecdsa.PrivateKey, or any crypto.Signer whose Public is one of the two
// public key kinds. go-cose does the COSE part; an ECDSA crypto.Signer
// answers ASN.1 DER, which go-cose turns into COSE's fixed r||s.
func NewSigner(priv crypto.Signer) (*Signer, error) {
	if k, ok := priv.(ed25519.PrivateKey); ok && len(k) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: Ed25519 private key of %d bytes", ErrKey, len(k))
	}
	raw, alg, err := RawPublicKey(priv.Public())
	if err != nil {
		return nil, err
	}
	s, err := cose.NewSigner(cose.Algorithm(alg), priv)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return &Signer{kid: keyIDOfRaw(raw), alg: alg, signer: s}, nil
}

// KeyID returns the id of the signer's public key.
func (s *Signer) KeyID() KeyID { return s.kid }

// Algorithm returns the signer's algorithm, EdDSA or ES256.
func (s *Signer) Algorithm() Algorithm { return s.alg }

// Sign wraps payload in a tagged COSE_Sign1 whose protected header holds
// the signer's alg and kid and contentType. Ed25519 is deterministic, so
// the same key, content type and payload always give the same bytes;
// ES256 signatures are randomized, so two signatures of one document
// differ and both verify.
func (s *Signer) Sign(contentType string, payload []byte) ([]byte, error) {
	if payload == nil {
		payload = []byte{}
	}
	msg := cose.NewSign1Message()
	msg.Headers.Protected.SetAlgorithm(cose.Algorithm(s.alg))
	msg.Headers.Protected[cose.HeaderLabelKeyID] = s.kid[:]
	msg.Headers.Protected[cose.HeaderLabelContentType] = contentType
	msg.Payload = payload
	if err := msg.Sign(rand.Reader, nil, s.signer); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return msg.MarshalCBOR()
}

// SignManifest encodes and signs a manifest.
func (s *Signer) SignManifest(m *protocol.Manifest) ([]byte, error) {
	b, err := protocol.Marshal(m)
	if err != nil {
		return nil, err
	}
	return s.Sign(protocol.ContentTypeManifest, b)
}

// SignDeployment encodes and signs a deployment.
func (s *Signer) SignDeployment(d *protocol.Deployment) ([]byte, error) {
	b, err := protocol.Marshal(d)
	if err != nil {
		return nil, err
	}
	return s.Sign(protocol.ContentTypeDeployment, b)
}

// Envelope is a parsed, not yet verified, COSE_Sign1.
type Envelope struct {
	// Algorithm is the protected alg (label 1), EdDSA or ES256.
	Algorithm Algorithm
	// ContentType is the protected content type (label 3).
	ContentType string
	// KeyID is the protected kid (label 4).
	KeyID KeyID
	// Payload is the signed payload.
	Payload []byte

	protected   []byte
	unprotected []byte
	signature   []byte
}

// Unprotected returns the raw CBOR value of label in the envelope's
// unprotected header, and whether it is there. Nothing in the unprotected
// header is covered by the signature: a caller decodes the value strictly
// and trusts it no more than any unsigned input (docs/protocol.md "Delta
// updates (v1.4)"). A header that is not a map of integer labels holds no
// label.
func (e *Envelope) Unprotected(label int64) ([]byte, bool) {
	if len(e.unprotected) <= 1 { // a0: the empty map
		return nil, false
	}
	var m map[int64]cbor.RawMessage
	if err := envMode.Unmarshal(e.unprotected, &m); err != nil {
		return nil, false
	}
	v, ok := m[label]
	return v, ok
}

// WithUnprotected returns envelope, a tagged COSE_Sign1, with its
// unprotected header replaced by the map {label: value}, value being one
// well-formed CBOR data item. The protected header, payload and signature
// are copied byte for byte, so the result verifies exactly as envelope
// does. A gateway attaches a delta offer to a manifest this way
// (protocol.DeltaOfferLabel, docs/protocol.md "Delta updates (v1.4)").
func WithUnprotected(envelope []byte, label int64, value []byte) ([]byte, error) {
	if err := envMode.Wellformed(value); err != nil {
		return nil, fmt.Errorf("%w: unprotected value: %v", ErrMalformed, err)
	}
	if _, err := Parse(envelope); err != nil {
		return nil, err
	}
	// Parse checked the tag and the array of 4: split the array's items
	// where they lie, and splice the new header between them.
	body := envelope[len(tagPrefix):]
	var skip cbor.RawMessage
	afterProtected, err := envMode.UnmarshalFirst(body, &skip)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	tail, err := envMode.UnmarshalFirst(afterProtected, &skip)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	lab, err := cbor.Marshal(label)
	if err != nil {
		return nil, fmt.Errorf("sign: unprotected label: %w", err)
	}
	protected := body[:len(body)-len(afterProtected)]
	out := make([]byte, 0, len(tagPrefix)+len(protected)+1+len(lab)+len(value)+len(tail))
	out = append(out, tagPrefix...)
	out = append(out, protected...)
	out = append(out, 0xa1)
	out = append(out, lab...)
	out = append(out, value...)
	out = append(out, tail...)
	// What is attached must leave an envelope that parses: within the
	// size limit, and nested no deeper than section 2 allows.
	if _, err := Parse(out); err != nil {
		return nil, fmt.Errorf("unprotected value: %w", err)
	}
	return out, nil
}

// sign1 is COSE_Sign1 (RFC 9052 section 4.2) without its tag.
type sign1 struct {
	_           struct{} `cbor:",toarray"`
	Protected   []byte
	Unprotected cbor.RawMessage
	Payload     cbor.RawMessage
	Signature   []byte
}

// protectedHeader holds the labels of RFC 9052 section 3.1 this contract
// uses; other labels are ignored unless listed as critical.
type protectedHeader struct {
	Alg         cbor.RawMessage `cbor:"1,keyasint"`
	Crit        cbor.RawMessage `cbor:"2,keyasint"`
	ContentType cbor.RawMessage `cbor:"3,keyasint"`
	KeyID       []byte          `cbor:"4,keyasint"`
}

var envMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		MaxNestedLevels:  protocol.MaxDepth,
		MaxArrayElements: protocol.MaxEntries,
		MaxMapPairs:      protocol.MaxEntries,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

var tagPrefix = []byte{0xd2, 0x84} // tag 18, array of 4

// The protected alg values, encoded: -8 (EdDSA) and -7 (ES256).
var (
	algEdDSA = []byte{0x27}
	algES256 = []byte{0x26}
)

// sigSize is the length of a signature of either algorithm: Ed25519's 64
// bytes, and ES256's r||s, each 32 bytes big-endian (RFC 9053 section
// 2.1), never ASN.1 DER.
const sigSize = 64

// Parse decodes a tagged COSE_Sign1 and checks its protected header (alg
// EdDSA or ES256, an 8-byte kid, a text content type, no critical labels)
// and the signature's length without verifying the signature. Use it to
// inspect; use [TrustStore.Verify] to trust.
//
// Verification does not go through go-cose: its decoder builds maps of
// interfaces and took 53 allocations per envelope, over the budget of a
// node; this path takes a handful and is cross-checked against go-cose in
// the tests and the golden vectors.
func Parse(b []byte) (*Envelope, error) {
	if len(b) > protocol.MaxDocSize {
		return nil, fmt.Errorf("%w: %d bytes is over the %d-byte limit", ErrMalformed, len(b), protocol.MaxDocSize)
	}
	if !bytes.HasPrefix(b, tagPrefix) {
		if len(b) > 0 && b[0] == 0x84 {
			return nil, fmt.Errorf("%w: untagged COSE_Sign1 (no tag 18)", ErrNotTagged)
		}
		return nil, ErrNotTagged
	}
	var raw sign1
	if err := envMode.Unmarshal(b[1:], &raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(raw.Unprotected) == 0 || raw.Unprotected[0]>>5 != 5 {
		return nil, fmt.Errorf("%w: unprotected header is not a map", ErrMalformed)
	}
	if len(raw.Payload) == 0 || raw.Payload[0]>>5 != 2 {
		return nil, fmt.Errorf("%w: detached or non-bstr payload", ErrMalformed)
	}
	e := &Envelope{protected: raw.Protected, unprotected: raw.Unprotected, signature: raw.Signature}
	if err := envMode.Unmarshal(raw.Payload, &e.Payload); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	if len(raw.Signature) != sigSize {
		return nil, fmt.Errorf("%w: signature of %d bytes, want %d (Ed25519, or ES256 as r||s, not DER)", ErrMalformed, len(raw.Signature), sigSize)
	}
	if len(raw.Protected) == 0 {
		return nil, fmt.Errorf("%w: empty protected header (no alg)", ErrAlgorithm)
	}
	var h protectedHeader
	if err := envMode.Unmarshal(raw.Protected, &h); err != nil {
		return nil, fmt.Errorf("%w: protected header: %v", ErrMalformed, err)
	}
	if len(h.Crit) != 0 {
		return nil, fmt.Errorf("%w: protected header lists critical labels this contract does not define", ErrMalformed)
	}
	switch {
	case bytes.Equal(h.Alg, algEdDSA):
		e.Algorithm = EdDSA
	case bytes.Equal(h.Alg, algES256):
		e.Algorithm = ES256
	default:
		var alg int64
		if len(h.Alg) == 0 || envMode.Unmarshal(h.Alg, &alg) != nil {
			return nil, fmt.Errorf("%w: protected header has no integer alg", ErrAlgorithm)
		}
		return nil, fmt.Errorf("%w: %v, want EdDSA (-8) or ES256 (-7)", ErrAlgorithm, cose.Algorithm(alg))
	}
	if len(h.KeyID) != len(KeyID{}) {
		return nil, fmt.Errorf("%w: protected header has no 8-byte kid", ErrMalformed)
	}
	copy(e.KeyID[:], h.KeyID)
	if len(h.ContentType) == 0 || h.ContentType[0]>>5 != 3 || envMode.Unmarshal(h.ContentType, &e.ContentType) != nil {
		return nil, fmt.Errorf("%w: protected header has no text content type", ErrContentType)
	}
	return e, nil
}

// toBeSigned builds the Sig_structure of RFC 9052 section 4.4 with an empty
// external AAD: ["Signature1", protected, h”, payload].
func (e *Envelope) toBeSigned() []byte {
	out := make([]byte, 0, 32+len(e.protected)+len(e.Payload))
	out = append(out, 0x84, 0x6a)
	out = append(out, "Signature1"...)
	out = appendBstrHead(out, len(e.protected))
	out = append(out, e.protected...)
	out = append(out, 0x40)
	out = appendBstrHead(out, len(e.Payload))
	return append(out, e.Payload...)
}

func appendBstrHead(b []byte, n int) []byte {
	switch {
	case n < 24:
		return append(b, 0x40|byte(n))
	case n <= 0xff:
		return append(b, 0x58, byte(n))
	case n <= 0xffff:
		return append(b, 0x59, byte(n>>8), byte(n))
	default:
		return append(b, 0x5a, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// Role is what a trust store's keys may sign (docs/protocol.md section 1).
type Role uint8

// Roles.
const (
	// RoleManifest keys sign manifests; nodes and gateways trust them.
	RoleManifest Role = iota + 1
	// RoleDeployment keys sign deployments; gateways trust them.
	RoleDeployment
	// RoleOperator keys sign provisioning bundles; nodes trust them.
	RoleOperator
	// RoleRoot keys sign trust updates (the sets of manifest, deployment
	// and root keys, docs/protocol.md "Trust update"); nodes and gateways
	// trust them.
	RoleRoot
)

// ContentType returns the content type the role's keys sign.
func (r Role) ContentType() string {
	switch r {
	case RoleManifest:
		return protocol.ContentTypeManifest
	case RoleDeployment:
		return protocol.ContentTypeDeployment
	case RoleOperator:
		return protocol.ContentTypeProvisioning
	case RoleRoot:
		return protocol.ContentTypeTrust
	}
	return ""
}

// String returns "manifest", "deployment", "operator" or "root".
func (r Role) String() string {
	switch r {
	case RoleManifest:
		return "manifest"
	case RoleDeployment:
		return "deployment"
	case RoleOperator:
		return "operator"
	case RoleRoot:
		return "root"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// TrustStore holds the public keys trusted for one role, by kid. Each
// entry is (kid, algorithm, key): a document is verified only with the
// algorithm of the key its kid names, so an attacker cannot make a
// verifier use a key with another algorithm (docs/protocol.md section 1).
// A store may hold keys of both kinds. It is immutable once built and safe
// for concurrent use.
type TrustStore struct {
	role Role
	keys map[KeyID]trusted
}

// trusted is one entry of a trust store: exactly one of ed and ec is set,
// as alg says.
type trusted struct {
	alg Algorithm
	ed  ed25519.PublicKey
	ec  *ecdsa.PublicKey
}

// NewTrustStore returns a trust store for role holding keys, each an
// ed25519.PublicKey or a P-256 *ecdsa.PublicKey (as [ParsePublicKey]
// returns them); K is either type, or crypto.PublicKey for a list that
// mixes both. A key of another kind, or a P-256 point not on the curve, is
// [ErrKey].
func NewTrustStore[K crypto.PublicKey](role Role, keys ...K) (*TrustStore, error) {
	if role.ContentType() == "" {
		return nil, fmt.Errorf("sign: unknown role %d", role)
	}
	t := &TrustStore{role: role, keys: make(map[KeyID]trusted, len(keys))}
	for _, k := range keys {
		raw, alg, err := RawPublicKey(k)
		if err != nil {
			return nil, err
		}
		// Keep a copy parsed from the raw form, so that the caller's key
		// can change without changing the store.
		pub, err := ParseRawPublicKey(raw)
		if err != nil {
			return nil, err
		}
		e := trusted{alg: alg}
		switch p := pub.(type) {
		case ed25519.PublicKey:
			e.ed = p
		case *ecdsa.PublicKey:
			e.ec = p
		}
		t.keys[keyIDOfRaw(raw)] = e
	}
	return t, nil
}

// Role returns the store's role.
func (t *TrustStore) Role() Role { return t.role }

// Len returns the number of keys in the store.
func (t *TrustStore) Len() int { return len(t.keys) }

// Has reports whether the store holds the key with id kid.
func (t *TrustStore) Has(kid KeyID) bool { _, ok := t.keys[kid]; return ok }

// Verify checks a COSE_Sign1 envelope against the store: tagged, a known
// kid, the algorithm of that kid's key, the role's content type, a valid
// signature. It returns the envelope, whose Payload is then trusted bytes.
func (t *TrustStore) Verify(b []byte) (*Envelope, error) {
	e, err := Parse(b)
	if err != nil {
		return nil, err
	}
	v, ok := t.keys[e.KeyID]
	if !ok {
		return nil, fmt.Errorf("%w %s (not among the %d trusted %s keys)", ErrUnknownKey, e.KeyID, len(t.keys), t.role)
	}
	if e.Algorithm != v.alg {
		return nil, fmt.Errorf("%w: %v, but kid %s is an %v key", ErrAlgorithm, e.Algorithm, e.KeyID, v.alg)
	}
	if want := t.role.ContentType(); e.ContentType != want {
		return nil, fmt.Errorf("%w %q, want %q", ErrContentType, e.ContentType, want)
	}
	if !v.verify(e.toBeSigned(), e.signature) {
		return nil, fmt.Errorf("%w (kid %s, %v)", ErrSignature, e.KeyID, v.alg)
	}
	return e, nil
}

// verify checks sig over msg. An ES256 signature is r||s (RFC 9053
// section 2.1); r and s must each lie in [1, n-1], which ecdsa.Verify
// checks. A high s is accepted, as COSE does not require low-S: the
// signature (r, n-s) verifies too, and nothing in edgeota names a
// document by its signature bytes (docs/protocol.md section 1).
func (v trusted) verify(msg, sig []byte) bool {
	if v.alg == EdDSA {
		return ed25519.Verify(v.ed, msg, sig)
	}
	h := sha256.Sum256(msg)
	r := new(big.Int).SetBytes(sig[:sigSize/2])
	s := new(big.Int).SetBytes(sig[sigSize/2:])
	return ecdsa.Verify(v.ec, h[:], r, s)
}

// VerifyManifest verifies a signed manifest against a manifest-role store
// and decodes it strictly.
func (t *TrustStore) VerifyManifest(b []byte) (*protocol.Manifest, error) {
	e, err := t.Verify(b)
	if err != nil {
		return nil, err
	}
	return protocol.DecodeManifest(e.Payload)
}

// VerifyDeployment verifies a signed deployment against a deployment-role
// store and decodes it strictly. The manifests it embeds are not verified
// here: they need a manifest-role store.
func (t *TrustStore) VerifyDeployment(b []byte) (*protocol.Deployment, error) {
	e, err := t.Verify(b)
	if err != nil {
		return nil, err
	}
	return protocol.DecodeDeployment(e.Payload)
}
