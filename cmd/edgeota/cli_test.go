package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cli runs one edgeota command line in-process.
func cli(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

// mustCLI runs a command line that must succeed.
func mustCLI(t testing.TB, args ...string) string {
	t.Helper()
	out, errs, code := cli(t, args...)
	if code != 0 {
		t.Fatalf("edgeota %s: exit %d\n%s", strings.Join(args, " "), code, errs)
	}
	return out
}

const testClass = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"

// fixture makes a key pair, an image and its signed manifest in a temp dir.
type fixture struct {
	dir, key, pub, image, manifest string
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	dir := t.TempDir()
	f := fixture{dir: dir, key: filepath.Join(dir, "op.key"), pub: filepath.Join(dir, "op.pub"),
		image: filepath.Join(dir, "model.bin"), manifest: filepath.Join(dir, "m.cose")}
	mustCLI(t, "keygen", "--out", filepath.Join(dir, "op"))
	img := bytes.Repeat([]byte("edgeota model bytes "), 4000)
	if err := os.WriteFile(f.image, img, 0o644); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "sign", "--key", f.key, "--image", f.image, "--component", "kws-model", "--version", "1.4.0",
		"--seq", "42", "--class", testClass, "--epoch", "1", "--probation-seconds", "600", "--min-inferences", "100",
		"--max-error-permille", "20", "--issued", "1795000000", "--out", f.manifest)
	return f
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown subcommand", []string{"deploy", "frobnicate"}, `unknown command "frobnicate" for "edgeota deploy"`},
		{"stray argument", []string{"keygen", "extra", "--out", "x"}, "takes no arguments"},
		{"unknown flag", []string{"keygen", "--outt", "x"}, "unknown flag: --outt"},
		{"missing argument", []string{"inspect"}, "wants one file"},
		{"too many arguments", []string{"verify", "--trust", "k", "a", "b"}, "got 2 argument(s)"},
		{"missing required flag", []string{"keygen"}, "--out NAME is required"},
		{"bad class", []string{"sign", "--key", "k", "--image", "i", "--component", "c", "--version", "v", "--seq", "1", "--class", "nope", "--out", "o"}, "--class"},
		{"time scale zero", []string{"gateway", "--sim", "--time-scale", "0"}, "--time-scale 0: want a positive number"},
		{"time scale negative", []string{"gateway", "--sim", "--time-scale", "-2"}, "--time-scale -2: want a positive number"},
		{"time scale without sim", []string{"gateway", "--time-scale", "60"}, "--time-scale 60 needs --sim"},
		{"seq zero", []string{"sign", "--key", "k", "--image", "i", "--component", "c", "--version", "v", "--seq", "0", "--class", testClass, "--out", "o"}, "--seq"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs, code := cli(t, tt.args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2 (usage); stderr:\n%s", code, errs)
			}
			if !strings.Contains(errs, tt.want) {
				t.Fatalf("stderr %q does not mention %q", errs, tt.want)
			}
		})
	}
}

func TestHelpOnEveryCommand(t *testing.T) {
	root := newRootCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" || c.Name() == "help" {
			continue
		}
		out := mustCLI(t, c.Name(), "--help")
		if !strings.Contains(out, "Usage:") || len(out) < 200 {
			t.Errorf("%s --help is too thin:\n%s", c.Name(), out)
		}
		for _, sub := range c.Commands() {
			out := mustCLI(t, c.Name(), sub.Name(), "--help")
			if !strings.Contains(out, "Usage:") || len(out) < 200 {
				t.Errorf("%s %s --help is too thin:\n%s", c.Name(), sub.Name(), out)
			}
		}
	}
}
