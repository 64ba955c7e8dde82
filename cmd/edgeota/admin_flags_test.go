package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"edgeota/gateway/admin"
	"edgeota/test/testutil"
)

// TestAdminTokenFileCreated: a missing token file is created, mode 0600,
// with 32 random bytes in hex; the log says so without the token; the
// next start reads the same token back.
func TestAdminTokenFileCreated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.token")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	tok, err := loadOrCreateToken(path, log)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := hex.DecodeString(tok); err != nil || len(b) != 32 {
		t.Fatalf("token %q: want 32 bytes in hex", tok)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", st.Mode().Perm())
	}
	if b, _ := os.ReadFile(path); string(b) != tok+"\n" {
		t.Errorf("file holds %q, want the token and a newline", b)
	}
	if !strings.Contains(logs.String(), "created the admin token file") || strings.Contains(logs.String(), tok) {
		t.Errorf("log %q: want the creation said, never the token", logs.String())
	}

	logs.Reset()
	again, err := loadOrCreateToken(path, log)
	if err != nil || again != tok {
		t.Fatalf("second start: %q, %v; want the same token", again, err)
	}
	if logs.Len() != 0 {
		t.Errorf("second start logged %q", logs.String())
	}
	if other, _ := loadOrCreateToken(filepath.Join(t.TempDir(), "other.token"), log); other == tok {
		t.Error("two token files got the same token")
	}
}

// TestAdminTokenFileRead: existing token files are trimmed; an empty one
// is refused, a loose mode warned about, a missing directory an error.
func TestAdminTokenFileRead(t *testing.T) {
	tests := []struct {
		name    string
		content string // "" with mode 0: no file, in a missing directory
		mode    os.FileMode
		want    string
		wantErr string
		wantLog string
	}{
		{"trimmed", "  0123456789abcdef0123\r\n\n", 0o600, "0123456789abcdef0123", "", ""},
		{"empty", " \n\t\n", 0o600, "", "is empty", ""},
		{"readable by the group", "0123456789abcdef0123\n", 0o640, "0123456789abcdef0123", "", "chmod 600"},
		{"readable by all", "0123456789abcdef0123\n", 0o644, "0123456789abcdef0123", "", "chmod 600"},
		{"missing directory", "", 0, "", "no such file or directory", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "admin.token")
			if tt.mode == 0 {
				path = filepath.Join(dir, "missing", "admin.token")
			} else {
				if err := os.WriteFile(path, []byte(tt.content), tt.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tt.mode); err != nil { // past the umask
					t.Fatal(err)
				}
			}
			var logs bytes.Buffer
			tok, err := loadOrCreateToken(path, slog.New(slog.NewTextHandler(&logs, nil)))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || tok != tt.want {
				t.Fatalf("%q, %v; want %q", tok, err, tt.want)
			}
			if !strings.Contains(logs.String(), tt.wantLog) || tt.wantLog == "" && logs.Len() > 0 {
				t.Errorf("log %q, want %q", logs.String(), tt.wantLog)
			}
			if strings.Contains(logs.String(), tok) {
				t.Error("the token was logged")
			}
		})
	}
}

// TestOperatorCommandsHaveAdminFlags: every command taking --admin URL
// also takes --token-file and --admin-ca.
func TestOperatorCommandsHaveAdminFlags(t *testing.T) {
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		if c.Flags().Lookup("admin") != nil && c.Name() != "gateway" {
			n++
			for _, f := range []string{"token-file", "admin-ca"} {
				if c.Flags().Lookup(f) == nil {
					t.Errorf("%s has --admin but no --%s", c.CommandPath(), f)
				}
			}
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newRootCmd())
	if n < 9 { // model push, model list, nodes, deploy apply, rollout x5, sim run
		t.Errorf("%d commands with --admin", n)
	}
}

const clientToken = "feedfacefeedfacefeedfacefeedface"

