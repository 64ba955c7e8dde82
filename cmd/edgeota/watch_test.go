package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"edgeota/protocol"
	"edgeota/test/mqttpeer"
	"edgeota/test/testutil"
)

// The documents of the watch tests, and their text lines.
var (
	watchReports = []protocol.HealthReport{
		{NodeID: "node-7", UptimeSeconds: 7200, RunningSeq: 42, ActiveSlot: protocol.SlotA, Inferences: 600, Errors: 3,
			LatencyP50Micros: 12000, LatencyP99Micros: 41000, CPUPermille: 350, RAMBytes: 176 << 10, BootCount: 3,
			Time: 1795000000, Number: 12, Metrics: map[string]int64{"low_confidence_permille": 12, "drift": -4}},
		{NodeID: "node-8", UptimeSeconds: 59, RunningSeq: 41, ActiveSlot: protocol.SlotB, Inferences: 1, Errors: 1,
			LatencyP50Micros: 950, LatencyP99Micros: 1049, CPUPermille: 5, RAMBytes: 900, BootCount: 1, Number: 1},
	}
	watchReportLines = []string{
		"gw-1 health node-7 boot 3 #12 seq 42 slot A: 600 inferences, 3 errors, p50 12.0ms p99 41.0ms, cpu 35.0%, ram 176 KiB, up 2h0m0s, drift -4, low_confidence_permille 12",
		"gw-1 health node-8 boot 1 #1 seq 41 slot B: 1 inference, 1 error, p50 1.0ms p99 1.0ms, cpu 0.5%, ram 900 B, up 59s",
	}
	watchEvents = []protocol.StatusEvent{
		{NodeID: "node-7", State: protocol.StateReverted, Seq: 42, Digest: protocol.Digest{0xab, 0xcd},
			Reason: "p99 93000 us over 80000", Code: protocol.ReasonProbationLatency, BootCount: 3, Number: 4},
		{NodeID: "node-8", State: protocol.StateDownloading, Seq: 43, BytesReceived: 40960, BootCount: 1, Number: 2},
		{NodeID: "node-9", State: protocol.StateProvisioned, Reason: "line\nbreak", BootCount: 1, Number: 1, Actor: "0123456789abcdef"},
	}
	watchEventLines = []string{
		"gw-1 event node-7 boot 3 #4: reverted seq 42 (probation latency: p99 93000 us over 80000)",
		"gw-1 event node-8 boot 1 #2: downloading seq 43, 40960 bytes received",
		`gw-1 event node-9 boot 1 #1: provisioned seq 0 ("line\nbreak") by 0123456789abcdef`,
	}
)

