package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"edgeota/gateway/admin"
	"edgeota/test/mqttpeer"
	"edgeota/test/testutil"
)

// fleet2000 is the shipped 2,000-node scenario (make scale runs it too).
var fleet2000 = filepath.Join("..", "firmware-sim", "scenarios", "scale", "fleet-2000.yaml")

// stateRank orders the states a node passes through on a rollout that
// succeeds; a state outside it (failed, timed out, rolled back) fails the
// test wherever it is seen.
var stateRank = map[admin.NodeState]int{
	admin.NodeWaiting: 0, admin.NodeAssigned: 1, admin.NodeTrial: 2, admin.NodeConfirmed: 3, admin.NodeSucceeded: 4,
}

// TestKill9At2000Nodes: a real gateway process rolls a 32 KiB model out
// to 2,000 simulated nodes (`edgeota sim run` of fleet-2000.yaml, in its
// own process, against the gateway and a real mosquitto); once 300 nodes
// of wave 2 have succeeded it is killed with SIGKILL, and restarted on the
// same data directory. The rollout then completes with every node
// succeeded; no node's state ever goes backwards, across the kill or
// between two readings; and every decision the gateway showed before the
// kill is still there after it: each node's wave, and for a node that had
// succeeded its decision itself (time and reason), never taken again.
//
// What the gateway shows is in memory, a commit ahead of its disk at
// most; the kill waits until the showing is durable, by an event: nodes
// that were still waiting after the whole snapshot was read have since
// reported their trial, and the gateway sends an assignment only after
// the commit that holds it, which holds every change staged before.
//
// It takes about a minute on two cores: make test runs it in its
// scenarios step (without -race: the race detector allows 8,128
// goroutines and the simulator runs 11 a node); -short skips it.
func TestKill9At2000Nodes(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 nodes: make test runs it in its scenarios step, without -short")
	}
	b := mqttpeer.Start(t)
	dir := t.TempDir()
	mustRun(t, dir, "keygen", "--out", "op")
	scen, err := filepath.Abs(fleet2000)
	if err != nil {
		t.Fatal(err)
	}
	coap, adminPort := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, "udp")), testutil.FreePort(t, "tcp")
	adminURL := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	// Every simulated node speaks from 127.0.0.1: no per-address rate,
	// as the simulator's own gateway has none.
	gwArgs := []string{"gateway", "--data", "gw", "--trust", "op.pub", "--deploy-trust", "op.pub", "--insecure-udp", "--coaps", "-",
		"--coap", coap, "--admin", fmt.Sprintf("127.0.0.1:%d", adminPort), "--mqtt", b.URL(), "--gateway-id", "gw-scale",
		"--sim", "--time-scale", "20", "--rate-source", "-1"}
	gw := startDaemon(t, dir, gwArgs...)
	api, err := admin.NewClient(adminURL)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the gateway's admin API", func() bool { return adminUp(adminURL) })

	sim := exec.Command(edgeota(t), "sim", "run", scen, "--quiet", "--json",
		"--gateway", "coap://"+coap, "--admin", adminURL, "--mqtt", b.URL(), "--key", "op.key")
	sim.Dir = dir
	var simOut, simErr bytes.Buffer
	sim.Stdout, sim.Stderr = &simOut, &simErr
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	simResult, simDone := make(chan error, 1), make(chan struct{})
	go func() { simResult <- sim.Wait(); close(simDone) }()
	t.Cleanup(func() {
		select {
		case <-simDone:
		default:
			sim.Process.Kill()
			<-simDone
		}
		if t.Failed() {
			t.Logf("sim stderr:\n%s", simErr.String())
		}
	})

	ctx := context.Background()
	var id string
	testutil.Eventually(t, "the scenario's rollout", func() bool {
		rs, err := api.Rollouts(ctx)
		if err == nil && len(rs) == 1 {
			id = rs[0].ID
		}
		return id != ""
	})
	seen := map[string]admin.RolloutNode{} // each node as last read
	// read walks every node of the rollout and checks that none went
	// backwards since it was last read; false when the gateway did not
	// answer (it is down, or not up yet).
	read := func() (map[string]admin.RolloutNode, bool) {
		now := map[string]admin.RolloutNode{}
		for n, err := range api.AllRolloutNodes(ctx, id, admin.RolloutNodeQuery{Limit: admin.MaxPageLimit}) {
			if err != nil {
				return nil, false
			}
			rank, ok := stateRank[n.State]
			if !ok {
				t.Fatalf("node %s is %s: %s", n.ID, n.State, n.Reason)
			}
			if was, ok := seen[n.ID]; ok && rank < stateRank[was.State] {
				t.Fatalf("node %s went back from %s to %s", n.ID, was.State, n.State)
			}
			now[n.ID] = n
			seen[n.ID] = n
		}
		return now, true
	}
	var before admin.Rollout
	testutil.Eventually(t, "300 nodes of wave 2 to succeed", func() bool {
		r, err := api.Rollout(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		before = r
		return r.Wave == 2 && r.Totals[string(admin.NodeSucceeded)] >= 300
	}, testutil.Within(5*time.Minute), testutil.Every(50*time.Millisecond))
	snap, ok := read()
	if !ok || len(snap) != 2000 {
		t.Fatalf("the snapshot holds %d nodes, want 2000", len(snap))
	}
	// Nodes waiting after the whole snapshot was read: their assignments
	// come in commits that hold everything the snapshot showed.
	waiting, err := api.RolloutNodes(ctx, id, admin.RolloutNodeQuery{State: admin.NodeWaiting, Limit: 50})
	if err != nil || len(waiting.Nodes) < 10 {
		t.Fatalf("nodes still waiting: %d, %v; want at least 10", len(waiting.Nodes), err)
	}
	testutil.Eventually(t, "10 nodes waiting after the snapshot to report their trial", func() bool {
		now, ok := read()
		if !ok {
			t.Fatal("the gateway stopped answering before the kill")
		}
		on := 0
		for _, n := range waiting.Nodes {
			if stateRank[now[n.ID].State] >= stateRank[admin.NodeTrial] {
				on++
			}
		}
		return on >= 10
	}, testutil.Within(5*time.Minute), testutil.Every(100*time.Millisecond))
	succeeded := 0
	for _, n := range snap {
		if n.State == admin.NodeSucceeded {
			succeeded++
		}
	}
	// Across the kill a node is compared with the snapshot, durable; what
	// the gateway showed since may have been a commit ahead of its disk.
	seen = maps.Clone(snap)

	gw.cmd.Process.Signal(syscall.SIGKILL)
	gw.cmd.Wait()
	t.Logf("gateway killed with SIGKILL at %d nodes succeeded (wave %d), restarted", succeeded, before.Wave)
	startDaemon(t, dir, gwArgs...)
	testutil.Eventually(t, "the gateway to come back", func() bool { return adminUp(adminURL) })

	after, err := api.Rollout(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if after.Wave < before.Wave || !after.Started.Equal(before.Started) || after.Seq != before.Seq {
		t.Fatalf("the rollout after the restart: wave %d started %v seq %d; before: wave %d started %v seq %d",
			after.Wave, after.Started, after.Seq, before.Wave, before.Started, before.Seq)
	}
	now, ok := read()
	if !ok || len(now) != 2000 {
		t.Fatalf("after the restart the rollout holds %d nodes, want 2000", len(now))
	}
	kept := 0
	for nid, was := range snap {
		n := now[nid]
		if was.Wave != 0 && n.Wave != was.Wave {
			t.Errorf("node %s: wave %d before the kill, %d after", nid, was.Wave, n.Wave)
		}
		if was.State == admin.NodeSucceeded {
			if n.State != admin.NodeSucceeded || !n.Since.Equal(was.Since) || n.Reason != was.Reason {
				t.Errorf("node %s: %s since %v (%s) before the kill, %s since %v (%s) after",
					nid, was.State, was.Since, was.Reason, n.State, n.Since, n.Reason)
			}
			kept++
		}
	}
	if kept != succeeded || t.Failed() {
		t.Fatalf("%d of the %d successes decided before the kill kept", kept, succeeded)
	}

	testutil.Eventually(t, "the rollout to complete", func() bool {
		r, err := api.Rollout(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		_, ok := read()
		return ok && r.Phase == admin.PhaseCompleted
	}, testutil.Within(5*time.Minute), testutil.Every(200*time.Millisecond))
	final, _ := read()
	for nid, n := range final {
		if n.State != admin.NodeSucceeded {
			t.Errorf("node %s ended %s: %s", nid, n.State, n.Reason)
		}
	}
	err = testutil.Receive(t, "the simulation to end", simResult, testutil.Within(5*time.Minute))
	var rep struct {
		Passed   bool
		Rollouts []struct {
			Phase     string
			Succeeded int
		}
		Resources struct {
			CPU float64 `json:"cpu_seconds"`
		}
		RealElapsed float64 `json:"real_elapsed_seconds"`
	}
	if err != nil || json.Unmarshal(simOut.Bytes(), &rep) != nil {
		t.Fatalf("sim run: %v\n%s", err, simOut.String())
	}
	if !rep.Passed || len(rep.Rollouts) != 1 || rep.Rollouts[0].Phase != "completed" || rep.Rollouts[0].Succeeded != 2000 {
		t.Fatalf("sim run report: %+v", rep)
	}
	t.Logf("2,000 nodes, killed at %d succeeded: the simulation ran %.1f s real, %.1f s of CPU", succeeded, rep.RealElapsed, rep.Resources.CPU)
}
