package nodeagent

import (
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"

	"edgeota/nodeagent/internal/journal"
	"edgeota/protocol"
	"edgeota/protocol/trust"
)

// slotState is the journal's view of a slot.
type slotState uint8

const (
	slotEmpty     slotState = iota // nothing usable
	slotWriting                    // image being written; Written bytes are durable
	slotReady                      // image written and verified, not activated
	slotTrial                      // activated, on trial (the pending slot)
	slotConfirmed                  // confirmed; runnable
	slotInvalid                    // failed, reverted or below the epoch floor: never runs
)

var slotStateNames = [...]string{"empty", "writing", "ready", "trial", "confirmed", "invalid"}

func (s slotState) String() string {
	if int(s) < len(slotStateNames) {
		return slotStateNames[s]
	}
	return fmt.Sprintf("slotState(%d)", uint8(s))
}

// slotRec is what the journal records about a slot.
type slotRec struct {
	State   slotState       `cbor:"1,keyasint"`
	Seq     uint64          `cbor:"2,keyasint"`
	Digest  protocol.Digest `cbor:"3,keyasint"`
	Epoch   uint64          `cbor:"4,keyasint"`
	Size    uint64          `cbor:"5,keyasint"`
	Written uint64          `cbor:"6,keyasint"` // while writing: durable bytes
	// Fetched is the bytes fetched from the gateway for this image so
	// far (deltas and images), for the status events' transfer (key 64).
	Fetched uint64 `cbor:"7,keyasint,omitempty"`
	// Delta, while writing, is the delta the image is being rebuilt from
	// and where its apply resumes; nil for a full download. The Written
	// bytes are the image's bytes either way, so an agent that does not
	// know the key resumes them as a full download.
	Delta *deltaRec `cbor:"8,keyasint,omitempty"`
}

// deltaRec is a delta apply in progress: the delta's digest and the
// patcher's checkpoint it resumes from (a chunk boundary of the delta,
// docs/deltas.md): Patch bytes of the delta consumed when Out bytes of
// the image were emitted, Out at most the slot's Written.
type deltaRec struct {
	Digest protocol.Digest `cbor:"1,keyasint"`
	Patch  uint64          `cbor:"2,keyasint"`
	Out    uint64          `cbor:"3,keyasint"`
}

// stateFormat is the newest format of the boot state record (key 0) this
// agent writes and reads. Records written before the key existed have none
// and are format 1. A change an older agent would misread (a key it would
// ignore while acting on the others) raises it: format 2 adds the trust
// set (key 12), which an agent of format 1 would ignore while verifying
// manifests with the keys it was started with. A record without a trust
// set is still written as format 1, so that a node that never took a trust
// update can go back to an older agent.
const stateFormat = 2

// ErrFormatTooNew is wrapped by [OpenDevice], [New] and [ReadStatus] when
// the flash holds a boot state, or a journal framing, newer than this node
// agent reads: a newer agent wrote it. Nothing was written to the flash.
var ErrFormatTooNew = journal.ErrFormatTooNew

// bootState is the whole boot state of a node. It lives only on flash, as
// the newest record of the journal; every change is written there before it
// takes effect.
type bootState struct {
	Format     uint64          `cbor:"0,keyasint"` // stateFormat; 0 in records before it, which are format 1
	Active     protocol.Slot   `cbor:"1,keyasint"` // slot that runs when no trial is pending
	Pending    uint8           `cbor:"2,keyasint"` // 0 none, 1 slot A, 2 slot B: boots on trial
	TrialBoots uint8           `cbor:"3,keyasint"` // boots of the pending slot so far
	Slots      [2]slotRec      `cbor:"4,keyasint"`
	EpochFloor uint64          `cbor:"5,keyasint"`
	HighestSeq uint64          `cbor:"6,keyasint"`
	BootCount  uint64          `cbor:"7,keyasint"`
	LastState  protocol.State  `cbor:"8,keyasint"`
	LastReason protocol.Reason `cbor:"9,keyasint"`
	LastText   string          `cbor:"10,keyasint"`
	Component  string          `cbor:"11,keyasint"`
	Trust      *trustRec       `cbor:"12,keyasint,omitempty"` // format 2: the trust set of the last trust update applied
}

// trustRec is the trust set a trust update gave the node (package
// protocol/trust): it replaces the manifest keys and roots the node was
// started with. Deployment keys are the gateway's and are not kept.
type trustRec struct {
	Version   uint64      `cbor:"1,keyasint"`
	Manifest  []trust.Key `cbor:"2,keyasint"`
	Roots     []trust.Key `cbor:"3,keyasint"`
	Threshold uint64      `cbor:"4,keyasint"`
	// Kept are the digests of the images in the slots when the update
	// was applied (and of those kept before, still there): they keep
	// booting under the manifest they were installed with, whatever key
	// signed it.
	Kept []protocol.Digest `cbor:"5,keyasint,omitempty"`
}

// pendingSlot returns the slot on trial, if any.
func (s *bootState) pendingSlot() (protocol.Slot, bool) {
	if s.Pending == 0 {
		return 0, false
	}
	return protocol.Slot(s.Pending - 1), true
}

var stateEnc, _ = cbor.CoreDetEncOptions().EncMode()

var stateDec, _ = cbor.DecOptions{
	DupMapKey:        cbor.DupMapKeyEnforcedAPF,
	IndefLength:      cbor.IndefLengthForbidden,
	TagsMd:           cbor.TagsForbidden,
	MaxNestedLevels:  5,
	MaxArrayElements: 16,
	MaxMapPairs:      32,
}.DecMode()

func (s *bootState) marshal() ([]byte, error) {
	s.Format = 1
	if s.Trust != nil {
		s.Format = 2
	}
	b, err := stateEnc.Marshal(s)
	if err != nil || len(b) <= journal.MaxPayload || len(s.LastText) == 0 {
		return b, err
	}
	// A full trust set and a long last reason can pass a journal record:
	// the reason gives way (the status event carried it whole).
	c := *s
	c.LastText = protocol.Truncate(c.LastText, max(0, len(c.LastText)-(len(b)-journal.MaxPayload)))
	return stateEnc.Marshal(&c)
}

func unmarshalState(b []byte) (bootState, error) {
	var s bootState
	if err := stateDec.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("boot state record: %w", err)
	}
	if s.Format > stateFormat {
		return s, fmt.Errorf("%w: the boot state record has format %d, this node agent reads formats up to %d; "+
			"run the newer node agent (nothing was written)", ErrFormatTooNew, s.Format, stateFormat)
	}
	if t := s.Trust; t != nil {
		if s.Format < 2 {
			return s, fmt.Errorf("boot state record: format %d with a trust set", s.Format)
		}
		if len(t.Manifest) == 0 {
			return s, errors.New("boot state record: a trust set without manifest keys")
		}
		for _, k := range append(append([]trust.Key(nil), t.Manifest...), t.Roots...) {
			if err := k.Validate(); err != nil {
				return s, fmt.Errorf("boot state record: trust set: %w", err)
			}
		}
	}
	if s.Active > protocol.SlotB || s.Pending > 2 {
		return s, fmt.Errorf("boot state record: active %d pending %d out of range", s.Active, s.Pending)
	}
	return s, nil
}
