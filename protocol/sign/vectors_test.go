package sign_test

import (
	"crypto"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veraison/go-cose"

	"edgeota/protocol"
	"edgeota/protocol/sign"
	"edgeota/test/golden"
)

// signVectorsPath holds the vectors of both algorithms, described in
// testdata/README.md.
var signVectorsPath = filepath.Join("testdata", "vectors.json")

// signVectorFile is the layout of testdata/vectors.json.
type signVectorFile struct {
	Comment string       `json:"comment"`
	Keys    []signKey    `json:"keys"`
	BadKeys []badKey     `json:"bad_keys"`
	Vectors []signVector `json:"vectors"`
}

// signKey is a key of the vectors: private is the Ed25519 seed or the
// P-256 scalar, public the raw form whose SHA-256 gives kid.
type signKey struct {
	Name    string `json:"name"`
	Alg     string `json:"alg"`
	Private string `json:"private"`
	Public  string `json:"public"`
	KID     string `json:"kid"`
}

// badKey is a raw public key every loader must refuse.
type badKey struct {
	Name string `json:"name"`
	Note string `json:"note"`
	Raw  string `json:"raw"`
}

type signVector struct {
	Name  string `json:"name"`
	Valid bool   `json:"valid"`
	Error string `json:"error,omitempty"`
	Note  string `json:"note,omitempty"`
	Hex   string `json:"hex"`
}

var errorClass = map[error]string{
	sign.ErrNotTagged: "not tagged", sign.ErrMalformed: "malformed COSE_Sign1", sign.ErrAlgorithm: "wrong algorithm",
	sign.ErrUnknownKey: "unknown kid", sign.ErrContentType: "wrong content type", sign.ErrSignature: "bad signature",
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readSignVectors(t testing.TB) signVectorFile {
	t.Helper()
	raw, err := os.ReadFile(signVectorsPath)
	if err != nil {
		t.Fatalf("%v (go test -run TestSignVectors -update creates it)", err)
	}
	var f signVectorFile
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// buildSignVectors makes the vector file: the Ed25519 vectors are the
// same bytes on every run, the ES256 ones carry fresh random signatures.
func buildSignVectors(t testing.TB) signVectorFile {
	edPriv, edPub := testKey()
	ec := testP256Key(t)
	ecRaw, _, _ := sign.RawPublicKey(ec.Public())
	var f signVectorFile
	f.Comment = "edgeota COSE_Sign1 vectors for EdDSA and ES256; see README.md beside this file"
	f.Keys = append(f.Keys,
		signKey{"ed25519", "EdDSA", hex.EncodeToString(seed), hex.EncodeToString(edPub), sign.KeyIDOf(edPub).String()},
		signKey{"p256", "ES256", hex.EncodeToString(p256Scalar), hex.EncodeToString(ecRaw), sign.KeyIDOf(ec.Public()).String()},
	)
	f.BadKeys = append(f.BadKeys,
		badKey{"p256-off-curve", "the p256 key's point with the last bit of Y flipped", hex.EncodeToString(offCurve(t))},
		badKey{"p256-compressed", "a compressed point (0x02/0x03 || X): the contract takes uncompressed points only", hex.EncodeToString(append([]byte{0x02 | ecRaw[64]&1}, ecRaw[1:33]...))},
		badKey{"p256-infinity", "0x04 followed by 64 zero bytes", hex.EncodeToString(append([]byte{0x04}, make([]byte, 64)...))},
	)
	edSigner, _ := sign.NewSigner(edPriv)
	ecSigner, _ := sign.NewSigner(ec)
	edMan, _ := edSigner.SignManifest(testManifest())
	ecMan, _ := ecSigner.SignManifest(testManifest())
	f.Vectors = append(f.Vectors,
		signVector{Name: "eddsa-manifest", Valid: true, Note: "deterministic: a conforming signer reproduces it", Hex: hex.EncodeToString(edMan)},
		signVector{Name: "es256-manifest", Valid: true, Note: "randomized signature: verify it, do not expect to reproduce it", Hex: hex.EncodeToString(ecMan)},
	)
	for _, b := range badEnvelopes(t) {
		f.Vectors = append(f.Vectors, signVector{Name: b.name, Error: errorClass[b.want], Note: b.note, Hex: hex.EncodeToString(b.in)})
	}
	return f
}

// TestSignVectors checks testdata/vectors.json: every vector verifies, or
// fails with its error class, against a manifest store holding both keys;
// valid ones verify under go-cose too; the keys, kids and Ed25519 vectors
// are reproduced byte for byte. With -update it writes a new file (the
// ES256 signatures change; review the rest of the diff).
func TestSignVectors(t *testing.T) {
	if u := flag.Lookup("update"); u != nil && u.Value.String() == "true" {
		out, err := json.MarshalIndent(buildSignVectors(t), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		golden.Check(t, signVectorsPath, append(out, '\n'))
	}
	f := readSignVectors(t)
	fresh := buildSignVectors(t)
	a, _ := json.Marshal(f.Keys)
	b, _ := json.Marshal(fresh.Keys)
	if string(a) != string(b) {
		t.Fatalf("keys differ from testdata:\n%s\n%s", a, b)
	}
	pubs := make([]crypto.PublicKey, len(f.Keys))
	for i, k := range f.Keys {
		var err error
		if pubs[i], err = sign.ParseRawPublicKey(mustHex(t, k.Public)); err != nil {
			t.Fatal(err)
		}
		if sign.KeyIDOf(pubs[i]).String() != k.KID {
			t.Fatalf("key %s: kid %s, file says %s", k.Name, sign.KeyIDOf(pubs[i]), k.KID)
		}
	}
	for _, k := range f.BadKeys {
		if _, err := sign.ParseRawPublicKey(mustHex(t, k.Raw)); !errors.Is(err, sign.ErrKey) {
			t.Errorf("bad key %s accepted: %v", k.Name, err)
		}
	}
	ts, err := sign.NewTrustStore(sign.RoleManifest, pubs...)
	if err != nil {
		t.Fatal(err)
	}
	freshHex := map[string]string{}
	for _, v := range fresh.Vectors {
		freshHex[v.Name] = v.Hex
	}
	want, _ := protocol.Marshal(testManifest())
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			in := mustHex(t, v.Hex)
			e, err := ts.Verify(in)
			switch {
			case v.Valid && err != nil:
				t.Fatalf("refused: %v", err)
			case v.Valid:
				if string(e.Payload) != string(want) {
					t.Fatalf("payload %x", e.Payload)
				}
				var msg cose.Sign1Message
				if err := msg.UnmarshalCBOR(in); err != nil {
					t.Fatal(err)
				}
				gv, _ := cose.NewVerifier(cose.Algorithm(e.Algorithm), pubs[map[sign.Algorithm]int{sign.EdDSA: 0, sign.ES256: 1}[e.Algorithm]])
				if err := msg.Verify(nil, gv); err != nil {
					t.Fatalf("go-cose refuses it: %v", err)
				}
			case err == nil:
				t.Fatalf("accepted, want %s", v.Error)
			default:
				var class string
				for sentinel, c := range errorClass {
					if errors.Is(err, sentinel) {
						class = c
					}
				}
				if class != v.Error {
					t.Fatalf("error %v (%s), want %s", err, class, v.Error)
				}
			}
			if strings.HasPrefix(v.Name, "eddsa-manifest") && freshHex[v.Name] != v.Hex {
				t.Fatalf("Ed25519 vector not reproduced byte for byte:\n%s\n%s", freshHex[v.Name], v.Hex)
			}
		})
	}
}
