package scenario_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"edgeota/firmware-sim/radio"
	"edgeota/firmware-sim/scenario"
)

func mustParse(t testing.TB, src string) *scenario.Scenario {
	t.Helper()
	s, err := scenario.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// goodResult is a run of full in which every expectation holds: 150 rev2
// nodes on v2, 50 rev1 nodes on v1.
func goodResult() *scenario.Result {
	r := &scenario.Result{
		Seed:        42,
		SimElapsed:  14*time.Minute + 30*time.Second,
		RealElapsed: 14500 * time.Millisecond,
		Finished:    true,
		Rollouts: []scenario.RolloutResult{
			{ID: "rollout-v2", Model: "v2", Phase: "completed", MaxWave: 2, Touched: 150, Succeeded: 150, Elapsed: 13 * time.Minute},
			{ID: "bad-v3", Model: "v3", Phase: "rolled-back", MaxWave: 1, Touched: 1, Failed: 1},
		},
		HealthAccepted:   5800,
		HealthDelivered:  5800,
		HealthDuplicates: 12,
	}
	for i := range 200 {
		n := scenario.NodeResult{ID: fmt.Sprintf("node-%03d", i), Model: "v2", State: "confirmed", Boots: 3,
			Labels: map[string]string{"region": "us-east", "hw": "rev2"}}
		n.Link = radio.Stats{Up: radio.DirStats{In: 40, BytesIn: 4000, Delivered: 40, Frames: 40, AirBytes: 4000},
			Down: radio.DirStats{In: 300, BytesIn: 290_000, Delivered: 270, Dropped: 30, Frames: 300, AirBytes: 290_000}}
		n.Download = time.Duration(60+i%7) * time.Second
		if i >= 150 {
			n.Labels = map[string]string{"region": "us-east", "hw": "rev1"}
			n.Model = "v1"
			n.Link, n.Download = radio.Stats{}, 0
		}
		r.Nodes = append(r.Nodes, n)
	}
	return r
}

// badResult breaks every expectation of full.
func badResult() *scenario.Result {
	r := goodResult()
	r.Finished = false
	for i := 10; i < 17; i++ { // seven rev2 nodes left behind
		r.Nodes[i].Model = "v1"
	}
	r.Nodes[17].Model, r.Nodes[17].State = "", "none"
	r.Nodes[18].State = "trial"
	r.Nodes[160].Model, r.Nodes[160].State = "v3", "trial"
	r.Nodes[17].Unbootable = 2
	r.Rollouts[0].Phase, r.Rollouts[0].MaxWave, r.Rollouts[0].Succeeded, r.Rollouts[0].Failed = "paused", 1, 14, 1
	r.Rollouts[1].Phase, r.Rollouts[1].MaxWave = "completed", 2
	r.HealthDelivered = 5790
	return r
}

func TestEvaluate(t *testing.T) {
	s := mustParse(t, full)
	tests := []struct {
		name   string
		result *scenario.Result
		passed []bool
		detail []string
	}{
		{
			name:   "good",
			result: goodResult(),
			passed: []bool{true, true, true, true, true, true},
			detail: []string{
				"150 of 150 hw:rev2 nodes run v2",
				"0 of 200 nodes run v3",
				"none of 200 nodes was ever unbootable",
				"rollout rollout-v2 completed at wave 2 of 2, 150 touched, 150 succeeded, 0 failed",
				"rollout bad-v3 rolled-back at wave 1 of 2, 1 touched, 0 succeeded, 1 failed",
				"5800 of 5800 accepted health reports reached the broker (12 duplicates)",
			},
		},
		{
			name:   "bad",
			result: badResult(),
			passed: []bool{false, false, false, false, false, false},
			detail: []string{
				"141 of 150 hw:rev2 nodes run v2; node-010 runs v1 (confirmed), node-011 runs v1 (confirmed), " +
					"node-012 runs v1 (confirmed), node-013 runs v1 (confirmed), node-014 runs v1 (confirmed) and 4 more",
				"1 of 200 nodes run v3: node-160 (trial)",
				"1 of 200 nodes booted with no runnable model, 2 times in all: node-017 (2 times)",
				"rollout rollout-v2 paused at wave 1 of 2, 150 touched, 14 succeeded, 1 failed; want phase completed",
				"rollout bad-v3 completed at wave 2 of 2, 1 touched, 0 succeeded, 1 failed; want phase rolled-back, want at most wave 1",
				"5790 of 5800 accepted health reports reached the broker (12 duplicates)",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outs := scenario.Evaluate(s, tt.result)
			if len(outs) != len(s.Expect) {
				t.Fatalf("%d outcomes for %d expectations", len(outs), len(s.Expect))
			}
			for i, o := range outs {
				if o.Name != s.Expect[i].Name || o.Expectation != s.Expect[i] {
					t.Errorf("outcome %d is for %q, want %q", i, o.Name, s.Expect[i].Name)
				}
				if o.Passed != tt.passed[i] || o.Detail != tt.detail[i] {
					t.Errorf("%s: passed %v, %q\nwant passed %v, %q", o.Name, o.Passed, o.Detail, tt.passed[i], tt.detail[i])
				}
			}
			allPassed := !strings.Contains(fmt.Sprint(tt.passed), "false")
			if scenario.Passed(outs) != allPassed {
				t.Errorf("Passed = %v, want %v", scenario.Passed(outs), allPassed)
			}
		})
	}
}

// TestEvaluateEdges covers hand-built expectations without names and the
// cases that fail for lack of evidence.
func TestEvaluateEdges(t *testing.T) {
	s := mustParse(t, full)
	tests := []struct {
		name   string
		exp    scenario.Expectation
		result *scenario.Result
		title  string
		passed bool
		detail string
	}{
		{"empty cohort", scenario.Expectation{Kind: "all-run", Cohort: "hw:rev9", Model: "v2"}, goodResult(),
			"every hw:rev9 node runs v2 (1.4.0)", false, "no node is in the cohort hw:rev9"},
		{"trial is not enough", scenario.Expectation{Kind: "all-run", Cohort: "hw:rev1", Model: "v1"},
			func() *scenario.Result { r := goodResult(); r.Nodes[199].State = "trial"; return r }(),
			"every hw:rev1 node runs v1 (1.0.0)", false, "49 of 50 hw:rev1 nodes run v1; node-199 runs v1 (trial)"},
		{"none-run in a cohort", scenario.Expectation{Kind: "none-run", Cohort: "hw:rev1", Model: "v2"}, goodResult(),
			"no hw:rev1 node runs v2 (1.4.0)", true, "0 of 50 hw:rev1 nodes run v2"},
		{"unbootable elsewhere", scenario.Expectation{Kind: "no-unbootable", Cohort: "hw:rev1"},
			func() *scenario.Result { r := goodResult(); r.Nodes[0].Unbootable = 1; return r }(),
			"no hw:rev1 node is ever unbootable", true, "none of 50 hw:rev1 nodes was ever unbootable"},
		{"rollout missing", scenario.Expectation{Kind: "rollout", Deployment: "rollout-v2", MaxWave: 1},
			&scenario.Result{}, "rollout rollout-v2 within wave 1", false, "rollout rollout-v2 is not in the result (never applied?)"},
		{"no health at all", scenario.Expectation{Kind: "health-delivered"}, &scenario.Result{},
			"every accepted health report reaches the broker", false, "the gateway accepted no health report"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.Expect = []scenario.Expectation{tt.exp}
			o := scenario.Evaluate(s, tt.result)[0]
			if o.Name != tt.title || o.Passed != tt.passed || o.Detail != tt.detail {
				t.Errorf("got %q %v %q\nwant %q %v %q", o.Name, o.Passed, o.Detail, tt.title, tt.passed, tt.detail)
			}
		})
	}
}

