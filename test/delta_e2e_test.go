package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgeota/test/testutil"
)

// TestDeltaRolloutWithRealNodes is issue 15's story: a gateway whose
// nodes run model 1.0 is pushed 1.1, a retrained last layer; a rollout
// assigns it and every node downloads a delta a fraction of the image's
// size, rebuilds 1.1 and verifies it against the signed manifest, and
// `edgeota rollout status`, `edgeota nodes` and the gateway's metrics say
// so. The gateway computes the delta once for the three nodes.
func TestDeltaRolloutWithRealNodes(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, dir, "keygen", "--out", "op")
	mustRun(t, dir, "keygen", "--out", "deployer")
	// A model that never fails an inference never breaks the 100
	// per-mille bound (see TestTwoNodesUpdateFromGateway).
	const size = 200_000
	header := "edgeota-sim-model error_permille=0 p50_us=5000 p99_us=20000"
	writeModel(t, filepath.Join(dir, "v1.bin"), header, size)
	v1, err := os.ReadFile(filepath.Join(dir, "v1.bin"))
	if err != nil {
		t.Fatal(err)
	}
	v2 := bytes.Clone(v1) // the last 10% retrained
	r := rand.New(rand.NewPCG(11, 11))
	for i := size * 9 / 10; i < size; i++ {
		v2[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(filepath.Join(dir, "v2.bin"), v2, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct{ name, seq string }{{"v1", "1"}, {"v2", "2"}} {
		mustRun(t, dir, "sign", "--key", "op.key", "--image", v.name+".bin", "--component", "kws", "--version", "1."+v.seq, "--seq", v.seq,
			"--class", class, "--probation-seconds", "1", "--min-inferences", "20", "--max-error-permille", "100", "--out", v.name+".cose")
	}
	coap, adminPort := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, "udp")), testutil.FreePort(t, "tcp")
	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	startDaemon(t, dir, "gateway", "--data", "gw-data", "--trust", "op.pub", "--deploy-trust", "deployer.pub",
		"--insecure-udp", "--coaps", "-", "--coap", coap, "--admin", fmt.Sprintf("127.0.0.1:%d", adminPort), "--gateway-id", "gw-1")
	nodes := []string{"d1", "d2", "d3"}
	for _, id := range nodes {
		startDaemon(t, dir, "node", "--id", id, "--flash", id+".flash", "--slot-size", "262144", "--class", class, "--component", "kws",
			"--trust", "op.pub", "--labels", "hw=rev2", "--gateway", "coap://"+coap, "--inference-rate", "100", "--health-interval", "500ms",
			"--poll-interval", "2s")
	}
	testutil.Eventually(t, "the nodes to say hello", func() bool { return len(gatewayNodes(t, dir, admin)) == len(nodes) })
	mustRun(t, dir, "model", "push", "--admin", admin, "--manifest", "v1.cose", "--image", "v1.bin", "--assign", "all")
	runs := func(seq uint64) func() bool {
		return func() bool {
			ns := gatewayNodes(t, dir, admin)
			for _, id := range nodes {
				if n := ns[id]; n.RunningSeq != seq || n.ActiveState != "confirmed" {
					return false
				}
			}
			return true
		}
	}
	testutil.Eventually(t, "every node to confirm 1.0", runs(1))
	gw := &dtlsGateway{admin: admin}
	fullBefore := gw.metric(t, `edgeota_image_bytes_served_total{kind="full"}`)
	if fullBefore < float64(len(nodes)*size) {
		t.Fatalf("1.0 served as %v full bytes, want at least %d", fullBefore, len(nodes)*size)
	}

	mustRun(t, dir, "model", "push", "--admin", admin, "--manifest", "v2.cose", "--image", "v2.bin")
	spec := `id: kws-1.1
seq: 1
manifest: v2.cose
target_cohort: hw:rev2
waves:
  - {percent: 100, bake: 1s}
gates: {max_failed: 0, min_reports: 1}
on_failure: pause
node_timeout: 60s
max_concurrent: 10
`
	if err := os.WriteFile(filepath.Join(dir, "kws-1.1.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, dir, "deploy", "sign", "--key", "deployer.key", "kws-1.1.yaml", "--out", "kws-1.1.dep")
	mustRun(t, dir, "deploy", "apply", "--admin", admin, "kws-1.1.dep")
	testutil.Eventually(t, "the rollout of 1.1 to complete", func() bool { return getRollout(t, dir, admin, "kws-1.1").Phase == "completed" })
	testutil.Eventually(t, "every node to confirm 1.1", runs(2))

	// The rollout status counts the deltas.
	var st struct {
		Transfers struct {
			Delta, Full, Fallback int
			FetchedBytes          int `json:"fetched_bytes"`
		} `json:"transfers"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, dir, "rollout", "status", "kws-1.1", "--admin", admin, "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Transfers.Delta != len(nodes) || st.Transfers.Full != 0 || st.Transfers.Fallback != 0 {
		t.Fatalf("rollout transfers %+v, want %d deltas", st.Transfers, len(nodes))
	}
	// A delta of a 10% change is at most 15% of the image (issue 15).
	if limit := len(nodes) * size * 15 / 100; st.Transfers.FetchedBytes <= 0 || st.Transfers.FetchedBytes > limit {
		t.Fatalf("the nodes fetched %d bytes, want 1 to %d", st.Transfers.FetchedBytes, limit)
	}
	if out := mustRun(t, dir, "rollout", "status", "kws-1.1", "--admin", admin); !strings.Contains(out, fmt.Sprintf("transfers: %d delta, 0 full image", len(nodes))) {
		t.Fatalf("rollout status does not show the deltas:\n%s", out)
	}
	// Each node's record says it took a delta.
	var ns []struct {
		ID       string `json:"id"`
		Transfer *struct {
			Kind         string `json:"kind"`
			Seq          uint64 `json:"seq"`
			FetchedBytes int    `json:"fetched_bytes"`
		} `json:"transfer"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, dir, "nodes", "--admin", admin, "--json")), &ns); err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		if n.Transfer == nil || n.Transfer.Kind != "delta" || n.Transfer.Seq != 2 || n.Transfer.FetchedBytes > size*15/100 {
			t.Errorf("node %s: transfer %+v, want a delta of seq 2 under %d bytes", n.ID, n.Transfer, size*15/100)
		}
	}
	// The metrics: one delta computed for the three nodes, delta bytes
	// served, no full image bytes for 1.1.
	if n := gw.metric(t, `edgeota_deltas_computed_total{result="offered"}`); n != 1 {
		t.Errorf("deltas computed %v, want 1 for %d nodes", n, len(nodes))
	}
	deltaBytes := gw.metric(t, `edgeota_image_bytes_served_total{kind="delta"}`)
	if deltaBytes <= 0 || deltaBytes > float64(len(nodes)*size*15/100) {
		t.Errorf("delta bytes served %v, want 1 to %d", deltaBytes, len(nodes)*size*15/100)
	}
	if full := gw.metric(t, `edgeota_image_bytes_served_total{kind="full"}`); full != fullBefore {
		t.Errorf("full image bytes served grew from %v to %v during the delta rollout", fullBefore, full)
	}
	t.Logf("image %d bytes; the %d nodes fetched %d bytes of deltas (%.1f%% of the images), %v delta bytes served",
		size, len(nodes), st.Transfers.FetchedBytes, 100*float64(st.Transfers.FetchedBytes)/float64(len(nodes)*size), deltaBytes)
	if n := gw.metric(t, `edgeota_delta_offers_total`); n < float64(len(nodes)) {
		t.Errorf("delta offers %v, want at least %d", n, len(nodes))
	}
}
