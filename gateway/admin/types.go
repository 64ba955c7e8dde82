package admin

import "time"

// Model is a model the gateway caches: its signed manifest's identity
// and the image's size.
type Model struct {
	// Digest is the image's SHA-256, hex.
	Digest string `json:"digest"`
	// Component, Version, Seq and Epoch are the manifest's.
	Component string `json:"component"`
	Version   string `json:"version"`
	Seq       uint64 `json:"seq"`
	Epoch     uint64 `json:"epoch"`
	// SizeBytes is the image's size.
	SizeBytes int64 `json:"size_bytes"`
	// Added is when it was stored; LastUsed when a node last fetched it.
	Added    time.Time `json:"added"`
	LastUsed time.Time `json:"last_used"`
}

// FetchRequest is the body of POST /v1/models/fetch.
type FetchRequest struct {
	// Manifest is the signed manifest, base64 (standard encoding).
	Manifest string `json:"manifest"`
	// Origin is the HTTP(S) URL of the image.
	Origin string `json:"origin"`
}

// FetchResult answers POST /v1/models/fetch: the fetch runs in the
// background.
type FetchResult struct {
	// Cached is true when the image is cached already.
	Cached bool `json:"cached"`
	// Digest is the manifest's image digest, hex.
	Digest string `json:"digest"`
	// Fetching is true while the gateway fetches it.
	Fetching bool `json:"fetching"`
}

// Node is a node in the gateway's registry: what it said in its last
// Hello, its last status event, and the manifest assigned to it.
type Node struct {
	ID           string            `json:"id"`
	Class        string            `json:"class"` // a UUID
	Labels       map[string]string `json:"labels"`
	Component    string            `json:"component"`
	AgentVersion string            `json:"agent_version"`
	// Runtime is the inference runtime the node offers (Hello key 64,
	// contract v1.1); "" when it names none.
	Runtime string `json:"runtime,omitempty"`
	// RunningSeq and RunningDigest are the manifest it runs.
	RunningSeq    uint64 `json:"running_seq"`
	RunningDigest string `json:"running_digest"`
	// ActiveSlot is "A" or "B"; ActiveState "trial" or "confirmed".
	ActiveSlot  string `json:"active_slot"`
	ActiveState string `json:"active_state"`
	EpochFloor  uint64 `json:"epoch_floor"`
	// LastState, LastReason and LastCode are of its last status event.
	LastState  string `json:"last_state"`
	LastReason string `json:"last_reason,omitempty"`
	LastCode   string `json:"last_reason_code,omitempty"`
	// LastSeen is when it last spoke to the gateway; Addr from where.
	LastSeen time.Time `json:"last_seen"`
	Addr     string    `json:"addr"`
	// HealthReports and StatusEvents count what it reported.
	HealthReports uint64 `json:"health_reports"`
	StatusEvents  uint64 `json:"status_events"`
	// Assigned and AssignedSeq are the manifest assigned to it, if any.
	Assigned    string `json:"assigned_digest,omitempty"`
	AssignedSeq uint64 `json:"assigned_seq,omitempty"`
	// DeltaFormats are the delta formats the node applies (Hello key 65,
	// contract v1.4); none for a node that applies none.
	DeltaFormats []uint64 `json:"delta_formats,omitempty"`
	// Transfer is the node's latest transfer, as its status events said
	// (status key 64, v1.4); nil before one did.
	Transfer *Transfer `json:"transfer,omitempty"`
}

// Transfer is how a node fetched, or fetches, the image of an update
// (docs/protocol.md "Delta updates (v1.4)").
type Transfer struct {
	// Seq and Digest are the manifest seq and image digest (hex) of the
	// update; State the status event's state that said it last.
	Seq    uint64 `json:"seq"`
	Digest string `json:"digest"`
	State  string `json:"state"`
	// Kind is "full" (the image) or "delta"; Delta the delta's digest
	// (hex) for a delta.
	Kind  string `json:"kind"`
	Delta string `json:"delta,omitempty"`
	// FetchedBytes are the bytes the node fetched from the gateway for
	// the update.
	FetchedBytes uint64 `json:"fetched_bytes"`
	// Fallback says why the node abandoned a delta for the full image.
	Fallback string `json:"fallback,omitempty"`
}

// AssignmentRequest is the body of POST /v1/assignments.
type AssignmentRequest struct {
	// Manifest is the signed manifest, base64 (standard encoding).
	Manifest string `json:"manifest"`
	// Nodes are the nodes to assign it to.
	Nodes []string `json:"nodes,omitempty"`
	// All assigns it to every node, including nodes that say Hello later
	// (a standing rule, until replaced).
	All bool `json:"all,omitempty"`
}

