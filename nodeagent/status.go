package nodeagent

import (
	"fmt"

	"edgeota/nodeagent/internal/journal"
	"edgeota/protocol"
	"edgeota/protocol/delta"
	"edgeota/protocol/sign"
)

// SlotStatus describes one slot for people and scripts.
type SlotStatus struct {
	Slot      string `json:"slot"`
	Component string `json:"component,omitempty"`
	Version   string `json:"version,omitempty"`
	Seq       uint64 `json:"seq"`
	Digest    string `json:"digest,omitempty"`
	Epoch     uint64 `json:"epoch"`
	// State is none, trial, confirmed or invalid.
	State string `json:"state"`
}

// DownloadStatus is a download in progress.
type DownloadStatus struct {
	Slot         string `json:"slot"`
	Seq          uint64 `json:"seq"`
	WrittenBytes uint64 `json:"written_bytes"`
	SizeBytes    uint64 `json:"size_bytes"`
	Verified     bool   `json:"verified"`
}

// Status is a node's boot state as stored on its flash.
type Status struct {
	Active     string          `json:"active"`
	Pending    string          `json:"pending,omitempty"`
	TrialBoots uint8           `json:"trial_boots"`
	Slots      []SlotStatus    `json:"slots"`
	EpochFloor uint64          `json:"epoch_floor"`
	HighestSeq uint64          `json:"highest_seq"`
	BootCount  uint64          `json:"boot_count"`
	Component  string          `json:"component,omitempty"`
	Download   *DownloadStatus `json:"download,omitempty"`
	LastState  string          `json:"last_state"`
	LastReason string          `json:"last_reason"`
	LastCode   string          `json:"last_reason_code"`
	// TrustVersion is the version of the last trust update applied (0:
	// none; the node verifies with the keys it was started with).
	TrustVersion uint64 `json:"trust_version,omitempty"`
}

// ReadStatus reads a node's status from its flash without writing to it, so
// it can run beside an agent that uses the same flash. The manifests in the
// slot headers are shown as stored; their signatures are not checked.
func ReadStatus(f Flash, slotSize int64, journalBlocks int) (*Status, error) {
	l, err := NewLayout(f, slotSize, journalBlocks)
	if err != nil {
		return nil, err
	}
	j, err := journal.Open(f, l.JournalOff, l.JournalBlocks)
	if err != nil {
		return nil, err
	}
	var st bootState
	if rec, _, ok := j.Latest(); ok {
		if st, err = unmarshalState(rec); err != nil {
			return nil, err
		}
	}
	s := &Status{Active: st.Active.String(), TrialBoots: st.TrialBoots, EpochFloor: st.EpochFloor,
		HighestSeq: st.HighestSeq, BootCount: st.BootCount, Component: st.Component,
		LastState: st.LastState.String(), LastReason: st.LastText, LastCode: st.LastReason.String()}
	if st.Trust != nil {
		s.TrustVersion = st.Trust.Version
	}
	if p, ok := st.pendingSlot(); ok {
		s.Pending = p.String()
	}
	for i, rec := range st.Slots {
		slot := protocol.Slot(i)
		ss := SlotStatus{Slot: slot.String(), State: "none"}
		switch rec.State {
		case slotTrial:
			ss.State = "trial"
		case slotConfirmed:
			ss.State = "confirmed"
		case slotInvalid:
			ss.State = "invalid"
		case slotWriting, slotReady:
			s.Download = &DownloadStatus{Slot: slot.String(), Seq: rec.Seq, WrittenBytes: rec.Written, SizeBytes: rec.Size, Verified: rec.State == slotReady}
		}
		if rec.State != slotEmpty {
			ss.Seq, ss.Digest, ss.Epoch = rec.Seq, rec.Digest.String(), rec.Epoch
			hdr := make([]byte, l.Slots[i].HeaderSize)
			if _, err := f.ReadAt(hdr, l.Slots[i].HeaderOff); err == nil {
				if signed, ok := decodeHeader(hdr); ok {
					if env, err := sign.Parse(signed); err == nil {
						if m, err := protocol.DecodeManifest(env.Payload); err == nil && m.Digest == rec.Digest {
							ss.Component, ss.Version = m.Component, m.Version
						}
					}
				}
			}
		}
		s.Slots = append(s.Slots, ss)
	}
	return s, nil
}

// Hello builds the node's Hello (docs/protocol.md section 4) from its state.
func (d *Device) Hello(nodeID string, labels map[string]string) *protocol.Hello {
	h := &protocol.Hello{NodeID: nodeID, Class: d.id.Class, Labels: labels, AgentVersion: d.id.AgentVersion, Runtime: d.id.Runtime,
		EpochFloor: d.st.EpochFloor, Component: d.id.Component, ActiveSlot: d.st.Active}
	if h.Component == "" {
		h.Component = "unprovisioned"
	}
	if d.deltas {
		h.DeltaFormats = []uint64{delta.Format1}
	}
	other := d.st.Active.Other()
	if run := d.booted.Load(); run != nil {
		h.ActiveSlot, other = run.Slot, run.Slot.Other()
		h.RunningSeq, h.RunningDigest = run.Manifest.Seq, run.Manifest.Digest
		h.ActiveState = protocol.SlotConfirmed
		if run.Trial {
			h.ActiveState = protocol.SlotTrial
		}
	}
	if rec := d.st.Slots[other]; rec.State == slotConfirmed || rec.State == slotTrial || rec.State == slotReady {
		h.Other = &protocol.OtherSlot{Seq: rec.Seq, Digest: rec.Digest, Epoch: rec.Epoch, State: protocol.SlotNone}
		switch rec.State {
		case slotConfirmed:
			h.Other.State = protocol.SlotConfirmed
		case slotTrial:
			h.Other.State = protocol.SlotTrial
		}
	}
	return h
}

// String summarises the state in one line, for logs.
func (d *Device) String() string {
	return fmt.Sprintf("active %s pending %d boots %d floor %d highest seq %d slots [%s %s]",
		d.st.Active, d.st.Pending, d.st.BootCount, d.st.EpochFloor, d.st.HighestSeq, d.st.Slots[0].State, d.st.Slots[1].State)
}
