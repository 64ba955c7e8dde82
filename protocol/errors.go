package protocol

import "errors"

// Sentinel errors. Every decoding or validation failure wraps exactly one of
// them, so callers can tell bad bytes from a well-formed document that breaks
// a rule of the contract.
var (
	// ErrMalformed means the input is not a document of the expected kind:
	// not well-formed CBOR, over a bound of section 2, a wrong type, a
	// duplicate or unknown critical key, a missing required key.
	ErrMalformed = errors.New("malformed")
	// ErrInvalid means the document decodes but breaks a rule of the
	// contract: a bad name, a value out of range, inconsistent fields.
	ErrInvalid = errors.New("invalid")
)
