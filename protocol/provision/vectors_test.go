package provision

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"edgeota/protocol"
	"edgeota/protocol/sign"
	"edgeota/protocol/trust"
	"edgeota/test/golden"
)

// vectorFile is the layout of testdata/vectors.json (testdata/README.md).
type vectorFile struct {
	Comment       string   `json:"comment"`
	OperatorSeed  string   `json:"operator_seed"`
	OperatorKey   string   `json:"operator_public_key"`
	OperatorKID   string   `json:"operator_kid"`
	OtherSeed     string   `json:"other_seed"`
	ManifestSeed  string   `json:"manifest_seed"`
	FactorySecret string   `json:"factory_secret"`
	PSK           string   `json:"psk"`
	Vectors       []vector `json:"vectors"`
}

type vector struct {
	Name string `json:"name"`
	// Type is "bundle" (unsigned CBOR) or "signed-bundle" (COSE_Sign1).
	Type      string `json:"type"`
	Valid     bool   `json:"valid"`
	Canonical bool   `json:"canonical,omitempty"`
	Error     string `json:"error,omitempty"`
	Note      string `json:"note,omitempty"`
	Hex       string `json:"hex"`
	Diag      string `json:"diag,omitempty"`
}

var (
	operatorSeed  = bytes.Repeat([]byte{0x03}, ed25519.SeedSize)
	otherSeed     = bytes.Repeat([]byte{0x04}, ed25519.SeedSize)
	manifestSeed  = bytes.Repeat([]byte{0x01}, ed25519.SeedSize)
	factorySecret = seq(0x10, 32)
	testPSK       = seq(0xa0, 32)
)

func seq(from byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = from + byte(i)
	}
	return b
}

// sampleBundle is the bundle of the golden vectors, its PSK sealed with a
// fixed nonce (00 01 ... 0b) so that the bytes are reproducible.
func sampleBundle(t testing.TB) *Bundle {
	t.Helper()
	sealed, err := sealWith(bytes.NewReader(seq(0, NonceSize)), factorySecret, "node-0001", 7, testPSK)
	if err != nil {
		t.Fatal(err)
	}
	return &Bundle{
		Format:       Format,
		NodeID:       "node-0001",
		Serial:       7,
		Issued:       1795000000,
		Labels:       map[string]string{"region": "eu-west", "hw": "rev2"},
		Component:    "kws-model",
		Gateway:      "coaps://gw-1.example.net:5684",
		ManifestKeys: []ed25519.PublicKey{ed25519.NewKeyFromSeed(manifestSeed).Public().(ed25519.PublicKey)},
		OperatorKeys: []ed25519.PublicKey{ed25519.NewKeyFromSeed(operatorSeed).Public().(ed25519.PublicKey)},
		PSK:          sealed,
	}
}

