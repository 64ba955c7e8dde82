package protocol

import (
	"fmt"
)

// DeltaOfferLabel is the COSE unprotected-header label (RFC 9052 section
// 3.1, private-use range) under which a gateway attaches a [DeltaOffer] to
// the signed manifest it answers a node (docs/protocol.md "Delta updates
// (v1.4)"). The unprotected header is not signed: an offer is a hint, and
// the node verifies what it rebuilds against the signed manifest.
const DeltaOfferLabel int64 = -65537

// MaxDeltaFormats is the most delta formats a Hello lists (Hello key 65).
const MaxDeltaFormats = 8

// DeltaOffer tells a node that the image its manifest names can be rebuilt
// from the image it runs with a delta the gateway serves at
// [DeltaPath](Delta) (docs/protocol.md "Delta updates (v1.4)"). Every key
// is required.
type DeltaOffer struct {
	// Format is key 1: the delta format, one the node listed in its Hello
	// (key 65).
	Format uint64 `cbor:"1,keyasint"`
	// Base is key 2: the digest of the image the delta applies to, the
	// node's running digest (Hello key 5).
	Base Digest `cbor:"2,keyasint"`
	// Delta is key 3: the SHA-256 of the delta's bytes, which names its
	// resource and its ETag.
	Delta Digest `cbor:"3,keyasint"`
	// Size is key 4: the delta's size in bytes.
	Size uint64 `cbor:"4,keyasint"`
}

// deltaOfferWire encodes a DeltaOffer without its MarshalCBOR method.
type deltaOfferWire DeltaOffer

var deltaOfferSchema = newSchema("delta offer", map[uint8]*field{
	1: req("format", majUint),
	2: reqBytes("base digest", 32),
	3: reqBytes("delta digest", 32),
	4: req("delta size", majUint),
})

// DecodeDeltaOffer decodes and validates a delta offer, the raw value of
// the unprotected label [DeltaOfferLabel], with the strict rules of
// docs/protocol.md section 2.
func DecodeDeltaOffer(b []byte) (*DeltaOffer, error) {
	var w deltaOfferWire
	if err := decode(b, deltaOfferSchema, false, &w); err != nil {
		return nil, err
	}
	o := DeltaOffer(w)
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return &o, nil
}

// MarshalCBOR validates the offer and encodes it in Core Deterministic
// Encoding.
func (o DeltaOffer) MarshalCBOR() ([]byte, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return encMode.Marshal(deltaOfferWire(o))
}

// Validate checks the rules of "Delta updates (v1.4)": a format from 1 to
// 255, digests that are set and differ, a size above 0.
func (o *DeltaOffer) Validate() error {
	if o.Format < 1 || o.Format > 255 {
		return fmt.Errorf("%w: delta offer format %d, want 1 to 255", ErrInvalid, o.Format)
	}
	if o.Base.IsZero() || o.Delta.IsZero() {
		return fmt.Errorf("%w: delta offer base and delta digests must be set", ErrInvalid)
	}
	if o.Base == o.Delta {
		return fmt.Errorf("%w: delta offer base and delta digests are equal", ErrInvalid)
	}
	if o.Size == 0 {
		return fmt.Errorf("%w: delta offer size is 0", ErrInvalid)
	}
	return nil
}