func mustMarshal(t testing.TB, doc any) []byte {
	t.Helper()
	b, err := protocol.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWatchPrint renders each kind of message, as text and as JSON,
// without a broker.
func TestWatchPrint(t *testing.T) {
	const pre = "edgeota/v1/gw/gw-1/"
	health, events := mustMarshal(t, watchReports), mustMarshal(t, watchEvents)
	tests := []struct {
		name     string
		topic    string
		payload  []byte
		retained bool
		text     []string // lines on stdout without --json
		kinds    []string // "kind" of each --json line
		warning  string   // in the log, instead of output
	}{
		{"health batch", pre + "health", health, false, watchReportLines, []string{"health", "health"}, ""},
		{"event batch", pre + "events", events, false, watchEventLines, []string{"event", "event", "event"}, ""},
		{"empty batch", pre + "health", []byte{0x80}, false, nil, nil, ""},
		{"rollout", pre + "rollouts/kws-1.4", []byte(`{ "phase": "wave", "wave": 2 }`), true,
			[]string{`gw-1 rollout kws-1.4: {"phase":"wave","wave":2} (retained)`}, []string{"rollout"}, ""},
		{"rollout cleared", pre + "rollouts/kws-1.4", nil, false, []string{"gw-1 rollout kws-1.4 cleared"}, []string{"rollout"}, ""},
		{"state retained", pre + "state", []byte("online"), true, []string{"gw-1 state online (retained)"}, []string{"state"}, ""},
		{"state", pre + "state", []byte("offline"), false, []string{"gw-1 state offline"}, []string{"state"}, ""},
		{"garbage health", pre + "health", []byte{0xff, 0x00}, false, nil, nil, "payload skipped"},
		{"report for events", pre + "events", health, false, nil, nil, "payload skipped"},
		{"one bad report", pre + "health", []byte{0x81, 0xa0}, false, nil, nil, "payload skipped"},
		{"rollout not JSON", pre + "rollouts/x", []byte("{"), false, nil, nil, "rollout status is not JSON"},
		{"unknown state", pre + "state", []byte("sleeping"), false, nil, nil, `state \"sleeping\"`},
		{"other topic", pre + "deployments/x", []byte("x"), false, nil, nil, "not a gateway topic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, asJSON := range []bool{false, true} {
				var out, logs bytes.Buffer
				p := &watchPrinter{out: &out, log: slog.New(slog.NewTextHandler(&logs, nil)), asJSON: asJSON}
				if err := p.print(tt.topic, tt.payload, tt.retained); err != nil {
					t.Fatal(err)
				}
				if tt.warning != "" {
					if out.Len() != 0 || !strings.Contains(logs.String(), tt.warning) || !strings.Contains(logs.String(), "topic="+tt.topic) {
						t.Fatalf("json=%v: stdout %q, log %q; want no output and a warning naming the topic and %q", asJSON, out.String(), logs.String(), tt.warning)
					}
					continue
				}
				if logs.Len() != 0 {
					t.Errorf("json=%v: unexpected log %q", asJSON, logs.String())
				}
				lines := splitLines(out.String())
				if !asJSON {
					if strings.Join(lines, "\n") != strings.Join(tt.text, "\n") {
						t.Errorf("text output:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(tt.text, "\n"))
					}
					continue
				}
				if len(lines) != len(tt.kinds) {
					t.Fatalf("%d JSON lines, want %d:\n%s", len(lines), len(tt.kinds), out.String())
				}
				for i, line := range lines {
					var m map[string]any
					if err := json.Unmarshal([]byte(line), &m); err != nil {
						t.Fatalf("line %d: %v: %s", i, err, line)
					}
					if m["gateway"] != "gw-1" || m["topic"] != tt.topic || m["kind"] != tt.kinds[i] {
						t.Errorf("line %d: header %v %v %v: %s", i, m["gateway"], m["topic"], m["kind"], line)
					}
					if r, ok := m["retained"]; ok != tt.retained || ok && r != true {
						t.Errorf("line %d: retained %v, want %v: %s", i, r, tt.retained, line)
					}
				}
			}
		})
	}
}

// TestWatchJSONFields checks that the JSON lines carry the fields of
// edgeota inspect (healthView, statusView) beside the header.
func TestWatchJSONFields(t *testing.T) {
	var out bytes.Buffer
	p := &watchPrinter{out: &out, log: slog.New(slog.DiscardHandler), topics: protocol.Topics{Prefix: "site/a"}, asJSON: true}
	for _, m := range []struct {
		topic   string
		payload []byte
	}{
		{"site/a/gw/gw-2/health", mustMarshal(t, watchReports[:1])},
		{"site/a/gw/gw-2/events", mustMarshal(t, watchEvents[:1])},
		{"site/a/gw/gw-2/rollouts/kws-1.4", []byte(`{"wave": 2}`)},
		{"site/a/gw/gw-2/rollouts/kws-1.4", nil},
		{"site/a/gw/gw-2/state", []byte("online")},
	} {
		if err := p.print(m.topic, m.payload, false); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		`{"gateway":"gw-2","topic":"site/a/gw/gw-2/health","kind":"health","node_id":"node-7","uptime_seconds":7200,"running_seq":42,"active_slot":"A","inferences":600,"errors":3,"latency_p50_us":12000,"latency_p99_us":41000,"cpu_permille":350,"ram_bytes":180224,"boot_count":3,"time":"2026-11-18T11:06:40Z","report_number":12,"metrics":{"drift":-4,"low_confidence_permille":12}}`,
		`{"gateway":"gw-2","topic":"site/a/gw/gw-2/events","kind":"event","node_id":"node-7","state":"reverted","seq":42,"digest":"abcd000000000000000000000000000000000000000000000000000000000000","reason":"p99 93000 us over 80000","bytes_received":0,"reason_code":"probation latency","boot_count":3,"event_number":4}`,
		`{"gateway":"gw-2","topic":"site/a/gw/gw-2/rollouts/kws-1.4","kind":"rollout","deployment":"kws-1.4","status":{"wave":2}}`,
		`{"gateway":"gw-2","topic":"site/a/gw/gw-2/rollouts/kws-1.4","kind":"rollout","deployment":"kws-1.4","status":null}`,
		`{"gateway":"gw-2","topic":"site/a/gw/gw-2/state","kind":"state","state":"online"}`,
	}
	got := splitLines(out.String())
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(got), len(want), out.String())
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
}

