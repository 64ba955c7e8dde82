package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgeota/protocol"
	"edgeota/protocol/sign"
)

func TestVerifyValid(t *testing.T) {
	f := newFixture(t)
	out := mustCLI(t, "verify", "--trust", f.pub, "--image", f.image, f.manifest)
	if !strings.Contains(out, "valid manifest") || !strings.Contains(out, "kws-model 1.4.0 seq 42") {
		t.Fatalf("output %q", out)
	}
	out = mustCLI(t, "verify", "--json", "--trust", f.pub, f.manifest)
	var res struct {
		Valid bool   `json:"valid"`
		Type  string `json:"type"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || !res.Valid || res.Type != "manifest" {
		t.Fatalf("json %q: %v", out, err)
	}
}

func TestVerifyReasons(t *testing.T) {
	f := newFixture(t)
	signed, _ := os.ReadFile(f.manifest)
	write := func(name string, b []byte) string {
		p := filepath.Join(f.dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flipped := append([]byte(nil), signed...)
	flipped[len(flipped)-80] ^= 0x04
	mustCLI(t, "keygen", "--out", filepath.Join(f.dir, "other"))
	otherImage := write("other.bin", []byte("another model"))
	sameSize := write("same-size.bin", bytes.Repeat([]byte("x"), 80000))
	priv, _ := readPrivateKey(f.key)
	s, _ := sign.NewSigner(priv)
	wrongCT, _ := s.Sign("application/cbor", []byte{0xa0})
	notManifest, _ := s.Sign(protocol.ContentTypeManifest, []byte{0xa1, 0x01, 0x01})
	tests := []struct {
		name   string
		args   []string
		reason string
	}{
		{"bad signature", []string{"--trust", f.pub, write("flip.cose", flipped)}, "bad signature"},
		{"unknown kid", []string{"--trust", filepath.Join(f.dir, "other.pub"), f.manifest}, "unknown kid"},
		{"not tagged", []string{"--trust", f.pub, write("untagged.cose", signed[1:])}, "not tagged"},
		{"malformed", []string{"--trust", f.pub, write("trunc.cose", signed[:40])}, "malformed CBOR"},
		{"wrong content type", []string{"--trust", f.pub, write("ct.cose", wrongCT)}, "wrong content type"},
		{"payload not a manifest", []string{"--trust", f.pub, write("notman.cose", notManifest)}, "malformed CBOR"},
		{"size mismatch", []string{"--trust", f.pub, "--image", otherImage, f.manifest}, "size mismatch"},
		{"digest mismatch", []string{"--trust", f.pub, "--image", sameSize, f.manifest}, "digest mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, code := cli(t, append([]string{"verify"}, tt.args...)...)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stdout %q stderr %q", code, out, errs)
			}
			lines := strings.Split(strings.TrimSpace(errs), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tt.reason) {
				t.Fatalf("stderr %q: want one line naming %q", errs, tt.reason)
			}
			out, _, code = cli(t, append([]string{"verify", "--json"}, tt.args...)...)
			var res struct {
				Valid  bool   `json:"valid"`
				Reason string `json:"reason"`
			}
			if code != 1 || json.Unmarshal([]byte(out), &res) != nil || res.Valid || res.Reason != tt.reason {
				t.Fatalf("--json: exit %d, %q", code, out)
			}
		})
	}
}

func TestVerifyWrongAlgorithmVector(t *testing.T) {
	// The committed vector signed-manifest-es256 names ES256 in its
	// protected header.
	raw, err := os.ReadFile(filepath.Join("..", "..", "protocol", "testdata", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vf struct {
		PublicKey string `json:"public_key"`
		Vectors   []struct{ Name, Hex string }
	}
	if err := json.Unmarshal(raw, &vf); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pubPEM, _ := sign.MarshalPublicKey(ed25519.PublicKey(mustHex(t, vf.PublicKey)))
	pubFile := filepath.Join(dir, "vec.pub")
	os.WriteFile(pubFile, pubPEM, 0o644)
	for _, v := range vf.Vectors {
		if v.Name != "signed-manifest-es256" {
			continue
		}
		p := filepath.Join(dir, "es256.cose")
		os.WriteFile(p, mustHex(t, v.Hex), 0o644)
		_, errs, code := cli(t, "verify", "--trust", pubFile, p)
		if code != 1 || !strings.Contains(errs, "wrong algorithm") {
			t.Fatalf("exit %d: %s", code, errs)
		}
		return
	}
	t.Fatal("vector signed-manifest-es256 not found")
}