// AssignmentResult answers POST /v1/assignments.
type AssignmentResult struct {
	// Cached is true when the manifest's image is cached.
	Cached bool `json:"cached"`
	// Digest is the manifest's image digest, hex.
	Digest string `json:"digest"`
	// Nodes are the nodes assigned.
	Nodes []string `json:"nodes"`
	// StandingRule is true when the manifest was assigned to all nodes.
	StandingRule bool `json:"standing_rule"`
}

// Phase is the phase of a rollout.
type Phase string

// Rollout phases.
const (
	PhasePending    Phase = "pending"
	PhaseRunning    Phase = "running"
	PhaseSuperseded Phase = "superseded"
	PhaseCompleted  Phase = "completed"
	PhasePaused     Phase = "paused"
	PhaseAborted    Phase = "aborted"
	PhaseRolledBack Phase = "rolled-back"
)

// NodeState is the state of one node in a rollout.
type NodeState string

// Node states in a rollout.
const (
	NodeWaiting    NodeState = "waiting"
	NodeAssigned   NodeState = "assigned"       // told to download
	NodeTrial      NodeState = "trial"          // booted the new image on trial
	NodeConfirmed  NodeState = "confirmed"      // confirmed, soaking
	NodeSucceeded  NodeState = "succeeded"      // confirmed, reports and soak done, gates green
	NodeFailed     NodeState = "failed"         // reverted, refused or breached a gate
	NodeTimedOut   NodeState = "timed-out"      // no progress within node_timeout
	NodeRolledBack NodeState = "rolled-back"    // runs the previous manifest again
	NodeStuck      NodeState = "rollback-stuck" // did not return to the previous manifest
	NodeIneligible NodeState = "ineligible"     // in the cohort, but does not meet the manifest's requires
)

// Rollout is a rollout's status: a gateway's run of one deployment, as
// the admin API, `edgeota rollout status` and the retained JSON on the
// rollout topic carry it. It is a summary whose size does not grow with
// the fleet: counts per wave and state, gates and the latest decisions.
// Each node's state is on GET /v1/rollouts/{id}/nodes
// ([Client.RolloutNodes]).
type Rollout struct {
	// ID and Seq are the deployment's.
	ID    string `json:"id"`
	Seq   uint64 `json:"seq"`
	Phase Phase  `json:"phase"`
	// Component, Version, ManifestSeq and Digest are of the manifest it
	// rolls out.
	Component   string `json:"component"`
	Version     string `json:"version"`
	ManifestSeq uint64 `json:"manifest_seq"`
	Digest      string `json:"digest"`
	// Cohort is the deployment's target cohort expression.
	Cohort string `json:"cohort"`
	// Wave is the current wave, from 1.
	Wave      int        `json:"wave"`
	Waves     []Wave     `json:"waves"`
	Gates     []Gate     `json:"gates"`
	Decisions []Decision `json:"decisions"` // the latest, oldest first
	Started   time.Time  `json:"started"`
	Updated   time.Time  `json:"updated"`
	// Totals counts the rollout's nodes by NodeState.
	Totals map[string]int `json:"totals"`
	// Ineligible counts the nodes of the cohort that do not meet the
	// manifest's requires (agent version, runtime): never assigned, never
	// failed, outside the waves and gates.
	Ineligible int `json:"ineligible"`
	// Transfers counts how the rollout's nodes fetched its manifest
	// (contract v1.4).
	Transfers Transfers `json:"transfers"`
}

// Transfers counts how a rollout's nodes fetched its manifest, as their
// status events said (status key 64, docs/protocol.md "Delta updates
// (v1.4)").
type Transfers struct {
	// Delta and Full count the nodes whose latest transfer was a delta or
	// the full image; Fallback those of them that abandoned a delta for
	// the full image.
	Delta    int `json:"delta"`
	Full     int `json:"full"`
	Fallback int `json:"fallback"`
	// FetchedBytes sums the bytes those nodes fetched.
	FetchedBytes uint64 `json:"fetched_bytes"`
}

// Wave counts the nodes of one wave of a rollout by state.
type Wave struct {
	Wave        int    `json:"wave"`    // from 1
	Percent     string `json:"percent"` // of the cohort, such as "12.5"
	BakeSeconds uint64 `json:"bake_seconds"`
	Targeted    int    `json:"targeted"`
	Waiting     int    `json:"waiting"`
	Downloading int    `json:"downloading"`
	Trial       int    `json:"trial"`
	Confirmed   int    `json:"confirmed"`
	Succeeded   int    `json:"succeeded"`
	Reverted    int    `json:"reverted"`
	Failed      int    `json:"failed"`
	TimedOut    int    `json:"timed_out"`
	Offline     int    `json:"offline"`
	RolledBack  int    `json:"rolled_back"`
}

