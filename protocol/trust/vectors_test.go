package trust

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"edgeota/protocol"
	"edgeota/protocol/sign"
	"edgeota/test/golden"
)

// vectorFile is the layout of testdata/vectors.json (testdata/README.md).
type vectorFile struct {
	Comment string `json:"comment"`
	// The anchor every signed vector is checked against: version 1, the
	// roots of seeds Root1Seed and Root2Seed, threshold 2.
	AnchorVersion   uint64   `json:"anchor_version"`
	AnchorThreshold uint64   `json:"anchor_threshold"`
	Root1Seed       string   `json:"root1_seed"`
	Root2Seed       string   `json:"root2_seed"`
	OtherSeed       string   `json:"other_seed"`
	ManifestSeed    string   `json:"manifest_seed"`
	DeploymentSeed  string   `json:"deployment_seed"`
	P256Scalar      string   `json:"p256_scalar"`
	Vectors         []vector `json:"vectors"`
}

type vector struct {
	Name string `json:"name"`
	// Type is "update" (unsigned CBOR) or "signed-update" (one COSE_Sign1
	// or an array of them, checked against the file's anchor).
	Type      string `json:"type"`
	Valid     bool   `json:"valid"`
	Canonical bool   `json:"canonical,omitempty"`
	Error     string `json:"error,omitempty"`
	Note      string `json:"note,omitempty"`
	Hex       string `json:"hex"`
	Diag      string `json:"diag,omitempty"`
}

func seedOf(b byte) []byte { return bytes.Repeat([]byte{b}, ed25519.SeedSize) }

var (
	root1Seed      = seedOf(0x05)
	root2Seed      = seedOf(0x06)
	otherSeed      = seedOf(0x02)
	manifestSeed   = seedOf(0x07)
	deploymentSeed = seedOf(0x08)
)

func pub(seed []byte) ed25519.PublicKey {
	return ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
}

