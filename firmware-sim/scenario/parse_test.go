package scenario_test

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"edgeota/firmware-sim/scenario"
)

// full is a valid scenario using every field.
const full = `name: good-rollout
description: 200 nodes, 10% loss, a good model to 100%
seed: 42
time_scale: 60
duration: 30m
inference_rate: 2
health_interval: 30s
fleet:
  - count: 150
    labels: {region: us-east, hw: rev2}
  - count: 50
    labels: {region: us-east, hw: rev1}
    download: lock-step
link:
  loss: 0.10
  latency: 20ms
  jitter: 10ms
  duplicate: 0.01
  reorder: 0.01
  bandwidth: 250000
models:
  - name: v1
    version: 1.0.0
    behaviour: "error_permille=2 p50_us=8000 p99_us=20000"
    size: 32768
  - name: v2
    version: 1.4.0
    probation: {seconds: 60, min_inferences: 20, max_error_permille: 50, max_p99_us: 80000}
  - name: v3
    version: 2.0.0-bad
    behaviour: "error_permille=300"
    probation: {}
initial: v1
deployments:
  - id: rollout-v2
    at: 1m
    model: v2
    cohort: "hw:rev2"
    waves: [{percent: 10, bake: 2m}, {percent: 100, bake: 2m}]
    gates: {max_failed: 0, max_error_rate: 0.05, max_latency_p99: 80ms, min_reports: 2, max_boot_loops: 0, metrics: {low_confidence_permille: 50}}
    on_failure: rollback
    node_timeout: 20m
    max_concurrent: 50
  - id: bad-v3
    at: 10m
    model: v3
    waves: [{percent: 0.5}, {percent: 100}]
faults:
  - {at: 3m, kind: power-cut, nodes: 10%}
  - {at: 5m, kind: gateway-restart}
  - {at: 4m, kind: broker-outage, for: 1m}
  - {at: 2m, kind: link-outage, for: 30s, nodes: 20.5%}
  - {at: 2m, kind: reboot, nodes: 5}
expect:
  - {kind: all-run, cohort: "hw:rev2", model: v2}
  - {kind: none-run, model: v3}
  - {kind: no-unbootable}
  - {kind: rollout, deployment: rollout-v2, phase: completed}
  - {kind: rollout, deployment: bad-v3, phase: rolled-back, max_wave: 1, name: bad model contained}
  - {kind: health-delivered}
`

func u64(v uint64) *uint64 { return &v }

