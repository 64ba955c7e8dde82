package fleet_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"strconv"
	"strings"
	"testing"
	"time"

	"edgeota/firmware-sim/clock"
	"edgeota/firmware-sim/fleet"
	"edgeota/firmware-sim/scenario"
	"edgeota/gateway"
	"edgeota/gateway/admin"
	"edgeota/gateway/gatewaytest"
)

// TestSecureFleet runs small fleets of factory-fresh nodes provisioned
// over BLE (go-ble's ATT server and GATT client on both ends of an
// in-memory link) and then updated: over DTLS with a gateway restart in
// the middle of the rollout, and over plain UDP, both over a lossy radio
// (a node whose close_notify is lost must notice the dead session and
// handshake again). It notices after one request timeout, about 10 s of
// real time, which time scale 60 makes 10 simulated minutes: hence a
// node timeout of 30 minutes.
func TestSecureFleet(t *testing.T) {
	tests := []struct {
		name, transport, link, faults string
	}{
		{"dtls with a gateway restart", "dtls", "{loss: 0.05, latency: 2ms}", "faults: [{at: 2m, kind: gateway-restart}]\n"},
		{"udp", "udp", "{loss: 0.05, latency: 2ms}", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := `
name: secure
seed: 4
time_scale: 60
duration: 40m
inference_rate: 1
health_interval: 30s
transport: ` + tt.transport + `
provision: ble
fleet: [{count: 4, labels: {hw: rev2, site: a}}, {count: 2, labels: {hw: rev1}}]
link: ` + tt.link + `
models:
  - {name: v1, version: 1.0.0, behaviour: "error_permille=1", size: 8192}
  - {name: v2, version: 2.0.0, behaviour: "error_permille=1", size: 8192, probation: {seconds: 60, min_inferences: 10}}
initial: v1
deployments:
  - {id: d1, at: 10s, model: v2, cohort: "hw:rev2", waves: [{percent: 50, bake: 1m}, {percent: 100, bake: 1m}], gates: {max_failed: 0, min_reports: 1}, node_timeout: 30m}
` + tt.faults + `expect:
  - {kind: provisioned}
  - {kind: rollout, deployment: d1, phase: completed}
  - {kind: all-run, cohort: "hw:rev2", model: v2}
  - {kind: all-run, cohort: "hw:rev1", model: v1}
  - {kind: no-unbootable}
  - {kind: health-delivered}
`
			res, summary, ok := runScenario(t, src)
			if !ok {
				t.Fatalf("expectations failed (seed %d)\n%s", res.Seed, summary)
			}
			for _, n := range res.Nodes {
				if len(n.Audit) != 1 || n.Audit[0].Actor == "" || n.Audit[0].Authenticated != (tt.transport == "dtls") {
					t.Errorf("%s: audit %+v, want one entry, authenticated %v", n.ID, n.Audit, tt.transport == "dtls")
				}
			}
			if res.ProvisionElapsed <= 0 || !strings.Contains(summary, "provision 6 of 6 nodes over BLE") {
				t.Errorf("summary:\n%s", summary)
			}
		})
	}
}

