package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgeota/test/mqttpeer"
	"edgeota/test/testutil"
)

// TestSimAgainstRunningGateway runs a scenario against an `edgeota gateway
// --sim` process and a real mosquitto, as a user's CI would, and checks
// the JUnit report.
func TestSimAgainstRunningGateway(t *testing.T) {
	b := mqttpeer.Start(t)
	dir := t.TempDir()
	mustRun(t, dir, "keygen", "--out", "op")
	coap, adminPort := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, "udp")), testutil.FreePort(t, "tcp")
	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	// Compressed time is refused without --sim.
	if _, errs, code := run(t, dir, "gateway", "--data", "x", "--trust", "op.pub", "--time-scale", "60"); code != 2 || !strings.Contains(errs, "--sim") {
		t.Fatalf("--time-scale without --sim: exit %d: %s", code, errs)
	}
	startDaemon(t, dir, "gateway", "--data", "gw", "--trust", "op.pub", "--deploy-trust", "op.pub", "--insecure-udp", "--coaps", "-", "--coap", coap,
		"--admin", fmt.Sprintf("127.0.0.1:%d", adminPort), "--mqtt", b.URL(), "--gateway-id", "gw-sim", "--sim", "--time-scale", "60")
	testutil.Eventually(t, "the gateway", func() bool { _, _, code := run(t, dir, "rollout", "list", "--admin", admin); return code == 0 })
	scen := `
name: external
seed: 9
time_scale: 60
duration: 20m
inference_rate: 1
health_interval: 30s
fleet: [{count: 8, labels: {hw: rev2}}, {count: 2, labels: {hw: rev1}}]
link: {loss: 0.05}
models:
  - {name: v1, version: 1.0.0, behaviour: "error_permille=1", size: 8192}
  - {name: v2, version: 2.0.0, behaviour: "error_permille=1", size: 8192, probation: {seconds: 60, min_inferences: 10}}
initial: v1
deployments:
  - {id: d1, at: 10s, model: v2, cohort: "hw:rev2", waves: [{percent: 25, bake: 1m}, {percent: 100, bake: 1m}], gates: {max_failed: 0, min_reports: 1}, node_timeout: 10m}
expect:
  - {kind: rollout, deployment: d1, phase: completed}
  - {kind: all-run, cohort: "hw:rev2", model: v2}
  - {kind: all-run, cohort: "hw:rev1", model: v1}
  - {kind: health-delivered}
`
	os.WriteFile(filepath.Join(dir, "s.yaml"), []byte(scen), 0o644)
	args := []string{"sim", "run", "s.yaml", "--quiet", "--junit", "report.xml", "--gateway", "coap://" + coap, "--admin", admin, "--mqtt", b.URL(), "--key", "op.key"}
	out, errs, code := run(t, dir, args...)
	if code != 0 {
		t.Fatalf("sim run: exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "4 of 4 expectations passed") {
		t.Fatalf("summary:\n%s", out)
	}
	x, err := os.ReadFile(filepath.Join(dir, "report.xml"))
	if err != nil || !strings.Contains(string(x), "<testsuite") || strings.Count(string(x), "<testcase") != 4 {
		t.Fatalf("JUnit report: %v\n%s", err, x)
	}
	// A second run on the same gateway is scoped to its own nodes; its
	// --json report is what a script reads.
	out, errs, code = run(t, dir, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("second run: exit %d\n%s\n%s", code, out, errs)
	}
	var rep struct {
		Passed       bool
		Seed         string
		Expectations []struct{ Passed bool }
		Nodes        []struct{ ID, Model string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if !rep.Passed || rep.Seed != "9" || len(rep.Expectations) != 4 || len(rep.Nodes) != 10 {
		t.Fatalf("--json report: %+v", rep)
	}
}

// TestSimOverDTLSAgainstRunningGateway runs a transport dtls scenario
// against an `edgeota gateway --sim` process that serves CoAP over DTLS
// only and requires an admin token, with a real mosquitto: the run
// registers its nodes' keys with `--token-file`, its nodes update over
// DTLS, and the gateway's key registry is empty again after the run.
func TestSimOverDTLSAgainstRunningGateway(t *testing.T) {
	b := mqttpeer.Start(t)
	dir := t.TempDir()
	mustRun(t, dir, "keygen", "--out", "op")
	coaps, adminPort := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, "udp")), testutil.FreePort(t, "tcp")
	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	startDaemon(t, dir, "gateway", "--data", "gw", "--trust", "op.pub", "--deploy-trust", "op.pub", "--coaps", coaps,
		"--admin", fmt.Sprintf("127.0.0.1:%d", adminPort), "--admin-token-file", "admin.token", "--max-handshakes-per-source", "32",
		"--mqtt", b.URL(), "--gateway-id", "gw-sim-dtls", "--sim", "--time-scale", "60")
	testutil.Eventually(t, "the gateway", func() bool {
		_, _, code := run(t, dir, "rollout", "list", "--admin", admin, "--token-file", "admin.token")
		return code == 0
	})
	scen := `
name: external-dtls
seed: 11
transport: dtls
time_scale: 60
duration: 20m
inference_rate: 1
health_interval: 30s
fleet: [{count: 6, labels: {hw: rev2}}]
link: {loss: 0.05}
models:
  - {name: v1, version: 1.0.0, behaviour: "error_permille=1", size: 8192}
  - {name: v2, version: 2.0.0, behaviour: "error_permille=1", size: 8192, probation: {seconds: 60, min_inferences: 10}}
initial: v1
deployments:
  - {id: d1, at: 10s, model: v2, cohort: "hw:rev2", waves: [{percent: 50, bake: 1m}, {percent: 100, bake: 1m}], gates: {max_failed: 0, min_reports: 1}, node_timeout: 30m}
expect:
  - {kind: rollout, deployment: d1, phase: completed}
  - {kind: all-run, model: v2}
  - {kind: health-delivered}
`
	os.WriteFile(filepath.Join(dir, "s.yaml"), []byte(scen), 0o644)
	out, errs, code := run(t, dir, "sim", "run", "s.yaml", "--quiet", "--gateway", "coaps://"+coaps, "--admin", admin,
		"--token-file", "admin.token", "--mqtt", b.URL(), "--key", "op.key")
	if code != 0 {
		t.Fatalf("sim run: exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "3 of 3 expectations passed") || !strings.Contains(out, "DTLS") {
		t.Fatalf("summary:\n%s", out)
	}
	if keys := mustRun(t, dir, "gateway", "keys", "list", "--admin", admin, "--token-file", "admin.token"); strings.TrimSpace(keys) != "" {
		t.Fatalf("the run left keys in the gateway's registry:\n%s", keys)
	}
	// A coap:// URL for a dtls scenario is refused before anything runs.
	if _, errs, code := run(t, dir, "sim", "run", "s.yaml", "--quiet", "--gateway", "coap://"+coaps, "--admin", admin,
		"--token-file", "admin.token", "--mqtt", b.URL(), "--key", "op.key"); code == 0 || !strings.Contains(errs, "coaps://") {
		t.Fatalf("coap:// for a dtls scenario: exit %d: %s", code, errs)
	}
}
