package scenario_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"edgeota/firmware-sim/radio"
	"edgeota/firmware-sim/scenario"
	goldenfile "edgeota/test/golden"
)

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t testing.TB, name string, got []byte) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), got)
}

func TestWriteSummary(t *testing.T) {
	s := mustParse(t, full)
	for _, tc := range []struct {
		file   string
		result *scenario.Result
	}{
		{"summary_pass.golden", goodResult()},
		{"summary_fail.golden", badResult()},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var b bytes.Buffer
			scenario.WriteSummary(&b, s, tc.result, scenario.Evaluate(s, tc.result))
			golden(t, tc.file, b.Bytes())
		})
	}
}

// TestWriteSummarySecure: a run over DTLS with BLE provisioning says so,
// with how many nodes were provisioned and audited.
func TestWriteSummarySecure(t *testing.T) {
	s := mustParse(t, secure)
	r := provisionedResult()
	var b bytes.Buffer
	scenario.WriteSummary(&b, s, r, scenario.Evaluate(s, r))
	golden(t, "summary_secure.golden", b.Bytes())
}

// TestWriteJSON: the JSON report of a failed run and of a provisioned
// run over DTLS, against golden files; a script reads the verdict, the
// failed expectations and the nodes from it.
func TestWriteJSON(t *testing.T) {
	for _, tc := range []struct {
		file     string
		scenario string
		result   *scenario.Result
		passed   bool
	}{
		{"report_fail.golden.json", full, fewNodes(badResult(), 8), false},
		{"report_secure.golden.json", secure, provisionedResult(), true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			s := mustParse(t, tc.scenario)
			outs := scenario.Evaluate(s, tc.result)
			var b bytes.Buffer
			if err := scenario.WriteJSON(&b, s, tc.result, outs); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.file, b.Bytes())
			var got struct {
				Passed       bool
				Seed         string
				Expectations []struct{ Passed bool }
				Nodes        []struct{ ID string }
			}
			if err := json.Unmarshal(b.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			failed := 0
			for _, e := range got.Expectations {
				if !e.Passed {
					failed++
				}
			}
			if got.Passed != tc.passed || (failed == 0) != tc.passed || len(got.Expectations) != len(outs) ||
				len(got.Nodes) != len(tc.result.Nodes) || got.Seed == "" {
				t.Fatalf("report %+v", got)
			}
		})
	}
}

// fewNodes keeps the first n nodes of r, so that a golden file stays
// readable.
func fewNodes(r *scenario.Result, n int) *scenario.Result {
	r.Nodes = r.Nodes[:n]
	return r
}

// The shape of the XML as a JUnit reader sees it.
type testsuite struct {
	XMLName    xml.Name `xml:"testsuite"`
	Name       string   `xml:"name,attr"`
	Tests      int      `xml:"tests,attr"`
	Failures   int      `xml:"failures,attr"`
	Time       float64  `xml:"time,attr"`
	Properties []struct {
		Name  string `xml:"name,attr"`
		Value string `xml:"value,attr"`
	} `xml:"properties>property"`
	Cases []struct {
		Name      string  `xml:"name,attr"`
		Classname string  `xml:"classname,attr"`
		Time      float64 `xml:"time,attr"`
		Failure   *struct {
			Message string `xml:"message,attr"`
			Text    string `xml:",chardata"`
		} `xml:"failure"`
	} `xml:"testcase"`
	SystemOut string `xml:"system-out"`
}

