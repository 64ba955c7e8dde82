// Package blelink is an in-memory Bluetooth LE link for tests and
// simulations: an implementation of go-ble's connection interface
// ([ble.Conn]) that pairs a central with a peripheral, so that go-ble's own
// ATT server (github.com/go-ble/ble/linux/att) and GATT client
// (github.com/go-ble/ble/linux/gatt) run end to end without a radio.
//
// # Link
//
// [Pipe] returns the two ends of one connection. Each Write on one end is
// one ATT PDU that one Read on the other end returns whole, the way L2CAP
// keeps message boundaries. Closing either end disconnects both:
// Disconnected() is closed on both sides and later reads return [io.EOF].
// Each end keeps its own receive and transmit MTU, 23 bytes until an ATT
// MTU exchange changes them, as on a real link.
//
// # Air
//
// [Air] is a room full of advertising peripherals: peripherals
// [Air.Advertise] their name, services and an accept function; a central
// [Air.Scan]s them and [Air.Dial]s one, getting a *gatt.Client over a fresh
// [Pipe] whose peripheral end is handed to the accept function. Air has the
// Scan and Dial methods of go-ble's Device, so code written against a real
// adapter runs over it.
package blelink
