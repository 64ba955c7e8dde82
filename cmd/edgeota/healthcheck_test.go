package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgeota/gateway/admin"
)

// TestHealthcheck: 'edgeota healthcheck' exits 0 only when a gateway
// answers /healthz to its token with status ok, and 1, saying why, when
// the token is missing or wrong, nothing listens, the answer is an error
// or another status, or no answer comes within --timeout.
func TestHealthcheck(t *testing.T) {
	gw, token := startCLIGateway(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "admin.token")
	bad := filepath.Join(dir, "bad.token")
	if err := os.WriteFile(good, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("not-the-gateway-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	up := "http://" + gw.AdminAddr().String()

	// A port nothing listens on: one just closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "database closed", http.StatusServiceUnavailable)
	}))
	t.Cleanup(failing.Close)
	degraded := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"degraded"}`))
	}))
	t.Cleanup(degraded.Close)
	// A server that never answers until the test ends.
	release := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(silent.Close)
	t.Cleanup(func() { close(release) })

	tests := []struct {
		name     string
		args     []string
		code     int
		wantOut  string
		wantErrs string
	}{
		{"healthy", []string{"--admin", up, "--token-file", good}, 0, "ok: gateway (no uplink id) at " + up, ""},
		{"no token", []string{"--admin", up}, 1, "", "requires a token: pass --token-file"},
		{"wrong token", []string{"--admin", up, "--token-file", bad}, 1, "", "refused the token in --token-file"},
		{"nothing listens", []string{"--admin", closed, "--token-file", good}, 1, "", "connection refused"},
		{"error status", []string{"--admin", failing.URL, "--token-file", good}, 1, "", "503"},
		{"other status", []string{"--admin", degraded.URL, "--token-file", good}, 1, "", `answered status "degraded"`},
		{"no answer in time", []string{"--admin", silent.URL, "--token-file", good, "--timeout", "100ms"}, 1, "", "deadline exceeded"},
		{"missing token file", []string{"--admin", up, "--token-file", filepath.Join(dir, "none")}, 1, "", "no such file"},
		{"not a URL", []string{"--admin", "127.0.0.1:8080"}, 2, "", "want a URL"},
		{"no timeout", []string{"--admin", up, "--timeout", "0s"}, 2, "", "--timeout 0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, code := cli(t, append([]string{"healthcheck"}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errs)
			}
			if !strings.Contains(out, tt.wantOut) || tt.wantOut == "" && out != "" {
				t.Errorf("stdout %q, want %q", out, tt.wantOut)
			}
			if !strings.Contains(errs, tt.wantErrs) || tt.wantErrs == "" && errs != "" {
				t.Errorf("stderr %q, want %q", errs, tt.wantErrs)
			}
			if strings.Contains(out+errs, token) {
				t.Error("the output shows the token")
			}
		})
	}
}

// TestHealthcheckPath: the command asks the admin API's health route, the
// one the gateway serves without side effects.
func TestHealthcheckPath(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Method + " " + r.URL.Path + " " + r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"gateway_id":"gw-7","status":"ok","time_scale":1}`))
	}))
	t.Cleanup(srv.Close)
	tok := filepath.Join(t.TempDir(), "t")
	if err := os.WriteFile(tok, []byte("a-token-of-enough-length\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := mustCLI(t, "healthcheck", "--admin", srv.URL+"/", "--token-file", tok)
	if want := admin.RouteHealth.Method + " " + admin.PathHealth + " Bearer a-token-of-enough-length"; got != want {
		t.Fatalf("request %q, want %q", got, want)
	}
	if out != "ok: gateway gw-7 at "+srv.URL+"\n" {
		t.Fatalf("stdout %q", out)
	}
}