func TestParseFull(t *testing.T) {
	s, err := scenario.Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	want := &scenario.Scenario{
		Name:           "good-rollout",
		Description:    "200 nodes, 10% loss, a good model to 100%",
		Seed:           42,
		TimeScale:      60,
		Duration:       30 * time.Minute,
		InferenceRate:  2,
		HealthInterval: 30 * time.Second,
		Transport:      "udp",
		Provision:      "none",
		Fleet: []scenario.Group{
			{Count: 150, Labels: map[string]string{"region": "us-east", "hw": "rev2"}, Download: "q-block"},
			{Count: 50, Labels: map[string]string{"region": "us-east", "hw": "rev1"}, Download: "lock-step"},
		},
		Link: scenario.Link{Loss: 0.10, Latency: 20 * time.Millisecond, Jitter: 10 * time.Millisecond,
			Duplicate: 0.01, Reorder: 0.01, Bandwidth: 250000},
		Models: []scenario.Model{
			{Name: "v1", Version: "1.0.0", Behaviour: "error_permille=2 p50_us=8000 p99_us=20000", Size: 32768},
			{Name: "v2", Version: "1.4.0", Size: 32768, Probation: &scenario.Probation{
				Seconds: 60, MinInferences: 20, MaxErrorPermille: u64(50), MaxP99Micros: u64(80000)}},
			{Name: "v3", Version: "2.0.0-bad", Behaviour: "error_permille=300", Size: 32768,
				Probation: &scenario.Probation{Seconds: 60, MinInferences: 20}},
		},
		Initial: "v1",
		Deployments: []scenario.Deployment{
			{
				ID: "rollout-v2", At: time.Minute, Model: "v2", Cohort: "hw:rev2",
				Waves: []scenario.Wave{{BasisPoints: 1000, BakeSeconds: 120}, {BasisPoints: 10000, BakeSeconds: 120}},
				Gates: scenario.Gates{MaxFailed: u64(0), MaxErrorPermille: u64(50), MaxLatencyP99Micros: u64(80000),
					MinReports: u64(2), MaxBootLoops: u64(0), Metrics: map[string]int64{"low_confidence_permille": 50}},
				OnFailure: "rollback", NodeTimeout: 20 * time.Minute, MaxConcurrent: 50,
			},
			{
				ID: "bad-v3", At: 10 * time.Minute, Model: "v3", Cohort: "*",
				Waves:     []scenario.Wave{{BasisPoints: 50}, {BasisPoints: 10000}},
				OnFailure: "pause", NodeTimeout: 30 * time.Minute, MaxConcurrent: 20,
			},
		},
		Faults: []scenario.Fault{
			{At: 3 * time.Minute, Kind: "power-cut", Nodes: scenario.Selector{Percent: 1000}},
			{At: 5 * time.Minute, Kind: "gateway-restart"},
			{At: 4 * time.Minute, Kind: "broker-outage", For: time.Minute},
			{At: 2 * time.Minute, Kind: "link-outage", For: 30 * time.Second, Nodes: scenario.Selector{Percent: 2050}},
			{At: 2 * time.Minute, Kind: "reboot", Nodes: scenario.Selector{Count: 5}},
		},
		Expect: []scenario.Expectation{
			{Name: "every hw:rev2 node runs v2 (1.4.0)", Kind: "all-run", Cohort: "hw:rev2", Model: "v2"},
			{Name: "no node runs v3 (2.0.0-bad)", Kind: "none-run", Cohort: "*", Model: "v3"},
			{Name: "no node is ever unbootable", Kind: "no-unbootable", Cohort: "*"},
			{Name: "rollout rollout-v2 completed", Kind: "rollout", Deployment: "rollout-v2", Phase: "completed"},
			{Name: "bad model contained", Kind: "rollout", Deployment: "bad-v3", Phase: "rolled-back", MaxWave: 1},
			{Name: "every accepted health report reaches the broker", Kind: "health-delivered"},
		},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("Parse =\n%+v\nwant\n%+v", s, want)
	}
	if s.Model("v2") != &s.Models[1] || s.Model("nope") != nil {
		t.Error("Model does not find models by name")
	}
	if s.Nodes() != 200 {
		t.Errorf("Nodes = %d, want 200", s.Nodes())
	}
}

