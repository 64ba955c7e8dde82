package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"edgeota/test/testutil"
)

// rolloutStatus is what these tests read of 'rollout status --json', and
// of 'rollout status --nodes --json'.
type rolloutStatus struct {
	Phase  string         `json:"phase"`
	Wave   int            `json:"wave"`
	Totals map[string]int `json:"totals"`
	Nodes  []cliRolloutNode
}

// cliRolloutNode is a node of 'rollout status --nodes --json'.
type cliRolloutNode struct {
	ID, State, Reason string
	Wave              int
}

// getRollout reads rollout id's status and nodes with the CLI; the zero
// status when either command fails.
func getRollout(t *testing.T, dir, admin, id string) rolloutStatus {
	var st rolloutStatus
	out, _, code := run(t, dir, "rollout", "status", id, "--admin", admin, "--json")
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		return rolloutStatus{}
	}
	if st.Nodes = cliRolloutNodes(t, dir, admin, id); st.Nodes == nil {
		return rolloutStatus{}
	}
	return st
}

// cliRolloutNodes reads every node of rollout id with the CLI; nil when
// the command fails.
func cliRolloutNodes(t *testing.T, dir, admin, id string) []cliRolloutNode {
	out, _, code := run(t, dir, "rollout", "status", id, "--admin", admin, "--nodes", "--json")
	ns := []cliRolloutNode{}
	if code != 0 || json.Unmarshal([]byte(out), &ns) != nil {
		return nil
	}
	return ns
}

