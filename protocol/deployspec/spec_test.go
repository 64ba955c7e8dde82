package deployspec_test

import (
	"crypto/ed25519"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"edgeota/protocol"
	"edgeota/protocol/deployspec"
	"edgeota/protocol/sign"
)

var issued = time.Unix(1795000000, 0)

func signedManifest(t testing.TB) []byte {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	s, _ := sign.NewSigner(priv)
	b, err := s.SignManifest(&protocol.Manifest{Format: 1, Seq: 3, Component: "kws", Version: "1.0", Size: 10})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func reader(t testing.TB) deployspec.ReadFunc {
	m := signedManifest(t)
	return func(name string) ([]byte, error) {
		switch name {
		case "m.cose", "old.cose":
			return m, nil
		case "junk.cose":
			return []byte("junk"), nil
		}
		return nil, os.ErrNotExist
	}
}

const valid = `id: kws-1.4.0
seq: 7
manifest: m.cose
origin: https://models.example.com/kws.bin
target_cohort: region:us-east AND hw:rev2
waves:
  - {percent: 0.29, bake: 10m}
  - {percent: 25, bake: 30m}
  - {percent: 100, bake: 0s}
gates:
  max_failed: 2
  max_error_rate: 0.025
  max_latency_p99: 80ms
  max_latency_regression: 1.2
  min_reports: 3
  max_boot_loops: 0
  metrics: {low_confidence_permille: 50}
on_failure: rollback
node_timeout: 30m
max_concurrent: 20
gateways: [gw-1, gw-2]
expires: 72h
rollback_manifest: old.cose
`

func TestParseConvertsUnits(t *testing.T) {
	d, err := deployspec.Parse([]byte(valid), issued, reader(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []protocol.Wave{{BasisPoints: 29, BakeSeconds: 600}, {BasisPoints: 2500, BakeSeconds: 1800}, {BasisPoints: 10000}}
	for i, w := range want {
		if d.Waves[i].BasisPoints != w.BasisPoints || d.Waves[i].BakeSeconds != w.BakeSeconds {
			t.Errorf("wave %d = %+v, want %+v", i, d.Waves[i], w)
		}
	}
	g := d.Gates
	checks := []struct {
		name string
		got  *uint64
		want uint64
	}{
		{"max_failed", g.MaxFailed, 2}, {"max_error_rate", g.MaxErrorPermille, 25}, {"max_latency_p99", g.MaxLatencyP99Micros, 80000},
		{"max_latency_regression", g.MaxLatencyRegressionPermille, 1200}, {"min_reports", g.MinReports, 3}, {"max_boot_loops", g.MaxBootLoops, 0},
	}
	for _, c := range checks {
		if c.got == nil || *c.got != c.want {
			t.Errorf("%s = %v, want %d", c.name, c.got, c.want)
		}
	}
	if g.Metrics["low_confidence_permille"] != 50 {
		t.Errorf("metrics = %v", g.Metrics)
	}
	if d.OnFailure != protocol.FailureRollback || d.NodeTimeoutSeconds != 1800 || d.MaxConcurrent != 20 ||
		d.Issued != 1795000000 || d.Expires != 1795000000+72*3600 || len(d.Gateways) != 2 || len(d.RollbackManifest) == 0 {
		t.Errorf("deployment = %+v", d)
	}
	if _, err := protocol.Marshal(d); err != nil {
		t.Fatal(err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, old, new, want string
	}{
		{"unknown top-level field", "seq: 7\n", "seq: 7\nsqe: 8\n", "line 3: field sqe not found"},
		{"unknown wave field", "{percent: 25, bake: 30m}", "{percent: 25, bak: 30m}", "line 8: unknown field \"bak\""},
		{"unknown gate", "  min_reports: 3\n", "  min_report: 3\n", "line 15: unknown field \"min_report\""},
		{"three decimals in a percent", "percent: 0.29,", "percent: 0.295,", "line 7: percent \"0.295\" has more than 2 decimals"},
		{"waves not increasing", "{percent: 25, bake: 30m}", "{percent: 0.2, bake: 30m}", "line 8: wave 2: percent 0.2 is not above"},
		{"waves not ending at 100", "{percent: 100, bake: 0s}", "{percent: 99.99, bake: 0s}", "line 9: the last wave must reach percent 100"},
		{"percent over 100", "{percent: 100, bake: 0s}", "{percent: 101, bake: 0s}", "line 9: wave 3: percent 101"},
		{"bad cohort", "region:us-east AND hw:rev2", "region:us-east AND", "line 5: target_cohort"},
		{"bad duration", "node_timeout: 30m", "node_timeout: 30 minutes", "line 19: node_timeout \"30 minutes\""},
		{"bad bake", "bake: 10m}", "bake: soon}", "line 7: bake \"soon\""},
		{"error rate over 1", "max_error_rate: 0.025", "max_error_rate: 1.5", "line 12: max_error_rate 1.5"},
		{"four decimals in a rate", "max_error_rate: 0.025", "max_error_rate: 0.0255", "more than 3 decimals"},
		{"sub-microsecond latency", "max_latency_p99: 80ms", "max_latency_p99: 80ns", "whole microseconds"},
		{"bad on_failure", "on_failure: rollback", "on_failure: panic", "line 18: on_failure \"panic\""},
		{"missing manifest file", "manifest: m.cose", "manifest: nope.cose", "line 3: manifest"},
		{"manifest not signed", "manifest: m.cose", "manifest: junk.cose", "not a tagged COSE_Sign1"},
		{"bad id", "id: kws-1.4.0", "id: kws 1.4.0", "line 1: id"},
		{"zero seq", "seq: 7", "seq: 0", "line 2: seq must be at least 1"},
		{"missing waves", "waves:\n", "wavez:\n", "field wavez not found"},
		{"origin not http", "origin: https://", "origin: ftp://", "line 4: origin"},
		{"bad gateway", "[gw-1, gw-2]", "[gw-1, \"gw 2\"]", "gateway id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(valid, tt.old) {
				t.Fatalf("test case edits %q, which the valid spec does not contain", tt.old)
			}
			src := strings.Replace(valid, tt.old, tt.new, 1)
			_, err := deployspec.Parse([]byte(src), issued, reader(t))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, deployspec.ErrSpec) && !strings.Contains(tt.name, "manifest") {
				t.Errorf("error %v does not wrap ErrSpec", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	src := "id: d1\nseq: 1\nmanifest: m.cose\ntarget_cohort: '*'\nwaves: [{percent: 100}]\n"
	d, err := deployspec.Parse([]byte(src), issued, reader(t))
	if err != nil {
		t.Fatal(err)
	}
	if d.OnFailure != protocol.FailurePause || d.NodeTimeoutSeconds != 1800 || d.MaxConcurrent != 20 || d.Expires-d.Issued != 72*3600 {
		t.Fatalf("defaults = %+v", d)
	}
}
