//go:build cgo

package hsm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"sync"

	"github.com/miekg/pkcs11"

	"edgeota/protocol/sign"
)

// PKCS#11 3.0 names miekg/pkcs11 v1.1.2 does not define (PKCS#11 v3.0
// section 6.3, "EdDSA").
const (
	ckkECEdwards           = 0x00000040 // CKK_EC_EDWARDS
	ckmECEdwardsKeyPairGen = 0x00001055 // CKM_EC_EDWARDS_KEY_PAIR_GEN
	ckmEdDSA               = 0x00001057 // CKM_EDDSA
)

// CKA_EC_PARAMS values: the DER of OIDs 1.3.101.112 (Ed25519) and
// 1.2.840.10045.3.1.7 (P-256, prime256v1).
var (
	oidEd25519 = []byte{0x06, 0x03, 0x2b, 0x65, 0x70}
	oidP256    = []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}
)

// A module is initialised once per process (C_Initialize), and every key
// opened from it shares that: modules counts the keys open per module
// path, and the last to close finalises it. This is why keys do not go
// through crypto11, whose own registry of initialised modules is private:
// a command holding an Ed25519 and a P-256 key of one module at once
// (edgeota trust sign with two roots) could not have both.
var modules = struct {
	sync.Mutex
	m map[string]*module
}{m: map[string]*module{}}

type module struct {
	ctx  *pkcs11.Ctx
	refs int
}

// loadModule returns the initialised module at path, loading it on first
// use; each call is paired with a releaseModule.
func loadModule(path string) (*pkcs11.Ctx, error) {
	modules.Lock()
	defer modules.Unlock()
	if m, ok := modules.m[path]; ok {
		m.refs++
		return m.ctx, nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%w: module-path %s: %v", ErrModule, path, err)
	}
	ctx := pkcs11.New(path)
	if ctx == nil {
		return nil, fmt.Errorf("%w: module-path %s is not a PKCS#11 library that dlopen can load", ErrModule, path)
	}
	if err := ctx.Initialize(); err != nil {
		ctx.Destroy()
		return nil, fmt.Errorf("%w: %s: C_Initialize: %v", ErrModule, path, err)
	}
	modules.m[path] = &module{ctx: ctx, refs: 1}
	return ctx, nil
}

// releaseModule drops one use of the module at path and finalises it
// after the last.
func releaseModule(path string) error {
	modules.Lock()
	defer modules.Unlock()
	m := modules.m[path]
	if m.refs--; m.refs > 0 {
		return nil
	}
	delete(modules.m, path)
	err := m.ctx.Finalize()
	m.ctx.Destroy()
	return err
}

// mechanisms lists a slot's mechanisms; a variable so that a test can
// offer a token without one.
var mechanisms = func(ctx *pkcs11.Ctx, slot uint) ([]*pkcs11.Mechanism, error) {
	return ctx.GetMechanismList(slot)
}

// Key is a signing key inside a token: a crypto.Signer whose Public is an
// ed25519.PublicKey or a P-256 *ecdsa.PublicKey. Close ends its session.
type Key struct {
	crypto.Signer
	close func() error
}

// Close closes the key's session and releases its module, which is
// finalised once its last key is closed.
func (k *Key) Close() error { return k.close() }

// session is a logged-in session on the URI's token, through miekg/pkcs11.
type session struct {
	path string
	ctx  *pkcs11.Ctx
	slot uint
	h    pkcs11.SessionHandle
}

// tokenWanted describes the token u names, for an error: its label, its
// serial, or both; nothing when u names neither (any token would do).
func tokenWanted(u *URI) string {
	var w string
	if u.Token != "" {
		w += fmt.Sprintf(" labelled %q", u.Token)
	}
	if u.Serial != "" {
		w += fmt.Sprintf(" with serial %q", u.Serial)
	}
	return w
}

