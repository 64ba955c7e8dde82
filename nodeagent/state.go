package nodeagent

import (
	"fmt"

	"github.com/fxamacker/cbor/v2"

	"edgeota/nodeagent/internal/journal"
	"edgeota/protocol"
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
}

// stateFormat is the format of the boot state record this agent writes
// (key 0), and the newest it reads. Records written before the key existed
// have none and are format 1. A change an older agent would misread (a key
// it would ignore while acting on the others) raises it.
const stateFormat = 1

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
	MaxNestedLevels:  4,
	MaxArrayElements: 16,
	MaxMapPairs:      32,
}.DecMode()

func (s *bootState) marshal() ([]byte, error) {
	s.Format = stateFormat
	return stateEnc.Marshal(s)
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
	s.Format = stateFormat
	if s.Active > protocol.SlotB || s.Pending > 2 {
		return s, fmt.Errorf("boot state record: active %d pending %d out of range", s.Active, s.Pending)
	}
	return s, nil
}