func signer(t testing.TB, seed []byte) *sign.Signer {
	t.Helper()
	s, err := sign.NewSigner(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testAnchor is the anchor of the vectors: version 1, two roots, both must
// sign.
func testAnchor() Anchor {
	return Anchor{Version: 1, Roots: []Key{mustKey(pub(root1Seed)), mustKey(pub(root2Seed))}, Threshold: 2}
}

// sampleUpdate is version 2: a new manifest key, a deployment key, the
// same two roots, threshold 2.
func sampleUpdate() *Update {
	return &Update{Format: Format, Version: 2, Issued: 1795000000,
		ManifestKeys:   []Key{mustKey(pub(manifestSeed))},
		DeploymentKeys: []Key{mustKey(pub(deploymentSeed))},
		RootKeys:       []Key{mustKey(pub(root1Seed)), mustKey(pub(root2Seed))},
		Threshold:      2}
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

// edit replaces key's value in the map b (removes it when val is nil).
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

func withPair(t testing.TB, b []byte, key uint64, val []byte) []byte {
	return rawMap(append(pairs(t, b), mustCBOR(t, key), val)...)
}

// signRaw signs payload bytes as they are (even ones Encode would refuse).
func signRaw(t testing.TB, contentType string, payload []byte, seeds ...[]byte) []byte {
	t.Helper()
	envs := make([]cbor.RawMessage, len(seeds))
	for i, s := range seeds {
		b, err := signer(t, s).Sign(contentType, payload)
		if err != nil {
			t.Fatal(err)
		}
		envs[i] = b
	}
	if len(envs) == 1 {
		return envs[0]
	}
	return mustCBOR(t, envs)
}

func buildVectors(t testing.TB) vectorFile {
	u := sampleUpdate()
	b, err := Encode(u)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := Sign(u, signer(t, root1Seed), signer(t, root2Seed))
	if err != nil {
		t.Fatal(err)
	}
	replay := *u
	replay.Version = 1
	replayB, _ := Encode(&replay)
	other := *u
	other.Issued++
	otherB, _ := Encode(&other)
	keyMap := func(alg int64, key []byte) []byte { return mustCBOR(t, []Key{{Alg: alg, Public: key}}) }
	mk := pub(manifestSeed)
	flip := func(b []byte, i int) []byte {
		c := append([]byte(nil), b...)
		c[i] ^= 1
		return c
	}
	indef := append([]byte{0xbf}, b[1:]...)
	indef = append(indef, 0xff)
	first := signRaw(t, ContentType, b, root1Seed)
	h := hex.EncodeToString
	v := []vector{
		{Name: "update", Type: "update", Valid: true, Canonical: true, Hex: h(b)},
		{Name: "update-unknown-optional-key", Type: "update", Valid: true, Note: "key 64 is optional and ignored", Hex: h(withPair(t, b, 64, mustCBOR(t, "future")))},
		{Name: "update-unknown-critical-key", Type: "update", Error: "malformed", Note: "key 8 is below 64 and unknown", Hex: h(withPair(t, b, 8, mustCBOR(t, 1)))},
		{Name: "update-missing-threshold", Type: "update", Error: "malformed", Hex: h(edit(t, b, 7, nil))},
		{Name: "update-indefinite-map", Type: "update", Error: "malformed", Hex: h(indef)},
		{Name: "update-trailing-byte", Type: "update", Error: "malformed", Hex: h(append(append([]byte(nil), b...), 0))},
		{Name: "update-float-version", Type: "update", Error: "malformed", Hex: h(edit(t, b, 2, []byte{0xfb, 0x40, 0, 0, 0, 0, 0, 0, 0}))},
		{Name: "update-key-as-bstr", Type: "update", Error: "malformed", Note: "a manifest key given as a bare bstr, without its algorithm", Hex: h(edit(t, b, 4, mustCBOR(t, [][]byte{mk})))},
		{Name: "update-key-unknown-field", Type: "update", Error: "malformed", Note: "a key map with key 3",
			Hex: h(edit(t, b, 4, mustCBOR(t, []map[uint64]any{{1: int64(-8), 2: []byte(mk), 3: 0}})))},
		{Name: "update-no-manifest-key", Type: "update", Error: "invalid", Note: "would leave its holder with no manifest key", Hex: h(edit(t, b, 4, mustCBOR(t, []Key{})))},
		{Name: "update-alg-key-mismatch", Type: "update", Error: "invalid", Note: "alg EdDSA with a 33-byte key", Hex: h(edit(t, b, 4, keyMap(AlgEdDSA, append([]byte{2}, mk...))))},
		{Name: "update-alg-es256-ed25519-key", Type: "update", Error: "invalid", Note: "alg -7 (ES256) with a 32-byte Ed25519 key", Hex: h(edit(t, b, 4, keyMap(-7, mk)))},
		{Name: "update-es256-manifest-key", Type: "update", Valid: true, Canonical: true, Note: "an ES256 (P-256) manifest key beside the EdDSA one",
			Hex: h(edit(t, b, 4, mustCBOR(t, []Key{mustKey(pub(manifestSeed)), mustKey(p256Pub(t))})))},
		{Name: "update-es256-key-off-curve", Type: "update", Error: "invalid", Note: "a 65-byte point whose last byte is changed: not on P-256",
			Hex: h(edit(t, b, 4, keyMap(AlgES256, offCurve(t))))},
		{Name: "update-es256-key-compressed", Type: "update", Error: "invalid", Note: "a compressed 33-byte P-256 point",
			Hex: h(edit(t, b, 4, keyMap(AlgES256, compressed(t))))},
		{Name: "update-eddsa-p256-key", Type: "update", Error: "invalid", Note: "alg EdDSA with a P-256 point",
			Hex: h(edit(t, b, 4, keyMap(AlgEdDSA, mustKey(p256Pub(t)).Public)))},
		{Name: "update-version-zero", Type: "update", Error: "invalid", Hex: h(edit(t, b, 2, mustCBOR(t, 0)))},
		{Name: "update-threshold-over-roots", Type: "update", Error: "invalid", Hex: h(edit(t, b, 7, mustCBOR(t, 3)))},
		{Name: "update-duplicate-root", Type: "update", Error: "invalid", Hex: h(edit(t, b, 6, mustCBOR(t, []Key{mustKey(pub(root1Seed)), mustKey(pub(root1Seed))})))},
		{Name: "signed-update", Type: "signed-update", Valid: true, Canonical: true, Note: "an array of two COSE_Sign1, by root 1 and root 2", Hex: h(signed)},
		{Name: "signed-update-one-root", Type: "signed-update", Error: "not enough root signatures", Note: "one COSE_Sign1 by root 1; the threshold is 2", Hex: h(first)},
		{Name: "signed-update-unknown-root", Type: "signed-update", Error: "unknown kid", Note: "root 1 and a key that is not a root", Hex: h(signRaw(t, ContentType, b, root1Seed, otherSeed))},
		{Name: "signed-update-same-root-twice", Type: "signed-update", Error: "invalid", Hex: h(signRaw(t, ContentType, b, root1Seed, root1Seed))},
		{Name: "signed-update-replay", Type: "signed-update", Error: "trust version not above the current one", Note: "version 1, the anchor's", Hex: h(signRaw(t, ContentType, replayB, root1Seed, root2Seed))},
		{Name: "signed-update-two-payloads", Type: "signed-update", Error: "malformed", Hex: h(mustCBOR(t, []cbor.RawMessage{first, signRaw(t, ContentType, otherB, root2Seed)}))},
		{Name: "signed-update-as-manifest", Type: "signed-update", Error: "wrong content type", Hex: h(signRaw(t, protocol.ContentTypeManifest, b, root1Seed, root2Seed))},
		{Name: "signed-update-flipped", Type: "signed-update", Error: "bad signature", Hex: h(flip(signed, len(signed)-80))},
		{Name: "signed-update-untagged", Type: "signed-update", Error: "not tagged", Hex: h(first[1:])},
		{Name: "signed-update-empty-array", Type: "signed-update", Error: "malformed", Hex: "80"},
	}
	for i := range v {
		raw, _ := hex.DecodeString(v[i].Hex)
		if d, err := protocol.Diagnose(raw); err == nil {
			v[i].Diag = d
		}
	}
	a := testAnchor()
	return vectorFile{
		Comment:       "edgeota trust update test vectors; see README.md beside this file",
		AnchorVersion: a.Version, AnchorThreshold: a.Threshold,
		Root1Seed: h(root1Seed), Root2Seed: h(root2Seed), OtherSeed: h(otherSeed),
		ManifestSeed: h(manifestSeed), DeploymentSeed: h(deploymentSeed), P256Scalar: h(p256Seed),
		Vectors: v,
	}
}

var errorClass = map[string]error{
	"malformed":          protocol.ErrMalformed,
	"invalid":            protocol.ErrInvalid,
	"not tagged":         sign.ErrNotTagged,
	"unknown kid":        sign.ErrUnknownKey,
	"wrong content type": sign.ErrContentType,
	"bad signature":      sign.ErrSignature,
	ErrThreshold.Error(): ErrThreshold,
	ErrVersion.Error():   ErrVersion,
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

// TestVectorsGolden checks that the encoder and signer still produce
// exactly the committed vectors. Run with -update to rewrite them.
func TestVectorsGolden(t *testing.T) {
	out, err := json.MarshalIndent(buildVectors(t), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "vectors.json"), append(out, '\n'))
}

// TestVectorsDecode runs every committed vector through the decoder or the
// checker, and the valid ones back through the encoder.
func TestVectorsDecode(t *testing.T) {
	f := loadVectors(t)
	a := testAnchor()
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			raw, err := hex.DecodeString(v.Hex)
			if err != nil {
				t.Fatal(err)
			}
			var u *Update
			switch v.Type {
			case "update":
				u, err = Decode(raw)
			case "signed-update":
				var kids []sign.KeyID
				u, kids, err = a.Check(raw)
				if err == nil && len(kids) != 2 {
					t.Fatalf("signed by %d roots, want 2", len(kids))
				}
			default:
				t.Fatalf("unknown type %q", v.Type)
			}
			if !v.Valid {
				want, ok := errorClass[v.Error]
				if !ok {
					t.Fatalf("unknown error class %q", v.Error)
				}
				if !errors.Is(err, want) {
					t.Fatalf("got %v, want %q", err, v.Error)
				}
				return
			}
			if err != nil {
				t.Fatalf("valid vector refused: %v", err)
			}
			if v.Canonical {
				out, err := Encode(u)
				if err != nil {
					t.Fatal(err)
				}
				if v.Type == "update" && !bytes.Equal(out, raw) {
					t.Fatalf("re-encoded differs:\n got %x\nwant %x", out, raw)
				}
			}
		})
	}
}

func mustKey(pub crypto.PublicKey) Key {
	k, err := KeyOf(pub)
	if err != nil {
		panic(err)
	}
	return k
}

// p256Seed is the scalar of the P-256 key of the vectors.
var p256Seed = seedOf(0x0b)

func p256Pub(t testing.TB) *ecdsa.PublicKey {
	t.Helper()
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), p256Seed)
	if err != nil {
		t.Fatal(err)
	}
	return &k.PublicKey
}

func offCurve(t testing.TB) []byte {
	raw := append([]byte(nil), mustKey(p256Pub(t)).Public...)
	raw[64] ^= 1
	return raw
}

func compressed(t testing.TB) []byte {
	raw := mustKey(p256Pub(t)).Public
	return append([]byte{2 | raw[64]&1}, raw[1:33]...)
}
