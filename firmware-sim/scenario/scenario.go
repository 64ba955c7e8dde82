package scenario

import (
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"edgeota/protocol/delta/corpus"
)

// Fault kinds, the values of a fault's kind field.
const (
	// FaultPowerCut cuts the power of the selected nodes, each at a random
	// flash operation within the next few simulated seconds.
	FaultPowerCut = "power-cut"
	// FaultGatewayRestart kills the gateway and starts it again.
	FaultGatewayRestart = "gateway-restart"
	// FaultBrokerOutage stops the MQTT broker for the fault's For.
	FaultBrokerOutage = "broker-outage"
	// FaultLinkOutage silences the radio of the selected nodes for the
	// fault's For.
	FaultLinkOutage = "link-outage"
	// FaultReboot reboots the selected nodes cleanly.
	FaultReboot = "reboot"
)

// Expectation kinds, the values of an expectation's kind field.
const (
	// ExpectAllRun: every node of the cohort runs the model, confirmed.
	ExpectAllRun = "all-run"
	// ExpectNoneRun: no node of the cohort runs the model, confirmed or on
	// trial.
	ExpectNoneRun = "none-run"
	// ExpectNoUnbootable: no node of the cohort ever booted with no runnable
	// model after having had one.
	ExpectNoUnbootable = "no-unbootable"
	// ExpectRollout: a deployment ended in the given phase and/or reached at
	// most the given wave.
	ExpectRollout = "rollout"
	// ExpectHealthDelivered: every health report the gateway accepted reached
	// the MQTT broker.
	ExpectHealthDelivered = "health-delivered"
	// ExpectProvisioned: every node of the cohort was provisioned over BLE,
	// the gateway knows it with the labels it was given, and the gateway's
	// audit log holds exactly one provisioning entry for it (authenticated
	// by the node's DTLS key under transport dtls). Only with provision:
	// ble.
	ExpectProvisioned = "provisioned"
	// ExpectTookDelta: every node of the cohort that runs the model,
	// confirmed, took it as a delta (its last transfer, status event key
	// 64, was a delta it did not abandon).
	ExpectTookDelta = "took-delta"
	// ExpectAirRatio: the bytes on air per node (both ways) of the
	// cohort's nodes are at most a share (MaxPercent) of the baseline
	// cohort's: the saving of deltas, measured side by side in one run.
	ExpectAirRatio = "air-ratio"
	// ExpectLinkRecovered: every node of the cohort whose radio a
	// link-outage silenced lost datagrams to it, and was heard by the
	// gateway after it ended (a Hello, report or status event the gateway
	// accepted). Only with a link-outage fault.
	ExpectLinkRecovered = "link-recovered"
)

// Transports, the values of key transport: how the nodes talk to the
// gateway.
const (
	// TransportUDP is plain CoAP over UDP, the default: the gateway runs
	// with InsecureUDP, as in development.
	TransportUDP = "udp"
	// TransportDTLS is CoAP over DTLS 1.2 only: each node has its own
	// pre-shared key in the gateway's registry and speaks coaps://.
	TransportDTLS = "dtls"
)

// Provisioning, the values of key provision: how a node learns its
// gateway, labels and key.
const (
	// ProvisionNone, the default: every node starts configured.
	ProvisionNone = "none"
	// ProvisionBLE: every node starts factory-fresh and is provisioned
	// over BLE (go-ble's GATT on both sides) before the deployments apply.
	ProvisionBLE = "ble"
)

// Node states, the values of [NodeResult].State.
const (
	// StateConfirmed: the running model passed its probation.
	StateConfirmed = "confirmed"
	// StateTrial: the running model is still on probation.
	StateTrial = "trial"
	// StateNone: the node runs no model.
	StateNone = "none"
)

// Limits on a scenario.
const (
	// MaxNodes is the most nodes a fleet may have, all groups together:
	// the fleet a gateway is built to hold. Each node costs the
	// simulator three file descriptors and about 300 KiB of memory
	// (docs/simulator.md, Scale).
	MaxNodes = 10000
	// MaxModelSize is the largest model image, in bytes.
	MaxModelSize = 4 << 20
	// MaxTimeScale is the largest time_scale: an hour of simulated time per
	// real second.
	MaxTimeScale = 3600
)

