package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"edgeota/gateway/admin"
	"edgeota/test/testutil"
)

// notifySocket listens where systemd would (NOTIFY_SOCKET, a Unix
// datagram socket) and hands every sd_notify message to the channel.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	msgs := make(chan string, 256)
	go func() {
		defer close(msgs)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	return path, msgs
}

// nextNotify returns the next sd_notify message other than WATCHDOG=1,
// counting the WATCHDOG=1 messages it skipped into *fed.
func nextNotify(t *testing.T, msgs <-chan string, fed *int) string {
	t.Helper()
	for {
		var m string
		var ok bool
		select {
		case m, ok = <-msgs:
		case <-time.After(30 * time.Second):
			t.Fatal("no sd_notify message within 30s")
		}
		if !ok {
			t.Fatal("the notify socket closed")
		}
		if m == "WATCHDOG=1" {
			*fed++
			continue
		}
		return m
	}
}

// TestGatewayUnderSystemd: the gateway as edgeota-gateway.service runs it
// (Type=notify, WatchdogSec, ExecReload=kill -HUP), with systemd's side
// played by the test: READY=1 once the admin API answers; WATCHDOG=1
// while it runs; on SIGHUP, RELOADING=1 and READY=1 around a reload that
// applies the new log level and the rotated admin token, logs a changed
// rate limit as waiting for a restart (and keeps serving the old one),
// and refuses a file that does not parse, keeping the running settings;
// STOPPING=1 when stopped, exit 0.
func TestGatewayUnderSystemd(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, dir, "keygen", "--out", "op")
	sock, msgs := notifySocket(t)
	coap, adminAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, "udp")), fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, "tcp"))
	base := "http://" + adminAddr
	const token1, token2 = "reload-test-token-one-0123456789", "reload-test-token-two-0123456789"
	tokenFile, conf := filepath.Join(dir, "admin.token"), filepath.Join(dir, "gw.yaml")
	write := func(name, s string) {
		t.Helper()
		if err := os.WriteFile(name, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	settings := func(level string, rateNode int) string {
		return fmt.Sprintf("data: gw\ntrust: [op.pub]\ninsecure-udp: true\ncoap: %q\ncoaps: \"-\"\nadmin: %q\n"+
			"admin-token-file: admin.token\nlog-format: json\nlog-level: %s\nrate-node: %d\n", coap, adminAddr, level, rateNode)
	}
	write(tokenFile, token1+"\n")
	write(conf, settings("info", 7))
	// WATCHDOG_USEC 1.5s: the gateway checks its housekeeping every 0.5s.
	p := startLoggedEnv(t, dir, "gateway", []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=1500000"}, "gateway", "--config", "gw.yaml")

	var fed int
	if m := nextNotify(t, msgs, &fed); m != "READY=1" {
		t.Fatalf("first sd_notify %q, want READY=1", m)
	}
	status := func(token string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+admin.PathNodes, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("the admin API after READY=1: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status(token1); got != http.StatusOK {
		t.Fatalf("the admin API with its token after READY=1: %d", got)
	}
	// At info level a refused request is not logged (it is at debug):
	// checked once the reload's own line, written later, has arrived.
	if got := status(token2); got != http.StatusUnauthorized {
		t.Fatalf("another token before the reload: %d, want 401", got)
	}
	testutil.Eventually(t, "WATCHDOG=1", func() bool {
		select {
		case m := <-msgs:
			if m != "WATCHDOG=1" {
				t.Fatalf("sd_notify %q before any reload, want WATCHDOG=1", m)
			}
			fed++
			return true
		default:
			return false
		}
	})

	// Rotate the token, raise the log level, change a rate limit: reload.
	write(tokenFile, token2+"\n")
	write(conf, settings("debug", 8))
	p.cmd.Process.Signal(syscall.SIGHUP)
	if m := nextNotify(t, msgs, &fed); !strings.HasPrefix(m, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Fatalf("sd_notify %q after SIGHUP, want RELOADING=1 with MONOTONIC_USEC", m)
	}
	if m := nextNotify(t, msgs, &fed); m != "READY=1" {
		t.Fatalf("sd_notify %q after RELOADING=1, want READY=1", m)
	}
	if got := status(token1); got != http.StatusUnauthorized {
		t.Errorf("the old token after the reload: %d, want 401", got)
	}
	if got := status(token2); got != http.StatusOK {
		t.Errorf("the new token after the reload: %d, want 200", got)
	}
	reloaded := logRecord(t, p, "configuration reloaded")
	if !slices.Equal(stringList(reloaded["applied"]), []string{"log-level"}) || !slices.Equal(stringList(reloaded["need_restart"]), []string{"rate-node"}) ||
		reloaded["admin_token_replaced"] != true {
		t.Errorf("reload log %v: want applied [log-level], need_restart [rate-node], admin_token_replaced", reloaded)
	}
	if w := logRecord(t, p, "setting changed: it takes effect at the next restart"); w["setting"] != "rate-node" || w["running"] != "7" || w["new"] != "8" {
		t.Errorf("restart warning %v, want rate-node 7 -> 8", w)
	}
	if rec := logRecord(t, p, "admin request refused"); rec["level"] != "DEBUG" {
		t.Errorf("after the reload to debug, the refused old token is logged as %v", rec)
	}
	if out := p.log.String(); strings.Index(out, "admin request refused") < strings.Index(out, `"configuration reloaded"`) {
		t.Error("a refused request was logged at debug before the reload, at log level info")
	}
	api, err := admin.NewClient(base, admin.WithToken(token2))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	metrics, err := api.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(metrics), `edgeota_limit{name="node_rate"} 7`) {
		t.Error("the node rate changed without a restart")
	}

	// A file that does not parse is refused whole.
	write(conf, "data: [gw\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	if m := nextNotify(t, msgs, &fed); !strings.HasPrefix(m, "RELOADING=1") {
		t.Fatalf("sd_notify %q after the second SIGHUP", m)
	}
	if m := nextNotify(t, msgs, &fed); m != "READY=1" {
		t.Fatalf("sd_notify %q after RELOADING=1, want READY=1", m)
	}
	if rec := logRecord(t, p, "reload refused: the running configuration stays"); rec["level"] != "ERROR" {
		t.Errorf("refusal logged as %v", rec)
	}
	if got := status(token2); got != http.StatusOK {
		t.Errorf("the token after a refused reload: %d, want 200", got)
	}

	p.stop()
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d after SIGINT, want 0", code)
	}
	if m := nextNotify(t, msgs, &fed); m != "STOPPING=1" {
		t.Fatalf("last sd_notify %q, want STOPPING=1", m)
	}
	t.Logf("WATCHDOG=1 sent %d times", fed)
}

// logRecord waits for a JSON log record of p whose msg is msg and
// returns the last one. The gateway writes it before the sd_notify
// message the test waited for, but its output reaches the test through a
// pipe, which may deliver it later than the datagram.
func logRecord(t *testing.T, p *loggedProc, msg string) map[string]any {
	t.Helper()
	var found map[string]any
	testutil.Eventually(t, fmt.Sprintf("the log record %q", msg), func() bool {
		for _, line := range strings.Split(p.log.String(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
				found = rec
			}
		}
		return found != nil
	})
	return found
}

// stringList reads a JSON array of strings (nil for anything else).
func stringList(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, e := range list {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}
