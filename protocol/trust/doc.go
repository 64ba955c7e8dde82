// Package trust is the trust update of edgeota (contract v1.3,
// docs/protocol.md "Trust update"): a document signed by root keys that
// replaces, on nodes and gateways, the sets of keys they trust for
// manifests and deployments, and the root keys themselves.
//
// Like package protocol it is pure: types, the CBOR codec and the checks,
// no sockets, clocks or files.
//
// # The document
//
// An [Update] (content type "application/edgeota-trust+cbor") carries a
// version that only grows, the full new set of manifest keys, of
// deployment keys and of root keys, and the threshold: how many of those
// roots must sign the next update. Every key says its algorithm ([Key]):
// a key and its algorithm travel together, so an envelope's algorithm can
// never be switched against a trusted key.
//
// # Signatures
//
// A signed update is one tagged COSE_Sign1 by a root key, or, for a
// threshold of roots (k of n), a CBOR array of COSE_Sign1 envelopes over the
// same payload bytes, one per root ([Sign]). Every envelope is checked by
// the same verifier as every other edgeota document (package sign, role
// [sign.RoleRoot]).
//
// # Checking
//
// An [Anchor] is what a holder of trust checks an update against: its
// current version, its roots and their threshold. [Anchor.Check] accepts
// an update only when every envelope verifies under a current root, at
// least the threshold of distinct roots signed, the payload decodes
// strictly and follows the rules of [Update.Validate], and its version is
// above the anchor's. Each refusal wraps one sentinel ([ErrNoRoot],
// [ErrThreshold], [ErrVersion], package sign's envelope errors,
// protocol.ErrMalformed, protocol.ErrInvalid) so that callers can say why,
// and the caller changes nothing.
package trust
