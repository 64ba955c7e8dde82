package scenario_test

import (
	"fmt"
	"strings"
	"testing"

	"edgeota/firmware-sim/radio"
	"edgeota/firmware-sim/scenario"
)

// TestParseDeltas: a model retrained from another (from, changed), models
// from the delta corpus, a fleet group without deltas, and the two delta
// expectations; and their errors.
func TestParseDeltas(t *testing.T) {
	src := strings.Replace(minimal, "    labels: {hw: rev2}\n", "    labels: {hw: rev2}\n  - count: 2\n    deltas: false\n", 1)
	src = strings.Replace(src, "    version: 1.0.0\n", "    version: 1.0.0\n    size: 1000\n  - {name: v2, version: 2.0.0, from: v1, changed: 12.5%}\n"+
		"  - {name: v3, version: 3.0.0, from: v1}\n  - {name: ca, version: 4.0.0, corpus: a-head.base}\n", 1)
	s := mustParse(t, src+"  - {kind: took-delta, model: v2}\n  - {kind: air-ratio, cohort: \"hw:rev2\", baseline: \"NOT hw:rev2\", max: 25%}\n")
	if s.Fleet[0].NoDeltas || !s.Fleet[1].NoDeltas {
		t.Errorf("groups' deltas off: %v %v, want false true", s.Fleet[0].NoDeltas, s.Fleet[1].NoDeltas)
	}
	if m := s.Model("v2"); m.From != "v1" || m.Changed != 1250 || m.Size != 1000 {
		t.Errorf("v2 = %+v", m)
	}
	if m := s.Model("v3"); m.Changed != 1000 {
		t.Errorf("v3 changed %d, want the default 1000 (10%%)", m.Changed)
	}
	img, _ := scenario.CorpusImage("a-head.base")
	if m := s.Model("ca"); m.Corpus != "a-head.base" || m.Size != len(img) || len(img) < 100000 {
		t.Errorf("ca = %+v, corpus image of %d bytes", m, len(img))
	}
	e := s.Expect[2]
	if e.Kind != scenario.ExpectAirRatio || e.Baseline != "NOT hw:rev2" || e.MaxPercent != 2500 ||
		e.Name != "hw:rev2 nodes put at most 25% of the bytes on air of NOT hw:rev2 nodes" {
		t.Errorf("air-ratio = %+v", e)
	}
	if e := s.Expect[1]; e.Name != "every node running v2 (2.0.0) took it as a delta" {
		t.Errorf("took-delta named %q", e.Name)
	}
	errs := []struct{ name, src, msg string }{
		{"from unknown", strings.Replace(minimal, "version: 1.0.0\n", "version: 1.0.0\n    from: v0\n", 1), `from "v0": no model of that name above it`},
		{"changed without from", strings.Replace(minimal, "version: 1.0.0\n", "version: 1.0.0\n    changed: 5%\n", 1), "changed applies only with from"},
		{"size with from", strings.Replace(minimal, "    version: 1.0.0\n", "    version: 1.0.0\n  - {name: v2, version: \"2\", from: v1, size: 5}\n", 1), "size does not apply with from"},
		{"unknown corpus", strings.Replace(minimal, "version: 1.0.0\n", "version: 1.0.0\n    corpus: z.base\n", 1), `corpus "z.base": want PAIR.base or PAIR.target`},
		{"deltas not a boolean", strings.Replace(minimal, "count: 10\n", "count: 10\n    deltas: maybe\n", 1), `deltas "maybe": want true or false`},
		{"air-ratio without baseline", minimal + "  - {kind: air-ratio, max: 25%}\n", "air-ratio: want cohort, baseline and max"},
		{"air-ratio over 100%", minimal + "  - {kind: air-ratio, baseline: \"*\", max: 250%}\n", "max 250%: want a percent from 0 to 100"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			_, err := scenario.Parse([]byte(tt.src))
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Parse: %v, want %q", err, tt.msg)
			}
		})
	}
}

