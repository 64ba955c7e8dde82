// Package protocol holds the edgeota wire contract (docs/protocol.md, version 1):
// the names of section 0, the CBOR rules of section 2, the Manifest of
// section 3 with its anti-rollback rules, the node documents of section 4 and
// the Deployment of section 7.
//
// The package is pure: no sockets, goroutines, clocks or files. Signing and
// verification live in [edgeota/protocol/sign], the cohort expression language
// in [edgeota/protocol/cohort] and wave bucketing in [edgeota/protocol/wave].
//
// # Encoding
//
// [Marshal] encodes any document in Core Deterministic Encoding (RFC 8949
// section 4.2.1): shortest forms, sorted integer keys, definite lengths, and
// every required key present even when its value is zero.
//
// # Decoding
//
// The Decode functions ([DecodeManifest], [DecodeHello], [DecodeHealthReport],
// [DecodeStatusEvent], [DecodeDeployment] and the batch decoders) are strict
// and bounded as section 2 demands. Before any value is built, a schema pass
// checks the shape of the input: definite lengths, nesting at most 8,
// arrays and maps of at most 1024 entries, strings of at most 64 KiB, integer
// map keys, every required key present, the CBOR major type and fixed length
// of every known key, and no unknown key below 64 (keys 1-63 are critical;
// keys 64 and up are optional and ignored when unknown). The values are then
// decoded by github.com/fxamacker/cbor/v2 with duplicate keys, indefinite
// lengths and tags forbidden, and finally checked against the rules of the
// contract (names, ranges). Every failure wraps [ErrMalformed] or
// [ErrInvalid]; no input makes a decoder panic.
package protocol
