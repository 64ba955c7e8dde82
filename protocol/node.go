package protocol

import (
	"fmt"
)

// Slot names an image slot: 0 is A, 1 is B (Hello key 6).
type Slot uint8

// Image slots.
const (
	SlotA Slot = 0
	SlotB Slot = 1
)

// Other returns the other slot.
func (s Slot) Other() Slot { return s ^ 1 }

// String returns "A" or "B".
func (s Slot) String() string {
	switch s {
	case SlotA:
		return "A"
	case SlotB:
		return "B"
	}
	return fmt.Sprintf("Slot(%d)", uint8(s))
}

// SlotState is the state of a slot's image (Hello keys 9 and 10.3).
type SlotState uint8

// Slot states.
const (
	SlotNone      SlotState = 0
	SlotTrial     SlotState = 1
	SlotConfirmed SlotState = 2
)

// String returns "none", "trial" or "confirmed".
func (s SlotState) String() string {
	switch s {
	case SlotNone:
		return "none"
	case SlotTrial:
		return "trial"
	case SlotConfirmed:
		return "confirmed"
	}
	return fmt.Sprintf("SlotState(%d)", uint8(s))
}

// OtherSlot describes the slot a node is not running (Hello key 10).
type OtherSlot struct {
	// Seq is key 1.
	Seq uint64 `cbor:"1,keyasint"`
	// Digest is key 2.
	Digest Digest `cbor:"2,keyasint"`
	// State is key 3.
	State SlotState `cbor:"3,keyasint"`
	// Epoch is key 4.
	Epoch uint64 `cbor:"4,keyasint"`
}

// Hello is what a node sends on start and after every activation or revert
// (docs/protocol.md section 4).
type Hello struct {
	// NodeID is key 1.
	NodeID string `cbor:"1,keyasint"`
	// Class is key 2.
	Class Class `cbor:"2,keyasint"`
	// Labels is key 3; always encoded, empty when the node has none.
	Labels map[string]string `cbor:"3,keyasint"`
	// RunningSeq is key 4: 0 when no image runs.
	RunningSeq uint64 `cbor:"4,keyasint"`
	// RunningDigest is key 5: zero when no image runs.
	RunningDigest Digest `cbor:"5,keyasint"`
	// ActiveSlot is key 6.
	ActiveSlot Slot `cbor:"6,keyasint"`
	// AgentVersion is key 7.
	AgentVersion string `cbor:"7,keyasint"`
	// EpochFloor is key 8.
	EpochFloor uint64 `cbor:"8,keyasint"`
	// ActiveState is key 9.
	ActiveState SlotState `cbor:"9,keyasint"`
	// Other is key 10: absent when the other slot is empty or invalid.
	Other *OtherSlot `cbor:"10,keyasint,omitempty"`
	// Component is key 11.
	Component string `cbor:"11,keyasint"`
	// Runtime is key 64, optional (v1.1): the inference runtime the node
	// offers to a manifest's requires (section 3, key 12), a name by the
	// rules of section 0 ids; empty when the node declares none. Readers of
	// v1 ignore it.
	Runtime string `cbor:"64,keyasint,omitempty"`
	// DeltaFormats is key 65, optional (v1.4): the delta formats the node
	// applies (docs/protocol.md "Delta updates (v1.4)"), at most
	// [MaxDeltaFormats], each 1 to 255, none twice; encoded only when
	// non-empty. Absent, the node applies none and is offered no delta.
	DeltaFormats []uint64 `cbor:"65,keyasint,omitempty"`
}

// AppliesDelta reports whether the Hello lists delta format f.
func (h *Hello) AppliesDelta(f uint64) bool {
	for _, g := range h.DeltaFormats {
		if g == f {
			return true
		}
	}
	return false
}

var otherSlotSchema = newSchema("other slot", map[uint8]*field{
	1: req("seq", majUint),
	2: reqBytes("digest", 32),
	3: req("state", majUint),
	4: req("epoch", majUint),
})

