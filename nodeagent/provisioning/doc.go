// Package provisioning is the node side of BLE provisioning: the GATT
// service through which a technician's gateway gives a factory-fresh node
// its configuration (docs/provisioning.md).
//
// # Service
//
// [Service] is the state machine; [Service.GATT] builds the go-ble
// service (github.com/go-ble/ble) whose characteristics read the node id,
// device class, component, running model version, agent version and
// committed serial, take a signed bundle ([provision.Bundle]) in numbered
// chunks, commit or abort it, and notify its status. Nothing secret is
// readable: not the PSK, not the factory secret, which never leaves the
// node.
//
// A node never provisioned accepts a bundle signed by any of its factory
// operator keys ([Config.FactoryKeys]); a provisioned node accepts one
// only from the operator keys its committed bundle listed. The bundle must
// name this node and carry a serial above the committed one, and its PSK
// must open with the node's factory secret. A complete, verified bundle is
// only staged: the commit checks it again, saves it through the [Store]
// (atomically: a [FileStore] writes a temporary file, fsyncs it and renames
// it), then makes it current and calls [Config.OnCommit], with which a node
// process restarts its agent under the new configuration. A provisioning
// cut off before commit leaves the old configuration in force.
//
// # Serving
//
// [Service.ServeConn] serves one central over any [ble.Conn] with
// go-ble's own ATT server: the in-memory link of
// edgeota/firmware-sim/blelink in tests and simulations. [Service.Serve]
// advertises on a [Peripheral] adapter and serves each central that
// connects; cmd/edgeota opens a Linux HCI adapter for it. Both put a guard
// in front of the pinned go-ble server, which crashes on an Execute Write
// with nothing prepared and on a short CCCD write.
package provisioning
