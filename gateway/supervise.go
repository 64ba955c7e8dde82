package gateway

// What a supervisor (systemd, a container runtime, a test) learns of a
// running gateway: when it serves, and that it is still working.

// Ready returns a channel closed once [Gateway.Run] serves every service:
// its sockets were bound by [New] already, and Run has started serving
// them. A supervisor that waits for readiness (systemd's READY=1) waits
// on it together with its context; the channel is never closed when Run
// is never called.
func (g *Gateway) Ready() <-chan struct{} { return g.ready }

// HousekeepingRounds returns how many rounds of the gateway's
// housekeeping loop have completed. The loop runs about once a second
// while [Gateway.Run] serves (it ticks the rollouts, flushes node
// activity, ends idle transfers and enforces the cache quota), so a
// count that stands still for several seconds means the gateway is stuck:
// a watchdog (systemd's WATCHDOG=1) is fed only while it advances.
func (g *Gateway) HousekeepingRounds() uint64 { return g.rounds.Load() }