var helloSchema = newSchema("hello", map[uint8]*field{
	1:  req("node id", majText),
	2:  reqBytes("class", 16),
	3:  req("labels", majMap),
	4:  req("running seq", majUint),
	5:  reqBytes("running digest", 32),
	6:  req("active slot", majUint),
	7:  req("agent version", majText),
	8:  req("epoch floor", majUint),
	9:  req("active slot state", majUint),
	10: {name: "other slot", major: majMap, nested: otherSlotSchema},
	11: req("component", majText),
}).withOptional(map[uint64]*field{
	65: opt("delta formats", majArray),
})

// DecodeHello decodes and validates a Hello.
func DecodeHello(b []byte) (*Hello, error) {
	h := new(Hello)
	if err := decode(b, helloSchema, false, h); err != nil {
		return nil, err
	}
	if h.DeltaFormats != nil && len(h.DeltaFormats) == 0 {
		// Key 65 is 1 to 8 formats: a node that applies none leaves it
		// out. (A Hello built in Go may hold an empty list: it encodes
		// without the key.)
		return nil, fmt.Errorf("%w: hello key 65 lists no delta format", ErrInvalid)
	}
	if err := h.Validate(); err != nil {
		return nil, err
	}
	return h, nil
}

// Validate checks the rules of sections 0 and 4.
func (h *Hello) Validate() error {
	if !ValidID(h.NodeID) {
		return fmt.Errorf("%w: hello node id %q does not match [A-Za-z0-9._-]{1,64}", ErrInvalid, h.NodeID)
	}
	if !ValidID(h.Component) {
		return fmt.Errorf("%w: hello component %q does not match [A-Za-z0-9._-]{1,64}", ErrInvalid, h.Component)
	}
	if err := ValidateLabels(h.Labels); err != nil {
		return err
	}
	if h.ActiveSlot > SlotB {
		return fmt.Errorf("%w: hello active slot %d, want 0 or 1", ErrInvalid, h.ActiveSlot)
	}
	if h.ActiveState > SlotConfirmed {
		return fmt.Errorf("%w: hello active slot state %d, want 0 to 2", ErrInvalid, h.ActiveState)
	}
	if h.Other != nil && h.Other.State > SlotConfirmed {
		return fmt.Errorf("%w: hello other slot state %d, want 0 to 2", ErrInvalid, h.Other.State)
	}
	if h.Runtime != "" && !ValidID(h.Runtime) {
		return fmt.Errorf("%w: hello runtime %q does not match [A-Za-z0-9._-]{1,64}", ErrInvalid, h.Runtime)
	}
	if len(h.DeltaFormats) > MaxDeltaFormats {
		return fmt.Errorf("%w: hello lists %d delta formats, at most %d", ErrInvalid, len(h.DeltaFormats), MaxDeltaFormats)
	}
	for i, f := range h.DeltaFormats {
		if f < 1 || f > 255 {
			return fmt.Errorf("%w: hello delta format %d, want 1 to 255", ErrInvalid, f)
		}
		for _, g := range h.DeltaFormats[:i] {
			if g == f {
				return fmt.Errorf("%w: hello lists delta format %d twice", ErrInvalid, f)
			}
		}
	}
	if h.AgentVersion == "" || len(h.AgentVersion) > MaxIDLen {
		return fmt.Errorf("%w: hello agent version must be 1 to %d bytes", ErrInvalid, MaxIDLen)
	}
	if (h.RunningSeq == 0) != h.RunningDigest.IsZero() {
		return fmt.Errorf("%w: hello running seq %d and digest disagree about whether an image runs", ErrInvalid, h.RunningSeq)
	}
	return nil
}