func TestWatchTextUnits(t *testing.T) {
	tests := []struct{ got, want string }{
		{millisText(0), "0.0ms"},
		{millisText(49), "0.0ms"},
		{millisText(50), "0.1ms"},
		{millisText(93000), "93.0ms"},
		{percentText(1000), "100.0%"},
		{bytesText(1023), "1023 B"},
		{bytesText(1024), "1 KiB"},
		{bytesText(10<<20 - 1), "10240 KiB"},
		{bytesText(3 << 19), "1536 KiB"},
		{bytesText(15 << 19), "7680 KiB"},
		{bytesText(25 << 19), "12.5 MiB"},
		{countText(0, "error"), "0 errors"},
		{quoteUnprintable("gw-1"), "gw-1"},
		{quoteUnprintable("a\x1b[2Jb"), `"a\x1b[2Jb"`},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestWatchUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing --mqtt", nil, "--mqtt URL is required"},
		{"stray argument", []string{"--mqtt", "tcp://h", "extra"}, "takes no arguments"},
		{"bad scheme", []string{"--mqtt", "http://h:1883"}, `scheme "http"`},
		{"no host", []string{"--mqtt", "tcp://"}, "want tcp://HOST"},
		{"credentials in URL", []string{"--mqtt", "tcp://u:p@h"}, "not in the URL"},
		{"path", []string{"--mqtt", "tcp://h/x"}, "no path"},
		{"bad gateway id", []string{"--mqtt", "tcp://h", "--gateway-id", "gw/1"}, "--gateway-id"},
		{"wildcard gateway id", []string{"--mqtt", "tcp://h", "--gateway-id", "+"}, "--gateway-id"},
		{"wildcard prefix", []string{"--mqtt", "tcp://h", "--mqtt-prefix", "a/#"}, "--mqtt-prefix"},
		{"TLS files on tcp", []string{"--mqtt", "tcp://h", "--mqtt-ca", "ca.pem"}, "need a TLS broker URL"},
		{"cert without key", []string{"--mqtt", "ssl://h", "--mqtt-cert", "c.pem"}, "go together"},
		{"two passwords", []string{"--mqtt", "tcp://h", "--mqtt-username", "u", "--mqtt-password", "p", "--mqtt-password-file", "f"}, "exclude each other"},
		{"password without user", []string{"--mqtt", "tcp://h", "--mqtt-password", "p"}, "needs --mqtt-username"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs, code := cli(t, append([]string{"watch"}, tt.args...)...)
			if code != 2 || !strings.Contains(errs, tt.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 mentioning %q", code, errs, tt.want)
			}
		})
	}
}

func TestWatchConnectFailure(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now
	_, errs, code := cli(t, "watch", "--mqtt", "tcp://127.0.0.1:"+strconv.Itoa(port))
	if code != 1 || !strings.Contains(errs, "connect to tcp://127.0.0.1:") {
		t.Fatalf("exit %d, stderr %q; want exit 1 and the connection error", code, errs)
	}
}