// Scenario is a parsed and validated scenario file. Every duration is
// simulated time. See the package documentation for the YAML form.
type Scenario struct {
	// Name is key name: [A-Za-z0-9._-], 1 to 64 bytes.
	Name string
	// Description is key description, free text.
	Description string
	// Seed is key seed; 0 lets the simulator pick one (and print it).
	Seed uint64
	// TimeScale is key time_scale: simulated seconds per real second, 1 to
	// [MaxTimeScale] (default 1).
	TimeScale float64
	// Duration is key duration: the simulated time limit.
	Duration time.Duration
	// InferenceRate is key inference_rate: inferences per simulated second
	// per node (default 2).
	InferenceRate float64
	// HealthInterval is key health_interval: how often a node reports its
	// health (default 30s).
	HealthInterval time.Duration
	// Transport is key transport: [TransportUDP] (default) or
	// [TransportDTLS].
	Transport string
	// Provision is key provision: [ProvisionNone] (default) or
	// [ProvisionBLE].
	Provision string
	// Fleet is key fleet: the groups of nodes, at least one.
	Fleet []Group
	// Link is key link: the radio link of every node.
	Link Link
	// Models is key models: the simulated models, at least one, names
	// unique.
	Models []Model
	// Initial is key initial: the name of the model every node starts with,
	// installed and confirmed; "" for none.
	Initial string
	// Deployments is key deployments, in the order written.
	Deployments []Deployment
	// Faults is key faults, in the order written.
	Faults []Fault
	// Expect is key expect: what must hold at the end, at least one.
	Expect []Expectation
}

// Group is one entry of fleet: Count nodes with the same labels.
type Group struct {
	// Count is key count, at least 1.
	Count int
	// Labels is key labels: label key to value, with the label syntax of
	// docs/protocol.md section 0. It may be empty.
	Labels map[string]string
	// NoDeltas is key deltas set to false: the group's nodes take full
	// images only (edgeota node --delta=false), the baseline beside the
	// nodes that apply deltas (the default).
	NoDeltas bool
	// Download is key download: how the group's nodes fetch an image,
	// [DownloadQBlock] (the default) or [DownloadLockStep].
	Download string
}

// Ways a node fetches an image (a fleet group's key download).
const (
	// DownloadQBlock: RFC 9177 Q-Block2 bursts when the gateway offers
	// them, lock-step Block2 otherwise; what a node does by default.
	DownloadQBlock = "q-block"
	// DownloadLockStep: RFC 7959 Block2, one block per round trip, even
	// from a gateway that offers Q-Block2.
	DownloadLockStep = "lock-step"
)

// Link is the radio link of every node (key link). The zero Link is a
// perfect link in real time. A link with a Profile starts from that
// radio's values (firmware-sim/radio.LookupProfile), which the other keys
// override, and runs in simulated time: its delays and airtime are on the
// scenario's clock, and so are the nodes' CoAP retransmission timers.
type Link struct {
	// Profile is key profile: a radio profile name (thread, subghz,
	// nbiot, ble), or "" for a link built from the other keys alone.
	Profile string
	// Hops is key hops: the radio hops of a mesh route, 1 to 32; 0 keeps
	// the profile's (or 1).
	Hops int
	// FrameLoss is key frame_loss: the probability that one radio frame
	// is lost on one hop, 0 to 0.5; a fragmented datagram is lost with
	// any of its frames.
	FrameLoss float64
	// FrameMTU, FrameOverhead and FrameGap come from the profile: the
	// datagram bytes per frame, the bytes every frame adds on air and
	// the idle time every frame costs (firmware-sim/radio.Link).
	FrameMTU      int
	FrameOverhead int
	FrameGap      time.Duration
	// Loss is key loss: the probability that a datagram is lost, in each
	// direction, 0 to 0.9.
	Loss float64
	// Duplicate is key duplicate: the probability that a datagram is
	// delivered twice, 0 to 1.
	Duplicate float64
	// Reorder is key reorder: the probability that a datagram is delayed
	// behind the next one, 0 to 1.
	Reorder float64
	// Latency is key latency: the one-way delay.
	Latency time.Duration
	// Jitter is key jitter: a random extra delay of up to this much.
	Jitter time.Duration
	// Bandwidth is key bandwidth, in bits per second; 0 is unlimited.
	Bandwidth int
}