// HealthReport is a node's periodic health (docs/protocol.md section 4).
// (NodeID, BootCount, Number) identifies a report.
type HealthReport struct {
	// NodeID is key 1.
	NodeID string `cbor:"1,keyasint"`
	// UptimeSeconds is key 2.
	UptimeSeconds uint64 `cbor:"2,keyasint"`
	// RunningSeq is key 3.
	RunningSeq uint64 `cbor:"3,keyasint"`
	// ActiveSlot is key 4.
	ActiveSlot Slot `cbor:"4,keyasint"`
	// Inferences is key 5: inferences since the last report.
	Inferences uint64 `cbor:"5,keyasint"`
	// Errors is key 6: errors since the last report.
	Errors uint64 `cbor:"6,keyasint"`
	// LatencyP50Micros is key 7, over the inferences since the last report.
	LatencyP50Micros uint64 `cbor:"7,keyasint"`
	// LatencyP99Micros is key 8, same window.
	LatencyP99Micros uint64 `cbor:"8,keyasint"`
	// CPUPermille is key 9: per-mille of one core.
	CPUPermille uint64 `cbor:"9,keyasint"`
	// RAMBytes is key 10: RAM in use.
	RAMBytes uint64 `cbor:"10,keyasint"`
	// BootCount is key 11: persisted, increments at every boot.
	BootCount uint64 `cbor:"11,keyasint"`
	// Time is key 12: Unix seconds, or 0 without a clock.
	Time uint64 `cbor:"12,keyasint"`
	// Number is key 13: report number within this boot, from 1.
	Number uint64 `cbor:"13,keyasint"`
	// Metrics is key 64, optional: model-quality metrics such as
	// "low_confidence_permille".
	Metrics map[string]int64 `cbor:"64,keyasint,omitempty"`
}

var healthSchema = newSchema("health report", map[uint8]*field{
	1:  req("node id", majText),
	2:  req("uptime seconds", majUint),
	3:  req("running seq", majUint),
	4:  req("active slot", majUint),
	5:  req("inferences", majUint),
	6:  req("errors", majUint),
	7:  req("latency p50 us", majUint),
	8:  req("latency p99 us", majUint),
	9:  req("CPU per-mille", majUint),
	10: req("RAM bytes", majUint),
	11: req("boot count", majUint),
	12: req("time", majUint),
	13: req("report number", majUint),
})

// DecodeHealthReport decodes and validates a health report into r, which it
// resets first. Reusing r across calls avoids allocating the report.
func DecodeHealthReport(b []byte, r *HealthReport) error {
	*r = HealthReport{}
	if err := decode(b, healthSchema, false, r); err != nil {
		return err
	}
	return r.Validate()
}

// Validate checks the rules of sections 0 and 4.
func (r *HealthReport) Validate() error {
	if !ValidID(r.NodeID) {
		return fmt.Errorf("%w: health report node id %q does not match [A-Za-z0-9._-]{1,64}", ErrInvalid, r.NodeID)
	}
	if r.ActiveSlot > SlotB {
		return fmt.Errorf("%w: health report active slot %d, want 0 or 1", ErrInvalid, r.ActiveSlot)
	}
	if r.Number == 0 {
		return fmt.Errorf("%w: health report number is 0; numbers start at 1", ErrInvalid)
	}
	if r.Errors > r.Inferences {
		return fmt.Errorf("%w: health report has %d errors in %d inferences", ErrInvalid, r.Errors, r.Inferences)
	}
	return nil
}

// DecodeHealthBatch decodes an MQTT health batch: a CBOR array of at most
// 1024 health reports (section 6).
func DecodeHealthBatch(b []byte) ([]HealthReport, error) {
	var rs []HealthReport
	if err := decode(b, healthSchema, true, &rs); err != nil {
		return nil, err
	}
	for i := range rs {
		if err := rs[i].Validate(); err != nil {
			return nil, fmt.Errorf("report %d: %w", i, err)
		}
	}
	return rs, nil
}

// State is the state a status event announces (status key 2).
type State uint8

