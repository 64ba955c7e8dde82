package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tokens records the admin tokens a reload sets, refusing short ones as
// the gateway does.
type tokens struct{ set []string }

func (s *tokens) SetAdminToken(t string) error {
	if t != "" && len(t) < 16 {
		return errors.New("admin token too short")
	}
	s.set = append(s.set, t)
	return nil
}

const (
	reloadToken1 = "first-token-0123456789"
	reloadToken2 = "second-token-0123456789"
)

// startReloader parses a gateway command line as the gateway does (the
// --config file applied under the command line's flags) and returns its
// reloader, the config file, the token file and the reloader's log.
func startReloader(t *testing.T, yaml string, args ...string) (r *gatewayReloader, cfg, tokenFile string, log *bytes.Buffer, set *tokens) {
	t.Helper()
	dir := t.TempDir()
	cfg, tokenFile = filepath.Join(dir, "gw.yaml"), filepath.Join(dir, "admin.token")
	writeFile(t, cfg, yaml)
	writeFile(t, tokenFile, reloadToken1+"\n")
	gw, _, err := newRootCmd().Find([]string{"gateway"})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.ParseFlags(append([]string{"--config", cfg, "--admin-token-file", tokenFile}, args...)); err != nil {
		t.Fatal(err)
	}
	cmdLine := commandLineFlags(gw.Flags())
	if err := applyConfigFile(gw, cfg); err != nil {
		t.Fatal(err)
	}
	_, level := leveledLogger(gw)
	log, set = &bytes.Buffer{}, &tokens{}
	r = newGatewayReloader(gw, cfg, cmdLine, reloadToken1, level, set, slog.New(slog.NewJSONHandler(log, nil)))
	return r, cfg, tokenFile, log, set
}

func writeFile(t testing.TB, name, s string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// reloadLog is the line a reload logs, or the error of a refused one.
type reloadLog struct {
	Msg         string   `json:"msg"`
	Applied     []string `json:"applied"`
	NeedRestart []string `json:"need_restart"`
	Replaced    bool     `json:"admin_token_replaced"`
	Setting     string   `json:"setting"`
	Err         string   `json:"err"`
}

func reloadLogs(t *testing.T, b *bytes.Buffer) []reloadLog {
	t.Helper()
	var out []reloadLog
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var l reloadLog
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, l)
	}
	return out
}

// TestGatewayReload: SIGHUP's reload applies the log level and a new or
// rotated admin token, logs every other changed setting as waiting for a
// restart, keeps the command line over the file, and refuses a file it
// cannot apply whole, leaving every running setting as it was.
func TestGatewayReload(t *testing.T) {
	const start = "data: gw\nrate-node: 7\nrate-source: 5\nlog-level: info\n"
	tests := []struct {
		name        string
		yaml        string // the file at the reload; "" keeps it
		token       string // the token file at the reload; "" keeps it
		wantLevel   slog.Level
		wantTokens  []string // tokens set
		wantApplied []string
		wantRestart []string
		wantErr     string // in the refusal; "" for none
	}{
		{name: "nothing changed", wantLevel: slog.LevelInfo},
		{name: "log level", yaml: strings.Replace(start, "info", "debug", 1), wantLevel: slog.LevelDebug, wantApplied: []string{"log-level"}},
		{name: "a rotated token", token: reloadToken2, wantLevel: slog.LevelInfo, wantTokens: []string{reloadToken2}},
		{name: "restart settings", yaml: "data: other\nrate-node: 8\nrate-source: 5\nlog-level: warn\n", wantLevel: slog.LevelWarn,
			wantApplied: []string{"log-level"}, wantRestart: []string{"data", "rate-node"}},
		{name: "the command line wins", yaml: strings.Replace(start, "rate-source: 5", "rate-source: 6", 1), wantLevel: slog.LevelInfo},
		{name: "a removed key takes its default", yaml: "data: gw\nrate-source: 5\n", wantLevel: slog.LevelInfo, wantRestart: []string{"rate-node"}},
		{name: "not YAML", yaml: "data: [gw\n", wantLevel: slog.LevelInfo, wantErr: "yaml"},
		{name: "an unknown key", yaml: start + "rate-nodes: 9\nlog-level-x: debug\n", wantLevel: slog.LevelInfo, wantErr: `unknown key "rate-nodes"`},
		{name: "a bad value", yaml: "data: gw\nrate-node: fast\nlog-level: debug\n", wantLevel: slog.LevelInfo, wantErr: "rate-node"},
		{name: "a bad log level", yaml: strings.Replace(start, "info", "loud", 1), wantLevel: slog.LevelInfo, wantErr: `log-level "loud"`},
		{name: "a short token refuses the whole reload", yaml: strings.Replace(start, "info", "debug", 1), token: "short-token",
			wantLevel: slog.LevelInfo, wantErr: "too short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, cfg, tokenFile, log, set := startReloader(t, start, "--rate-source", "99")
			if tt.yaml != "" {
				writeFile(t, cfg, tt.yaml)
			}
			if tt.token != "" {
				writeFile(t, tokenFile, tt.token+"\n")
			}
			r.reload()
			if got := r.level.Level(); got != tt.wantLevel {
				t.Errorf("log level %v, want %v", got, tt.wantLevel)
			}
			if !slices.Equal(set.set, tt.wantTokens) {
				t.Errorf("tokens set %q, want %q", set.set, tt.wantTokens)
			}
			logs := reloadLogs(t, log)
			last := logs[len(logs)-1]
			if tt.wantErr != "" {
				if last.Msg != "reload refused: the running configuration stays" || !strings.Contains(last.Err, tt.wantErr) {
					t.Fatalf("last log %+v, want a refusal saying %q", last, tt.wantErr)
				}
				return
			}
			if last.Msg != "configuration reloaded" {
				t.Fatalf("last log %+v, want configuration reloaded", last)
			}
			if !slices.Equal(last.Applied, tt.wantApplied) || !slices.Equal(last.NeedRestart, tt.wantRestart) {
				t.Errorf("applied %q, need restart %q; want %q and %q", last.Applied, last.NeedRestart, tt.wantApplied, tt.wantRestart)
			}
			if last.Replaced != (len(tt.wantTokens) > 0) {
				t.Errorf("admin_token_replaced %v", last.Replaced)
			}
			var warned []string
			for _, l := range logs {
				if l.Setting != "" {
					warned = append(warned, l.Setting)
				}
			}
			if !slices.Equal(warned, tt.wantRestart) {
				t.Errorf("warned of %q, want %q", warned, tt.wantRestart)
			}
		})
	}
}

// TestGatewayReloadTwice: a setting waiting for a restart is reported
// again at the next reload (it still waits); an applied one is not.
func TestGatewayReloadTwice(t *testing.T) {
	r, cfg, _, log, _ := startReloader(t, "data: gw\nrate-node: 7\n")
	writeFile(t, cfg, "data: gw\nrate-node: 8\nlog-level: debug\n")
	r.reload()
	log.Reset()
	r.reload()
	last := reloadLogs(t, log)
	l := last[len(last)-1]
	if len(l.Applied) != 0 || !slices.Equal(l.NeedRestart, []string{"rate-node"}) {
		t.Fatalf("second reload: applied %q, need restart %q; want none and [rate-node]", l.Applied, l.NeedRestart)
	}
}