// TestEvaluateDeltas: took-delta holds when every node running the model
// took it as a delta and names those that did not (with the fallback's
// reason); air-ratio compares the bytes on air per node of two cohorts.
func TestEvaluateDeltas(t *testing.T) {
	s := mustParse(t, minimal+"  - {kind: took-delta, model: v1, cohort: \"hw:rev2\"}\n"+
		"  - {kind: air-ratio, cohort: \"hw:rev2\", baseline: \"hw:rev1\", max: 25%}\n")
	result := func() *scenario.Result {
		r := &scenario.Result{}
		for i := range 4 {
			n := scenario.NodeResult{ID: fmt.Sprintf("sim-%04d", i+1), Labels: map[string]string{"hw": "rev2"}, Model: "v1",
				State: scenario.StateConfirmed, Transfer: "delta", Fetched: 1000}
			n.Link.Down = radio.DirStats{AirBytes: 2000}
			if i == 3 {
				n.Labels["hw"], n.Transfer, n.Fetched, n.Link.Down.AirBytes = "rev1", "full", 10000, 10000
			}
			r.Nodes = append(r.Nodes, n)
		}
		return r
	}
	tests := []struct {
		name       string
		edit       func(r *scenario.Result)
		took, air  bool
		tookDetail string
		airDetail  string
	}{
		{"deltas", func(*scenario.Result) {}, true, true, "3 of 3 hw:rev2 nodes that run v1 took it as a delta",
			"hw:rev2 nodes: 2 KiB on air per node (1 KiB fetched), hw:rev1 nodes: 10 KiB (10 KiB fetched): 20.0%, at most 25%"},
		{"a fallback, more on air", func(r *scenario.Result) {
			r.Nodes[1].Transfer, r.Nodes[1].Fallback, r.Nodes[1].Link.Down.AirBytes = "full", "patch refused: truncated delta", 8000
		}, false, false, "2 of 3 hw:rev2 nodes that run v1 took it as a delta; sim-0002 took the full image (patch refused: truncated delta)",
			"hw:rev2 nodes: 4 KiB on air per node (1 KiB fetched), hw:rev1 nodes: 10 KiB (10 KiB fetched): 40.0%, at most 25%"},
		{"none runs it", func(r *scenario.Result) {
			for i := range r.Nodes {
				r.Nodes[i].Model = ""
			}
		}, false, true, "no hw:rev2 node runs v1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := result()
			tt.edit(r)
			outs := scenario.Evaluate(s, r)
			if o := outs[1]; o.Passed != tt.took || o.Detail != tt.tookDetail {
				t.Errorf("took-delta: %v %q, want %v %q", o.Passed, o.Detail, tt.took, tt.tookDetail)
			}
			if o := outs[2]; o.Passed != tt.air || (tt.airDetail != "" && o.Detail != tt.airDetail) {
				t.Errorf("air-ratio: %v %q, want %v %q", o.Passed, o.Detail, tt.air, tt.airDetail)
			}
		})
	}
}

// TestTookDeltaMin: with min, took-delta holds when at least that share of
// the nodes running the model took it as a delta, and fails below it.
func TestTookDeltaMin(t *testing.T) {
	for _, tt := range []struct {
		min   string
		fulls int
		want  bool
	}{
		{"95%", 0, true},
		{"95%", 1, true},  // 19 of 20: 95%
		{"95%", 2, false}, // 18 of 20: 90%
		{"100%", 1, false},
	} {
		s := mustParse(t, minimal+"  - {kind: took-delta, model: v1, min: "+tt.min+"}\n")
		r := &scenario.Result{}
		for i := range 20 {
			n := scenario.NodeResult{ID: fmt.Sprintf("sim-%04d", i+1), Model: "v1", State: scenario.StateConfirmed, Transfer: "delta"}
			if i < tt.fulls {
				n.Transfer = "full"
			}
			r.Nodes = append(r.Nodes, n)
		}
		if o := scenario.Evaluate(s, r)[1]; o.Passed != tt.want {
			t.Errorf("min %s with %d full images: passed %v (%s), want %v", tt.min, tt.fulls, o.Passed, o.Detail, tt.want)
		}
	}
	if _, err := scenario.Parse([]byte(minimal + "  - {kind: took-delta, model: v1, min: 120%}\n")); err == nil {
		t.Error("min: 120% accepted")
	}
}