// Node states of section 4.
const (
	StateIdle        State = 0
	StateDownloading State = 1
	StateDownloaded  State = 2
	StateVerified    State = 3
	StatePending     State = 4
	StateTrial       State = 5
	StateConfirmed   State = 6
	StateReverted    State = 7
	StateFailed      State = 8
	StateProvisioned State = 9
	// StateTrusted (v1.3): the node applied a trust update; key 10 names
	// the root key ids that signed it, the reason its version.
	StateTrusted State = 10
)

var stateNames = [...]string{"idle", "downloading", "downloaded", "verified", "pending", "trial", "confirmed", "reverted", "failed", "provisioned", "trusted"}

// String returns the state's name, e.g. "downloading".
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Reason is the reason code of a status event (status key 7).
type Reason uint8

// Reason codes of section 4.
const (
	ReasonNone               Reason = 0
	ReasonSignature          Reason = 1
	ReasonDigest             Reason = 2
	ReasonSize               Reason = 3
	ReasonClass              Reason = 4
	ReasonEpoch              Reason = 5
	ReasonSeq                Reason = 6 // rollback refused
	ReasonRequires           Reason = 7
	ReasonProbationErrors    Reason = 8
	ReasonProbationLatency   Reason = 9
	ReasonProbationResources Reason = 10
	ReasonBootLoop           Reason = 11
	ReasonNoSpace            Reason = 12
	ReasonLink               Reason = 13
	ReasonOther              Reason = 14
	// ReasonTrust (v1.3): a trust update was refused (its signatures,
	// version or keys); the text says which.
	ReasonTrust Reason = 15
)

var reasonNames = [...]string{"none", "signature", "digest", "size", "class", "epoch", "seq", "requires",
	"probation errors", "probation latency", "probation resources", "boot loop", "no space", "link", "other", "trust"}

// String returns the reason's name, e.g. "epoch".
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// StatusEvent is a node's state change (docs/protocol.md section 4).
// (NodeID, BootCount, Number) identifies an event.
type StatusEvent struct {
	// NodeID is key 1.
	NodeID string `cbor:"1,keyasint"`
	// State is key 2.
	State State `cbor:"2,keyasint"`
	// Seq is key 3: the manifest seq concerned.
	Seq uint64 `cbor:"3,keyasint"`
	// Digest is key 4: the image digest concerned.
	Digest Digest `cbor:"4,keyasint"`
	// Reason is key 5: readable text, empty when none.
	Reason string `cbor:"5,keyasint"`
	// BytesReceived is key 6.
	BytesReceived uint64 `cbor:"6,keyasint"`
	// Code is key 7: the reason code.
	Code Reason `cbor:"7,keyasint"`
	// BootCount is key 8.
	BootCount uint64 `cbor:"8,keyasint"`
	// Number is key 9: event number within this boot, from 1.
	Number uint64 `cbor:"9,keyasint"`
	// Actor is key 10, optional: who did it (provisioning: the operator's
	// key id or name).
	Actor string `cbor:"10,keyasint,omitempty"`
	// Transfer is key 64, optional (v1.4): how the node fetches, or
	// fetched, the update of this status event, a full image or a delta
	// (docs/protocol.md "Delta updates (v1.4)"). Sent on the states
	// downloading, downloaded and verified.
	Transfer *Transfer `cbor:"64,keyasint,omitempty"`
}

// TransferKind is what a node fetches for an update (status key 64, key 1).
type TransferKind uint8

// Transfer kinds.
const (
	// TransferFull is the full image at its manifest's location.
	TransferFull TransferKind = 0
	// TransferDelta is a delta offered with the manifest.
	TransferDelta TransferKind = 1
)

// String returns "full" or "delta".
func (k TransferKind) String() string {
	switch k {
	case TransferFull:
		return "full"
	case TransferDelta:
		return "delta"
	}
	return fmt.Sprintf("TransferKind(%d)", uint8(k))
}

