package provision

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// UUIDs of the provisioning GATT service (docs/provisioning.md, "GATT
// service"). All share the base ab20xxxx-cf53-4a1f-b346-785cd7d20b2f.
const (
	// ServiceUUID is the primary service; nodes advertise it while they
	// accept provisioning.
	ServiceUUID = "ab200001-cf53-4a1f-b346-785cd7d20b2f"
	// NodeIDUUID (read): the node id, UTF-8.
	NodeIDUUID = "ab200002-cf53-4a1f-b346-785cd7d20b2f"
	// ClassUUID (read): the device class UUID, 16 bytes.
	ClassUUID = "ab200003-cf53-4a1f-b346-785cd7d20b2f"
	// ComponentUUID (read): the component, UTF-8, empty when none is set.
	ComponentUUID = "ab200004-cf53-4a1f-b346-785cd7d20b2f"
	// RunningVersionUUID (read): the version of the running model, UTF-8,
	// empty when none runs.
	RunningVersionUUID = "ab200005-cf53-4a1f-b346-785cd7d20b2f"
	// AgentVersionUUID (read): the node agent's version, UTF-8.
	AgentVersionUUID = "ab200006-cf53-4a1f-b346-785cd7d20b2f"
	// SerialUUID (read): the serial of the committed bundle, 8 bytes
	// big-endian, 0 on a fresh node.
	SerialUUID = "ab200007-cf53-4a1f-b346-785cd7d20b2f"
	// BundleUUID (write): the signed bundle in chunks ([AppendChunk]).
	BundleUUID = "ab200010-cf53-4a1f-b346-785cd7d20b2f"
	// ControlUUID (write): one byte, [ControlCommit] or [ControlAbort].
	ControlUUID = "ab200011-cf53-4a1f-b346-785cd7d20b2f"
	// StatusUUID (read, notify): the last [Status].
	StatusUUID = "ab200012-cf53-4a1f-b346-785cd7d20b2f"
)

// Chunks. A chunk is [index u16 big-endian][total u16 big-endian][data],
// with at least one data byte. A transfer sends indices 0 to total-1 in
// order, with the same total; the node refuses anything else.
const (
	// ChunkHeaderLen is the size of a chunk's header.
	ChunkHeaderLen = 4
	// DefaultMTU is the ATT MTU of a link before an MTU exchange; every
	// value the service exposes for notification fits DefaultMTU-3 bytes.
	DefaultMTU = 23
	// MaxValueLen is the longest value a write or notification carries at
	// the default MTU: DefaultMTU-3.
	MaxValueLen = DefaultMTU - 3
)

// Control operations (one byte written to the control characteristic).
const (
	// ControlCommit applies the accepted bundle.
	ControlCommit byte = 0x01
	// ControlAbort discards a partial transfer or an accepted bundle.
	ControlAbort byte = 0x02
)

// ATT application error codes (Bluetooth Core Vol 3 Part F 3.4.1.1 leaves
// 0x80-0x9F to the application) the service answers with, besides the
// standard 0x0D (invalid attribute value length).
const (
	// ATTOutOfOrder: a chunk whose index is not the next one expected, or
	// whose total differs from the transfer's; or a chunk while a bundle
	// waits to be committed.
	ATTOutOfOrder byte = 0x80
	// ATTRejected: the last chunk completed a bundle the node refused; the
	// status characteristic says why.
	ATTRejected byte = 0x81
	// ATTNothingToCommit: commit without an accepted bundle.
	ATTNothingToCommit byte = 0x82
	// ATTUnknownOp: a control byte other than commit or abort.
	ATTUnknownOp byte = 0x83
	// ATTStoreFailed: the node could not save its configuration; the old
	// one stays in force.
	ATTStoreFailed byte = 0x84
)

// ErrChunk means a chunk is not well formed.
var ErrChunk = errors.New("bad chunk")

// AppendChunk appends one chunk to dst.
func AppendChunk(dst []byte, index, total uint16, data []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, index)
	dst = binary.BigEndian.AppendUint16(dst, total)
	return append(dst, data...)
}

// ParseChunk splits a chunk into its header and data. data aliases v.
func ParseChunk(v []byte) (index, total uint16, data []byte, err error) {
	if len(v) <= ChunkHeaderLen {
		return 0, 0, nil, fmt.Errorf("%w: %d bytes, want a %d-byte header and data", ErrChunk, len(v), ChunkHeaderLen)
	}
	index = binary.BigEndian.Uint16(v)
	total = binary.BigEndian.Uint16(v[2:])
	if total == 0 || index >= total {
		return 0, 0, nil, fmt.Errorf("%w: index %d of %d", ErrChunk, index, total)
	}
	return index, total, v[ChunkHeaderLen:], nil
}

