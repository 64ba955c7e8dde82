package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edgeota/gateway/admin"
	"edgeota/test/testutil"
)

// TestGatewayConfigFile: `edgeota gateway --config FILE` takes its settings
// from a YAML file whose keys are the flag names, a persistent flag
// (log-format) included; a flag on the command line wins over the file.
// (cmd/edgeota tests the file's errors.)
func TestGatewayConfigFile(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, dir, "keygen", "--out", "op")
	coap := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, "udp"))
	fileAdmin, flagAdmin := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, "tcp")), fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, "tcp"))
	conf := fmt.Sprintf(`# edgeota gateway settings
data: gw-data
trust: [op.pub]
insecure-udp: true
coap: %q
coaps: "-"
admin: %q
rate-node: 7
rate-source: 5
log-format: json
`, coap, fileAdmin)
	if err := os.WriteFile(filepath.Join(dir, "gw.yaml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startLogged(t, dir, "gateway", "gateway", "--config", "gw.yaml", "--admin", flagAdmin, "--rate-source", "99")
	waitHealthy(t, p, "http://"+flagAdmin) // --admin on the command line, not the file's
	limits := limitMetrics(t, "http://"+flagAdmin)
	for name, want := range map[string]string{
		"node_rate":   "7",  // from the file
		"source_rate": "99", // the command line over the file's 5
	} {
		if limits[name] != want {
			t.Errorf("edgeota_limit{name=%q} = %q, want %s; all: %v", name, limits[name], want, limits)
		}
	}
	p.stop()
	logLines(t, p.log.String()) // the file's log-format: json
}

// TestGatewayLogFormatJSON: with --log-format json every line the gateway
// writes, the embedded broker's included, is a JSON object with the time
// (RFC 3339), the level and the message (log/slog's JSON handler).
func TestGatewayLogFormatJSON(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, dir, "keygen", "--out", "op")
	coap, admin := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, "udp")), fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, "tcp"))
	p := startLogged(t, dir, "gateway", "gateway", "--data", "gw-data", "--trust", "op.pub", "--insecure-udp", "--coap", coap, "--coaps", "-",
		"--admin", admin, "--mqtt", "embedded", "--gateway-id", "gw1", "--log-format", "json")
	waitHealthy(t, p, "http://"+admin)
	testutil.Eventually(t, "the uplink to connect to the embedded broker", func() bool {
		return strings.Contains(p.log.String(), "broker connected")
	})
	p.stop()
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the gateway exited %d after SIGINT, want 0", code)
	}
	msgs := map[string]bool{}
	for _, l := range logLines(t, p.log.String()) {
		msgs[l.Msg] = true
	}
	for _, want := range []string{"gateway serving", "embedded MQTT broker listening", "broker connected"} {
		if !msgs[want] {
			t.Errorf("no %q among the log lines", want)
		}
	}
}

// logLine is a line of the gateway's log in JSON.
type logLine struct {
	Time  time.Time `json:"time"`
	Level string    `json:"level"`
	Msg   string    `json:"msg"`
}

// logLines parses every line of out as a JSON log line and fails the test
// on one that is not.
func logLines(t *testing.T, out string) []logLine {
	t.Helper()
	var lines []logLine
	for i, s := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		var l logLine
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("log line %d is not a JSON object (%v): %s", i+1, err, s)
		}
		switch {
		case l.Time.IsZero():
			t.Errorf("log line %d has no time: %s", i+1, s)
		case l.Level != "DEBUG" && l.Level != "INFO" && l.Level != "WARN" && l.Level != "ERROR":
			t.Errorf("log line %d has level %q: %s", i+1, l.Level, s)
		case l.Msg == "":
			t.Errorf("log line %d has no msg: %s", i+1, s)
		}
		lines = append(lines, l)
	}
	if len(lines) < 2 {
		t.Fatalf("%d log line(s), want the gateway's start at least:\n%s", len(lines), out)
	}
	return lines
}

// waitHealthy waits until the admin API at base answers /healthz, and fails
// the test if the process exits first.
func waitHealthy(t *testing.T, p *loggedProc, base string) {
	t.Helper()
	testutil.Eventually(t, "the gateway's admin API at "+base, func() bool {
		if p.exited() {
			t.Fatalf("the gateway exited:\n%s", p.log.String())
		}
		return adminUp(base)
	})
}

// limitMetrics reads the edgeota_limit gauges of the gateway's /metrics:
// name label to value, as exposed.
func limitMetrics(t *testing.T, base string) map[string]string {
	t.Helper()
	api, err := admin.NewClient(base)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testutil.DefaultCeiling)
	defer cancel()
	body, err := api.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(body), "\n") {
		rest, ok := strings.CutPrefix(line, `edgeota_limit{name="`)
		if !ok {
			continue
		}
		name, value, ok := strings.Cut(rest, `"} `)
		if ok {
			out[name] = value
		}
	}
	return out
}