// secure is a scenario over DTLS with every node provisioned over BLE.
const secure = `name: secure
transport: dtls
provision: ble
time_scale: 60
duration: 10m
fleet:
  - {count: 3, labels: {hw: rev2}}
  - {count: 1, labels: {hw: rev1}}
models: [{name: v1, version: 1.0.0}]
expect:
  - {kind: provisioned}
  - {kind: provisioned, cohort: "hw:rev1"}
`

// provisionedResult is a run of secure in which every node was provisioned,
// said Hello with its labels and was audited once over DTLS.
func provisionedResult() *scenario.Result {
	r := &scenario.Result{Seed: 5, SimElapsed: 3 * time.Minute, RealElapsed: 3 * time.Second, Finished: true,
		ProvisionElapsed: 850 * time.Millisecond, HealthAccepted: 40, HealthDelivered: 40,
		Resources: &scenario.Resources{CPU: 4500 * time.Millisecond, HeapPerNode: 190 << 10, RSSPerNode: 260 << 10,
			PeakRSS: 180 << 20, FDs: 31, Goroutines: 77}}
	for i := range 4 {
		labels := map[string]string{"hw": "rev2"}
		if i == 3 {
			labels = map[string]string{"hw": "rev1"}
		}
		r.Nodes = append(r.Nodes, scenario.NodeResult{ID: fmt.Sprintf("sim-%04d", i+1), Labels: labels, Model: "v1",
			State: "confirmed", Boots: 1, Provisioned: true, Registered: labels,
			Audit: []scenario.AuditEntry{{Actor: "ab12", Labels: labels, Authenticated: true}}})
	}
	return r
}