// Split cuts a signed bundle into chunks of at most maxValue bytes each
// (the link's MTU-3).
func Split(signed []byte, maxValue int) ([][]byte, error) {
	if len(signed) == 0 || len(signed) > MaxSize {
		return nil, fmt.Errorf("%w: bundle of %d bytes, want 1 to %d", ErrChunk, len(signed), MaxSize)
	}
	per := maxValue - ChunkHeaderLen
	if per < 1 {
		return nil, fmt.Errorf("%w: values of %d bytes leave no room for data", ErrChunk, maxValue)
	}
	n := (len(signed) + per - 1) / per
	out := make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		end := min((i+1)*per, len(signed))
		out = append(out, AppendChunk(nil, uint16(i), uint16(n), signed[i*per:end]))
	}
	return out, nil
}

// State is the provisioning state in a [Status].
type State uint8

// States.
const (
	StateIdle      State = 0 // nothing received on this connection
	StateReceiving State = 1 // chunks are arriving
	StateAccepted  State = 2 // a complete bundle verified; commit applies it
	StateRejected  State = 3 // a bundle was refused; see the reason
	StateCommitted State = 4 // the bundle is the node's configuration
)

// String returns the state's name.
func (s State) String() string {
	switch s {
	case StateIdle:
		return "idle"
	case StateReceiving:
		return "receiving"
	case StateAccepted:
		return "accepted"
	case StateRejected:
		return "rejected"
	case StateCommitted:
		return "committed"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Reason says why a bundle was refused (a [Status] with [StateRejected]).
type Reason uint8

// Reasons.
const (
	ReasonNone      Reason = 0
	ReasonMalformed Reason = 1  // not a COSE_Sign1 bundle, or not strict CBOR
	ReasonSignature Reason = 2  // the signature does not verify
	ReasonUntrusted Reason = 3  // signed by a key that is not a trust anchor of the node
	ReasonNodeID    Reason = 4  // the bundle names another node
	ReasonReplay    Reason = 5  // serial at or below the committed one
	ReasonSeal      Reason = 6  // the PSK does not open with the factory secret
	ReasonInvalid   Reason = 7  // a rule of the bundle is broken
	ReasonTooLarge  Reason = 8  // over MaxSize
	ReasonStore     Reason = 9  // the configuration could not be saved
	ReasonAborted   Reason = 10 // the central aborted
)

// String returns the reason's name.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

var reasonNames = [...]string{"none", "malformed", "signature", "untrusted", "node id", "replay", "seal", "invalid", "too large", "store", "aborted"}

// Status is the value of the status characteristic: [state u8][reason
// u8][text], the text short ASCII, so that the whole fits [MaxValueLen].
type Status struct {
	State  State
	Reason Reason
	Text   string
}

// MaxStatusText is the longest status text.
const MaxStatusText = MaxValueLen - 2

// MarshalBinary encodes s, truncating its text to [MaxStatusText] printable
// ASCII bytes.
func (s Status) MarshalBinary() ([]byte, error) {
	out := make([]byte, 2, MaxValueLen)
	out[0], out[1] = byte(s.State), byte(s.Reason)
	for i := 0; i < len(s.Text) && len(out) < MaxValueLen; i++ {
		c := s.Text[i]
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		out = append(out, c)
	}
	return out, nil
}

// ParseStatus decodes a status value.
func ParseStatus(v []byte) (Status, error) {
	if len(v) < 2 || len(v) > MaxValueLen {
		return Status{}, fmt.Errorf("provision: status of %d bytes, want 2 to %d", len(v), MaxValueLen)
	}
	if State(v[0]) > StateCommitted {
		return Status{}, fmt.Errorf("provision: status state %d", v[0])
	}
	return Status{State: State(v[0]), Reason: Reason(v[1]), Text: string(v[2:])}, nil
}

// String renders s for logs: "rejected (replay): serial replayed".
func (s Status) String() string {
	out := s.State.String()
	if s.Reason != ReasonNone {
		out += " (" + s.Reason.String() + ")"
	}
	if s.Text != "" {
		out += ": " + s.Text
	}
	return out
}
