// Package fleet runs a simulated fleet for hardware-in-the-loop style
// tests: hundreds of virtual nodes, each the real node agent
// (edgeota/nodeagent) on its own simulated NOR flash, behind its own lossy
// radio link (edgeota/firmware-sim/radio), talking CoAP to a real gateway
// (edgeota/gateway) that relays over a real MQTT broker — all in one
// process, with time compressed so that bakes and probations of minutes
// run in seconds.
//
// A scenario (edgeota/firmware-sim/scenario) says what the fleet is, what
// models exist, which deployments are applied when, which faults strike
// when (power cuts at a random flash operation, gateway restarts, broker
// outages, link outages, reboots), and what must hold at the end. All
// randomness comes from one seed, printed and overridable.
//
// Security: with transport dtls the gateway serves CoAP over DTLS only and
// every node has its own pre-shared key, imported into the gateway's
// registry before it starts (gateway.ImportKeys); with provision: ble
// every node starts factory-fresh and technicians provision it over an
// in-memory BLE link (edgeota/firmware-sim/blelink) with go-ble's own ATT
// server and GATT client (nodeagent/provisioning, gateway/provisioner)
// before the deployments apply.
//
// Time: the gateway's rollout clock and every node's clock (probation,
// health reports, inferences) run TimeScale times faster than real time.
// Network timing (CoAP retransmissions, the radio's latency) stays real.
package fleet
