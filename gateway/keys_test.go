package gateway_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgeota/gateway"
)

func TestParseKeys(t *testing.T) {
	want := map[string][]byte{
		"node-1": []byte("secret-key-node-1-0123"),
		"node-2": {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
	}
	for _, tc := range []struct {
		file, err string
	}{
		{"good.csv", ""},
		{"good.json", ""},
		{"bad-header.csv", "want node_id,psk"},
		{"short-key.csv", "key of 5 bytes"},
		{"bad-hex.csv", "bad hex"},
		{"twice.csv", "named twice"},
		{"bad-id.csv", "does not match"},
		{"unknown-field.json", "unknown field"},
		{"three-fields.csv", "wrong number of fields"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", "keys", tc.file)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := gateway.ParseKeys(path, b)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				if got != nil {
					t.Fatalf("keys returned with an error: %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("got %d keys", len(got))
			}
			for n, k := range want {
				if !bytes.Equal(got[n], k) {
					t.Fatalf("%s: %x, want %x", n, got[n], k)
				}
			}
		})
	}
}

func TestImportKeysAllOrNothingAndLocked(t *testing.T) {
	dir := t.TempDir()
	changed, err := gateway.ImportKeys(dir, map[string][]byte{"a": []byte("0123456789abcdef"), "b": []byte("0123456789abcdef")})
	if err != nil || strings.Join(changed, ",") != "a,b" {
		t.Fatalf("first import: %v %v", changed, err)
	}
	// The same keys again change nothing; a new one for b changes b.
	changed, err = gateway.ImportKeys(dir, map[string][]byte{"a": []byte("0123456789abcdef"), "b": []byte("fedcba9876543210")})
	if err != nil || strings.Join(changed, ",") != "b" {
		t.Fatalf("second import: %v %v", changed, err)
	}
	// A running gateway holds the database.
	e := newEnv(t, opts{dir: dir})
	if _, err := gateway.ImportKeys(dir, map[string][]byte{"c": []byte("0123456789abcdef")}); !errors.Is(err, gateway.ErrGatewayRunning) {
		t.Fatalf("import while running: %v", err)
	}
	keys, err := e.api.Keys(ctxT(t))
	if err != nil || strings.Join(keys, ",") != "a,b" {
		t.Fatalf("keys: %v, %v", keys, err)
	}
}

func TestParsePSK(t *testing.T) {
	for in, want := range map[string]string{
		"plain-text-key\n":   "plain-text-key",
		"hex:4142":           "AB",
		"  hex:4142  \n":     "AB",
		"hexagonal-key-text": "hexagonal-key-text",
	} {
		got, err := gateway.ParsePSK(in)
		if err != nil || string(got) != want {
			t.Errorf("ParsePSK(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := gateway.ParsePSK("hex:4"); err == nil {
		t.Error("odd hex accepted")
	}
}
