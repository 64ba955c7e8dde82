package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edgeota/test/golden"
)

// TestInspectGolden renders every valid committed protocol vector and
// compares with testdata/inspect/NAME.json.
func TestInspectGolden(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "protocol", "testdata", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vf struct {
		Vectors []struct {
			Name, Hex string
			Valid     bool
		}
	}
	if err := json.Unmarshal(raw, &vf); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1795100000, 0)
	for _, v := range vf.Vectors {
		if !v.Valid {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			var warnings []string
			doc, err := inspectDocument(mustHex(t, v.Hex), "", func(f string, a ...any) { warnings = append(warnings, f) }, now)
			if err != nil {
				t.Fatal(err)
			}
			var sb strings.Builder
			if err := writeJSON(&sb, doc); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", "inspect", v.Name+".json"), []byte(sb.String()))
			if strings.HasPrefix(v.Name, "signed-") && len(warnings) == 0 {
				t.Error("no warning that the signature was not verified")
			}
		})
	}
}

func TestInspectCLI(t *testing.T) {
	f := newFixture(t)
	out, errs, code := cli(t, "inspect", f.manifest)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var doc struct {
		Type     string `json:"type"`
		Document struct {
			Digest    string `json:"digest"`
			SizeBytes int    `json:"size_bytes"`
			Class     string `json:"class"`
			Issued    string `json:"issued"`
		} `json:"document"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Type != "signed-manifest" || doc.Document.SizeBytes != 80000 || doc.Document.Class != testClass ||
		doc.Document.Issued != "2026-11-18T11:06:40Z" || len(doc.Document.Digest) != 64 {
		t.Fatalf("document %+v", doc)
	}
	if !strings.Contains(errs, "signature not verified") {
		t.Fatalf("stderr %q", errs)
	}
	// Hex text is accepted too.
	b, _ := os.ReadFile(f.manifest)
	hexFile := filepath.Join(f.dir, "m.hex")
	os.WriteFile(hexFile, []byte(strings.ToUpper(encodeHex(b))+"\n"), 0o644)
	out2 := mustCLI(t, "inspect", hexFile)
	if out2 != out {
		t.Fatalf("hex input gave\n%s", out2)
	}
	// Garbage is an error naming what was tried.
	junk := filepath.Join(f.dir, "junk")
	os.WriteFile(junk, []byte{0xa1, 0x01, 0x02}, 0o644)
	_, errs, code = cli(t, "inspect", junk)
	if code != 1 || !strings.Contains(errs, "not a protocol document") || !strings.Contains(errs, "as manifest") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	_, errs, code = cli(t, "inspect", "--type", "nonsense", junk)
	if code != 2 {
		t.Fatalf("--type nonsense: exit %d: %s", code, errs)
	}
}