// TestExternalDTLS runs a transport dtls scenario against a gateway the
// simulator did not start: one serving CoAP over DTLS only, with an admin
// token. The run registers its nodes' keys through the admin API, its
// nodes open DTLS sessions through their lossy radio links, and the run
// deletes the keys at its end; a second run does the same with keys of
// its own, on a gateway that still holds the first run's rollout. A
// coap:// URL for a dtls scenario is refused up front.
func TestExternalDTLS(t *testing.T) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, ed25519.SeedSize))
	pub := key.Public().(ed25519.PublicKey)
	const token = "external-dtls-token"
	g := gatewaytest.Start(t, gateway.Config{DataDir: t.TempDir(), CoAPSAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", AdminToken: token,
		Trust: []ed25519.PublicKey{pub}, DeployTrust: []ed25519.PublicKey{pub}, MQTT: "embedded",
		GatewayID: "gw-ext-dtls", Clock: clock.NewScaled(clock.Real{}, 60), BatchInterval: 50 * time.Millisecond,
		Limits: gateway.Limits{SourceRate: -1, MaxHandshakesPerSource: 64}})
	sc, err := scenario.Parse([]byte(`
name: ext-dtls
seed: 5
transport: dtls
time_scale: 60
duration: 20m
inference_rate: 1
health_interval: 30s
fleet: [{count: 4, labels: {hw: rev2}}]
link: {loss: 0.05}
models:
  - {name: v1, version: 1.0.0, behaviour: "error_permille=1", size: 4096}
  - {name: v2, version: 2.0.0, behaviour: "error_permille=1", size: 8192, probation: {seconds: 60, min_inferences: 10}}
initial: v1
deployments:
  - {id: d1, at: 10s, model: v2, cohort: "hw:rev2", waves: [{percent: 100, bake: 1m}], gates: {max_failed: 0, min_reports: 1}, node_timeout: 30m}
expect:
  - {kind: rollout, deployment: d1, phase: completed}
  - {kind: all-run, model: v2}
`))
	if err != nil {
		t.Fatal(err)
	}
	api, err := admin.NewClient("http://"+g.AdminAddr().String(), admin.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	opts := fleet.Options{Gateway: "coaps://" + g.CoAPSAddr().String(), Admin: api, MQTT: g.MQTTBrokerURL(), Key: key}
	for run := 1; run <= 2; run++ {
		runPassing(t, sc, opts, run)
		if keys, err := api.Keys(context.Background()); err != nil || len(keys) != 0 {
			t.Fatalf("run %d left keys in the gateway's registry: %v, %v", run, keys, err)
		}
	}
	if ok := handshakesOK(t, api); ok < 8 {
		t.Errorf("%v DTLS handshakes succeeded over two runs of 4 nodes", ok)
	}

	plain := opts
	plain.Gateway = "coap://" + g.CoAPSAddr().String()
	if _, err := fleet.Run(context.Background(), sc, plain); err == nil || !strings.Contains(err.Error(), "coaps://") {
		t.Fatalf("a dtls scenario with a coap:// gateway: %v", err)
	}
}

// handshakesOK reads the gateway's count of successful DTLS handshakes.
func handshakesOK(t *testing.T, api *admin.Client) float64 {
	t.Helper()
	const series = `edgeota_dtls_handshakes_total{result="ok"} `
	metrics, err := api.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(metrics)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), strings.TrimSpace(series)+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

// TestExternalProvisioned provisions a run's nodes over BLE against a
// gateway the simulator did not start (here one in the test, with its
// embedded broker): the bundles point the nodes at it through their radio
// links, and the audit entries are scoped to the run's nodes. A second
// run on the same gateway sees only its own nodes' entries.
func TestExternalProvisioned(t *testing.T) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	pub := key.Public().(ed25519.PublicKey)
	g := gatewaytest.Start(t, gateway.Config{DataDir: t.TempDir(), CoAPAddr: "127.0.0.1:0", InsecureUDP: true, CoAPSAddr: "-",
		AdminAddr: "127.0.0.1:0", Trust: []ed25519.PublicKey{pub}, DeployTrust: []ed25519.PublicKey{pub}, MQTT: "embedded",
		GatewayID: "gw-ext", Clock: clock.NewScaled(clock.Real{}, 60), BatchInterval: 50 * time.Millisecond, Limits: gateway.Limits{SourceRate: -1}})
	sc, err := scenario.Parse([]byte(`
name: ext-ble
seed: 3
time_scale: 60
duration: 10m
inference_rate: 1
health_interval: 30s
provision: ble
fleet: [{count: 3, labels: {hw: rev2}}]
link: {loss: 0.05}
models: [{name: v1, version: 1.0.0, behaviour: "error_permille=1", size: 4096}]
initial: v1
expect:
  - {kind: provisioned}
  - {kind: all-run, model: v1}
`))
	if err != nil {
		t.Fatal(err)
	}
	api, err := admin.NewClient("http://" + g.AdminAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	opts := fleet.Options{Gateway: "coap://" + g.CoAPAddr().String(), Admin: api, MQTT: g.MQTTBrokerURL(), Key: key}
	for run := 1; run <= 2; run++ {
		runPassing(t, sc, opts, run)
	}
}

// runPassing runs sc against a running gateway (opts), within two
// minutes, and fails the test with the summary unless every expectation
// passed.
func runPassing(t *testing.T, sc *scenario.Scenario, opts fleet.Options, run int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := fleet.Run(ctx, sc, opts)
	if err != nil {
		t.Fatalf("run %d: %v", run, err)
	}
	if outs := scenario.Evaluate(sc, res); !scenario.Passed(outs) {
		var b bytes.Buffer
		scenario.WriteSummary(&b, sc, res, outs)
		t.Fatalf("run %d:\n%s", run, b.String())
	}
}
