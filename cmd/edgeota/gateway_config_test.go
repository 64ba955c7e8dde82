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

// TestNodeConfigFile: 'edgeota node --config' reads the same kind of file
// as the gateway (the packaged edgeota-node@.service passes one): its keys
// are the node's flag names, and a key of another command is refused with
// its line.
func TestNodeConfigFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "node.yaml")
	if err := os.WriteFile(file, []byte("class: 6ba7b810-9dad-11d1-80b4-00c04fd430c8\nadmin: 127.0.0.1:8080\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errs, code := cli(t, "node", "--config", file, "--flash", filepath.Join(dir, "flash"))
	if code != 2 || !strings.Contains(errs, `node.yaml: line 2: unknown key "admin"`) || !strings.Contains(errs, "flag names of edgeota node") {
		t.Fatalf("exit %d, want 2 naming the key and its line; stderr:\n%s", code, errs)
	}
	// The file's class is taken: the node then asks for what is missing.
	if err := os.WriteFile(file, []byte("class: 6ba7b810-9dad-11d1-80b4-00c04fd430c8\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errs, code = cli(t, "node", "--config", file, "--flash", filepath.Join(dir, "flash"))
	if code != 2 || !strings.Contains(errs, "--trust") {
		t.Fatalf("exit %d, want 2 asking for --trust (the class came from the file); stderr:\n%s", code, errs)
	}
}