func TestWatchMosquitto(t *testing.T) {
	b := mqttpeer.Start(t)
	url := b.URL()
	const pre = "edgeota/v1/gw/gw-1/"
	// Retained before the watcher starts: it shows first, as retained,
	// and proves the subscription is in place.
	mqttpeer.Publish(t, url, pre+"state", []byte("online"), true)

	text := startWatch(t, "--mqtt", url)
	asJSON := startWatch(t, "--mqtt", url, "--gateway-id", "gw-1", "--json")
	text.waitFor(t, "gw-1 state online (retained)")
	asJSON.waitFor(t, `"state":"online"`)

	mqttpeer.Publish(t, url, pre+"health", mustMarshal(t, watchReports), false)
	mqttpeer.Publish(t, url, pre+"events", mustMarshal(t, watchEvents), false)
	mqttpeer.Publish(t, url, pre+"health", []byte("garbage"), false)
	mqttpeer.Publish(t, url, "edgeota/v1/gw/gw-2/state", []byte("online"), false)
	mqttpeer.Publish(t, url, pre+"rollouts/kws-1.4", []byte(`{"wave": 2}`), false)
	mqttpeer.Publish(t, url, pre+"state", []byte("offline"), false)

	text.waitFor(t, "gw-1 state offline")
	want := append(append(append([]string{"gw-1 state online (retained)"}, watchReportLines...), watchEventLines...),
		"gw-2 state online", `gw-1 rollout kws-1.4: {"wave":2}`, "gw-1 state offline")
	if got := splitLines(text.out.String()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("text output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if errs := text.errb.String(); !strings.Contains(errs, "payload skipped") || !strings.Contains(errs, "topic="+pre+"health") {
		t.Errorf("stderr does not report the garbage payload with its topic:\n%s", errs)
	}

	asJSON.waitFor(t, `"state":"offline"`)
	var kinds []string
	for _, line := range splitLines(asJSON.out.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %v: %s", err, line)
		}
		if m["gateway"] != "gw-1" {
			t.Errorf("--gateway-id gw-1 printed %s", line)
		}
		kinds = append(kinds, m["kind"].(string))
	}
	if got, want := strings.Join(kinds, " "), "state health health event event event rollout state"; got != want {
		t.Errorf("JSON kinds %q, want %q", got, want)
	}

	for _, w := range []*watchRun{text, asJSON} {
		if code := w.stop(t); code != 0 {
			t.Errorf("exit %d after cancel, want 0; stderr:\n%s", code, w.errb.String())
		}
	}
}

// TestWatchReconnects restarts the broker under a running watcher: it logs
// the outage, subscribes again and goes on printing.
func TestWatchReconnects(t *testing.T) {
	b := mqttpeer.Start(t)
	url := b.URL()
	const pre = "edgeota/v1/gw/gw-1/"
	mqttpeer.Publish(t, url, pre+"state", []byte("online"), true)
	w := startWatch(t, "--mqtt", url)
	w.waitFor(t, "gw-1 state online (retained)")

	b.Stop()
	w.waitForStderr(t, "connection to the broker lost")
	b.Restart() // from its persistence file: the retained state comes back
	w.waitForStderr(t, "reconnected and subscribed again")
	mqttpeer.Publish(t, url, pre+"events", mustMarshal(t, watchEvents[:1]), false)
	w.waitFor(t, watchEventLines[0])
	if code := w.stop(t); code != 0 {
		t.Errorf("exit %d, want 0; stderr:\n%s", code, w.errb.String())
	}
}

func splitLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// watchBuffer is a bytes.Buffer for concurrent writers and readers.
type watchBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *watchBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *watchBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// watchRun is an edgeota watch running in-process until stopped.
type watchRun struct {
	out, errb *watchBuffer
	cancel    context.CancelFunc
	exited    chan struct{}
	code      int // valid once exited is closed
}

func startWatch(t *testing.T, args ...string) *watchRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watchRun{out: new(watchBuffer), errb: new(watchBuffer), cancel: cancel, exited: make(chan struct{})}
	go func() {
		defer close(w.exited)
		w.code = run(ctx, append([]string{"watch"}, args...), strings.NewReader(""), w.out, w.errb)
	}()
	t.Cleanup(func() { w.stop(t) })
	return w
}

// stop cancels the command's context and returns its exit code.
func (w *watchRun) stop(t *testing.T) int {
	t.Helper()
	w.cancel()
	select {
	case <-w.exited:
	case <-time.After(testutil.DefaultCeiling):
		t.Fatal("edgeota watch did not stop after its context ended")
	}
	return w.code
}

func (w *watchRun) waitFor(t *testing.T, s string) { t.Helper(); w.wait(t, w.out, s) }

func (w *watchRun) waitForStderr(t *testing.T, s string) { t.Helper(); w.wait(t, w.errb, s) }

// wait polls buf until it contains s, failing after testutil's ceiling or
// when the command exits first.
func (w *watchRun) wait(t *testing.T, buf *watchBuffer, s string) {
	t.Helper()
	if !testutil.Poll(func() bool {
		select {
		case <-w.exited:
			t.Fatalf("edgeota watch exited (%d) before printing %q\nstdout:\n%s\nstderr:\n%s", w.code, s, w.out.String(), w.errb.String())
		default:
		}
		return strings.Contains(buf.String(), s)
	}) {
		t.Fatalf("no %q within %v\nstdout:\n%s\nstderr:\n%s", s, testutil.DefaultCeiling, w.out.String(), w.errb.String())
	}
}
