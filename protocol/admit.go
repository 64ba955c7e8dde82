package protocol

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// NodeState is what a node knows about itself when it judges a manifest
// (docs/protocol.md section 3).
type NodeState struct {
	// Class is the node's device class.
	Class Class
	// Component is the one component the node runs, fixed at provisioning.
	Component string
	// AgentVersion is the node agent's version, dotted numbers.
	AgentVersion string
	// Runtime is the inference runtime the node offers; empty when none is
	// named.
	Runtime string
	// EpochFloor is the node's anti-rollback floor.
	EpochFloor uint64
	// HighestSeq is the highest seq the node has ever installed for its
	// component.
	HighestSeq uint64
	// Other is the manifest stored with the node's other slot, nil when that
	// slot is empty or invalid.
	Other *Manifest
}

// Admission is how a node may take a manifest.
type Admission uint8

// Admissions.
const (
	// AdmitInstall: a new image, to download into the inactive slot.
	AdmitInstall Admission = iota + 1
	// AdmitRevert: the image already held in the other slot, under the
	// manifest stored with it; no download.
	AdmitRevert
)

// RejectError is why a node refuses a manifest, with the reason code its
// status event carries.
type RejectError struct {
	Code Reason
	Msg  string
}

func (e *RejectError) Error() string { return "manifest refused: " + e.Msg }

// ErrRejected is matched by every *RejectError with errors.Is.
var ErrRejected = errors.New("manifest refused")

// Is makes errors.Is(err, ErrRejected) true for a *RejectError.
func (e *RejectError) Is(target error) bool { return target == ErrRejected }

func reject(code Reason, format string, args ...any) (Admission, error) {
	return 0, &RejectError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Admit applies the anti-rollback rules of section 3 to a manifest whose
// signature has already been verified: class, component and requirements
// must match; the seq must be above the highest ever installed and the epoch
// at or above the floor, except for the revert to the other slot's own
// manifest while its epoch is not below the floor. It returns how the
// manifest may be taken, or a *RejectError naming the reason code.
func Admit(st NodeState, m *Manifest) (Admission, error) {
	if m.Class != st.Class {
		return reject(ReasonClass, "class %s, this node is %s", m.Class, st.Class)
	}
	if m.Component != st.Component {
		return reject(ReasonOther, "component %q, this node runs %q", m.Component, st.Component)
	}
	if err := m.Requires.Met(st.AgentVersion, st.Runtime); err != nil {
		return 0, err
	}
	if m.Epoch < st.EpochFloor {
		return reject(ReasonEpoch, "epoch %d is below the node's floor %d", m.Epoch, st.EpochFloor)
	}
	if o := st.Other; o != nil && o.Seq == m.Seq && o.Digest == m.Digest && o.Epoch == m.Epoch && o.Size == m.Size {
		return AdmitRevert, nil
	}
	if m.Seq <= st.HighestSeq {
		return reject(ReasonSeq, "seq %d is not above the highest installed %d (rollback refused)", m.Seq, st.HighestSeq)
	}
	return AdmitInstall, nil
}

// Met reports whether a node of that agent version offering that runtime
// meets r (section 3, key 12): nil when it does, or when r is nil; else a
// *RejectError of code [ReasonRequires] saying what is missing. A node that
// names no runtime meets no runtime requirement. The node applies it in
// [Admit]; a gateway applies it to what the node's Hello says.
func (r *Requires) Met(agentVersion, runtime string) error {
	if r == nil {
		return nil
	}
	if r.MinAgentVersion != "" {
		c, err := CompareVersions(agentVersion, r.MinAgentVersion)
		if err != nil || c < 0 {
			_, err := reject(ReasonRequires, "requires agent %s, this node runs %s", r.MinAgentVersion, agentVersion)
			return err
		}
	}
	if r.Runtime != "" && r.Runtime != runtime {
		offers := fmt.Sprintf("offers %q", runtime)
		if runtime == "" {
			offers = "names none"
		}
		_, err := reject(ReasonRequires, "requires runtime %q, this node %s", r.Runtime, offers)
		return err
	}
	return nil
}

// CompareVersions compares two dotted-number versions such as "1.4.0":
// -1 when a < b, 0 when equal (missing parts count as 0), +1 when a > b. A
// pre-release or build suffix after '-' or '+' is ignored.
func CompareVersions(a, b string) (int, error) {
	va, err := parseVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := parseVersion(b)
	if err != nil {
		return 0, err
	}
	for i := 0; i < len(va) || i < len(vb); i++ {
		var x, y uint64
		if i < len(va) {
			x = va[i]
		}
		if i < len(vb) {
			y = vb[i]
		}
		switch {
		case x < y:
			return -1, nil
		case x > y:
			return 1, nil
		}
	}
	return 0, nil
}

func parseVersion(s string) ([]uint64, error) {
	if i := strings.IndexAny(s, "-+"); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimPrefix(s, "v")
	if s == "" {
		return nil, fmt.Errorf("version %q is not dotted numbers", s)
	}
	parts := strings.Split(s, ".")
	if len(parts) > 8 {
		return nil, fmt.Errorf("version %q has more than 8 parts", s)
	}
	out := make([]uint64, len(parts))
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("version %q is not dotted numbers", s)
		}
		out[i] = n
	}
	return out, nil
}
