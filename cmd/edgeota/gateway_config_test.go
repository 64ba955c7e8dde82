package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGatewayConfigFileErrors: a --config file the gateway cannot apply is
// a usage error (exit 2) that names the file, the line and the key, before
// anything starts. test/gateway_cli_e2e_test.go runs a gateway from a file.
func TestGatewayConfigFileErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", "data: gw\nrate-nodes: 7\n", []string{"gw.yaml: line 2: unknown key \"rate-nodes\"", "flag names of edgeota gateway"}},
		{"config in config", "config: other.yaml\n", []string{"line 1: unknown key \"config\""}},
		{"key given twice", "data: a\nrate-node: 1\ndata: b\n", []string{"line 3: key \"data\" given again (first on line 1)"}},
		{"not a mapping", "- data\n- gw\n", []string{"line 1: want a mapping of flag names to values"}},
		{"value of the wrong type", "rate-node: fast\n", []string{"line 1: rate-node:", "invalid syntax"}},
		{"mapping as a value", "trust:\n  a: b\n", []string{"line 2: trust: want a value or a list of values"}},
		{"not YAML", "data: [gw\n", []string{"gw.yaml: yaml:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "gw.yaml")
			if err := os.WriteFile(file, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, errs, code := cli(t, "gateway", "--config", file)
			if code != 2 {
				t.Fatalf("exit %d, want 2 (usage); stderr:\n%s", code, errs)
			}
			for _, w := range tt.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr does not say %q:\n%s", w, errs)
				}
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, errs, code := cli(t, "gateway", "--config", filepath.Join(t.TempDir(), "none.yaml"))
		if code != 2 || !strings.Contains(errs, "none.yaml") {
			t.Fatalf("exit %d, want 2 naming the file; stderr:\n%s", code, errs)
		}
	})
}