// SimulatedTime reports whether the link runs on the scenario's clock:
// every link with a profile does; a link without one keeps real time.
func (l Link) SimulatedTime() bool { return l.Profile != "" }

// Model is one entry of models: a simulated model image.
type Model struct {
	// Name is key name: how the rest of the scenario refers to the model.
	Name string
	// Version is key version: the manifest's version string.
	Version string
	// Behaviour is key behaviour: the simulated model's header after the
	// word edgeota-sim-model, such as "error_permille=2 p99_us=20000"
	// (docs/simulator.md). "" is a healthy model.
	Behaviour string
	// Size is key size: the image size in bytes, 1 to [MaxModelSize]
	// (default 32768; a model with From has its base's size).
	Size int
	// From is key from: the name of an earlier model this one was
	// retrained from. Its image is that model's with this one's behaviour
	// header and the last Changed of its bytes drawn again, as a model
	// whose last layer was retrained: the gateway's delta between them is
	// small. "" draws the whole image.
	From string
	// Changed is key changed (a percent, default 10%) × 100: the share of
	// the image drawn again, with From.
	Changed uint64
	// Corpus is key corpus: an image of the delta corpus
	// (protocol/delta/corpus, seed 15, docs/deltas.md), "PAIR.base" or
	// "PAIR.target" with PAIR one of a-head, b-finetune, c-operator and
	// d-unrelated, its first bytes overwritten by the behaviour header;
	// "" for none. Size is the image's.
	Corpus string
	// Probation is key probation: the manifest's probation, nil for none.
	Probation *Probation
}

// Probation is a model's probation (key probation, docs/protocol.md section 4).
type Probation struct {
	// Seconds is key seconds: simulated seconds on trial (default 60).
	Seconds uint64
	// MinInferences is key min_inferences (default 20).
	MinInferences uint64
	// MaxErrorPermille is key max_error_permille; nil is not checked.
	MaxErrorPermille *uint64
	// MaxP99Micros is key max_p99_us; nil is not checked.
	MaxP99Micros *uint64
}

// Deployment is one entry of deployments: a deployment the simulator signs
// and hands to the gateway at simulated time At. Its fields have the meaning
// of docs/protocol.md section 7 and the rules of the deployment YAML
// (protocol/deployspec).
type Deployment struct {
	// ID is key id: [A-Za-z0-9._-], 1 to 64 bytes, unique in the scenario.
	ID string
	// At is key at: when it is applied (default 0), at most the duration.
	At time.Duration
	// Model is key model: the name of a model of the scenario.
	Model string
	// Cohort is key cohort: a cohort expression (default "*").
	Cohort string
	// Waves is key waves: cumulative, increasing, the last at 100 percent.
	Waves []Wave
	// Gates is key gates.
	Gates Gates
	// OnFailure is key on_failure: "pause" (default) or "rollback".
	OnFailure string
	// NodeTimeout is key node_timeout (default 30m), whole seconds.
	NodeTimeout time.Duration
	// MaxConcurrent is key max_concurrent (default 20), at least 1.
	MaxConcurrent uint64
}

// Wave is one entry of a deployment's waves.
type Wave struct {
	// BasisPoints is key percent × 100: the cumulative share of the cohort,
	// 1 to 10000.
	BasisPoints uint64
	// BakeSeconds is key bake (a duration, default 0s) in whole seconds.
	BakeSeconds uint64
}

// Gates are a deployment's health gates (key gates, docs/protocol.md section 7).
// A nil gate is not checked.
type Gates struct {
	// MaxFailed is key max_failed.
	MaxFailed *uint64
	// MaxErrorPermille is key max_error_rate (a fraction, at most 3
	// decimals) × 1000.
	MaxErrorPermille *uint64
	// MaxLatencyP99Micros is key max_latency_p99 (a duration) in
	// microseconds.
	MaxLatencyP99Micros *uint64
	// MinReports is key min_reports.
	MinReports *uint64
	// MaxBootLoops is key max_boot_loops.
	MaxBootLoops *uint64
	// Metrics is key metrics: the highest value of each model metric a
	// node may report (health key 64), by name; nil when absent. A model
	// reports one with metric.NAME=VALUE in its behaviour.
	Metrics map[string]int64
}

