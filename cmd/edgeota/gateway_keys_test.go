package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGatewayKeysImport(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "gw")
	good := filepath.Join(dir, "nodes.csv")
	os.WriteFile(good, []byte("node_id,psk\nn1,n1-pre-shared-key-01\nn2,hex:000102030405060708090a0b0c0d0e0f\n"), 0o600)
	out := mustCLI(t, "gateway", "keys", "import", "--data", data, good, "--json")
	var res struct {
		Imported int
		Changed  []string
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Imported != 2 || strings.Join(res.Changed, ",") != "n1,n2" {
		t.Fatalf("first import: %s %v", out, err)
	}
	// Again: nothing changed.
	if out := mustCLI(t, "gateway", "keys", "import", "--data", data, good); !strings.Contains(out, "imported 2 keys (0 new or changed)") {
		t.Fatalf("second import: %q", out)
	}
	// A file with one bad line imports nothing and says which line.
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("node_id,psk\nn3,n3-pre-shared-key-01\nn4,short\n"), 0o600)
	_, errs, code := cli(t, "gateway", "keys", "import", "--data", data, bad)
	if code != 1 || !strings.Contains(errs, "entry 2") || !strings.Contains(errs, "key of 5 bytes") {
		t.Fatalf("bad file: exit %d, %q", code, errs)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"gateway", "keys", "import", good}, "either --data DIR"},
		{[]string{"gateway", "keys", "import", "--data", data, "--admin", "http://127.0.0.1:1", good}, "either --data DIR"},
		{[]string{"gateway", "keys", "import", "--data", data}, "wants one key file"},
	} {
		if _, errs, code := cli(t, tc.args...); code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, %q", tc.args, code, errs)
		}
	}
}

func TestGatewayNeedsASecureOrAnExplicitlyInsecureListener(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--coap", "127.0.0.1:0"}, "--coap serves plain, unauthenticated CoAP: it needs --insecure-udp"},
		{[]string{"--coaps", "-"}, "leaves no CoAP service"},
		{[]string{"--max-body", "2048"}, "at most 1024 bytes"},
	} {
		args := append([]string{"gateway", "--data", filepath.Join(f.dir, "gw"), "--trust", f.pub, "--admin", "-"}, tc.args...)
		if _, errs, code := cli(t, args...); code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, %q", tc.args, code, errs)
		}
	}
}
