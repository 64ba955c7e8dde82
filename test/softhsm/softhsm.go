// Package softhsm gives tests a fresh SoftHSM2 token in a temporary
// directory: its own softhsm2.conf and token directory, pointed at by
// SOFTHSM2_CONF for the test's duration, a user PIN in a file, and
// pkcs11: URIs naming keys in it.
package softhsm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// modulePaths are where Debian's softhsm2 installs its PKCS#11 module.
var modulePaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
}

// The PINs of every token this package creates.
const (
	UserPIN = "1234"
	SOPIN   = "5678"
)

// Token is an initialised SoftHSM2 token.
type Token struct {
	// Label is the token's label.
	Label string
	// Module is the path of the SoftHSM2 PKCS#11 module.
	Module string
	// PINFile holds UserPIN.
	PINFile string
	// Dir is the temporary directory of the configuration and tokens.
	Dir string
}

// Module returns the SoftHSM2 module path, or skips the test when
// softhsm2 is not installed (fails it when CI is "true": make test
// installs it).
func Module(tb testing.TB) string {
	tb.Helper()
	_, err := exec.LookPath("softhsm2-util")
	for _, p := range modulePaths {
		if _, serr := os.Stat(p); serr == nil && err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		tb.Fatal("softhsm2 not found (Debian package softhsm2); CI needs it, make test installs it")
	}
	tb.Skip("softhsm2 not found (Debian package softhsm2; scripts/ensure-system-packages installs it)")
	return ""
}

// New creates a fresh token labelled label in a temporary directory and
// sets SOFTHSM2_CONF to its configuration for the rest of the test (so
// the test must not be parallel).
func New(tb testing.TB, label string) *Token {
	tb.Helper()
	mod := Module(tb)
	// Not tb.TempDir: SoftHSM2's configuration parser stops a value at
	// "=", which a benchmark's directory name may hold.
	dir, err := os.MkdirTemp("", "softhsm-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		tb.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		tb.Fatal(err)
	}
	tb.Setenv("SOFTHSM2_CONF", conf)
	out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label,
		"--pin", UserPIN, "--so-pin", SOPIN).CombinedOutput()
	if err != nil {
		tb.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	pin := filepath.Join(dir, "pin.txt")
	if err := os.WriteFile(pin, []byte(UserPIN+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return &Token{Label: label, Module: mod, PINFile: pin, Dir: dir}
}

// URI returns the pkcs11: URI of the key labelled object in the token,
// with the PIN read from PINFile.
func (t *Token) URI(object string) string {
	return fmt.Sprintf("pkcs11:token=%s;object=%s?module-path=%s&pin-source=file:%s", t.Label, object, t.Module, t.PINFile)
}
