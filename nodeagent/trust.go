package nodeagent

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"edgeota/protocol"
	"edgeota/protocol/sign"
	"edgeota/protocol/trust"
)

// TrustVersion returns the version of the last trust update the device
// applied, 0 when none.
func (d *Device) TrustVersion() uint64 {
	if d.st.Trust == nil {
		return 0
	}
	return d.st.Trust.Version
}

// Trust returns the manifest keys the device verifies manifests with now.
func (d *Device) Trust() *sign.TrustStore { return d.trust }

// anchor returns what the next trust update is checked against: the
// journal's trust set, or the roots given to OpenDevice.
func (d *Device) anchor() trust.Anchor {
	if t := d.st.Trust; t != nil {
		return trust.Anchor{Version: t.Version, Roots: t.Roots, Threshold: t.Threshold}
	}
	return d.roots
}

// ApplyTrust checks a signed trust update against the device's roots and
// version (trust.Anchor.Check) and, when it passes, makes its manifest
// keys and roots the device's in one journal record: a power cut leaves
// either the old trust set or the new one, whole. From then on manifests,
// the one in each slot header included, verify only under the new manifest
// keys. A refused update changes no key; it is recorded as the last state
// (failed, reason trust) and returned as an [*UpdateError].
func (d *Device) ApplyTrust(signed []byte) (*trust.Update, error) {
	u, kids, err := d.anchor().Check(signed)
	if err != nil {
		return nil, d.refuse(updateErr(protocol.ReasonTrust, "trust update refused: %w", err), protocol.Digest{}, 0)
	}
	manifest, err := trust.Store(sign.RoleManifest, u.ManifestKeys)
	if err != nil {
		return nil, d.refuse(updateErr(protocol.ReasonTrust, "trust update refused: %w", err), protocol.Digest{}, 0)
	}
	text := fmt.Sprintf("trust version %d", u.Version)
	kept := d.keptImages()
	if err := d.commit(func(s *bootState) {
		s.Trust = &trustRec{Version: u.Version, Manifest: u.ManifestKeys, Roots: u.RootKeys, Threshold: u.Threshold, Kept: kept}
		s.LastState, s.LastReason, s.LastText = protocol.StateTrusted, 0, text
	}); err != nil {
		return nil, err
	}
	d.trust = manifest
	d.step(Transition{State: protocol.StateTrusted, Text: text, Actor: signers(kids)})
	return u, nil
}

// keptImages returns the digests of the images in the slots whose
// manifests verify now (under the current keys, or kept already): after
// the update they boot as before, whatever key signed them.
func (d *Device) keptImages() []protocol.Digest {
	var out []protocol.Digest
	for i, rec := range d.st.Slots {
		if rec.State == slotEmpty || rec.State == slotInvalid || rec.State == slotWriting {
			continue
		}
		if m, _, err := d.readManifest(protocol.Slot(i)); err == nil && m.Digest == rec.Digest {
			out = append(out, m.Digest)
		}
	}
	return out
}

// signers names the roots that signed an update, for a status event's key
// 10: their key ids in hex, comma-separated.
func signers(kids []sign.KeyID) string {
	s := make([]string, len(kids))
	for i, k := range kids {
		s[i] = hex.EncodeToString(k[:])
	}
	return strings.Join(s, ",")
}

// IsTrustRefusal reports whether err is a refused trust update.
func IsTrustRefusal(err error) bool {
	var ue *UpdateError
	return errors.As(err, &ue) && ue.Code == protocol.ReasonTrust
}