// TestRolloutsWithRealNodes: real edgeota node processes behind a real
// gateway; a good model reaches 100% wave by wave; a bad one (errors in
// probation) is stopped in wave 1 and every touched node ends confirmed on
// the previous model.
func TestRolloutsWithRealNodes(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, dir, "keygen", "--out", "op")
	mustRun(t, dir, "keygen", "--out", "deployer")
	// A probation of 1 s at 100 inferences/s, at least 20, judges 20 to 101
	// inferences (fewer on a loaded machine). The good model never fails
	// one, so it never breaks 50 per-mille. The bad one passes only with at
	// most 1 error of 20 to 39 (2 of 40 to 59, ...): at most P = 1.7e-9 per
	// node (1 of 20) by the binomial, 3.3e-9 for the 2 nodes of wave 1.
	// At 1 and 300 per-mille they were 7.2e-4 (2 errors of 39) for each of
	// the 13 good probations and 7.6e-3 per bad node.
	good := "edgeota-sim-model error_permille=0 p50_us=5000 p99_us=20000"
	bad := "edgeota-sim-model error_permille=700 p50_us=5000 p99_us=20000"
	for _, v := range []struct{ name, header, seq string }{{"v1", good, "1"}, {"v2", good, "2"}, {"v3", bad, "3"}} {
		writeModel(t, filepath.Join(dir, v.name+".bin"), v.header, 60_000+len(v.name))
		mustRun(t, dir, "sign", "--key", "op.key", "--image", v.name+".bin", "--component", "kws", "--version", v.name, "--seq", v.seq,
			"--class", class, "--probation-seconds", "1", "--min-inferences", "20", "--max-error-permille", "50", "--out", v.name+".cose")
	}
	coap, adminPort := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, "udp")), testutil.FreePort(t, "tcp")
	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	gwArgs := []string{"gateway", "--data", "gw-data", "--trust", "op.pub", "--deploy-trust", "deployer.pub",
		"--insecure-udp", "--coaps", "-", "--coap", coap, "--admin", fmt.Sprintf("127.0.0.1:%d", adminPort), "--gateway-id", "gw-1"}
	gw := startDaemon(t, dir, gwArgs...)
	nodes := []string{"r1", "r2", "r3", "r4", "r5", "r6", "other"}
	for _, id := range nodes {
		hw := "rev2"
		if id == "other" {
			hw = "rev1"
		}
		startDaemon(t, dir, "node", "--id", id, "--flash", id+".flash", "--slot-size", "262144", "--class", class, "--component", "kws",
			"--trust", "op.pub", "--labels", "hw="+hw, "--gateway", "coap://"+coap, "--inference-rate", "100", "--health-interval", "500ms", "--poll-interval", "2s")
	}
	testutil.Eventually(t, "the nodes to say hello", func() bool { return len(gatewayNodes(t, dir, admin)) == len(nodes) })
	mustRun(t, dir, "model", "push", "--admin", admin, "--manifest", "v1.cose", "--image", "v1.bin", "--assign", "all")
	runs := func(seq uint64, ids ...string) func() bool {
		return func() bool {
			ns := gatewayNodes(t, dir, admin)
			for _, id := range ids {
				if n := ns[id]; n.RunningSeq != seq || n.ActiveState != "confirmed" {
					return false
				}
			}
			return true
		}
	}
	testutil.Eventually(t, "every node to confirm v1", runs(1, nodes...))
	mustRun(t, dir, "model", "push", "--admin", admin, "--manifest", "v2.cose", "--image", "v2.bin")
	mustRun(t, dir, "model", "push", "--admin", admin, "--manifest", "v3.cose", "--image", "v3.bin")
	deploy := func(id, seq, manifest string) {
		spec := fmt.Sprintf(`id: %s
seq: %s
manifest: %s
target_cohort: hw:rev2
waves:
  - {percent: 20, bake: 1s}
  - {percent: 100, bake: 1s}
gates: {max_failed: 0, min_reports: 1}
on_failure: rollback
node_timeout: 60s
max_concurrent: 10
`, id, seq, manifest)
		os.WriteFile(filepath.Join(dir, id+".yaml"), []byte(spec), 0o644)
		mustRun(t, dir, "deploy", "sign", "--key", "deployer.key", id+".yaml", "--out", id+".dep")
		mustRun(t, dir, "deploy", "apply", "--admin", admin, id+".dep")
	}
	// A good model, wave by wave to 100%, with the gateway killed (SIGKILL)
	// in the middle of wave 1 and restarted.
	deploy("good", "1", "v2.cose")
	testutil.Eventually(t, "wave 1 to start", func() bool {
		st := getRollout(t, dir, admin, "good")
		return st.Phase != "" && st.Totals["waiting"] < 6
	})
	gw.cmd.Process.Signal(syscall.SIGKILL)
	gw.cmd.Wait()
	startDaemon(t, dir, gwArgs...)
	testutil.Eventually(t, "the gateway to come back", func() bool {
		_, _, code := run(t, dir, "rollout", "list", "--admin", admin)
		return code == 0
	})
	testutil.Eventually(t, "the good rollout to complete", func() bool { return getRollout(t, dir, admin, "good").Phase == "completed" })
	perWave := map[int]int{}
	for _, n := range getRollout(t, dir, admin, "good").Nodes {
		perWave[n.Wave]++
	}
	if perWave[1] != 2 || perWave[2] != 4 { // 20% of 6 is max(1, ceil(1.2)) = 2
		t.Errorf("nodes per wave %v, want 2 in wave 1 and 4 in wave 2", perWave)
	}
	testutil.Eventually(t, "the cohort to run v2", runs(2, "r1", "r2", "r3", "r4", "r5", "r6"))
	var full struct {
		Decisions []struct{ Node, What string } `json:"decisions"`
	}
	json.Unmarshal([]byte(mustRun(t, dir, "rollout", "status", "good", "--admin", admin, "--json")), &full)
	assigned := map[string]int{}
	for _, d := range full.Decisions {
		if strings.HasPrefix(d.What, "assigned in wave") {
			assigned[d.Node]++
		}
	}
	for _, id := range []string{"r1", "r2", "r3", "r4", "r5", "r6"} {
		if assigned[id] != 1 {
			t.Errorf("node %s assigned %d times across the gateway restart", id, assigned[id])
		}
	}
	if n := gatewayNodes(t, dir, admin)["other"]; n.RunningSeq != 1 {
		t.Fatalf("the node outside the cohort runs seq %d", n.RunningSeq)
	}
	// A bad model: stopped in wave 1 and rolled back.
	deploy("bad", "2", "v3.cose")
	testutil.Eventually(t, "the bad rollout to roll back", func() bool { return getRollout(t, dir, admin, "bad").Phase == "rolled-back" })
	st := getRollout(t, dir, admin, "bad")
	touched := 0
	for _, n := range st.Nodes {
		if n.State != "waiting" {
			touched++
			if n.Wave != 1 {
				t.Errorf("node %s touched in wave %d", n.ID, n.Wave)
			}
		}
	}
	if touched == 0 || touched > 2 {
		t.Fatalf("%d nodes touched by the bad model, want the 2 of wave 1", touched)
	}
	testutil.Eventually(t, "every node back on v2", runs(2, "r1", "r2", "r3", "r4", "r5", "r6"))
	out := mustRun(t, dir, "rollout", "status", "bad", "--admin", admin)
	if !strings.Contains(out, "gate red") || !strings.Contains(out, "reverted") {
		t.Fatalf("the status does not explain the decision:\n%s", out)
	}
}
