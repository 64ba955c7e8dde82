package test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"edgeota/protocol"
	"edgeota/protocol/sign"
	"edgeota/test/mqttpeer"
	"edgeota/test/testutil"
)

// The attack tests of issue 9: the gateway is not trusted for integrity.
// Real edgeota processes (a gateway, node agents, the operator commands)
// meet a tampered image, manifests signed by an unknown key, replayed or
// below-floor manifests and deployments that are replayed, expired, for
// another gateway or signed by an unknown key. Each test asserts the exact
// refusal signal: the node's status event reason code (read back from its
// flash and from the gateway's node view), the admin API's error, the
// gateway's log.

// TestAttackTamperedImage: a gateway serves an image with one bit flipped
// in its database. Every node downloads it, refuses it on its digest
// (reason code digest), drops the download and keeps running its model.
func TestAttackTamperedImage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mustRun(t, dir, "keygen", "--out", "op")
	signModel(t, dir, "op", "v1", goodModel, 40_000, 1, 0)
	signModel(t, dir, "op", "v2", goodModel, 150_001, 2, 0)
	gw := startAttackGateway(t, dir, "--trust", "op.pub")
	f := startFleet(t, dir, gw, "t1", "t2")
	f.push("v1", true)
	f.waitRunning(1)

	// v2 is cached, not assigned; one bit of it is flipped on disk while
	// the gateway is stopped.
	f.push("v2", false)
	gw.stop()
	flipImageBit(t, filepath.Join(dir, "gw-data", "gateway.db"), fileDigest(t, filepath.Join(dir, "v2.bin")))
	gw.start(t)
	f.push("v2", true) // the pushed image is intact: the gateway keeps its tampered copy
	f.expectRefused(protocol.ReasonDigest.String(), "written image has sha256", 1)
}

// TestAttackManifestUnknownKey: a compromised gateway trusts an attacker's
// key besides the operator's and assigns the operator's next image
// re-signed by the attacker. Every node, trusting only the operator's key,
// refuses it (reason code signature) before downloading anything and
// keeps running its model.
func TestAttackManifestUnknownKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mustRun(t, dir, "keygen", "--out", "op")
	mustRun(t, dir, "keygen", "--out", "evil")
	signModel(t, dir, "op", "v1", goodModel, 40_000, 1, 0)
	writeModel(t, filepath.Join(dir, "v2.bin"), goodModel, 60_000)
	signModelOf(t, dir, "evil", "v2", "evil", 1000, 0)
	gw := startAttackGateway(t, dir, "--trust", "op.pub", "--trust", "evil.pub")
	f := startFleet(t, dir, gw, "u1", "u2")
	f.push("v1", true)
	f.waitRunning(1)

	f.pushManifest("evil", "v2")
	for id, n := range gw.nodes(t) {
		if n.AssignedSeq != 1000 {
			t.Fatalf("the compromised gateway did not assign the attacker's manifest to %s: %+v", id, n)
		}
	}
	f.expectRefused(protocol.ReasonSignature.String(), "manifest does not verify: unknown kid", 1)
	for _, id := range f.ids {
		if state, _, _ := f.flash(id).slot("B"); state != "none" {
			t.Errorf("node %s wrote its other slot (%s) for a manifest it should not trust", id, state)
		}
	}
}

