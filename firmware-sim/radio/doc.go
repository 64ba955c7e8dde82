// Package radio simulates a lossy radio link between CoAP clients (nodes) and
// a CoAP server (the gateway), both over real UDP sockets.
//
// A [Relay] listens on one UDP address for clients and forwards their
// datagrams to the server, and the server's replies back, through two
// simulated directions: Up, client to server, and Down, server to client.
// Each direction has its own [Link]: loss, latency, jitter, duplication,
// reordering, bandwidth, a queue limit and an optional outage function.
// Tests and the fleet simulator place a relay between a node agent and a
// gateway without changing either: the node is simply told the relay's
// [Relay.Addr] as the gateway's address.
//
// # Clients
//
// Each client, told apart by its source address, gets its own UDP socket
// towards the server the first time it sends, so the server sees one
// distinct endpoint per client and its replies find their way back. The
// sockets live until the relay is closed.
//
// # Links
//
// A direction is one shared medium for all clients: one queue, one
// bandwidth limit, one random stream. For each datagram, in order:
//
//   - If [Link.Outage] reports an outage, it is dropped.
//   - If the queue already holds [Link.Queue] datagrams, it is dropped and
//     counted as an overflow.
//   - With a [Link.Bandwidth], it waits for the previous datagram's
//     transmission to end, then takes its airtime ([Link.Airtime]) to
//     transmit: its bytes in [Link.Frames] frames of at most
//     [Link.FrameMTU] bytes, each with [Link.FrameOverhead] bytes and a
//     [Link.FrameGap], on each of [Link.Hops] hops.
//   - It is lost with probability [Link.LossOf]: [Link.Loss] for the
//     datagram, and [Link.FrameLoss] for each of its frames on each hop
//     (one lost fragment loses the datagram). A lost datagram has taken
//     its airtime all the same.
//   - It is due Hops times [Link.Latency] plus a uniform jitter in
//     [0, Hops*[Link.Jitter]) after its transmission ends, but never
//     before the datagram ahead of it: jitter alone does not reorder.
//   - With probability [Link.Duplicate] it is delivered twice.
//   - With probability [Link.Reorder] it is held back and delivered right
//     after the next datagram, or [Link.ReorderDelay] late if none comes.
//   - When it falls due it is dropped if Outage reports an outage then;
//     otherwise it is written to the receiving side.
//
// Delays are kept by one scheduler goroutine per direction with a
// time-ordered queue and a single timer, so a slow datagram never holds up
// an unrelated one. [Relay.SetLink] changes either link while the relay
// runs, which is how a test starts and ends an outage or degrades a link.
//
// # Profiles and time
//
// [LookupProfile] returns a link for a real radio: [ProfileThread]
// (802.15.4 at 250 kbit/s, 127-byte frames, two hops of 20 to 50 ms),
// [ProfileSubGHz] (50 kbit/s, 200 ms round trip), [ProfileNBIoT] (1 to 2
// s round trip) and [ProfileBLE] (1 Mbit/s); a caller overrides fields
// and sets the loss. What is modelled: serialization of each frame at the
// bit rate with its overhead and gap, a FIFO per direction so that a
// burst takes its airtime, fragmentation with the loss of a datagram when
// any fragment is lost, hops that repeat every frame on one channel,
// per-hop latency and jitter. What is not: link-layer retransmissions
// (FrameLoss is the loss left after them, their airtime is not counted),
// collisions and hidden nodes, spatial reuse along a route, duty-cycle
// limits, a shared channel between the clients of different relays, and
// the compressed IPv6/UDP header (a few bytes per datagram).
//
// A relay's links run on [Config.Clock]: with a scaled clock a 1 s
// latency takes a sixtieth of a second at scale 60, so the endpoints'
// timers must be scaled alike (the fleet simulator scales its nodes'
// CoAP ACK timeout). [DirStats.Frames], [DirStats.AirBytes] and
// [DirStats.Airtime] account for what each direction put on air.
//
// # Determinism
//
// Each direction draws from its own PCG generator (math/rand/v2) seeded
// with [Config.Seed], and draws the same amount for every datagram whatever
// becomes of it. So, for a given seed, the loss, duplication, reordering and
// jitter decisions of the n-th datagram to arrive in a direction are fixed,
// and the two directions do not disturb each other. What is not fixed is
// timing: when datagrams arrive, and so their order when several clients or
// goroutines send at once, and exactly when the scheduler delivers them,
// depend on the Go scheduler and the kernel. Outage and queue-limit drops
// depend on time, so they are only as repeatable as the timing.
//
// # Lifecycle
//
// [New] binds the listening socket, so [Relay.Addr] is known at once.
// [Relay.Run] relays until its context is done or [Relay.Close] is called;
// Close waits for every goroutine the relay started. A relay runs once.
//
// # Counters
//
// [Relay.Stats] counts, per direction, datagrams in, delivered, dropped,
// duplicated and reordered, and bytes. Once the relay is closed, and
// whenever nothing is in flight, In + Duplicated == Delivered + Dropped.
package radio
