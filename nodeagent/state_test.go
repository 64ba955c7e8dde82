package nodeagent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"edgeota/firmware-sim/flash"
	"edgeota/nodeagent/internal/journal"
	"edgeota/protocol"
	"edgeota/protocol/trust"
)

// recordWith returns the record of s with its key 0 (the format) set to
// format, or left out when format is nil, as an agent before formats wrote.
func recordWith(t *testing.T, s bootState, format any) []byte {
	t.Helper()
	b, err := s.marshal()
	if err != nil {
		t.Fatal(err)
	}
	var m map[int]any
	if err := stateDec.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, 0)
	if format != nil {
		m[0] = format
	}
	if b, err = stateEnc.Marshal(m); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStateFormats: a boot state record without a format (written before
// formats existed) reads as format 1, the same state; one of a newer format
// is refused with ErrFormatTooNew, naming both formats.
func TestStateFormats(t *testing.T) {
	s := bootState{Active: protocol.SlotB, BootCount: 7, HighestSeq: 3, Component: "kws",
		Slots: [2]slotRec{{State: slotConfirmed, Seq: 2, Epoch: 1, Size: 100}, {State: slotConfirmed, Seq: 3, Epoch: 1, Size: 200}}}
	want, _ := s.marshal()
	for _, tc := range []struct {
		name   string
		format any
		err    error
	}{
		{"no format", nil, nil},
		{"format 1", 1, nil},
		{"format 2", 2, nil},
		{"format 3", 3, ErrFormatTooNew},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := unmarshalState(recordWith(t, s, tc.format))
			if !errors.Is(err, tc.err) {
				t.Fatalf("unmarshalState = %v, want %v", err, tc.err)
			}
			if tc.err != nil {
				if !strings.Contains(err.Error(), "format 3, this node agent reads formats up to 2") {
					t.Errorf("%q does not name both formats", err)
				}
				return
			}
			if b, _ := got.marshal(); string(b) != string(want) {
				t.Fatalf("decoded to %+v", got)
			}
		})
	}
}

// TestOpenDeviceRefusesNewerState: a flash whose newest boot state is of a
// newer format is refused by OpenDevice and ReadStatus, and not written.
func TestOpenDeviceRefusesNewerState(t *testing.T) {
	const slotSize = 16 << 10
	f, err := flash.New(FlashSize(slotSize, 4096, DefaultJournalBlocks))
	if err != nil {
		t.Fatal(err)
	}
	l, _ := NewLayout(f, slotSize, DefaultJournalBlocks)
	j, err := journal.Open(f, l.JournalOff, l.JournalBlocks)
	if err != nil {
		t.Fatal(err)
	}
	j.Append(recordWith(t, bootState{BootCount: 1}, nil))
	j.Append(recordWith(t, bootState{BootCount: 2}, 3))
	ops := f.Ops()
	if _, err := OpenDevice(f, nil, Identity{}, WithLayout(slotSize, DefaultJournalBlocks)); !errors.Is(err, ErrFormatTooNew) {
		t.Fatalf("OpenDevice = %v, want ErrFormatTooNew", err)
	}
	if _, err := ReadStatus(f, slotSize, DefaultJournalBlocks); !errors.Is(err, ErrFormatTooNew) {
		t.Fatalf("ReadStatus = %v, want ErrFormatTooNew", err)
	}
	if f.Ops() != ops {
		t.Fatalf("refusing wrote to the flash: %d operations", f.Ops()-ops)
	}
}

// TestStateWithFullTrustSetFits: the largest trust set (four P-256
// manifest keys and four P-256 roots, both slots kept) and the longest
// last reason still make a journal record: the reason gives way.
func TestStateWithFullTrustSetFits(t *testing.T) {
	var keys []trust.Key
	for range 2 * trust.MaxKeys {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		k, err := trust.KeyOf(&priv.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	s := bootState{Component: strings.Repeat("c", protocol.MaxIDLen), LastText: strings.Repeat("r", protocol.MaxReasonLen),
		Slots:      [2]slotRec{{State: slotConfirmed, Seq: 1 << 60, Epoch: 1 << 60, Size: 1 << 60, Written: 1 << 60}, {State: slotTrial, Seq: 1 << 60, Epoch: 1 << 60, Size: 1 << 60, Written: 1 << 60}},
		EpochFloor: 1 << 60, HighestSeq: 1 << 60, BootCount: 1 << 60,
		Trust: &trustRec{Version: 1 << 60, Manifest: keys[:trust.MaxKeys], Roots: keys[trust.MaxKeys:], Threshold: trust.MaxKeys, Kept: []protocol.Digest{{1}, {2}}}}
	b, err := s.marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > journal.MaxPayload {
		t.Fatalf("record of %d bytes, over %d", len(b), journal.MaxPayload)
	}
	got, err := unmarshalState(b)
	if err != nil || len(got.Trust.Roots) != trust.MaxKeys || len(got.LastText) == 0 || len(got.LastText) >= protocol.MaxReasonLen {
		t.Fatalf("decoded %d roots, reason of %d bytes: %v", len(got.Trust.Roots), len(got.LastText), err)
	}
}
