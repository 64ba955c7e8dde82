// Package scenario defines the scenarios of the fleet simulator
// (edgeota/firmware-sim/fleet): a YAML file that says which virtual nodes to
// run against a real gateway, which models and deployments to give them,
// which faults to inject and what must hold at the end. It judges a run's
// [Result] against the scenario's expectations ([Evaluate]) and writes the
// reports: a readable summary ([WriteSummary]) and JUnit XML for CI
// ([WriteJUnit]).
//
// The package does not run anything: no goroutines, clocks or sockets. Every
// duration in a scenario is simulated time; time_scale says how fast it runs.
//
// # The scenario file
//
// [Parse] and [Load] read it. Unknown fields, at any depth, are errors; so
// are values that do not parse or are out of range, and references to
// models or deployments that do not exist. Every error names the line,
// such as "line 12: wave 2: percent 10 is not above the previous wave's
// (percents are cumulative)". Durations are Go durations (500ms, 90s, 10m,
// 1h30m). Percents and fractions are read exactly from their text, never
// through floating point.
//
//	name: good-rollout            # required, [A-Za-z0-9._-]{1,64}
//	description: 200 nodes, 10% loss, a good model to 100%
//	seed: 42                      # optional; 0 or absent: the simulator picks one and prints it
//	time_scale: 60                # simulated seconds per real second, 1 to 3600 (default 1)
//	duration: 30m                 # simulated time limit (required, positive)
//	inference_rate: 2             # inferences per simulated second per node (default 2, at most 1000)
//	health_interval: 30s          # how often each node reports its health (default 30s, at least 1s)
//	transport: dtls               # udp (default): plain CoAP; dtls: CoAP over DTLS 1.2 only, a PSK per node
//	provision: ble                # none (default); ble: every node starts factory-fresh and is
//	                              # provisioned over BLE before the deployments apply
//
//	fleet:                        # required, at least one group; 1 to 2000 nodes in all
//	  - count: 150                # required, at least 1
//	    labels: {region: us-east, hw: rev2}   # optional; label syntax of docs/protocol.md section 0
//	  - count: 50
//	    labels: {region: us-east, hw: rev1}
//	    deltas: false             # full images only (edgeota node --delta=false); default true
//	    download: lock-step       # q-block (default: RFC 9177 bursts when offered) or lock-step (RFC 7959)
//
//	link:                         # the radio link of every node; all optional, default perfect
//	  profile: thread             # thread, subghz, nbiot or ble: that radio's values, in simulated time
//	  hops: 2                     # radio hops of a mesh route, 1 to 32 (profile's, or 1)
//	  frame_loss: 0.01            # probability one frame is lost on one hop, 0 to 0.5
//	  loss: 0.10                  # probability a datagram is lost, each direction, 0 to 0.9
//	  latency: 20ms               # one-way delay per hop
//	  jitter: 10ms                # random extra delay per hop, up to this much
//	  duplicate: 0.01             # probability a datagram is delivered twice, 0 to 1
//	  reorder: 0.01               # probability a datagram is held behind the next, 0 to 1
//	  bandwidth: 250000           # bits per second, 0 = unlimited
//
//	models:                       # required, at least one; names unique
//	  - name: v1                  # required, [A-Za-z0-9._-]{1,64}; what the rest of the file refers to
//	    version: 1.0.0            # required: the manifest's version
//	    behaviour: "error_permille=2 p50_us=8000 p99_us=20000"
//	                              # the simulated model's header after the word edgeota-sim-model
//	                              # (docs/simulator.md); absent: a healthy model
//	    size: 32768               # image bytes, 1 to 4194304 (default 32768)
//	    probation: {seconds: 60, min_inferences: 20, max_error_permille: 50, max_p99_us: 80000}
//	                              # optional; seconds defaults to 60, min_inferences to 20,
//	                              # an absent bound is not checked
//	  - name: v2
//	    version: 1.1.0
//	    from: v1                  # retrained from v1: v1's image, the last changed of it drawn
//	    changed: 8%               # again (default 10%); no size: v1's
//	  - name: kws
//	    version: 2.0.0
//	    corpus: a-head.target     # an image of the delta corpus (PAIR.base or PAIR.target), no size
//
//	initial: v1                   # optional: every node starts with this model installed and confirmed
//
//	deployments:                  # optional; each is signed and applied to the gateway at its time
//	  - id: rollout-v2            # required, unique, [A-Za-z0-9._-]{1,64}
//	    at: 1m                    # when to apply it (default 0s), at most duration
//	    model: v2                 # required, a model name
//	    cohort: "hw:rev2"         # cohort expression (package edgeota/protocol/cohort; default "*")
//	    waves: [{percent: 10, bake: 2m}, {percent: 100, bake: 2m}]
//	                              # required: cumulative, increasing, the last at 100,
//	                              # percents with at most 2 decimals, bake in whole seconds (default 0s)
//	    gates: {max_failed: 0, max_error_rate: 0.05, max_latency_p99: 80ms, min_reports: 2, max_boot_loops: 0,
//	            metrics: {low_confidence_permille: 50}}
//	                              # all optional, docs/protocol.md section 7; an absent gate is not checked;
//	                              # max_error_rate is a fraction with at most 3 decimals; metrics bounds
//	                              # what a model declares with metric.NAME=VALUE in its behaviour
//	    on_failure: rollback      # pause or rollback (default pause)
//	    node_timeout: 20m         # whole seconds (default 30m)
//	    max_concurrent: 50        # at least 1 (default 20)
//
//	faults:                       # optional; each needs at (at most duration) and kind
//	  - {at: 3m, kind: power-cut, nodes: 10%}       # power cut on 10% of the nodes, each at a random
//	                                                # flash operation within the next few seconds
//	  - {at: 5m, kind: gateway-restart}             # the gateway is killed and started again
//	  - {at: 4m, kind: broker-outage, for: 1m}      # the MQTT broker is down for 1m
//	  - {at: 2m, kind: link-outage, for: 30s, nodes: 20%}   # the radio of 20% of the nodes is silent
//	  - {at: 2m, kind: reboot, nodes: 5}            # 5 nodes reboot cleanly
//
//	expect:                       # required, at least one
//	  - {kind: all-run, cohort: "hw:rev2", model: v2}
//	  - {kind: none-run, model: v3}
//	  - {kind: no-unbootable}
//	  - {kind: rollout, deployment: rollout-v2, phase: completed}
//	  - {kind: health-delivered}
//	  - {kind: provisioned}         # only with provision: ble
//	  - {kind: link-recovered}      # only with a link-outage fault
//	  - {kind: took-delta, cohort: "deltas:on", model: v2}
//	  - {kind: air-ratio, cohort: "deltas:on", baseline: "deltas:off", max: 25%}
//
// A fault's nodes is a share of the whole fleet ("10%", at most 2 decimals,
// 0 to 100, rounded up to whole nodes) or a number of nodes (at most the
// fleet's size); it is required for power-cut, link-outage and reboot and
// refused for the others. for is required for broker-outage and link-outage
// and refused for the others. [Selector.Pick] chooses the nodes from the
// run's seed.
//
// # Expectations
//
// Each expectation may have a name:, which the reports show; without one
// it gets a readable default, such as "every hw:rev2 node runs v2 (1.4.0)"
// or "rollout rollout-v2 completed". Names must be unique. A field that
// does not apply to the kind is an error.
//
//   - all-run (model, optional cohort, default "*"): every node of the
//     cohort runs the model, confirmed. A cohort with no node fails.
//   - none-run (model, optional cohort): no node of the cohort runs the
//     model, confirmed or on trial.
//   - no-unbootable (optional cohort): no node ever booted with no runnable
//     model after having had one.
//   - rollout (deployment, and phase, max_wave or both): the rollout ended
//     in that phase (pending, running, paused, completed, aborted,
//     rolled-back or superseded) and reached at most wave max_wave
//     (1-based), as in {kind: rollout, deployment: bad-v3, phase:
//     rolled-back, max_wave: 1}.
//   - health-delivered: every health report the gateway accepted reached the
//     MQTT broker; a run in which the gateway accepted none fails.
//   - provisioned (optional cohort), only with provision: ble: every node
//     of the cohort committed its provisioning bundle over BLE, the
//     gateway's registry holds it with the labels it was given (it said
//     Hello with them), and the gateway's audit log holds exactly one
//     entry for it, with those labels and, under transport dtls,
//     authenticated by the node's own key.
//   - link-recovered (optional cohort), only with a link-outage fault:
//     every node of the cohort whose radio a link-outage silenced lost
//     datagrams to the outage (it struck) and was heard by the gateway
//     after it ended (the gateway accepted a Hello, health report or
//     status event of it); a run in which no outage struck a node of the
//     cohort fails.
//   - took-delta (model, optional cohort): every node of the cohort that
//     runs the model, confirmed, took its latest update as a delta
//     ([NodeResult].Transfer) without abandoning it; a cohort none of
//     whose nodes runs the model fails. With min (a percent), at least
//     that share of them did.
//   - air-ratio (cohort, baseline, max): the bytes on air per node, both
//     ways, of the cohort's nodes are at most max (a percent) of the
//     baseline cohort's: a delta rollout beside nodes with deltas: false.
//
// Each [Outcome] has a Detail with the counts behind the verdict and at
// most 5 offending nodes, such as "148 of 150 hw:rev2 nodes run v2;
// node-017 runs v1 (confirmed), node-020 runs nothing".
package scenario
