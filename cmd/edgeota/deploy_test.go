package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDeploySignAndVerify(t *testing.T) {
	f := newFixture(t)
	spec := `id: kws-1.4.0
seq: 7
manifest: m.cose
target_cohort: region:us-east AND hw:rev2
waves:
  - {percent: 1, bake: 10m}
  - {percent: 100, bake: 0s}
gates: {max_failed: 2, max_error_rate: 0.02, max_latency_p99: 80ms, min_reports: 3}
on_failure: rollback
`
	yml := filepath.Join(f.dir, "rollout.yaml")
	os.WriteFile(yml, []byte(spec), 0o644)
	out := filepath.Join(f.dir, "rollout.cose")
	res := mustCLI(t, "deploy", "sign", "--key", f.key, yml, "--out", out)
	if !strings.Contains(res, "signed deployment kws-1.4.0 seq 7") {
		t.Fatalf("output %q", res)
	}
	v := mustCLI(t, "verify", "--trust", f.pub, "--image", f.image, out)
	if !strings.Contains(v, "valid deployment") {
		t.Fatalf("verify %q", v)
	}
	js := mustCLI(t, "inspect", out)
	var doc struct {
		Type     string
		Document struct {
			Waves []struct {
				Percent string `json:"percent"`
			} `json:"waves"`
			Gates struct {
				MaxErrorPermille int `json:"max_error_permille"`
				MaxP99           int `json:"max_latency_p99_us"`
			} `json:"gates"`
			Manifest struct {
				Document struct{ Version string } `json:"document"`
			} `json:"manifest"`
		}
	}
	if err := json.Unmarshal([]byte(js), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Document.Waves[0].Percent != "1" || doc.Document.Gates.MaxErrorPermille != 20 ||
		doc.Document.Gates.MaxP99 != 80000 || doc.Document.Manifest.Document.Version != "1.4.0" {
		t.Fatalf("inspect: %s", js)
	}

	// A deployment signed by a key the verifier does not trust for the
	// embedded manifest is refused.
	mustCLI(t, "keygen", "--out", filepath.Join(f.dir, "deployer"))
	out2 := filepath.Join(f.dir, "rollout2.cose")
	mustCLI(t, "deploy", "sign", "--key", filepath.Join(f.dir, "deployer.key"), yml, "--out", out2)
	_, errs, code := cli(t, "verify", "--trust", filepath.Join(f.dir, "deployer.pub"), out2)
	if code != 1 || !strings.Contains(errs, "embedded manifest") || !strings.Contains(errs, "unknown kid") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	mustCLI(t, "verify", "--trust", filepath.Join(f.dir, "deployer.pub"), "--trust", f.pub, out2)
}

func TestDeploySignRefusesBadYAML(t *testing.T) {
	f := newFixture(t)
	yml := filepath.Join(f.dir, "bad.yaml")
	os.WriteFile(yml, []byte("id: x\nseq: 1\nmanifest: m.cose\ntarget_cohort: '*'\nwaves:\n  - {percent: 50.125, bake: 1m}\n"), 0o644)
	_, errs, code := cli(t, "deploy", "sign", "--key", f.key, yml, "--out", filepath.Join(f.dir, "x.cose"))
	if code != 1 || !strings.Contains(errs, "line 6") || !strings.Contains(errs, "more than 2 decimals") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "x.cose")); err == nil {
		t.Fatal("output written for a bad spec")
	}
}