func TestWriteJUnit(t *testing.T) {
	s := mustParse(t, full)
	r := badResult()
	r.Nodes[0].Model = "v<2>&\"" // checks escaping
	outs := scenario.Evaluate(s, r)
	var b bytes.Buffer
	if err := scenario.WriteJUnit(&b, s, r, outs); err != nil {
		t.Fatal(err)
	}
	golden(t, "junit.golden.xml", b.Bytes())

	var got testsuite
	if err := xml.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("the XML does not parse: %v", err)
	}
	if got.Name != "good-rollout" || got.Tests != len(outs) || got.Failures != 6 || got.Time != 14.5 {
		t.Errorf("suite %q tests=%d failures=%d time=%v", got.Name, got.Tests, got.Failures, got.Time)
	}
	props := map[string]string{}
	for _, p := range got.Properties {
		props[p.Name] = p.Value
	}
	if props["seed"] != "42" || props["time_scale"] != "60" {
		t.Errorf("properties = %v, want seed 42 and time_scale 60", props)
	}
	if len(got.Cases) != len(outs) {
		t.Fatalf("%d test cases, want %d", len(got.Cases), len(outs))
	}
	for i, c := range got.Cases {
		o := outs[i]
		if c.Name != o.Name || c.Classname != "edgeota.sim.good-rollout" {
			t.Errorf("case %d = %q %q", i, c.Name, c.Classname)
		}
		if (c.Failure == nil) != o.Passed {
			t.Errorf("case %q: failure %v, passed %v", c.Name, c.Failure, o.Passed)
		}
		if c.Failure != nil && (c.Failure.Message != o.Detail || c.Failure.Text != o.Detail) {
			t.Errorf("case %q: failure %q, want %q", c.Name, c.Failure.Message, o.Detail)
		}
	}
	var summary bytes.Buffer
	scenario.WriteSummary(&summary, s, r, outs)
	if got.SystemOut != summary.String() {
		t.Errorf("system-out is not the summary:\n%s", got.SystemOut)
	}
}

func TestWriteJUnitPass(t *testing.T) {
	s := mustParse(t, full)
	r := goodResult()
	var b bytes.Buffer
	if err := scenario.WriteJUnit(&b, s, r, scenario.Evaluate(s, r)); err != nil {
		t.Fatal(err)
	}
	var got testsuite
	if err := xml.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Failures != 0 || got.Tests != 6 {
		t.Errorf("tests=%d failures=%d, want 6 and 0", got.Tests, got.Failures)
	}
}

// longLink is a scenario on the NB-IoT profile with two groups of nodes.
const longLink = `name: long-link
duration: 2h
time_scale: 120
link: {profile: nbiot, jitter: 0s, loss: 0.05}
fleet:
  - count: 2
    labels: {block2: q}
  - count: 2
    labels: {block2: lock-step}
models:
  - name: v2
    version: 2.0.0
deployments:
  - id: to-v2
    model: v2
    waves: [{percent: 100}]
expect:
  - {kind: all-run, model: v2}
`

// radioResult is a run of longLink: the lock-step nodes took longer and
// more airtime.
func radioResult() *scenario.Result {
	r := &scenario.Result{Seed: 9, SimElapsed: 20 * time.Minute, RealElapsed: 10 * time.Second, Finished: true,
		Rollouts: []scenario.RolloutResult{{ID: "to-v2", Model: "v2", Phase: "completed", MaxWave: 1, Touched: 4, Succeeded: 4,
			Elapsed: 7*time.Minute + 30*time.Second}}}
	for i := range 4 {
		group := "q"
		down := radio.DirStats{In: 270, BytesIn: 270_000, Delivered: 256, Dropped: 14, Frames: 270, AirBytes: 273_240,
			Airtime: 36432 * time.Millisecond}
		took := time.Duration(60+i) * time.Second
		if i >= 2 {
			group = "lock-step"
			down.Airtime += time.Second
			took = time.Duration(300+i) * time.Second
		}
		r.Nodes = append(r.Nodes, scenario.NodeResult{ID: fmt.Sprintf("node-%d", i), Labels: map[string]string{"block2": group},
			Model: "v2", State: "confirmed", Boots: 2, Download: took, Confirmed: 2*took + time.Minute,
			Link: radio.Stats{Up: radio.DirStats{In: 300, BytesIn: 6000, Delivered: 285, Dropped: 15, Frames: 300, AirBytes: 9600, Airtime: 1280 * time.Millisecond},
				Down: down}})
	}
	return r
}

// TestWriteRadio: the summary and the JSON report say what the link is,
// what all links put on air each way, and each group's downloads and
// airtime per node.
func TestWriteRadio(t *testing.T) {
	s := mustParse(t, longLink)
	r := radioResult()
	outs := scenario.Evaluate(s, r)
	var b bytes.Buffer
	scenario.WriteSummary(&b, s, r, outs)
	golden(t, "summary_radio.golden", b.Bytes())
	b.Reset()
	if err := scenario.WriteJSON(&b, s, r, outs); err != nil {
		t.Fatal(err)
	}
	golden(t, "report_radio.golden.json", b.Bytes())
}