// openSession loads the module, finds the token, opens a read-write
// session and logs the user in.
func openSession(u *URI) (*session, error) {
	pin, err := u.PIN()
	if err != nil {
		return nil, err
	}
	ctx, err := loadModule(u.ModulePath)
	if err != nil {
		return nil, err
	}
	s := &session{path: u.ModulePath, ctx: ctx}
	fail := func(err error) (*session, error) { s.close(); return nil, err }
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return fail(fmt.Errorf("%w: C_GetSlotList: %v", ErrModule, err))
	}
	found := false
	for _, sl := range slots {
		ti, err := ctx.GetTokenInfo(sl)
		if err != nil {
			continue
		}
		if (u.Token == "" || ti.Label == u.Token) && (u.Serial == "" || ti.SerialNumber == u.Serial) {
			s.slot, found = sl, true
			break
		}
	}
	if !found {
		return fail(fmt.Errorf("%w: no token%s among %d in %s", ErrToken, tokenWanted(u), len(slots), u.ModulePath))
	}
	if s.h, err = ctx.OpenSession(s.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION); err != nil {
		s.h = 0
		return fail(fmt.Errorf("%w: C_OpenSession: %v", ErrToken, err))
	}
	if err := ctx.Login(s.h, pkcs11.CKU_USER, pin); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
		switch {
		case errors.Is(err, pkcs11.Error(pkcs11.CKR_PIN_INCORRECT)), errors.Is(err, pkcs11.Error(pkcs11.CKR_PIN_LEN_RANGE)):
			return fail(fmt.Errorf("%w: token %q refused the user PIN (%v)", ErrPIN, u.Token, err))
		case errors.Is(err, pkcs11.Error(pkcs11.CKR_PIN_LOCKED)):
			return fail(fmt.Errorf("%w: token %q has locked the user PIN (%v)", ErrPIN, u.Token, err))
		}
		return fail(fmt.Errorf("%w: token %q: C_Login: %v", ErrPIN, u.Token, err))
	}
	return s, nil
}

// close closes the session and releases the module. It does not log
// out: a login holds for every session of the token, another key may
// still use one, and the token logs out when its last session closes.
func (s *session) close() error {
	if s.h != 0 {
		_ = s.ctx.CloseSession(s.h)
	}
	return releaseModule(s.path)
}

// require fails with ErrMechanism unless the token offers mech.
func (s *session) require(mech uint, name string) error {
	ms, err := mechanisms(s.ctx, s.slot)
	if err != nil {
		return fmt.Errorf("%w: C_GetMechanismList: %v", ErrMechanism, err)
	}
	for _, m := range ms {
		if m.Mechanism == mech {
			return nil
		}
	}
	return fmt.Errorf("%w: the token has no %s", ErrMechanism, name)
}

// find returns the objects of class that the URI's object and id name.
func (s *session) find(u *URI, class uint) ([]pkcs11.ObjectHandle, error) {
	tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class)}
	if u.Object != "" {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object))
	}
	if len(u.ID) > 0 {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, u.ID))
	}
	if err := s.ctx.FindObjectsInit(s.h, tmpl); err != nil {
		return nil, fmt.Errorf("pkcs11: C_FindObjectsInit: %w", err)
	}
	defer s.ctx.FindObjectsFinal(s.h)
	hs, _, err := s.ctx.FindObjects(s.h, 4)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: C_FindObjects: %w", err)
	}
	return hs, nil
}

func (u *URI) what() string {
	if len(u.ID) > 0 {
		return fmt.Sprintf("object %q id %x", u.Object, u.ID)
	}
	return fmt.Sprintf("object %q", u.Object)
}

// Open returns the signing key the URI names. The token must hold exactly
// one private key with the URI's object label (and id, if given), of type
// Ed25519 or EC on P-256, and offer CKM_EDDSA or CKM_ECDSA for it. The
// caller closes the key.
func Open(u *URI) (*Key, error) {
	s, err := openSession(u)
	if err != nil {
		return nil, err
	}
	privs, err := s.find(u, pkcs11.CKO_PRIVATE_KEY)
	if err != nil {
		s.close()
		return nil, err
	}
	switch len(privs) {
	case 0:
		s.close()
		return nil, fmt.Errorf("%w: token %q holds no private key %s", ErrNoObject, u.Token, u.what())
	case 1:
	default:
		s.close()
		return nil, fmt.Errorf("%w: token %q holds %d private keys %s; add id= to choose one", ErrURI, u.Token, len(privs), u.what())
	}
	attrs, err := s.ctx.GetAttributeValue(s.h, privs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil)})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("pkcs11: CKA_KEY_TYPE: %w", err)
	}
	switch kt := bytesToUint(attrs[0].Value); kt {
	case ckkECEdwards:
		if err := s.require(ckmEdDSA, "CKM_EDDSA (PKCS#11 3.0 Ed25519 signing)"); err != nil {
			s.close()
			return nil, err
		}
		k, err := s.edKey(u, privs[0])
		if err != nil {
			s.close()
			return nil, err
		}
		return &Key{Signer: k, close: s.close}, nil
	case pkcs11.CKK_EC:
		if err := s.require(pkcs11.CKM_ECDSA, "CKM_ECDSA (ECDSA signing)"); err != nil {
			s.close()
			return nil, err
		}
		k, err := s.ecKey(u, privs[0])
		if err != nil {
			s.close()
			return nil, err
		}
		return &Key{Signer: k, close: s.close}, nil
	default:
		s.close()
		return nil, fmt.Errorf("%w: %s has CKA_KEY_TYPE %#x; edgeota signs with Ed25519 (CKK_EC_EDWARDS) or P-256 (CKK_EC)", ErrKeyType, u.what(), kt)
	}
}