// TestAttackReplayedManifest: a node ran v1 and v2 and rolled v3 back in
// its probation. The gateway assigns the bad v3 again, then the old v1
// (whose image the node no longer holds: v3 overwrote its slot): both are
// refused as rollbacks (reason code seq) and the node keeps running v2.
//
// Replaying v1 while the other slot still holds it is not an attack: it is
// the revert of docs/protocol.md section 3, and a node takes it.
func TestAttackReplayedManifest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mustRun(t, dir, "keygen", "--out", "op")
	signModel(t, dir, "op", "v1", goodModel, 40_000, 1, 0)
	signModel(t, dir, "op", "v2", goodModel, 50_000, 2, 0)
	signModel(t, dir, "op", "v3", badModel, 60_000, 3, 0)
	gw := startAttackGateway(t, dir, "--trust", "op.pub")
	f := startFleet(t, dir, gw, "r1", "r2")
	f.push("v1", true)
	f.waitRunning(1)
	f.push("v2", true)
	f.waitRunning(2)
	f.push("v3", true)
	testutil.Eventually(t, "every node to revert v3", func() bool {
		ns := gw.nodes(t)
		for _, id := range f.ids {
			if n := ns[id]; n.LastState != "reverted" || n.RunningSeq != 2 || n.ActiveState != "confirmed" {
				return false
			}
		}
		return true
	})
	for _, id := range f.ids {
		st := f.flash(id)
		if state, _, seq := st.slot("A"); state != "invalid" || seq != 3 || st.HighestSeq != 3 || st.LastCode != protocol.ReasonProbationErrors.String() {
			t.Fatalf("node %s after reverting v3: %+v", id, st)
		}
	}

	f.push("v1", true)
	f.expectRefused(protocol.ReasonSeq.String(), "seq 1 is not above the highest installed 3 (rollback refused)", 2)
	f.push("v3", true)
	f.expectRefused(protocol.ReasonSeq.String(), "seq 3 is not above the highest installed 3 (rollback refused)", 2)
}

// TestAttackManifestBelowEpochFloor: a node confirmed v2 of epoch 2, so
// its floor is 2 and v1 (epoch 0) in its other slot was invalidated. A new
// image signed under epoch 1 with a higher seq, then v1 again, are refused
// (reason code epoch); the node keeps running v2.
func TestAttackManifestBelowEpochFloor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mustRun(t, dir, "keygen", "--out", "op")
	signModel(t, dir, "op", "v1", goodModel, 40_000, 1, 0)
	signModel(t, dir, "op", "v2", goodModel, 50_000, 2, 2)
	signModel(t, dir, "op", "v3", goodModel, 60_000, 3, 1)
	gw := startAttackGateway(t, dir, "--trust", "op.pub")
	f := startFleet(t, dir, gw, "e1", "e2")
	f.push("v1", true)
	f.waitRunning(1)
	f.push("v2", true)
	f.waitRunning(2)
	for _, id := range f.ids {
		st := f.flash(id)
		if state, _, seq := st.slot("A"); st.EpochFloor != 2 || state != "invalid" || seq != 1 {
			t.Fatalf("node %s after confirming v2 of epoch 2: %+v", id, st)
		}
	}

	f.push("v3", true)
	f.expectRefused(protocol.ReasonEpoch.String(), "epoch 1 is below the node's floor 2", 2)
	f.push("v1", true)
	f.expectRefused(protocol.ReasonEpoch.String(), "epoch 0 is below the node's floor 2", 2)
}

// deploymentYAML is a deployment spec of the attack tests: the whole
// cohort in one wave. extra adds fields (gateways).
func deploymentYAML(id string, seq uint64, manifest, extra string) string {
	return fmt.Sprintf(`id: %s
seq: %d
manifest: %s
target_cohort: hw:rev2
waves:
  - {percent: 100, bake: 1s}
gates: {max_failed: 0, min_reports: 1}
on_failure: pause
node_timeout: 60s
max_concurrent: 10
%s`, id, seq, manifest, extra)
}

// signDeployment writes the spec of deployment id and signs it with
// key.key (edgeota deploy sign) into id.dep.
func signDeployment(t *testing.T, dir, key, id string, seq uint64, manifest, extra string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, id+".yaml"), []byte(deploymentYAML(id, seq, manifest, extra)), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, dir, "deploy", "sign", "--key", key+".key", id+".yaml", "--out", id+".dep")
	return id + ".dep"
}

