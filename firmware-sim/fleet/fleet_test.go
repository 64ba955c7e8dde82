package fleet_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edgeota/firmware-sim/fleet"
	"edgeota/firmware-sim/scenario"
)

// TestShippedScenarios runs every scenario of firmware-sim/scenarios and
// fails on any failed expectation. It takes a minute or two; make test runs
// it in its own step, without the race detector.
func TestShippedScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("runs whole fleets; make test runs it without -short")
	}
	files, err := filepath.Glob(filepath.Join("..", "scenarios", "*.yaml"))
	if err != nil || len(files) < 5 {
		t.Fatalf("scenarios: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			sc, err := scenario.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			res, err := fleet.Run(ctx, sc, fleet.Options{})
			if err != nil {
				t.Fatal(err)
			}
			outs := scenario.Evaluate(sc, res)
			var b bytes.Buffer
			scenario.WriteSummary(&b, sc, res, outs)
			t.Log("\n" + b.String())
			if !scenario.Passed(outs) {
				t.Fatalf("expectations failed (replay with --seed %d)", res.Seed)
			}
		})
	}
}

// TestSmallFleetFaults is a quick scenario for the race detector: a few
// nodes, a bad model, a power cut and a reboot.
//
// The bad model fails 900 per-mille; its probation judges 10 to 61
// inferences against 50 per-mille, so it passes only with no error in 10
// to 19 inferences, at most 1 in 20 to 39, and so on: at most 0.1^10 =
// 1e-10 per node (no error in 10) by the binomial, 6e-10 for the 6 nodes.
// At 400 per-mille it was 0.6^10 = 6e-3 per node.
func TestSmallFleetFaults(t *testing.T) {
	src := `
name: small
seed: 1
time_scale: 60
duration: 20m
inference_rate: 1
health_interval: 30s
fleet: [{count: 6, labels: {hw: rev2}}]
models:
  - {name: v1, version: 1.0.0, behaviour: "error_permille=1", size: 8192}
  - {name: bad, version: 2.0.0, behaviour: "error_permille=900", size: 8192, probation: {seconds: 60, min_inferences: 10, max_error_permille: 50}}
initial: v1
deployments:
  - {id: d1, at: 10s, model: bad, cohort: "*", waves: [{percent: 50, bake: 1m}, {percent: 100, bake: 1m}], gates: {max_failed: 0, min_reports: 1}, on_failure: rollback, node_timeout: 10m}
faults:
  - {at: 15s, kind: power-cut, nodes: 2}
  - {at: 20s, kind: reboot, nodes: 1}
expect:
  - {kind: rollout, deployment: d1, phase: rolled-back, max_wave: 1}
  - {kind: all-run, cohort: "*", model: v1}
  - {kind: no-unbootable}
  - {kind: health-delivered}
`
	if _, summary, ok := runScenario(t, src); !ok {
		t.Fatalf("expectations failed\n%s", summary)
	}
}

// TestMetricGateFires: a model whose simulated runtime reports
// low_confidence_permille 80 (metric.low_confidence_permille=80 in its
// behaviour), otherwise healthy, meets a deployment gate of 50 on that
// metric: its first node fails the gate, max_failed 0 rolls the rollout
// back in wave 1, every node back on v1.
func TestMetricGateFires(t *testing.T) {
	src := `
name: metric-gate
seed: 1
time_scale: 60
duration: 20m
inference_rate: 1
health_interval: 30s
fleet: [{count: 4, labels: {hw: rev2}}]
models:
  - {name: v1, version: 1.0.0, behaviour: "error_permille=1", size: 8192}
  - {name: unsure, version: 2.0.0, behaviour: "error_permille=1 metric.low_confidence_permille=80", size: 8192, probation: {seconds: 60, min_inferences: 10}}
initial: v1
deployments:
  - {id: d1, at: 10s, model: unsure, cohort: "*", waves: [{percent: 25, bake: 2m}, {percent: 100, bake: 1m}],
     gates: {max_failed: 0, min_reports: 2, metrics: {low_confidence_permille: 50}}, on_failure: rollback, node_timeout: 10m}
expect:
  - {kind: rollout, deployment: d1, phase: rolled-back, max_wave: 1}
  - {kind: all-run, cohort: "*", model: v1}
`
	if _, summary, ok := runScenario(t, src); !ok {
		t.Fatalf("expectations failed\n%s", summary)
	}
}

// runScenario parses and runs a scenario in a temporary directory (at most
// 3 minutes) and returns its result, its summary and whether every
// expectation passed.
func runScenario(t *testing.T, src string) (*scenario.Result, string, bool) {
	t.Helper()
	sc, err := scenario.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := fleet.Run(ctx, sc, fleet.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	outs := scenario.Evaluate(sc, res)
	var b bytes.Buffer
	scenario.WriteSummary(&b, sc, res, outs)
	return res, b.String(), scenario.Passed(outs)
}

// TestDownloadGroups runs long-link.yaml: its lock-step nodes ask for
// each of the model's 64 blocks, so each sends at least 64 datagrams; its
// Q-Block2 nodes ask once for each set of 10 and again for lost blocks,
// with their Hello, status events and health reports about 30 in all.
// Each node's link counts what it sent.
func TestDownloadGroups(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a fleet")
	}
	sc, err := scenario.Load(filepath.Join("..", "scenarios", "long-link.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := fleet.Run(ctx, sc, fleet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if outs := scenario.Evaluate(sc, res); !scenario.Passed(outs) {
		t.Fatalf("expectations failed (replay with --seed %d)", res.Seed)
	}
	const blocks = 64
	for _, n := range res.Nodes {
		sent := n.Link.Up.In
		switch n.Labels["download"] {
		case scenario.DownloadLockStep:
			if sent < blocks {
				t.Errorf("lock-step node %s sent %d datagrams, fewer than the %d blocks", n.ID, sent, blocks)
			}
		case scenario.DownloadQBlock:
			if sent >= blocks {
				t.Errorf("Q-Block2 node %s sent %d datagrams, not fewer than the %d blocks", n.ID, sent, blocks)
			}
		default:
			t.Fatalf("node %s of no download group", n.ID)
		}
		if n.Download == 0 || n.Link.Down.Airtime == 0 {
			t.Errorf("node %s: download %v, downlink airtime %v", n.ID, n.Download, n.Link.Down.Airtime)
		}
	}
}