// edKey reads the public half of an Ed25519 key pair and returns its
// signer.
func (s *session) edKey(u *URI, priv pkcs11.ObjectHandle) (*edSigner, error) {
	pubs, err := s.find(u, pkcs11.CKO_PUBLIC_KEY)
	if err != nil {
		return nil, err
	}
	if len(pubs) != 1 {
		return nil, fmt.Errorf("%w: token %q holds %d public keys %s, want the one of the key pair", ErrNoObject, u.Token, len(pubs), u.what())
	}
	pub, err := s.edPublic(pubs[0])
	if err != nil {
		return nil, err
	}
	return &edSigner{s: s, priv: priv, pub: pub}, nil
}

// edPublic reads CKA_EC_POINT of an Ed25519 public key object: the DER
// OCTET STRING of the 32 bytes (PKCS#11 3.0), or the bare 32 bytes some
// tokens give.
func (s *session) edPublic(h pkcs11.ObjectHandle) (ed25519.PublicKey, error) {
	a, err := s.ctx.GetAttributeValue(s.h, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
	if err != nil {
		return nil, fmt.Errorf("pkcs11: CKA_EC_POINT: %w", err)
	}
	v := a[0].Value
	if len(v) != ed25519.PublicKeySize {
		var raw []byte
		if rest, err := asn1.Unmarshal(v, &raw); err != nil || len(rest) != 0 {
			return nil, fmt.Errorf("%w: CKA_EC_POINT of %d bytes is not an Ed25519 point", ErrKeyType, len(v))
		}
		v = raw
	}
	if len(v) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: Ed25519 point of %d bytes", ErrKeyType, len(v))
	}
	return ed25519.PublicKey(v), nil
}

// edSigner signs with CKM_EDDSA (pure Ed25519, no parameters) over one
// session; Sign calls are serialised, a session does one operation at a
// time.
type edSigner struct {
	mu   sync.Mutex
	s    *session
	priv pkcs11.ObjectHandle
	pub  ed25519.PublicKey
}

// Public returns the Ed25519 public key.
func (e *edSigner) Public() crypto.PublicKey { return e.pub }

// Sign signs message itself (Ed25519 hashes internally): opts must say
// no hash, as for ed25519.PrivateKey. rand is not used.
func (e *edSigner) Sign(_ io.Reader, message []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts != nil && opts.HashFunc() != 0 {
		return nil, errors.New("pkcs11: Ed25519 signs the message itself, not a digest (Ed25519ph is not supported)")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.s.ctx.SignInit(e.s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(ckmEdDSA, nil)}, e.priv); err != nil {
		return nil, fmt.Errorf("pkcs11: C_SignInit CKM_EDDSA: %w", err)
	}
	sig, err := e.s.ctx.Sign(e.s.h, message)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: C_Sign CKM_EDDSA: %w", err)
	}
	return sig, nil
}

// Generate creates a key pair of alg inside the URI's token, labelled with
// the URI's object (and id, or a random 8-byte id), private key sensitive
// and not extractable, and returns its public key. It refuses to create a
// key whose label the token already holds.
func Generate(u *URI, alg sign.Algorithm) (crypto.PublicKey, error) {
	if u.Object == "" {
		return nil, fmt.Errorf("%w: keygen needs object= to label the new key", ErrURI)
	}
	s, err := openSession(u)
	if err != nil {
		return nil, err
	}
	for _, class := range []uint{pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_PUBLIC_KEY} {
		hs, err := s.find(&URI{Object: u.Object}, class)
		if err != nil {
			s.close()
			return nil, err
		}
		if len(hs) > 0 {
			s.close()
			return nil, fmt.Errorf("%w: token %q already holds a key labelled %q", ErrExists, u.Token, u.Object)
		}
	}
	id := u.ID
	if len(id) == 0 {
		id = make([]byte, 8)
		if _, err := rand.Read(id); err != nil {
			s.close()
			return nil, err
		}
	}
	defer s.close()
	gen, keyType, params := uint(ckmECEdwardsKeyPairGen), uint(ckkECEdwards), oidEd25519
	if alg == sign.ES256 {
		gen, keyType, params = pkcs11.CKM_EC_KEY_PAIR_GEN, pkcs11.CKK_EC, oidP256
		if err := s.require(gen, "CKM_EC_KEY_PAIR_GEN (EC key generation)"); err != nil {
			return nil, err
		}
		if err := s.require(pkcs11.CKM_ECDSA, "CKM_ECDSA (ECDSA signing)"); err != nil {
			return nil, err
		}
	} else {
		if err := s.require(gen, "CKM_EC_EDWARDS_KEY_PAIR_GEN (PKCS#11 3.0 Ed25519 key generation)"); err != nil {
			return nil, err
		}
		if err := s.require(ckmEdDSA, "CKM_EDDSA (PKCS#11 3.0 Ed25519 signing)"); err != nil {
			return nil, err
		}
	}
	common := func(class uint) []*pkcs11.Attribute {
		return []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, keyType),

			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object),
			pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		}
	}
	pubT := append(common(pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params))
	privT := append(common(pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false))
	pubH, _, err := s.ctx.GenerateKeyPair(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(gen, nil)}, pubT, privT)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: generate %v key: %w", alg, err)
	}
	if alg == sign.ES256 {
		return s.ecPublic(pubH)
	}
	return s.edPublic(pubH)
}

