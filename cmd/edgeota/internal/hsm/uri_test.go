package hsm

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseURI(t *testing.T) {
	const mod = "?module-path=/usr/lib/softhsm/libsofthsm2.so"
	tests := []struct {
		name string
		in   string
		want URI
		err  string
	}{
		{"the issue's example", "pkcs11:token=edgeota;object=operator?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:pin.txt",
			URI{Token: "edgeota", Object: "operator", ModulePath: "/usr/lib/softhsm/libsofthsm2.so", PINSource: "pin.txt"}, ""},
		{"percent-encoded id and label", "pkcs11:token=my%20token;object=op%3Bkey;id=%01%ff;type=private" + mod + "&pin-value=1234",
			URI{Token: "my token", Object: "op;key", ID: []byte{0x01, 0xff}, ModulePath: "/usr/lib/softhsm/libsofthsm2.so", PINValue: "1234"}, ""},
		{"serial instead of token", "pkcs11:serial=abc;id=%02" + mod, URI{Serial: "abc", ID: []byte{2}, ModulePath: "/usr/lib/softhsm/libsofthsm2.so"}, ""},
		{"not pkcs11", "file:operator.key", URI{}, `does not start with "pkcs11:"`},
		{"missing module-path", "pkcs11:token=edgeota;object=operator?pin-source=file:pin.txt", URI{}, "no module-path"},
		{"unknown path attribute", "pkcs11:token=edgeota;object=operator;slot-description=x" + mod, URI{}, `unknown path attribute "slot-description"`},
		{"vendor attribute", "pkcs11:token=edgeota;object=operator;x-color=red" + mod, URI{}, `unknown path attribute "x-color"`},
		{"unknown query attribute", "pkcs11:token=edgeota;object=operator" + mod + "&module-name=softhsm2", URI{}, `unknown query attribute "module-name"`},
		{"no token", "pkcs11:object=operator" + mod, URI{}, "no token"},
		{"no object", "pkcs11:token=edgeota" + mod, URI{}, "no object"},
		{"public key type", "pkcs11:token=edgeota;object=operator;type=public" + mod, URI{}, "type=public"},
		{"twice", "pkcs11:token=a;token=b;object=o" + mod, URI{}, `"token" given twice`},
		{"both PINs", "pkcs11:token=a;object=o" + mod + "&pin-value=1&pin-source=p", URI{}, "both pin-source and pin-value"},
		{"bad escape", "pkcs11:token=a%2;object=o" + mod, URI{}, "percent-encoding"},
		{"not name=value", "pkcs11:token;object=o" + mod, URI{}, "not name=value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := ParseURI(tt.in)
			if tt.err != "" {
				if !errors.Is(err, ErrURI) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want ErrURI saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.raw = tt.in
			if u.Token != tt.want.Token || u.Serial != tt.want.Serial || u.Object != tt.want.Object || !bytes.Equal(u.ID, tt.want.ID) ||
				u.ModulePath != tt.want.ModulePath || u.PINSource != tt.want.PINSource || u.PINValue != tt.want.PINValue {
				t.Fatalf("got %+v, want %+v", *u, tt.want)
			}
		})
	}
}

func TestPIN(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pin.txt")
	if err := os.WriteFile(p, []byte("4321\r\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := ParseURI("pkcs11:token=t;object=o?module-path=/m.so&pin-source=file:" + p)
	if err != nil {
		t.Fatal(err)
	}
	if pin, err := u.PIN(); err != nil || pin != "4321" {
		t.Fatalf("PIN %q: %v", pin, err)
	}
	u.PINSource = filepath.Join(dir, "missing")
	if _, err := u.PIN(); !errors.Is(err, ErrPIN) {
		t.Fatalf("missing pin file: %v", err)
	}
	v, _ := ParseURI("pkcs11:token=t;object=o?module-path=/m.so&pin-value=s3cret")
	if s := v.String(); strings.Contains(s, "s3cret") || !strings.Contains(s, "pin-value=***") {
		t.Fatalf("String shows the PIN: %s", s)
	}
}

// FuzzParseURI: a parsed URI always names a module, a token and a key,
// and never both kinds of PIN.
func FuzzParseURI(f *testing.F) {
	f.Add("pkcs11:token=edgeota;object=operator?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:pin.txt")
	f.Add("pkcs11:serial=1;id=%01%02;type=private?module-path=/m.so&pin-value=1234")
	f.Add("pkcs11:token=a%2;object=o?module-path=/m")
	f.Fuzz(func(t *testing.T, in string) {
		u, err := ParseURI(in)
		if err != nil {
			if !errors.Is(err, ErrURI) {
				t.Fatalf("error %v does not wrap ErrURI", err)
			}
			return
		}
		if u.ModulePath == "" || (u.Token == "" && u.Serial == "") || (u.Object == "" && len(u.ID) == 0) || (u.PINSource != "" && u.PINValue != "") {
			t.Fatalf("accepted an incomplete URI %q: %+v", in, *u)
		}
	})
}
