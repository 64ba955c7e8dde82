package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgeota/test/testutil"
)

// requiresStatus is what these tests read of a rollout's status JSON.
type requiresStatus struct {
	Phase      string         `json:"phase"`
	Ineligible int            `json:"ineligible"`
	Totals     map[string]int `json:"totals"`
	// Nodes are read by 'rollout status --nodes --json'.
	Nodes []cliRolloutNode
}

// settled reports whether every node of the rollout is in a state it
// leaves only by a new deployment: succeeded, failed, timed out, rolled
// back, rollback-stuck or ineligible.
func (st requiresStatus) settled() bool {
	for _, n := range st.Nodes {
		switch n.State {
		case "waiting", "assigned", "trial", "confirmed":
			return false
		}
	}
	return len(st.Nodes) > 0
}

// TestRolloutRequiresRuntimeAndMetricGate: real edgeota node processes
// behind a real gateway. r1 and r2 are started with --runtime tflm, r3
// without: the gateway learns their runtimes from their Hellos (contract
// v1.1), and a rollout of a model signed with --requires-runtime tflm
// completes on r1 and r2 while r3 is counted ineligible, never assigned
// and never failed. Then a model whose simulated runtime reports
// low_confidence_permille 80 (metric.low_confidence_permille=80 in its
// header) meets a deployment gate of 50 on that metric: the first node to
// report it fails and the rollout rolls back.
func TestRolloutRequiresRuntimeAndMetricGate(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, dir, "keygen", "--out", "op")
	mustRun(t, dir, "keygen", "--out", "deployer")
	// A model that never fails an inference never breaks the 50 per-mille
	// bound, over however many of its 20 to 101 inferences (1 s at 100/s) a
	// probation judges. At 1 per-mille a node reverted with 2 errors of 39,
	// P = 7.2e-4 by the binomial, for each of up to 5 probations.
	good := "edgeota-sim-model error_permille=0 p50_us=5000 p99_us=20000"
	models := []struct{ name, header, seq string }{
		{"tflm", good, "2"},
		{"lowconf", good + " metric.low_confidence_permille=80", "3"},
	}
	for _, v := range models {
		writeModel(t, filepath.Join(dir, v.name+".bin"), v.header, 40_000+len(v.name))
		args := []string{"sign", "--key", "op.key", "--image", v.name + ".bin", "--component", "kws", "--version", v.name, "--seq", v.seq,
			"--class", class, "--probation-seconds", "1", "--min-inferences", "20", "--max-error-permille", "50", "--out", v.name + ".cose"}
		if v.name == "tflm" {
			args = append(args, "--requires-runtime", "tflm")
		}
		mustRun(t, dir, args...)
	}
	coap, adminPort := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, "udp")), testutil.FreePort(t, "tcp")
	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	startDaemon(t, dir, "gateway", "--data", "gw-data", "--trust", "op.pub", "--deploy-trust", "deployer.pub",
		"--insecure-udp", "--coaps", "-", "--coap", coap, "--admin", fmt.Sprintf("127.0.0.1:%d", adminPort), "--gateway-id", "gw-1")
	runtimes := map[string]string{"r1": "tflm", "r2": "tflm", "r3": ""}
	for id, rt := range runtimes {
		args := []string{"node", "--id", id, "--flash", id + ".flash", "--slot-size", "131072", "--class", class, "--component", "kws",
			"--trust", "op.pub", "--labels", "hw=rev2", "--gateway", "coap://" + coap, "--inference-rate", "100",
			"--health-interval", "500ms", "--poll-interval", "2s"}
		if rt != "" {
			args = append(args, "--runtime", rt)
		}
		startDaemon(t, dir, args...)
	}
	type node struct {
		ID          string `json:"id"`
		Runtime     string `json:"runtime"`
		RunningSeq  uint64 `json:"running_seq"`
		ActiveState string `json:"active_state"`
		AssignedSeq uint64 `json:"assigned_seq"`
	}
	nodes := func() map[string]node {
		out, _, code := run(t, dir, "nodes", "--admin", admin, "--json")
		var ns []node
		if code != 0 || json.Unmarshal([]byte(out), &ns) != nil {
			return nil
		}
		m := map[string]node{}
		for _, n := range ns {
			m[n.ID] = n
		}
		return m
	}
	testutil.Eventually(t, "the nodes to say hello", func() bool { return len(nodes()) == len(runtimes) })
	for id, n := range nodes() {
		if n.Runtime != runtimes[id] {
			t.Fatalf("the gateway has %s's runtime %q, want %q", id, n.Runtime, runtimes[id])
		}
	}
	for _, v := range models {
		mustRun(t, dir, "model", "push", "--admin", admin, "--manifest", v.name+".cose", "--image", v.name+".bin")
	}
	deploy := func(id, seq, manifest, gates string) {
		spec := fmt.Sprintf(`id: %s
seq: %s
manifest: %s
target_cohort: hw:rev2
waves:
  - {percent: 50, bake: 1s}
  - {percent: 100, bake: 1s}
gates: %s
on_failure: rollback
node_timeout: 60s
max_concurrent: 10
`, id, seq, manifest, gates)
		if err := os.WriteFile(filepath.Join(dir, id+".yaml"), []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
		mustRun(t, dir, "deploy", "sign", "--key", "deployer.key", id+".yaml", "--out", id+".dep")
		mustRun(t, dir, "deploy", "apply", "--admin", admin, id+".dep")
	}
	status := func(id string) requiresStatus {
		out, _, code := run(t, dir, "rollout", "status", id, "--admin", admin, "--json")
		var st requiresStatus
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
			return requiresStatus{}
		}
		if st.Nodes = cliRolloutNodes(t, dir, admin, id); st.Nodes == nil {
			return requiresStatus{}
		}
		return st
	}

	deploy("tflm", "1", "tflm.cose", "{max_failed: 0, min_reports: 1}")
	testutil.Eventually(t, "every node of the tflm rollout to settle", func() bool { return status("tflm").settled() })
	st := status("tflm")
	if st.Phase != "completed" || st.Ineligible != 1 || st.Totals["succeeded"] != 2 || st.Totals["failed"]+st.Totals["timed-out"] != 0 {
		t.Fatalf("%s with %d ineligible, totals %v; want completed, r3 ineligible, r1 and r2 succeeded, none failed", st.Phase, st.Ineligible, st.Totals)
	}
	for _, n := range st.Nodes {
		if n.ID == "r3" && (n.State != "ineligible" || !strings.Contains(n.Reason, `requires runtime "tflm", this node names none`)) {
			t.Fatalf("r3 is %s (%s), want ineligible for the runtime", n.State, n.Reason)
		}
	}
	ns := nodes()
	for _, id := range []string{"r1", "r2"} {
		if n := ns[id]; n.RunningSeq != 2 || n.ActiveState != "confirmed" {
			t.Fatalf("%s runs seq %d (%s), want 2 confirmed", id, n.RunningSeq, n.ActiveState)
		}
	}
	if n := ns["r3"]; n.AssignedSeq != 0 || n.RunningSeq != 0 {
		t.Fatalf("r3, ineligible, was assigned seq %d and runs %d", n.AssignedSeq, n.RunningSeq)
	}
	out := mustRun(t, dir, "rollout", "status", "tflm", "--admin", admin)
	if !strings.Contains(out, "ineligible: 1 nodes") {
		t.Fatalf("rollout status does not show the ineligible count:\n%s", out)
	}

	deploy("lowconf", "2", "lowconf.cose", "{max_failed: 0, min_reports: 1, metrics: {low_confidence_permille: 50}}")
	testutil.Eventually(t, "the lowconf rollout to end", func() bool { return status("lowconf").Phase != "running" })
	st = status("lowconf")
	if st.Phase != "rolled-back" {
		t.Fatalf("the lowconf rollout is %s, want rolled-back by its metric gate: %+v", st.Phase, st.Nodes)
	}
	failed := 0
	for _, n := range st.Nodes {
		if strings.Contains(n.Reason, "metric low_confidence_permille 80 over 50") {
			failed++
		}
	}
	if failed == 0 {
		t.Fatalf("no node failed the metric gate: %+v", st.Nodes)
	}
}