// Fault is one entry of faults.
type Fault struct {
	// At is key at: when the fault happens, at most the duration.
	At time.Duration
	// For is key for: how long an outage lasts; set for
	// [FaultBrokerOutage] and [FaultLinkOutage] only.
	For time.Duration
	// Kind is key kind: one of the Fault* constants.
	Kind string
	// Nodes is key nodes: which nodes; set for [FaultPowerCut],
	// [FaultLinkOutage] and [FaultReboot] only.
	Nodes Selector
}

// Selector picks some nodes of the fleet: a share (key nodes: "10%") or a
// number of them (nodes: 5). The zero Selector picks none.
type Selector struct {
	// Percent is the share in basis points (percent × 100, 0 to 10000),
	// used when Count is 0.
	Percent uint64
	// Count is a number of nodes; when it is above 0, Percent is ignored.
	Count int
}

// Expectation is one entry of expect: something that must hold at the end
// of the run. Which fields apply depends on Kind.
type Expectation struct {
	// Name is key name; [Parse] fills in a readable default such as
	// "every hw:rev2 node runs v2 (1.4.0)" when it is absent.
	Name string
	// Kind is key kind: one of the Expect* constants.
	Kind string
	// Cohort is key cohort, for all-run, none-run and no-unbootable
	// (default "*", every node).
	Cohort string
	// Model is key model, for all-run and none-run: a model name.
	Model string
	// Deployment is key deployment, for rollout: a deployment ID.
	Deployment string
	// Phase is key phase, for rollout: the rollout's final phase, one of
	// pending, running, paused, completed, aborted, rolled-back or
	// superseded; "" is not checked.
	Phase string
	// MaxWave is key max_wave, for rollout: the highest wave (1-based) the
	// rollout may have reached; 0 is not checked.
	MaxWave int
	// Baseline is key baseline, for air-ratio: the cohort whose bytes on
	// air per node the cohort's are compared with.
	Baseline string
	// MaxPercent is key max (a percent) × 100, for air-ratio.
	MaxPercent uint64
	// MinPercent is key min (a percent) × 100, for took-delta: the least
	// share of the nodes running the model that took it as a delta; 0
	// means all of them.
	MinPercent uint64
}

// Model returns the model with the given name, or nil.
func (s *Scenario) Model(name string) *Model {
	for i := range s.Models {
		if s.Models[i].Name == name {
			return &s.Models[i]
		}
	}
	return nil
}

// Deployment returns the deployment with the given ID, or nil.
func (s *Scenario) Deployment(id string) *Deployment {
	for i := range s.Deployments {
		if s.Deployments[i].ID == id {
			return &s.Deployments[i]
		}
	}
	return nil
}

// Nodes returns the number of nodes of the fleet, all groups together.
func (s *Scenario) Nodes() int {
	n := 0
	for _, g := range s.Fleet {
		n += g.Count
	}
	return n
}

// Size returns how many of n nodes the selector picks: Count (at most n),
// or Percent of n rounded up, so that any share above 0 of a non-empty
// fleet picks at least one node.
func (f Selector) Size(n int) int {
	if n <= 0 {
		return 0
	}
	if f.Count > 0 {
		return min(f.Count, n)
	}
	k := (uint64(n)*min(f.Percent, 10000) + 9999) / 10000
	return int(k)
}

// Pick returns the indexes, in [0, n) and ascending, of the [Selector.Size]
// nodes the selector picks out of n. The choice depends only on n and the
// state of r, so a run with the same seed picks the same nodes.
func (f Selector) Pick(n int, r *rand.Rand) []int {
	k := f.Size(n)
	if k == 0 {
		return nil
	}
	idx := r.Perm(n)[:k]
	slices.Sort(idx)
	return idx
}

// CorpusSeed is the seed of the delta corpus images a model's corpus key
// names: the one docs/deltas.md quotes.
const CorpusSeed = 15

// CorpusImage returns the delta corpus image a model's corpus key names
// ("a-head.target"), and false for a name that is not one.
func CorpusImage(name string) ([]byte, bool) {
	pair, role, ok := strings.Cut(name, ".")
	if !ok || (role != "base" && role != "target") {
		return nil, false
	}
	for _, p := range corpus.Pairs(CorpusSeed) {
		if p.Name == pair {
			if role == "base" {
				return p.Base, true
			}
			return p.Target, true
		}
	}
	return nil, false
}