// Gate is one health gate of a rollout: its value against its bound.
type Gate struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Bound string `json:"bound"`
	OK    bool   `json:"ok"`
}

// RolloutNode is one node's state in a rollout, as a page of GET
// /v1/rollouts/{id}/nodes carries it.
type RolloutNode struct {
	ID     string    `json:"id"`
	Wave   int       `json:"wave"` // from 1; 0 when not yet placed
	State  NodeState `json:"state"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
	// Transfer is "full" or "delta" as the node's status events about
	// the rollout's manifest said ("" before one did); FetchedBytes the
	// bytes it fetched; Fallback why it abandoned a delta (v1.4).
	Transfer     string `json:"transfer,omitempty"`
	FetchedBytes uint64 `json:"fetched_bytes,omitempty"`
	Fallback     string `json:"fallback,omitempty"`
}

// Decision is one decision a rollout took, with its reason.
type Decision struct {
	At   time.Time `json:"at"`
	Node string    `json:"node,omitempty"` // "" for the rollout as a whole
	What string    `json:"what"`
}

// Key is one node's DTLS pre-shared key, as PUT /v1/keys and a key file
// carry it.
type Key struct {
	NodeID string `json:"node_id"`
	// PSK is the key: its literal string, or "hex:" followed by hex.
	PSK string `json:"psk"`
}

// KeysResult answers PUT /v1/keys.
type KeysResult struct {
	// Changed are the nodes whose key was new or changed; their sessions
	// were closed.
	Changed []string `json:"changed"`
	// Imported counts the keys of the request.
	Imported int `json:"imported"`
}

// KeyList answers GET /v1/keys: the nodes that have a key, never the
// keys.
type KeyList struct {
	Nodes []string `json:"nodes"`
}

// AuditEntry records who provisioned which node, with what, and when: one
// per provisioning commit a node reported (status event state 9).
type AuditEntry struct {
	// Seq numbers the entries, from 1, in the order they were recorded.
	Seq uint64 `json:"seq"`
	// At is when the gateway recorded it.
	At time.Time `json:"at"`
	// Node is the node provisioned.
	Node string `json:"node"`
	// Actor is who provisioned it: the operator key id (hex) the node
	// reports (status event key 10).
	Actor string `json:"actor"`
	// Detail is the node's reason text, such as "provisioned, serial 7".
	Detail string `json:"detail,omitempty"`
	// Labels and Component are what the node said in its Hello under the
	// new configuration.
	Labels    map[string]string `json:"labels,omitempty"`
	Component string            `json:"component,omitempty"`
	// From is the endpoint the status event came from; Authenticated is
	// true when it came over a DTLS session of that node.
	From          string `json:"from"`
	Authenticated bool   `json:"authenticated"`
}

// TrustKey is one key of a trust update: its algorithm and key id.
type TrustKey struct {
	// Alg is the key's algorithm: "EdDSA" or "ES256".
	Alg string `json:"alg"`
	// KID is its key id, lowercase hex.
	KID string `json:"kid"`
}

// Trust answers GET /v1/trust and PUT /v1/trust: the trust update the
// gateway applied last (docs/protocol.md "Trust update"), which it serves
// its nodes and whose keys it verifies with.
type Trust struct {
	// Version is the update's version, only ever growing.
	Version uint64 `json:"version"`
	// Issued is when it was signed, Unix seconds.
	Issued uint64 `json:"issued"`
	// ManifestKeys, DeploymentKeys and RootKeys are its three sets.
	ManifestKeys   []TrustKey `json:"manifest_keys"`
	DeploymentKeys []TrustKey `json:"deployment_keys"`
	RootKeys       []TrustKey `json:"root_keys"`
	// Threshold is how many roots must sign the next update.
	Threshold uint64 `json:"threshold"`
	// SignedBy are the key ids of the roots that signed it (PUT only).
	SignedBy []string `json:"signed_by,omitempty"`
}

// Health answers GET /healthz.
type Health struct {
	// GatewayID is the gateway's id on the MQTT uplink ("" without one).
	GatewayID string `json:"gateway_id"`
	// Status is "ok".
	Status string `json:"status"`
	// TimeScale is how much faster than real time the gateway's clock
	// runs (1 unless simulating).
	TimeScale float64 `json:"time_scale"`
}