// Transfer is status key 64 (v1.4): how a node fetches the image of an
// update.
type Transfer struct {
	// Kind is key 1.
	Kind TransferKind `cbor:"1,keyasint"`
	// Delta is key 2: the delta's digest, for kind delta only.
	Delta Digest `cbor:"2,keyasint,omitzero"`
	// Fetched is key 3: the bytes fetched from the gateway for this
	// update so far, deltas and images together.
	Fetched uint64 `cbor:"3,keyasint"`
	// Fallback is key 4: why the node abandoned a delta for the full
	// image, for kind full only; empty when it did not.
	Fallback string `cbor:"4,keyasint,omitempty"`
}

var transferSchema = newSchema("transfer", map[uint8]*field{
	1: req("kind", majUint),
	2: {name: "delta digest", major: majBytes, fixedLen: 32},
	3: req("bytes fetched", majUint),
	4: opt("fallback", majText),
})

// Validate checks the rules of "Delta updates (v1.4)": a known kind, a
// delta digest exactly with kind delta, a fallback reason only with kind
// full and at most [MaxReasonLen] bytes.
func (t *Transfer) Validate() error {
	switch t.Kind {
	case TransferFull:
		if !t.Delta.IsZero() {
			return fmt.Errorf("%w: transfer of a full image names a delta", ErrInvalid)
		}
	case TransferDelta:
		if t.Delta.IsZero() {
			return fmt.Errorf("%w: transfer of a delta names no delta", ErrInvalid)
		}
		if t.Fallback != "" {
			return fmt.Errorf("%w: transfer of a delta has a fallback reason", ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: transfer kind %d, want 0 (full) or 1 (delta)", ErrInvalid, t.Kind)
	}
	if len(t.Fallback) > MaxReasonLen {
		return fmt.Errorf("%w: transfer fallback reason of %d bytes is over %d", ErrInvalid, len(t.Fallback), MaxReasonLen)
	}
	return nil
}

var statusSchema = newSchema("status event", map[uint8]*field{
	1:  req("node id", majText),
	2:  req("state", majUint),
	3:  req("seq", majUint),
	4:  reqBytes("digest", 32),
	5:  req("reason", majText),
	6:  req("bytes received", majUint),
	7:  req("reason code", majUint),
	8:  req("boot count", majUint),
	9:  req("event number", majUint),
	10: opt("actor", majText),
}).withOptional(map[uint64]*field{
	64: {name: "transfer", major: majMap, nested: transferSchema},
})

// DecodeStatusEvent decodes and validates a status event.
func DecodeStatusEvent(b []byte) (*StatusEvent, error) {
	e := new(StatusEvent)
	if err := decode(b, statusSchema, false, e); err != nil {
		return nil, err
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e, nil
}

// Validate checks the rules of sections 0 and 4.
func (e *StatusEvent) Validate() error {
	if !ValidID(e.NodeID) {
		return fmt.Errorf("%w: status event node id %q does not match [A-Za-z0-9._-]{1,64}", ErrInvalid, e.NodeID)
	}
	if e.State > StateTrusted {
		return fmt.Errorf("%w: status event state %d, want 0 to 10", ErrInvalid, e.State)
	}
	if e.Code > ReasonTrust {
		return fmt.Errorf("%w: status event reason code %d, want 0 to 15", ErrInvalid, e.Code)
	}
	if e.Number == 0 {
		return fmt.Errorf("%w: status event number is 0; numbers start at 1", ErrInvalid)
	}
	if len(e.Reason) > MaxReasonLen {
		return fmt.Errorf("%w: status event reason of %d bytes is over %d", ErrInvalid, len(e.Reason), MaxReasonLen)
	}
	if e.Transfer != nil {
		if err := e.Transfer.Validate(); err != nil {
			return fmt.Errorf("status event: %w", err)
		}
	}
	return nil
}

// DecodeEventBatch decodes an MQTT events batch: a CBOR array of at most
// 1024 status events (section 6).
func DecodeEventBatch(b []byte) ([]StatusEvent, error) {
	var es []StatusEvent
	if err := decode(b, statusSchema, true, &es); err != nil {
		return nil, err
	}
	for i := range es {
		if err := es[i].Validate(); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
	}
	return es, nil
}
