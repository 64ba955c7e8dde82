//go:build cgo

package hsm

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/ThalesGroup/crypto11"
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

// oidEd25519 is CKA_EC_PARAMS for Ed25519: the DER of OID 1.3.101.112.
var oidEd25519 = []byte{0x06, 0x03, 0x2b, 0x65, 0x70}

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

// Close logs out, closes the session and unloads the module.
func (k *Key) Close() error { return k.close() }

// session is a logged-in session on the URI's token, through miekg/pkcs11.
type session struct {
	ctx  *pkcs11.Ctx
	slot uint
	h    pkcs11.SessionHandle
}

// openSession loads the module, finds the token, opens a read-write
// session and logs the user in.
func openSession(u *URI) (*session, error) {
	pin, err := u.PIN()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(u.ModulePath); err != nil {
		return nil, fmt.Errorf("%w: module-path %s: %v", ErrModule, u.ModulePath, err)
	}
	ctx := pkcs11.New(u.ModulePath)
	if ctx == nil {
		return nil, fmt.Errorf("%w: module-path %s is not a PKCS#11 library that dlopen can load", ErrModule, u.ModulePath)
	}
	if err := ctx.Initialize(); err != nil {
		ctx.Destroy()
		return nil, fmt.Errorf("%w: %s: C_Initialize: %v", ErrModule, u.ModulePath, err)
	}
	s := &session{ctx: ctx}
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
		return fail(fmt.Errorf("%w: no token labelled %q (serial %q) among %d in %s", ErrToken, u.Token, u.Serial, len(slots), u.ModulePath))
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

func (s *session) close() error {
	if s.h != 0 {
		_ = s.ctx.Logout(s.h)
		_ = s.ctx.CloseSession(s.h)
	}
	err := s.ctx.Finalize()
	s.ctx.Destroy()
	return err
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
		// crypto11 initialises the module itself, and a module is
		// initialised once per process: hand it over.
		s.close()
		return openECDSA(u)
	default:
		s.close()
		return nil, fmt.Errorf("%w: %s has CKA_KEY_TYPE %#x; edgeota signs with Ed25519 (CKK_EC_EDWARDS) or P-256 (CKK_EC)", ErrKeyType, u.what(), kt)
	}
}

// openECDSA opens the URI's ECDSA key through crypto11.
func openECDSA(u *URI) (*Key, error) {
	c, err := configure(u)
	if err != nil {
		return nil, err
	}
	k, err := c.FindKeyPair(u.ID, labelOf(u))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrNoObject, u.what(), err)
	}
	if _, alg, err := sign.RawPublicKey(k.Public()); err != nil || alg != sign.ES256 {
		c.Close()
		return nil, fmt.Errorf("%w: %s is an EC key not on P-256", ErrKeyType, u.what())
	}
	return &Key{Signer: k, close: c.Close}, nil
}

func labelOf(u *URI) []byte {
	if u.Object == "" {
		return nil
	}
	return []byte(u.Object)
}

func configure(u *URI) (*crypto11.Context, error) {
	pin, err := u.PIN()
	if err != nil {
		return nil, err
	}
	c, err := crypto11.Configure(&crypto11.Config{Path: u.ModulePath, TokenLabel: u.Token, TokenSerial: u.Serial, Pin: pin})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrModule, u.ModulePath, err)
	}
	return c, nil
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
	if alg == sign.ES256 {
		if err := s.require(pkcs11.CKM_EC_KEY_PAIR_GEN, "CKM_EC_KEY_PAIR_GEN (EC key generation)"); err != nil {
			s.close()
			return nil, err
		}
		s.close()
		c, err := configure(u)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		k, err := c.GenerateECDSAKeyPairWithLabel(id, []byte(u.Object), elliptic.P256())
		if err != nil {
			return nil, fmt.Errorf("pkcs11: generate P-256 key: %w", err)
		}
		pub, ok := k.Public().(*ecdsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%w: generated key is %T", ErrKeyType, k.Public())
		}
		return pub, nil
	}
	defer s.close()
	if err := s.require(ckmECEdwardsKeyPairGen, "CKM_EC_EDWARDS_KEY_PAIR_GEN (PKCS#11 3.0 Ed25519 key generation)"); err != nil {
		return nil, err
	}
	if err := s.require(ckmEdDSA, "CKM_EDDSA (PKCS#11 3.0 Ed25519 signing)"); err != nil {
		return nil, err
	}
	common := func(class uint) []*pkcs11.Attribute {
		return []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkECEdwards),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object),
			pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		}
	}
	pubT := append(common(pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, oidEd25519))
	privT := append(common(pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false))
	pubH, _, err := s.ctx.GenerateKeyPair(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(ckmECEdwardsKeyPairGen, nil)}, pubT, privT)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: generate Ed25519 key: %w", err)
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
