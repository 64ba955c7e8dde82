package protocol

import (
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	eo := cbor.CoreDetEncOptions()
	eo.NilContainers = cbor.NilContainerAsEmpty
	var err error
	if encMode, err = eo.EncMode(); err != nil {
		panic(err)
	}
	do := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		MaxNestedLevels:  MaxDepth,
		MaxArrayElements: MaxEntries,
		MaxMapPairs:      MaxEntries,
		UTF8:             cbor.UTF8RejectInvalid,
	}
	if decMode, err = do.DecMode(); err != nil {
		panic(err)
	}
}

// EncMode returns the contract's CBOR encoding: core deterministic
// (RFC 8949 section 4.2.1), nil maps and slices as empty ones. Documents
// defined beside the contract, such as the provisioning bundle, encode
// with it.
func EncMode() cbor.EncMode { return encMode }

// DecMode returns the contract's strict CBOR decoding: duplicate map keys,
// indefinite lengths, tags and invalid UTF-8 refused, depth at most
// [MaxDepth], arrays and maps at most [MaxEntries] entries.
func DecMode() cbor.DecMode { return decMode }

// Document is implemented by every document of the contract.
type Document interface {
	// Validate checks the rules of the contract that CBOR types cannot
	// express: names, ranges and consistency between fields.
	Validate() error
}

// Marshal validates doc and encodes it in Core Deterministic Encoding.
// doc is a *Manifest, *Hello, *HealthReport, *StatusEvent or *Deployment, or
// a slice of health reports or status events (an MQTT batch, section 6).
func Marshal(doc any) ([]byte, error) {
	switch d := doc.(type) {
	case Document:
		if err := d.Validate(); err != nil {
			return nil, err
		}
	case []HealthReport:
		if len(d) > MaxEntries {
			return nil, fmt.Errorf("%w: batch of %d reports is over %d", ErrInvalid, len(d), MaxEntries)
		}
		for i := range d {
			if err := d[i].Validate(); err != nil {
				return nil, fmt.Errorf("report %d: %w", i, err)
			}
		}
	case []StatusEvent:
		if len(d) > MaxEntries {
			return nil, fmt.Errorf("%w: batch of %d events is over %d", ErrInvalid, len(d), MaxEntries)
		}
		for i := range d {
			if err := d[i].Validate(); err != nil {
				return nil, fmt.Errorf("event %d: %w", i, err)
			}
		}
	default:
		return nil, fmt.Errorf("protocol: cannot marshal %T", doc)
	}
	return encMode.Marshal(doc)
}

// decode runs the shape pass, the typed decoder and then validation.
func decode(b []byte, sch *schema, batch bool, v any) error {
	if err := checkShape(b, sch, batch); err != nil {
		return err
	}
	if err := decMode.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMalformed, sch.doc, err)
	}
	return nil
}

// Diagnose renders b in CBOR diagnostic notation (RFC 8949 section 8), for
// logs, tests and golden files.
func Diagnose(b []byte) (string, error) {
	return diagMode.Diagnose(b)
}

var diagMode, _ = cbor.DiagOptions{ByteStringEncoding: cbor.ByteStringBase16Encoding}.DiagMode()
