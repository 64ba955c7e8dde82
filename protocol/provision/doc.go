// Package provision is the provisioning contract of edgeota: the bundle an
// operator signs to give a factory-fresh node its place in the fleet, and
// the wire format of the BLE GATT service that carries it (docs/provisioning.md).
//
// Like package protocol it is pure: types, CBOR codecs, limits, key
// derivation and sealing, no sockets, clocks or files.
//
// # The bundle
//
// A [Bundle] (content type "application/edgeota-provisioning+cbor",
// docs/protocol.md section 1) binds a node id to its labels, its component, the
// CoAP URI of its gateway, the manifest keys it will trust, the operator
// keys it will accept its next bundle from, and its DTLS pre-shared key.
// The key is sealed ([Seal], [Open]) under the node's factory secret: AES-256-GCM
// with a key derived by HKDF-SHA256, the node id and serial bound as
// additional data. The factory secret is known to the operator out of band
// and never crosses the radio. [Sign] wraps the bundle in a COSE_Sign1 with
// an operator key; [Verify] checks it against a [sign.RoleOperator] trust
// store and decodes it strictly ([Decode]).
//
// The serial is strictly increasing per node: a node refuses a bundle whose
// serial is at or below the last one it committed (replay protection).
//
// # The GATT wire format
//
// BLE writes are short (at most MTU-3 bytes, 20 at the default MTU) and the
// pinned go-ble has no long writes, so a signed bundle travels as numbered
// chunks ([AppendChunk], [ParseChunk], [Split]); the node answers through a
// status characteristic whose every value fits one notification
// ([Status], [ParseStatus]).
package provision