func mustCBOR(t testing.TB, v any) []byte {
	t.Helper()
	b, err := encMode.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pairs returns the encoded key/value pairs of a deterministic map, in order.
func pairs(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var m map[uint64]cbor.RawMessage
	if err := cbor.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for k := uint64(0); k < 128; k++ {
		if v, ok := m[k]; ok {
			out = append(out, mustCBOR(t, k), v)
		}
	}
	return out
}

func rawMap(ps ...[]byte) []byte {
	out := []byte{0xa0 | byte(len(ps)/2)}
	for _, p := range ps {
		out = append(out, p...)
	}
	return out
}

func withPair(t testing.TB, b []byte, key uint64, val []byte) []byte {
	return rawMap(append(pairs(t, b), mustCBOR(t, key), val)...)
}

func edit(t testing.TB, b []byte, key uint64, val []byte) []byte {
	var out [][]byte
	ps := pairs(t, b)
	for i := 0; i < len(ps); i += 2 {
		switch {
		case !bytes.Equal(ps[i], mustCBOR(t, key)):
			out = append(out, ps[i], ps[i+1])
		case val != nil:
			out = append(out, ps[i], val)
		}
	}
	return rawMap(out...)
}

func handSign1(t testing.TB, priv ed25519.PrivateKey, protected map[int64]any, payload []byte) []byte {
	t.Helper()
	prot := mustCBOR(t, protected)
	sig := ed25519.Sign(priv, mustCBOR(t, []any{"Signature1", prot, []byte{}, payload}))
	return mustCBOR(t, cbor.Tag{Number: 18, Content: []any{prot, map[int64]any{}, payload, sig}})
}

func buildVectors(t testing.TB) vectorFile {
	op := ed25519.NewKeyFromSeed(operatorSeed)
	other := ed25519.NewKeyFromSeed(otherSeed)
	kid := sign.KeyIDOf(op.Public().(ed25519.PublicKey))
	sb := sampleBundle(t)
	b, err := Encode(sb)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := Sign(sb, op)
	if err != nil {
		t.Fatal(err)
	}
	otherSigned, _ := Sign(sb, other)
	flip := func(b []byte, i int) []byte {
		c := append([]byte(nil), b...)
		c[i] ^= 1
		return c
	}
	psk := pairs(t, mustCBOR(t, sb.PSK))
	indef := append([]byte{0xbf}, b[1:]...)
	indef = append(indef, 0xff)
	h := hex.EncodeToString
	v := []vector{
		{Name: "bundle", Type: "bundle", Valid: true, Canonical: true, Hex: h(b)},
		{Name: "bundle-unknown-optional-key", Type: "bundle", Valid: true, Note: "key 66 is optional and ignored", Hex: h(withPair(t, b, 66, mustCBOR(t, "future")))},
		{Name: "bundle-root-keys", Type: "bundle", Valid: true, Canonical: true, Note: "v1.3: key 64, the root keys of the node's first trust update, key 65 their threshold",
			Hex: h(withPair(t, withPair(t, b, 64, mustCBOR(t, []trust.Key{rootKey(t)})), 65, mustCBOR(t, 1)))},
		{Name: "bundle-root-key-alg-mismatch", Type: "bundle", Error: "invalid", Note: "v1.3: a root key of 32 bytes under alg -7 (ES256)",
			Hex: h(withPair(t, b, 64, mustCBOR(t, []trust.Key{{Alg: -7, Public: rootKey(t).Public}})))},
		{Name: "bundle-root-threshold-over", Type: "bundle", Error: "invalid", Note: "v1.3: threshold 2 of one root key",
			Hex: h(withPair(t, withPair(t, b, 64, mustCBOR(t, []trust.Key{rootKey(t)})), 65, mustCBOR(t, 2)))},
		{Name: "bundle-root-keys-not-array", Type: "bundle", Error: "malformed", Hex: h(withPair(t, b, 64, mustCBOR(t, "root")))},
		{Name: "bundle-unknown-critical-key", Type: "bundle", Error: "malformed", Note: "key 11 is below 64 and unknown", Hex: h(withPair(t, b, 11, mustCBOR(t, 1)))},
		{Name: "bundle-duplicate-serial", Type: "bundle", Error: "malformed", Hex: h(withPair(t, b, 3, mustCBOR(t, 8)))},
		{Name: "bundle-missing-psk", Type: "bundle", Error: "malformed", Hex: h(edit(t, b, 10, nil))},
		{Name: "bundle-indefinite-map", Type: "bundle", Error: "malformed", Hex: h(indef)},
		{Name: "bundle-float-serial", Type: "bundle", Error: "malformed", Hex: h(edit(t, b, 3, []byte{0xfb, 0x40, 0x1c, 0, 0, 0, 0, 0, 0}))},
		{Name: "bundle-tagged-serial", Type: "bundle", Error: "malformed", Hex: h(edit(t, b, 3, mustCBOR(t, cbor.Tag{Number: 2, Content: []byte{7}})))},
		{Name: "bundle-negative-serial", Type: "bundle", Error: "malformed", Hex: h(edit(t, b, 3, mustCBOR(t, -7)))},
		{Name: "bundle-serial-zero", Type: "bundle", Error: "invalid", Hex: h(edit(t, b, 3, mustCBOR(t, 0)))},
		{Name: "bundle-bad-label", Type: "bundle", Error: "invalid", Note: "label key with an upper-case letter", Hex: h(edit(t, b, 5, mustCBOR(t, map[string]string{"Region": "eu"})))},
		{Name: "bundle-http-gateway", Type: "bundle", Error: "invalid", Hex: h(edit(t, b, 7, mustCBOR(t, "http://gw-1.example.net")))},
		{Name: "bundle-short-manifest-key", Type: "bundle", Error: "malformed", Note: "a 31-byte key", Hex: h(edit(t, b, 8, mustCBOR(t, [][]byte{make([]byte, 31)})))},
		{Name: "bundle-no-operator-keys", Type: "bundle", Error: "invalid", Hex: h(edit(t, b, 9, mustCBOR(t, [][]byte{})))},
		{Name: "bundle-node-id-bstr", Type: "bundle", Error: "malformed", Hex: h(edit(t, b, 2, mustCBOR(t, []byte("node-0001"))))},
		{Name: "bundle-short-nonce", Type: "bundle", Error: "malformed", Hex: h(edit(t, b, 10, rawMap(psk[0], mustCBOR(t, make([]byte, 11)), psk[2], psk[3])))},
		{Name: "bundle-psk-unknown-critical-key", Type: "bundle", Error: "malformed", Hex: h(edit(t, b, 10, rawMap(append(psk, mustCBOR(t, 3), mustCBOR(t, 0))...)))},
		{Name: "bundle-text-key", Type: "bundle", Error: "malformed", Hex: h(rawMap(append(pairs(t, b), mustCBOR(t, "x"), mustCBOR(t, 1))...))},
		{Name: "bundle-trailing-byte", Type: "bundle", Error: "malformed", Hex: h(append(append([]byte(nil), b...), 0))},
		{Name: "signed-bundle", Type: "signed-bundle", Valid: true, Canonical: true, Hex: h(signed)},
		{Name: "signed-bundle-independent", Type: "signed-bundle", Valid: true, Note: "built from RFC 9052 by hand, not by go-cose",
			Hex: h(handSign1(t, op, map[int64]any{1: int64(-8), 3: ContentType, 4: kid[:]}, b))},
		{Name: "signed-bundle-payload-flipped", Type: "signed-bundle", Error: "bad signature", Hex: h(flip(signed, len(signed)-80))},
		{Name: "signed-bundle-other-key", Type: "signed-bundle", Error: "unknown kid", Hex: h(otherSigned)},
		{Name: "signed-bundle-as-manifest", Type: "signed-bundle", Error: "wrong content type",
			Hex: h(handSign1(t, op, map[int64]any{1: int64(-8), 3: protocol.ContentTypeManifest, 4: kid[:]}, b))},
		{Name: "signed-bundle-untagged", Type: "signed-bundle", Error: "not tagged", Hex: h(signed[1:])},
	}
	for i := range v {
		raw, _ := hex.DecodeString(v[i].Hex)
		if d, err := protocol.Diagnose(raw); err == nil {
			v[i].Diag = d
		}
	}
	return vectorFile{
		Comment:       "edgeota provisioning bundle test vectors; see README.md beside this file",
		OperatorSeed:  h(operatorSeed),
		OperatorKey:   h(op.Public().(ed25519.PublicKey)),
		OperatorKID:   kid.String(),
		OtherSeed:     h(otherSeed),
		ManifestSeed:  h(manifestSeed),
		FactorySecret: h(factorySecret),
		PSK:           h(testPSK),
		Vectors:       v,
	}
}

var errorClass = map[string]error{
	"malformed":          protocol.ErrMalformed,
	"invalid":            protocol.ErrInvalid,
	"not tagged":         sign.ErrNotTagged,
	"unknown kid":        sign.ErrUnknownKey,
	"wrong content type": sign.ErrContentType,
	"bad signature":      sign.ErrSignature,
}

func loadVectors(t testing.TB) vectorFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f vectorFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func operatorStore(t testing.TB) *sign.TrustStore {
	t.Helper()
	ts, err := sign.NewTrustStore(sign.RoleOperator, ed25519.NewKeyFromSeed(operatorSeed).Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// TestVectorsGolden checks that the encoder still produces exactly the
// committed vectors. Run with -update to rewrite them.
func TestVectorsGolden(t *testing.T) {
	out, err := json.MarshalIndent(buildVectors(t), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "vectors.json"), append(out, '\n'))
}

// TestVectorsDecode runs every committed vector through the decoder or the
// verifier, and the valid ones back through the encoder.
func TestVectorsDecode(t *testing.T) {
	f := loadVectors(t)
	ts := operatorStore(t)
	secret, _ := hex.DecodeString(f.FactorySecret)
	wantPSK, _ := hex.DecodeString(f.PSK)
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			b, err := hex.DecodeString(v.Hex)
			if err != nil {
				t.Fatal(err)
			}
			var got *Bundle
			var re []byte
			switch v.Type {
			case "bundle":
				if got, err = Decode(b); err == nil {
					re, err = Encode(got)
				}
			case "signed-bundle":
				got, _, err = Verify(b, ts)
				re = b
			default:
				t.Fatalf("unknown vector type %q", v.Type)
			}
			if v.Valid {
				if err != nil {
					t.Fatalf("valid vector refused: %v", err)
				}
				if v.Canonical && !bytes.Equal(re, b) {
					t.Fatalf("re-encoding differs:\n got %x\nwant %x", re, b)
				}
				psk, err := got.OpenPSK(secret)
				if err != nil || !bytes.Equal(psk, wantPSK) {
					t.Fatalf("psk = %x, %v; want %x", psk, err, wantPSK)
				}
				return
			}
			if err == nil {
				t.Fatalf("invalid vector (%s) accepted", v.Error)
			}
			want, ok := errorClass[v.Error]
			if !ok {
				t.Fatalf("vector names unknown error class %q", v.Error)
			}
			if !errors.Is(err, want) {
				t.Fatalf("error %v, want class %q", err, v.Error)
			}
		})
	}
}

// rootKey is the root key of the v1.3 vectors (seed all 0x05).
func rootKey(t testing.TB) trust.Key {
	k, err := trust.KeyOf(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x05}, ed25519.SeedSize)).Public())
	if err != nil {
		t.Fatal(err)
	}
	return k
}