func TestParseDefaults(t *testing.T) {
	s, err := scenario.Parse([]byte(`name: tiny
duration: 1m
fleet: [{count: 1}]
models: [{name: m, version: "1"}]
expect: [{kind: health-delivered}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if s.TimeScale != 1 || s.InferenceRate != 2 || s.HealthInterval != 30*time.Second || s.Models[0].Size != 32768 ||
		s.Fleet[0].Labels == nil || s.Models[0].Probation != nil || s.Transport != scenario.TransportUDP ||
		s.Provision != scenario.ProvisionNone {
		t.Errorf("defaults not applied: %+v", s)
	}
}

// TestParseSecure reads transport and provision, and the provisioned
// expectation they allow.
func TestParseSecure(t *testing.T) {
	tests := []struct {
		name, extra          string
		transport, provision string
	}{
		{"defaults", "", "udp", "none"},
		{"explicit udp", "transport: udp\nprovision: none\n", "udp", "none"},
		{"dtls", "transport: dtls\n", "dtls", "none"},
		{"ble over udp", "provision: ble\n", "udp", "ble"},
		{"both", "transport: dtls\nprovision: ble\n", "dtls", "ble"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, minimal+tt.extra)
			if s.Transport != tt.transport || s.Provision != tt.provision {
				t.Errorf("transport %q, provision %q; want %q, %q", s.Transport, s.Provision, tt.transport, tt.provision)
			}
		})
	}
	s := mustParse(t, "provision: ble\n"+minimal+"  - {kind: provisioned}\n  - {kind: provisioned, cohort: \"hw:rev2\", name: techs did it}\n")
	want := []scenario.Expectation{
		{Name: "every node provisioned over BLE and audited once", Kind: "provisioned", Cohort: "*"},
		{Name: "techs did it", Kind: "provisioned", Cohort: "hw:rev2"},
	}
	if got := s.Expect[1:]; !reflect.DeepEqual(got, want) {
		t.Errorf("expectations %+v, want %+v", got, want)
	}
}

// min is the smallest valid scenario; the error cases edit it.
const minimal = `name: t
duration: 10m
fleet:
  - count: 10
    labels: {hw: rev2}
models:
  - name: v1
    version: 1.0.0
deployments:
  - id: d1
    model: v1
    waves: [{percent: 50}, {percent: 100}]
expect:
  - {kind: all-run, model: v1}
`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		line int
		msg  string
	}{
		{"unknown top-level field", minimal + "colour: blue\n", 15, `unknown field "colour"`},
		{"unknown nested field", strings.Replace(minimal, "{percent: 50}", "{percent: 50, soak: 1m}", 1), 12, `unknown field "soak" (known: percent, bake)`},
		{"unknown field in fleet", strings.Replace(minimal, "count: 10", "count: 10\n    name: x", 1), 5, `unknown field "name"`},
		{"unknown download", strings.Replace(minimal, "count: 10", "count: 10\n    download: fast", 1), 5, "download"},
		{"unknown field in link", minimal + "link: {loss: 0.1, drop: 0.2}\n", 15, `unknown field "drop"`},
		{"bad duration", strings.Replace(minimal, "10m", "10 minutes", 1), 2, `duration "10 minutes": want a duration`},
		{"bad bake", strings.Replace(minimal, "{percent: 50}", "{percent: 50, bake: 5}", 1), 12, `bake "5": want a duration`},
		{"bad percent decimals", strings.Replace(minimal, "percent: 50", "percent: 50.125", 1), 12, `percent "50.125" has more than 2 decimals`},
		{"bad percent range", strings.Replace(minimal, "percent: 100", "percent: 120", 1), 12, `wave 2: percent 120: want more than 0 and at most 100`},
		{"fault percent over 100", minimal + "faults: [{at: 1m, kind: reboot, nodes: 101%}]\n", 15, "nodes 101%: want a percent from 0 to 100"},
		{"fault percent decimals", minimal + "faults: [{at: 1m, kind: reboot, nodes: 1.005%}]\n", 15, `has more than 2 decimals`},
		{"fault count over fleet", minimal + "faults: [{at: 1m, kind: reboot, nodes: 11}]\n", 15, "nodes 11: the fleet has only 10 nodes"},
		{"waves not increasing", strings.Replace(minimal, "[{percent: 50}, {percent: 100}]", "[{percent: 50}, {percent: 50}, {percent: 100}]", 1), 12, "wave 2: percent 50 is not above the previous wave's"},
		{"last wave below 100", strings.Replace(minimal, "{percent: 100}", "{percent: 90}", 1), 12, "the last wave must reach percent 100"},
		{"unknown model in deployment", strings.Replace(minimal, "model: v1\n    waves", "model: v9\n    waves", 1), 11, `deployment d1: no model named "v9"`},
		{"unknown model in expectation", strings.Replace(minimal, "{kind: all-run, model: v1}", "{kind: all-run, model: v2}", 1), 14, `all-run: no model named "v2"`},
		{"unknown initial model", minimal + "initial: v0\n", 15, `initial: no model named "v0"`},
		{"unknown deployment in expectation", minimal + "  - {kind: rollout, deployment: d2, phase: completed}\n", 15, `no deployment with id "d2"`},
		{"unknown fault kind", minimal + "faults: [{at: 1m, kind: meteor}]\n", 15, `fault kind "meteor": want power-cut`},
		{"missing for", minimal + "faults:\n  - {at: 1m, kind: broker-outage}\n", 16, "broker-outage: for is required"},
		{"missing for on link outage", minimal + "faults:\n  - {at: 1m, kind: link-outage, nodes: 1}\n", 16, "link-outage: for is required"},
		{"for on a reboot", minimal + "faults: [{at: 1m, kind: reboot, nodes: 1, for: 1m}]\n", 15, "reboot: for applies only to"},
		{"missing nodes", minimal + "faults: [{at: 1m, kind: power-cut}]\n", 15, "power-cut: nodes is required"},
		{"fault after the end", minimal + "faults: [{at: 11m, kind: gateway-restart}]\n", 15, "at 11m0s is after the end of the scenario (duration 10m0s)"},
		{"deployment after the end", strings.Replace(minimal, "model: v1\n    waves", "model: v1\n    at: 1h\n    waves", 1), 12, "at 1h0m0s is after the end"},
		{"cohort syntax error", strings.Replace(minimal, "model: v1\n    waves", "model: v1\n    cohort: hw:rev2 and region:eu\n    waves", 1), 12, `cohort "hw:rev2 and region:eu": cohort: at column`},
		{"cohort syntax error in expectation", strings.Replace(minimal, "{kind: all-run, model: v1}", "{kind: all-run, model: v1, cohort: \"hw:\"}", 1), 14, `cohort "hw:"`},
		{"missing name", strings.Replace(minimal, "name: t\n", "", 1), 1, "name is required"},
		{"bad name", strings.Replace(minimal, "name: t", "name: a b", 1), 1, `name "a b" does not match`},
		{"missing duration", strings.Replace(minimal, "duration: 10m\n", "", 1), 1, "duration is required"},
		{"missing expect", strings.Replace(minimal, "expect:\n  - {kind: all-run, model: v1}\n", "", 1), 1, "expect is required"},
		{"time scale out of range", minimal + "time_scale: 5000\n", 15, "time_scale 5000: want 1 to 3600"},
		{"loss out of range", minimal + "link: {loss: 0.95}\n", 15, "loss 0.95: want 0 to 0.9"},
		{"too many nodes", strings.Replace(minimal, "count: 10", "count: 10001", 1), 4, "count 10001: want 1 to 10000"},
		{"bad label key", strings.Replace(minimal, "{hw: rev2}", "{HW: rev2}", 1), 5, `label key "HW"`},
		{"duplicate model", strings.Replace(minimal, "models:\n", "models:\n  - {name: v1, version: \"0\"}\n", 1), 8, "model v1 is defined twice"},
		{"bad behaviour", strings.Replace(minimal, "version: 1.0.0", "version: 1.0.0\n    behaviour: p95_us=3", 1), 9, `unknown key "p95_us"`},
		{"behaviour out of range", strings.Replace(minimal, "version: 1.0.0", "version: 1.0.0\n    behaviour: error_permille=1001", 1), 9,
			"model v1: behaviour: error_permille=1001 is over 1000"},
		{"behaviour with two metrics", strings.Replace(minimal, "version: 1.0.0", "version: 1.0.0\n    behaviour: metric.a=1 metric.b=2", 1), 9,
			"metric.b: a model declares at most one metric"},
		{"size too large", strings.Replace(minimal, "version: 1.0.0", "version: 1.0.0\n    size: 5000000", 1), 9, "size 5000000: want 1 to 4194304 bytes"},
		{"bad on_failure", strings.Replace(minimal, "model: v1\n    waves", "model: v1\n    on_failure: retry\n    waves", 1), 12, `on_failure "retry": want pause or rollback`},
		{"bad gate", strings.Replace(minimal, "model: v1\n    waves", "model: v1\n    gates: {max_error_rate: 2}\n    waves", 1), 12, "max_error_rate 2 is a fraction"},
		{"unknown gate", strings.Replace(minimal, "model: v1\n    waves", "model: v1\n    gates: {max_errors: 2}\n    waves", 1), 12, `unknown field "max_errors"`},
		{"field not for the kind", strings.Replace(minimal, "{kind: all-run, model: v1}", "{kind: no-unbootable, model: v1}", 1), 14, "model does not apply to an expectation of kind no-unbootable"},
		{"unknown expectation kind", strings.Replace(minimal, "kind: all-run", "kind: most-run", 1), 14, `expectation kind "most-run"`},
		{"bad phase", minimal + "  - {kind: rollout, deployment: d1, phase: done}\n", 15, `phase "done": want one of`},
		{"max wave beyond waves", minimal + "  - {kind: rollout, deployment: d1, max_wave: 3}\n", 15, "max_wave 3: deployment d1 has waves 1 to 2"},
		{"rollout without phase or wave", minimal + "  - {kind: rollout, deployment: d1}\n", 15, "want phase, max_wave or both"},
		{"repeated expectation", minimal + "  - {kind: all-run, model: v1}\n", 15, `expectation "every node runs v1 (1.0.0)" repeats the one at line 14`},
		{"bad transport", minimal + "transport: tls\n", 15, `transport "tls": want udp or dtls`},
		{"transport not a scalar", minimal + "transport: [dtls]\n", 15, "transport: want a single value"},
		{"empty transport", minimal + "transport: \"\"\n", 15, `transport "": want udp or dtls`},
		{"bad provision", minimal + "provision: nfc\n", 15, `provision "nfc": want none or ble`},
		{"provision case", minimal + "provision: BLE\n", 15, `provision "BLE": want none or ble`},
		{"provisioned without provision", minimal + "  - {kind: provisioned}\n", 15, "expectation provisioned needs provision: ble"},
		{"metric gate not a mapping", strings.Replace(minimal, "model: v1\n    waves", "model: v1\n    gates: {metrics: 5}\n    waves", 1), 12, "metrics: want a mapping"},
		{"metric gate bad name", strings.Replace(minimal, "model: v1\n    waves", "model: v1\n    gates: {metrics: {Low: 5}}\n    waves", 1), 12, `metric name "Low" does not match`},
		{"metric gate not a number", strings.Replace(minimal, "model: v1\n    waves", "model: v1\n    gates: {metrics: {low: 0.5}}\n    waves", 1), 12, "metric low: want a whole number"},
		{"link-recovered without a link outage", minimal + "  - {kind: link-recovered}\n", 15, "expectation link-recovered needs a link-outage fault"},
		{"link-recovered with a model", minimal + "  - {kind: link-recovered, model: v1}\nfaults: [{at: 1m, kind: link-outage, for: 1m, nodes: 1}]\n", 15,
			"model does not apply to an expectation of kind link-recovered"},
		{"provisioned with a model", "provision: ble\n" + minimal + "  - {kind: provisioned, model: v1}\n", 16, "model does not apply to an expectation of kind provisioned"},
		{"yaml syntax error", minimal + "fleet: [\n", 15, "did not find expected node content"},
		{"not a mapping", "- a\n- b\n", 1, "want a mapping"},
		{"two documents", minimal + "---\nname: u\n", 15, "more than one YAML document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := scenario.Parse([]byte(tt.src))
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if !errors.Is(err, scenario.ErrScenario) {
				t.Errorf("error %v does not wrap ErrScenario", err)
			}
			var e *scenario.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not a *scenario.Error", err)
			}
			if e.Line != tt.line || !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("error = %q (line %d), want line %d containing %q", err, e.Line, tt.line, tt.msg)
			}
		})
	}
}

func TestParseEmpty(t *testing.T) {
	if _, err := scenario.Parse(nil); !errors.Is(err, scenario.ErrScenario) {
		t.Errorf("Parse(nil) = %v, want an ErrScenario", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(minimal+"colour: blue\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := scenario.Load(good); err != nil {
		t.Errorf("Load(good) = %v", err)
	}
	_, err := scenario.Load(bad)
	if want := bad + ": line 15: unknown field"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Load(bad) = %v, want %q...", err, want)
	}
	if _, err := scenario.Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
}

func TestSelectorPick(t *testing.T) {
	tests := []struct {
		name string
		sel  scenario.Selector
		n    int
		want int
	}{
		{"none", scenario.Selector{}, 100, 0},
		{"ten percent", scenario.Selector{Percent: 1000}, 200, 20},
		{"rounds up", scenario.Selector{Percent: 1}, 200, 1},
		{"all", scenario.Selector{Percent: 10000}, 7, 7},
		{"count", scenario.Selector{Count: 5}, 200, 5},
		{"count beyond fleet", scenario.Selector{Count: 5}, 3, 3},
		{"empty fleet", scenario.Selector{Count: 5}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.sel.Pick(tt.n, rand.New(rand.NewPCG(7, 7)))
			b := tt.sel.Pick(tt.n, rand.New(rand.NewPCG(7, 7)))
			if len(a) != tt.want || tt.sel.Size(tt.n) != tt.want {
				t.Fatalf("picked %d (Size %d), want %d", len(a), tt.sel.Size(tt.n), tt.want)
			}
			if !reflect.DeepEqual(a, b) {
				t.Errorf("same seed picked %v then %v", a, b)
			}
			for i, x := range a {
				if x < 0 || x >= tt.n || i > 0 && x <= a[i-1] {
					t.Fatalf("picked %v: want distinct ascending indexes below %d", a, tt.n)
				}
			}
		})
	}
}

func TestParseLinkProfiles(t *testing.T) {
	thread := scenario.Link{Profile: "thread", Hops: 2, Latency: 20 * time.Millisecond, Jitter: 30 * time.Millisecond,
		Bandwidth: 250_000, FrameMTU: 104, FrameOverhead: 22, FrameGap: 2 * time.Millisecond}
	withHops := thread
	withHops.Hops, withHops.Jitter, withHops.FrameLoss = 4, 0, 0.02
	nbiot := scenario.Link{Profile: "nbiot", Hops: 1, Latency: 500 * time.Millisecond, Jitter: 500 * time.Millisecond,
		Bandwidth: 60_000, FrameOverhead: 12}
	nbiot1s := nbiot
	nbiot1s.Jitter, nbiot1s.Loss = 0, 0.05
	for _, tc := range []struct {
		name string
		link string
		want scenario.Link
	}{
		{"no link", "", scenario.Link{}},
		{"real-time link", "link: {loss: 0.1, latency: 20ms, hops: 3}\n", scenario.Link{Loss: 0.1, Latency: 20 * time.Millisecond, Hops: 3}},
		{"thread", "link: {profile: thread}\n", thread},
		{"thread overridden", "link: {profile: thread, hops: 4, jitter: 0s, frame_loss: 0.02}\n", withHops},
		{"nbiot at 1 s", "link: {profile: nbiot, jitter: 0s, loss: 0.05}\n", nbiot1s},
		{"subghz", "link: {profile: subghz, bandwidth: 100000}\n", scenario.Link{Profile: "subghz", Hops: 1,
			Latency: 100 * time.Millisecond, Bandwidth: 100_000, FrameMTU: 200, FrameOverhead: 30, FrameGap: 5 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := scenario.Parse([]byte(minimal + tc.link))
			if err != nil {
				t.Fatal(err)
			}
			if s.Link != tc.want {
				t.Errorf("link = %+v\nwant   %+v", s.Link, tc.want)
			}
			if s.Link.SimulatedTime() != (tc.want.Profile != "") {
				t.Errorf("SimulatedTime() = %v", s.Link.SimulatedTime())
			}
		})
	}
	for _, tc := range []struct {
		name, link, msg string
	}{
		{"unknown profile", "link: {profile: wifi}\n", `unknown radio profile "wifi"`},
		{"zero hops", "link: {profile: thread, hops: 0}\n", "hops 0: want 1 to 32"},
		{"too many hops", "link: {hops: 33}\n", "hops 33: want 1 to 32"},
		{"frame loss too high", "link: {profile: ble, frame_loss: 0.6}\n", "frame_loss 0.6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := scenario.Parse([]byte(minimal + tc.link))
			var e *scenario.Error
			if !errors.As(err, &e) || e.Line != 15 || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("Parse = %v, want line 15 containing %q", err, tc.msg)
			}
		})
	}
}