func TestEvaluateProvisioned(t *testing.T) {
	s := mustParse(t, secure)
	tests := []struct {
		name   string
		edit   func(r *scenario.Result)
		passed bool
		detail string
	}{
		{"all provisioned", func(*scenario.Result) {}, true, "4 of 4 nodes provisioned over BLE, 4 audit entries"},
		{"one never provisioned", func(r *scenario.Result) {
			r.Nodes[1].Provisioned, r.Nodes[1].Registered, r.Nodes[1].Audit = false, nil, nil
		}, false, "3 of 4 nodes provisioned over BLE, 3 audit entries; sim-0002 not provisioned"},
		{"no hello", func(r *scenario.Result) { r.Nodes[0].Registered = nil }, false,
			"4 of 4 nodes provisioned over BLE, 4 audit entries; sim-0001 unknown to the gateway"},
		{"other labels", func(r *scenario.Result) { r.Nodes[0].Registered = map[string]string{"hw": "rev1", "a": "b"} }, false,
			"4 of 4 nodes provisioned over BLE, 4 audit entries; sim-0001 known with labels {a=b,hw=rev1}, want {hw=rev2}"},
		{"audited twice", func(r *scenario.Result) { r.Nodes[2].Audit = append(r.Nodes[2].Audit, r.Nodes[2].Audit[0]) }, false,
			"4 of 4 nodes provisioned over BLE, 5 audit entries; sim-0003 has 2 audit entries"},
		{"never audited", func(r *scenario.Result) { r.Nodes[2].Audit = nil }, false,
			"4 of 4 nodes provisioned over BLE, 3 audit entries; sim-0003 has 0 audit entries"},
		{"audited with other labels", func(r *scenario.Result) { r.Nodes[3].Audit[0].Labels = nil }, false,
			"4 of 4 nodes provisioned over BLE, 4 audit entries; sim-0004 audited with labels {}"},
		{"not authenticated", func(r *scenario.Result) { r.Nodes[3].Audit[0].Authenticated = false }, false,
			"4 of 4 nodes provisioned over BLE, 4 audit entries; sim-0004 audited without its DTLS key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := provisionedResult()
			tt.edit(r)
			o := scenario.Evaluate(s, r)[0]
			if o.Name != "every node provisioned over BLE and audited once" || o.Passed != tt.passed || o.Detail != tt.detail {
				t.Errorf("got %q %v %q\nwant passed %v, %q", o.Name, o.Passed, o.Detail, tt.passed, tt.detail)
			}
		})
	}
	// A cohort: only its nodes count; over plain UDP no entry is
	// authenticated, and none needs to be.
	r := provisionedResult()
	r.Nodes[0].Provisioned = false
	if o := scenario.Evaluate(s, r)[1]; !o.Passed || o.Name != "every hw:rev1 node provisioned over BLE and audited once" ||
		o.Detail != "1 of 1 hw:rev1 nodes provisioned over BLE, 1 audit entries" {
		t.Errorf("cohort hw:rev1: %+v", o)
	}
	s.Transport = scenario.TransportUDP
	r = provisionedResult()
	for i := range r.Nodes {
		r.Nodes[i].Audit[0].Authenticated = false
	}
	if o := scenario.Evaluate(s, r)[0]; !o.Passed {
		t.Errorf("over udp: %+v", o)
	}
	s.Expect = []scenario.Expectation{{Kind: "provisioned", Cohort: "hw:rev9"}}
	if o := scenario.Evaluate(s, provisionedResult())[0]; o.Passed || o.Detail != "no node is in the cohort hw:rev9" {
		t.Errorf("empty cohort: %+v", o)
	}
}

