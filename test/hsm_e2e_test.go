package test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"edgeota/test/softhsm"
	"edgeota/test/testutil"
)

// TestHSMSignedModelsReachNode: two operator keys created inside a fresh
// SoftHSM2 token, one Ed25519 and one ECDSA P-256, sign two releases
// through PKCS#11; a gateway and a node process trusting both .pub files
// (a node may trust keys of both kinds) cache, assign, install and confirm
// the Ed25519-signed v1, then the ES256-signed v2.
func TestHSMSignedModelsReachNode(t *testing.T) {
	tok := softhsm.New(t, "edgeota") // sets SOFTHSM2_CONF, which the edgeota processes inherit
	dir := t.TempDir()
	mustRun(t, dir, "keygen", "--out", "op", "--alg", "ed25519", "--pkcs11", tok.URI("op-ed25519"))
	mustRun(t, dir, "keygen", "--out", "op-p256", "--alg", "es256", "--pkcs11", tok.URI("op-p256"))
	// A model that never fails an inference passes every probation.
	header := "edgeota-sim-model error_permille=0 p50_us=5000 p99_us=20000"
	writeModel(t, filepath.Join(dir, "v1.bin"), header, 100_000)
	writeModel(t, filepath.Join(dir, "v2.bin"), header, 120_000)
	for _, v := range []struct{ key, img, ver, seq, out string }{
		{tok.URI("op-ed25519"), "v1.bin", "1.0.0", "1", "v1.cose"},
		{tok.URI("op-p256"), "v2.bin", "2.0.0", "2", "v2.cose"},
	} {
		mustRun(t, dir, "sign", "--key", v.key, "--image", v.img, "--component", "kws", "--version", v.ver, "--seq", v.seq,
			"--class", class, "--probation-seconds", "1", "--min-inferences", "20", "--max-error-permille", "100", "--out", v.out)
	}
	if out := mustRun(t, dir, "verify", "--trust", "op-p256.pub", "v2.cose"); !strings.Contains(out, "valid manifest") {
		t.Fatalf("verify v2.cose: %s", out)
	}
	coapPort, adminPort := testutil.FreePort(t, "udp"), testutil.FreePort(t, "tcp")
	g := &gatewayProc{admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort), coap: fmt.Sprintf("127.0.0.1:%d", coapPort)}
	g.d = startDaemon(t, dir, "gateway", "--data", "gw-data", "--trust", "op.pub", "--trust", "op-p256.pub",
		"--insecure-udp", "--coaps", "-", "--coap", g.coap, "--admin", fmt.Sprintf("127.0.0.1:%d", adminPort))
	testutil.Eventually(t, "the gateway's admin API", func() bool { return adminUp(g.admin) })
	startDaemon(t, dir, "node", "--id", "n1", "--flash", "n1.flash", "--slot-size", "1048576", "--class", class,
		"--trust", "op.pub", "--trust", "op-p256.pub", "--component", "kws", "--gateway", "coap://"+g.coap,
		"--inference-rate", "100", "--health-interval", "1s")
	testutil.Eventually(t, "the node to say hello", func() bool { return len(gatewayNodes(t, dir, g.admin)) == 1 })
	confirmed := func(seq uint64) func() bool {
		return func() bool {
			n := gatewayNodes(t, dir, g.admin)["n1"]
			return n.RunningSeq == seq && n.ActiveState == "confirmed"
		}
	}
	mustRun(t, dir, "model", "push", "--admin", g.admin, "--manifest", "v1.cose", "--image", "v1.bin", "--assign", "all")
	testutil.Eventually(t, "the node to confirm v1 (signed with Ed25519 in the token)", confirmed(1))
	mustRun(t, dir, "model", "push", "--admin", g.admin, "--manifest", "v2.cose", "--image", "v2.bin", "--assign", "all")
	testutil.Eventually(t, "the node to confirm v2 (signed with ES256 in the token)", confirmed(2))
}