// tokenServer is an admin API answering GET /v1/nodes with an empty page,
// and other routes with [], to requests bearing clientToken, 401 to
// others.
func tokenServer(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+clientToken {
		w.Header().Set("WWW-Authenticate", "Bearer")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintln(w, `{"error": "the admin API requires a bearer token", "reason": "unauthorized"}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == admin.PathNodes {
		fmt.Fprintln(w, `{"nodes": [], "next": "", "total": 0}`)
		return
	}
	fmt.Fprintln(w, "[]")
}

func writeToken(t testing.TB, tok string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAdminClientToken: operator commands send --token-file as a bearer
// token, and a 401 says what to pass.
func TestAdminClientToken(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(tokenServer))
	defer srv.Close()
	right, wrong := writeToken(t, clientToken), writeToken(t, "0000000000000000000000000000000")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string // in stdout on success, stderr otherwise
	}{
		{"no token", []string{"nodes", "--admin", srv.URL, "--json"}, 1, "the gateway requires a token: pass --token-file (the gateway's --admin-token-file)"},
		{"wrong token", []string{"nodes", "--admin", srv.URL, "--token-file", wrong, "--json"}, 1, "refused the token in --token-file " + wrong},
		{"right token", []string{"nodes", "--admin", srv.URL, "--token-file", right, "--json"}, 0, "[]"},
		{"right token, model list", []string{"model", "list", "--admin", srv.URL, "--token-file", right, "--json"}, 0, "[]"},
		{"missing token file", []string{"nodes", "--admin", srv.URL, "--token-file", right + ".nope"}, 1, "--token-file"},
		{"empty token file", []string{"nodes", "--admin", srv.URL, "--token-file", writeToken(t, "")}, 1, "is empty"},
		{"CA for a plain URL", []string{"nodes", "--admin", srv.URL, "--admin-ca", right}, 2, "--admin-ca needs an https://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, code := cli(t, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.wantCode, out, errs)
			}
			got := errs
			if code == 0 {
				got = out
			}
			if !strings.Contains(got, tt.want) {
				t.Fatalf("%q does not say %q", got, tt.want)
			}
		})
	}
}

// TestAdminClientCA: an https:// admin URL with a certificate the system
// does not trust works with --admin-ca, and without it says to pass it;
// plain HTTP to a TLS port says to use https://.
func TestAdminClientCA(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(tokenServer))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes refused on purpose
	srv.StartTLS()
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "gateway.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	tok := writeToken(t, clientToken)
	if out := mustCLI(t, "nodes", "--admin", srv.URL, "--admin-ca", ca, "--token-file", tok, "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("output %q", out)
	}
	if _, errs, code := cli(t, "nodes", "--admin", srv.URL, "--token-file", tok); code != 1 || !strings.Contains(errs, "pass --admin-ca") {
		t.Fatalf("without --admin-ca: exit %d: %s", code, errs)
	}
	plain := "http://" + strings.TrimPrefix(srv.URL, "https://")
	if _, errs, code := cli(t, "nodes", "--admin", plain, "--token-file", tok); code != 1 || !strings.Contains(errs, "use --admin https://") {
		t.Fatalf("plain HTTP to HTTPS: exit %d: %s", code, errs)
	}
}

// gatewayArgs are a gateway command line on loopback with plain CoAP on a
// free port, whichever CoAP flags this build has.
func gatewayArgs(f fixture, admin string, more ...string) []string {
	args := []string{"gateway", "--data", filepath.Join(f.dir, "gw"), "--trust", f.pub, "--coap", "127.0.0.1:0", "--admin", admin}
	fl := newGatewayCmd().Flags()
	if fl.Lookup("insecure-udp") != nil {
		args = append(args, "--insecure-udp")
	}
	if fl.Lookup("coaps") != nil {
		args = append(args, "--coaps", "-")
	}
	return append(args, more...)
}

// TestGatewayAdminTokenFile: the gateway creates its token file on first
// start and reuses it on the next; operator commands get in with
// --token-file only; beyond loopback without a token it refuses to start.
func TestGatewayAdminTokenFile(t *testing.T) {
	f := newFixture(t)
	tokenFile := filepath.Join(f.dir, "admin.token")

	_, errs, code := cli(t, gatewayArgs(f, "0.0.0.0:0")...)
	if code != 1 || !strings.Contains(errs, "beyond loopback without a token") || !strings.Contains(errs, "--admin-token-file") {
		t.Fatalf("beyond loopback without a token: exit %d: %s", code, errs)
	}

	var first string
	for start := 1; start <= 2; start++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		ctx, cancel := context.WithCancel(context.Background())
		var out, errb bytes.Buffer
		done := make(chan int, 1)
		go func() {
			done <- run(ctx, gatewayArgs(f, addr, "--admin-token-file", tokenFile), strings.NewReader(""), &out, &errb)
		}()
		url := "http://" + addr
		waitHealthy(t, url, tokenFile, done)
		if _, errs, code := cli(t, "nodes", "--admin", url); code != 1 || !strings.Contains(errs, "pass --token-file") {
			t.Errorf("start %d without --token-file: exit %d: %s", start, code, errs)
		}
		mustCLI(t, "nodes", "--admin", url, "--token-file", tokenFile)
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("start %d: exit %d\n%s", start, code, errb.String())
		}
		tok, err := os.ReadFile(tokenFile)
		if err != nil {
			t.Fatal(err)
		}
		created := strings.Contains(errb.String(), "created the admin token file")
		if strings.Contains(errb.String(), strings.TrimSpace(string(tok))) {
			t.Errorf("start %d logged the token", start)
		}
		switch start {
		case 1:
			first = string(tok)
			if !created {
				t.Errorf("first start did not say it created the token file:\n%s", errb.String())
			}
		case 2:
			if created || string(tok) != first {
				t.Errorf("second start made a new token (said so: %v)", created)
			}
		}
	}
}

// waitHealthy waits until the gateway at url answers /healthz to the
// token in tokenFile, or its command ended.
func waitHealthy(t testing.TB, url, tokenFile string, done chan int) {
	t.Helper()
	deadline := time.Now().Add(testutil.DefaultCeiling)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if tok, err := os.ReadFile(tokenFile); err == nil {
			req, _ := http.NewRequest(http.MethodGet, url+admin.PathHealth, nil)
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
		}
		select {
		case code := <-done:
			t.Fatalf("the gateway ended with exit %d", code)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatal("the gateway did not answer /healthz")
		}
	}
}