// TestEvaluateLinkRecovered: every node a link outage struck must have
// lost datagrams to it and been heard after it; nodes it did not strike
// do not count; a run in which it struck none fails.
func TestEvaluateLinkRecovered(t *testing.T) {
	s := mustParse(t, minimal+"  - {kind: link-recovered}\n  - {kind: link-recovered, cohort: \"hw:rev1\"}\n"+
		"faults: [{at: 1m, kind: link-outage, for: 1m, nodes: 2}]\n")
	result := func() *scenario.Result {
		r := &scenario.Result{}
		for i := range 4 {
			r.Nodes = append(r.Nodes, scenario.NodeResult{ID: fmt.Sprintf("sim-%04d", i+1), Labels: map[string]string{"hw": "rev2"}})
		}
		for _, i := range []int{0, 2} {
			r.Nodes[i].LinkOutages, r.Nodes[i].OutageDropped, r.Nodes[i].HeardAfterOutage = 1, 5, 3
		}
		return r
	}
	tests := []struct {
		name   string
		edit   func(r *scenario.Result)
		passed bool
		detail string
	}{
		{"recovered", func(*scenario.Result) {}, true, "2 of 2 nodes whose link went out were heard after it; the outages dropped 10 datagrams"},
		{"outage that dropped nothing", func(r *scenario.Result) { r.Nodes[2].OutageDropped = 0 }, false,
			"1 of 2 nodes whose link went out were heard after it; the outages dropped 5 datagrams; sim-0003 lost nothing to its outage"},
		{"not heard after", func(r *scenario.Result) { r.Nodes[0].HeardAfterOutage = 0 }, false,
			"1 of 2 nodes whose link went out were heard after it; the outages dropped 10 datagrams; sim-0001 not heard after its outage"},
		{"no outage struck", func(r *scenario.Result) { r.Nodes[0].LinkOutages, r.Nodes[2].LinkOutages = 0, 0 }, false,
			"no link outage struck any of 4 nodes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := result()
			tt.edit(r)
			o := scenario.Evaluate(s, r)[1]
			if o.Name != "every node whose link went out is heard again after it" || o.Passed != tt.passed || o.Detail != tt.detail {
				t.Errorf("got %q %v %q\nwant passed %v, %q", o.Name, o.Passed, o.Detail, tt.passed, tt.detail)
			}
		})
	}
	if o := scenario.Evaluate(s, result())[2]; o.Passed || o.Name != "every hw:rev1 node whose link went out is heard again after it" ||
		o.Detail != "no link outage struck any of 0 hw:rev1 nodes" {
		t.Errorf("cohort hw:rev1: %+v", o)
	}
}
