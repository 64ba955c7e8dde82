package protocol

import (
	"fmt"
	"strings"
)

// Content types of signed documents (docs/protocol.md section 1), carried in the
// protected header (label 3) of their COSE_Sign1 envelope.
const (
	ContentTypeManifest     = "application/edgeota-manifest+cbor"
	ContentTypeDeployment   = "application/edgeota-deployment+cbor"
	ContentTypeProvisioning = "application/edgeota-provisioning+cbor"
	// ContentTypeTrust is the trust update (v1.3, docs/protocol.md
	// section 1 and "Trust update"), signed by root keys.
	ContentTypeTrust = "application/edgeota-trust+cbor"
)

// ManifestFormat is the only manifest format of contract version 1.
const ManifestFormat = 1

// Manifest describes one signed model image (docs/protocol.md section 3).
type Manifest struct {
	// Format is key 1; always [ManifestFormat].
	Format uint64 `cbor:"1,keyasint"`
	// Seq is key 2: strictly increasing per component at the signer.
	Seq uint64 `cbor:"2,keyasint"`
	// Component is key 3: what the image is, e.g. "kws-model".
	Component string `cbor:"3,keyasint"`
	// Version is key 4: a human label such as "1.4.0".
	Version string `cbor:"4,keyasint"`
	// Digest is key 5: SHA-256 of the image.
	Digest Digest `cbor:"5,keyasint"`
	// Size is key 6: image size in bytes.
	Size uint64 `cbor:"6,keyasint"`
	// Class is key 7: the device class UUID; nodes refuse other classes.
	Class Class `cbor:"7,keyasint"`
	// Epoch is key 8: the security epoch, the anti-rollback floor.
	Epoch uint64 `cbor:"8,keyasint"`
	// Location is key 9, optional: the CoAP path of the image; empty means
	// the default "/m/<hex digest>" (see [Manifest.ImagePath]).
	Location string `cbor:"9,keyasint,omitempty"`
	// Probation is key 10, optional: the post-activation policy.
	Probation *Probation `cbor:"10,keyasint,omitempty"`
	// Issued is key 11, optional: Unix seconds.
	Issued uint64 `cbor:"11,keyasint,omitempty"`
	// Requires is key 12, optional: what a node must run to accept it.
	Requires *Requires `cbor:"12,keyasint,omitempty"`
}

// OnShortfall says what a node does when probation's minimum inferences are
// not reached within 4 times its seconds (probation key 7).
type OnShortfall uint64

// Shortfall policies.
const (
	ShortfallRevert  OnShortfall = 0 // the default
	ShortfallConfirm OnShortfall = 1
)

// String returns "revert" or "confirm".
func (o OnShortfall) String() string {
	switch o {
	case ShortfallRevert:
		return "revert"
	case ShortfallConfirm:
		return "confirm"
	}
	return fmt.Sprintf("OnShortfall(%d)", uint64(o))
}

// Probation is the post-activation policy of a manifest (section 3, key 10).
// Probation ends when both Seconds and MinInferences are reached. A nil bound
// is not checked.
type Probation struct {
	// Seconds is key 1.
	Seconds uint64 `cbor:"1,keyasint"`
	// MinInferences is key 2.
	MinInferences uint64 `cbor:"2,keyasint"`
	// MaxErrorPermille is key 3: errors per thousand inferences.
	MaxErrorPermille *uint64 `cbor:"3,keyasint,omitempty"`
	// MaxP99Micros is key 4: p99 inference latency in microseconds.
	MaxP99Micros *uint64 `cbor:"4,keyasint,omitempty"`
	// MaxRAMBytes is key 5.
	MaxRAMBytes *uint64 `cbor:"5,keyasint,omitempty"`
	// MaxCPUPermille is key 6: per-mille of one core.
	MaxCPUPermille *uint64 `cbor:"6,keyasint,omitempty"`
	// OnShortfall is key 7.
	OnShortfall OnShortfall `cbor:"7,keyasint,omitempty"`
}

// Requires is what a node must meet to accept a manifest (section 3, key 12).
type Requires struct {
	// MinAgentVersion is key 1: the lowest node agent version, dotted
	// numbers such as "1.2.0".
	MinAgentVersion string `cbor:"1,keyasint,omitempty"`
	// Runtime is key 2: the inference runtime the node must have.
	Runtime string `cbor:"2,keyasint,omitempty"`
}

var probationSchema = newSchema("probation", map[uint8]*field{
	1: req("seconds", majUint),
	2: req("min inferences", majUint),
	3: opt("max error per-mille", majUint),
	4: opt("max p99 us", majUint),
	5: opt("max RAM bytes", majUint),
	6: opt("max CPU per-mille", majUint),
	7: opt("on shortfall", majUint),
})

var requiresSchema = newSchema("requires", map[uint8]*field{
	1: opt("minimum agent version", majText),
	2: opt("runtime", majText),
})

var manifestSchema = newSchema("manifest", map[uint8]*field{
	1:  req("format", majUint),
	2:  req("seq", majUint),
	3:  req("component", majText),
	4:  req("version", majText),
	5:  reqBytes("digest", 32),
	6:  req("size", majUint),
	7:  reqBytes("class", 16),
	8:  req("epoch", majUint),
	9:  opt("location", majText),
	10: {name: "probation", major: majMap, nested: probationSchema},
	11: opt("issued", majUint),
	12: {name: "requires", major: majMap, nested: requiresSchema},
})

// DecodeManifest decodes and validates the CBOR payload of a manifest. It
// does not verify a signature: see package sign.
func DecodeManifest(b []byte) (*Manifest, error) {
	m := new(Manifest)
	if err := decode(b, manifestSchema, false, m); err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// Validate checks the rules of section 3 that CBOR types cannot express.
func (m *Manifest) Validate() error {
	if m.Format != ManifestFormat {
		return fmt.Errorf("%w: manifest format %d, want %d", ErrInvalid, m.Format, ManifestFormat)
	}
	if !ValidID(m.Component) {
		return fmt.Errorf("%w: manifest component %q does not match [A-Za-z0-9._-]{1,64}", ErrInvalid, m.Component)
	}
	if m.Version == "" || len(m.Version) > MaxIDLen {
		return fmt.Errorf("%w: manifest version must be 1 to %d bytes", ErrInvalid, MaxIDLen)
	}
	if m.Size == 0 {
		return fmt.Errorf("%w: manifest size is 0", ErrInvalid)
	}
	if m.Location != "" && !strings.HasPrefix(m.Location, "/") {
		return fmt.Errorf("%w: manifest location %q is not an absolute CoAP path", ErrInvalid, m.Location)
	}
	if p := m.Probation; p != nil {
		if p.OnShortfall > ShortfallConfirm {
			return fmt.Errorf("%w: probation on-shortfall %d, want 0 (revert) or 1 (confirm)", ErrInvalid, p.OnShortfall)
		}
		if p.MaxErrorPermille != nil && *p.MaxErrorPermille > 1000 {
			return fmt.Errorf("%w: probation max error per-mille %d is over 1000", ErrInvalid, *p.MaxErrorPermille)
		}
	}
	if r := m.Requires; r != nil && r.MinAgentVersion != "" {
		if _, err := parseVersion(r.MinAgentVersion); err != nil {
			return fmt.Errorf("%w: requires minimum agent version: %v", ErrInvalid, err)
		}
	}
	return nil
}

// ImagePath returns the CoAP path of the image: Location, or the default
// "/m/<hex digest>".
func (m *Manifest) ImagePath() string {
	if m.Location != "" {
		return m.Location
	}
	return ImagePath(m.Digest)
}