// reissue decodes the signed deployment src, changes it and signs it again
// with key.key into out: what an operator's key produced at another time.
func reissue(t *testing.T, dir, src, key, out string, change func(d *protocol.Deployment)) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, src))
	if err != nil {
		t.Fatal(err)
	}
	env, err := sign.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	d, err := protocol.DecodeDeployment(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	change(d)
	pem, err := os.ReadFile(filepath.Join(dir, key+".key"))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := sign.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sign.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := s.SignDeployment(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, out), signed, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAttackDeploymentsRefusedByAdminAPI: deployments handed to the admin
// API (edgeota deploy apply) that are replayed, older than the last one
// applied, for another gateway, expired, signed by an unknown key or
// carrying a manifest signed by an unknown key are refused with the reason;
// no rollout starts, no assignment changes and no seq is used up.
func TestAttackDeploymentsRefusedByAdminAPI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, k := range []string{"op", "deployer", "evil"} {
		mustRun(t, dir, "keygen", "--out", k)
	}
	signModel(t, dir, "op", "v1", goodModel, 40_000, 1, 0)
	signModel(t, dir, "op", "v2", goodModel, 50_000, 2, 0)
	signModelOf(t, dir, "evil", "v2", "evil", 3, 0)
	gw := startAttackGateway(t, dir, "--trust", "op.pub", "--deploy-trust", "deployer.pub", "--gateway-id", "gw-a")
	f := startFleet(t, dir, gw, "d1")
	f.push("v1", false)
	f.push("v2", false)

	older := signDeployment(t, dir, "deployer", "older", 5, "v2.cose", "")
	applied := signDeployment(t, dir, "deployer", "first", 10, "v1.cose", "")
	mustRun(t, dir, "deploy", "apply", "--admin", gw.admin, applied)
	testutil.Eventually(t, "the first rollout to assign v1", func() bool { return gw.nodes(t)["d1"].AssignedSeq == 1 })

	cases := []struct {
		name, file, why string
	}{
		{"replayed", applied, "seq 10 is not above the highest applied 10"},
		{"older than the last applied", older, "seq 5 is not above the highest applied 10"},
		{"for another gateway", signDeployment(t, dir, "deployer", "elsewhere", 11, "v2.cose", "gateways: [gw-b]\n"),
			"it names gateways [gw-b], not this one (gw-a)"},
		{"expired", reissue(t, dir, signDeployment(t, dir, "deployer", "stale", 12, "v2.cose", ""), "deployer", "stale2.dep",
			func(d *protocol.Deployment) {
				now := uint64(time.Now().Unix())
				d.Issued, d.Expires = now-73*3600, now-3600
			}), "expired at"},
		{"signed by an unknown key", signDeployment(t, dir, "evil", "evil-deploy", 13, "v2.cose", ""), "does not verify: unknown kid"},
		{"manifest signed by an unknown key", signDeployment(t, dir, "deployer", "evil-manifest", 14, "evil.cose", ""),
			"its manifest does not verify: unknown kid"},
	}
	for _, c := range cases {
		_, errs, code := run(t, dir, "deploy", "apply", "--admin", gw.admin, c.file)
		if code != 1 || !strings.Contains(errs, "gateway refused (refused): deployment refused: ") || !strings.Contains(errs, c.why) {
			t.Errorf("%s: exit %d, %q; want exit 1 and %q", c.name, code, strings.TrimSpace(errs), c.why)
		}
		if ids := gw.rollouts(t); !slices.Equal(ids, []string{"first"}) {
			t.Fatalf("%s: rollouts %v after the refusal, want only first", c.name, ids)
		}
		if n := gw.nodes(t)["d1"]; n.AssignedSeq != 1 {
			t.Fatalf("%s: the node's assignment changed to seq %d", c.name, n.AssignedSeq)
		}
	}

	// The refused deployments used up no seq: the next one the operator
	// signs, under the seq the one for another gateway carried, applies.
	next := signDeployment(t, dir, "deployer", "second", 11, "v2.cose", "")
	mustRun(t, dir, "deploy", "apply", "--admin", gw.admin, next)
	if ids := gw.rollouts(t); !slices.Equal(ids, []string{"first", "second"}) {
		t.Fatalf("rollouts %v, want first and second", ids)
	}
}