// bytesToUint reads a CK_ULONG attribute, host byte order (little-endian
// on the platforms edgeota ships for).
func bytesToUint(b []byte) uint {
	var v uint
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint(b[i])
	}
	return v
}

// ecKey reads the public half of a P-256 key pair and returns its signer.
func (s *session) ecKey(u *URI, priv pkcs11.ObjectHandle) (*ecSigner, error) {
	pubs, err := s.find(u, pkcs11.CKO_PUBLIC_KEY)
	if err != nil {
		return nil, err
	}
	if len(pubs) != 1 {
		return nil, fmt.Errorf("%w: token %q holds %d public keys %s, want the one of the key pair", ErrNoObject, u.Token, len(pubs), u.what())
	}
	pub, err := s.ecPublic(pubs[0])
	if err != nil {
		return nil, err
	}
	return &ecSigner{s: s, priv: priv, pub: pub}, nil
}

// ecPublic reads a P-256 public key object: CKA_EC_PARAMS must name
// P-256, CKA_EC_POINT is the DER OCTET STRING of the uncompressed point
// (or the bare point some tokens give), which must lie on the curve.
func (s *session) ecPublic(h pkcs11.ObjectHandle) (*ecdsa.PublicKey, error) {
	a, err := s.ctx.GetAttributeValue(s.h, h, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, nil), pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
	if err != nil {
		return nil, fmt.Errorf("pkcs11: CKA_EC_PARAMS, CKA_EC_POINT: %w", err)
	}
	if !bytes.Equal(a[0].Value, oidP256) {
		return nil, fmt.Errorf("%w: an EC key whose CKA_EC_PARAMS %x is not P-256", ErrKeyType, a[0].Value)
	}
	v := a[1].Value
	if len(v) != 65 {
		var raw []byte
		if rest, err := asn1.Unmarshal(v, &raw); err != nil || len(rest) != 0 {
			return nil, fmt.Errorf("%w: CKA_EC_POINT of %d bytes is not a P-256 point", ErrKeyType, len(v))
		}
		v = raw
	}
	k, err := sign.ParseRawPublicKey(v)
	if err != nil {
		return nil, fmt.Errorf("%w: CKA_EC_POINT: %v", ErrKeyType, err)
	}
	ec, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: CKA_EC_POINT of %d bytes is not a P-256 point", ErrKeyType, len(v))
	}
	return ec, nil
}

// ecSigner signs digests with CKM_ECDSA over one session; Sign calls are
// serialised.
type ecSigner struct {
	mu   sync.Mutex
	s    *session
	priv pkcs11.ObjectHandle
	pub  *ecdsa.PublicKey
}

// Public returns the P-256 public key.
func (e *ecSigner) Public() crypto.PublicKey { return e.pub }

// Sign signs a SHA-256 digest. The token answers r||s (PKCS#11 v3.0
// section 6.3.1); Sign returns it as ASN.1 DER, as every ECDSA
// crypto.Signer does. rand is not used: the token draws its own nonce.
func (e *ecSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts != nil && opts.HashFunc() != 0 && opts.HashFunc() != crypto.SHA256 {
		return nil, fmt.Errorf("pkcs11: ES256 signs SHA-256 digests, not %v", opts.HashFunc())
	}
	if len(digest) != sha256.Size {
		return nil, fmt.Errorf("pkcs11: ES256 signs a 32-byte SHA-256 digest, got %d bytes", len(digest))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.s.ctx.SignInit(e.s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}, e.priv); err != nil {
		return nil, fmt.Errorf("pkcs11: C_SignInit CKM_ECDSA: %w", err)
	}
	rs, err := e.s.ctx.Sign(e.s.h, digest)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: C_Sign CKM_ECDSA: %w", err)
	}
	if len(rs) != 64 {
		return nil, fmt.Errorf("pkcs11: CKM_ECDSA answered %d bytes, want r||s of 64", len(rs))
	}
	return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(rs[:32]), new(big.Int).SetBytes(rs[32:])})
}