// TestAttackDeploymentsOnMQTTIgnored: deployments on the MQTT downlink
// (retained, on the gateway's and the fleet's topics) that are signed by an
// unknown key or name another gateway are ignored and logged as refused;
// a deployment signed by the deployment key on the same topics applies.
func TestAttackDeploymentsOnMQTTIgnored(t *testing.T) {
	t.Parallel()
	b := mqttpeer.Start(t)
	dir := t.TempDir()
	for _, k := range []string{"op", "deployer", "evil"} {
		mustRun(t, dir, "keygen", "--out", k)
	}
	signModel(t, dir, "op", "v1", goodModel, 40_000, 1, 0)
	ignored := []struct{ id, topic, why string }{
		{"evil-gw", "edgeota/v1/gw/gw-a/deployments/evil-gw", "does not verify: unknown kid"},
		{"evil-fleet", "edgeota/v1/fleet/deployments/evil-fleet", "does not verify: unknown kid"},
		{"elsewhere", "edgeota/v1/fleet/deployments/elsewhere", "it names gateways [gw-b], not this one (gw-a)"},
	}
	signDeployment(t, dir, "evil", "evil-gw", 100, "v1.cose", "")
	signDeployment(t, dir, "evil", "evil-fleet", 101, "v1.cose", "")
	signDeployment(t, dir, "deployer", "elsewhere", 102, "v1.cose", "gateways: [gw-b]\n")
	// Retained before the gateway starts: it receives them when it
	// subscribes.
	for _, c := range ignored {
		payload, err := os.ReadFile(filepath.Join(dir, c.id+".dep"))
		if err != nil {
			t.Fatal(err)
		}
		mqttpeer.Publish(t, b.URL(), c.topic, payload, true)
	}
	gw := startAttackGateway(t, dir, "--trust", "op.pub", "--deploy-trust", "deployer.pub", "--gateway-id", "gw-a",
		"--mqtt", b.URL(), "--batch-interval", "50ms")
	for _, c := range ignored {
		testutil.Eventually(t, "the gateway to refuse "+c.id, func() bool {
			for _, line := range strings.Split(gw.log(), "\n") {
				if strings.Contains(line, `msg="deployment not applied"`) && strings.Contains(line, "deployment="+c.id+" ") &&
					strings.Contains(line, "topic="+c.topic) && strings.Contains(line, c.why) {
					return true
				}
			}
			return false
		})
	}
	if ids := gw.rollouts(t); len(ids) != 0 {
		t.Fatalf("rollouts %v from refused deployments", ids)
	}

	// A good deployment under a seq below the refused ones' applies: they
	// were not recorded.
	signDeployment(t, dir, "deployer", "good", 1, "v1.cose", "")
	payload, err := os.ReadFile(filepath.Join(dir, "good.dep"))
	if err != nil {
		t.Fatal(err)
	}
	mqttpeer.Publish(t, b.URL(), "edgeota/v1/fleet/deployments/good", payload, true)
	testutil.Eventually(t, "the good deployment's rollout", func() bool { return len(gw.rollouts(t)) > 0 })
	if ids := gw.rollouts(t); !slices.Equal(ids, []string{"good"}) {
		t.Fatalf("rollouts %v, want only good", ids)
	}
	for _, line := range strings.Split(gw.log(), "\n") {
		for _, c := range ignored {
			if strings.Contains(line, "deployment="+c.id+" ") && strings.Contains(line, `msg="deployment accepted`) {
				t.Errorf("an ignored deployment was accepted: %s", line)
			}
		}
	}
}
