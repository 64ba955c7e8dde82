// Package gwlink is a node's CoAP link to its gateway (docs/protocol.md sections
// 4 and 5): it posts the node's documents, follows the manifest the gateway
// assigns to the node, and reads images block by block.
//
// A [Client] satisfies the node agent's Reporter (Hello, Status, Health) and
// an [Image] satisfies its ImageSource, so the agent never sees CoAP.
//
// # Transport
//
// [Dial] opens a go-coap UDP connection with go-coap's block-wise client
// turned off: that client does not retransmit the requests for blocks 1..n,
// so one lost datagram stalls a transfer. Every request this package sends is
// an ordinary confirmable request, retransmitted by go-coap (RFC 7252 section
// 4.2) until the request timeout ([WithRequestTimeout]); a request that still
// gets no answer is sent again, as a new exchange, after an exponential
// backoff ([WithBackoff]). go-coap drives retransmissions from a periodic
// timer; the client ticks it at a quarter of the ACK timeout so that the
// first retransmission comes after ACK_TIMEOUT, not after go-coap's default
// 4 s tick. The clients of one process that tick at the same period share one
// timer and goroutine for it (a simulator runs thousands of nodes in one
// process).
//
// A connection that go-coap closes (the gateway's port answered with ICMP
// port unreachable, for example while it restarts) is dialled again on the
// next request. After 60000 requests a connection is replaced too: a new
// source port gives a fresh message-id space, so a message id is never
// reused within a server's EXCHANGE_LIFETIME (247 s) during a long fast
// download.
//
// # Answers
//
//   - 2.xx: success.
//   - 5.03 Service Unavailable: wait Max-Age (60 s when absent, capped by
//     [WithMaxWait]) and ask again, until the context ends.
//   - 4.xx: a [*StatusError], never retried; errors.Is(err, [ErrRefused])
//     holds. An image's 4.04 is [ErrNotCached] instead.
//   - Other 5.xx and transport failures: retried with backoff. Posts and
//     [Client.Manifest] give up after [WithMaxElapsed] of consecutive
//     failures with an error wrapping [ErrUnreachable]; [Image.ReadAt] and
//     [Client.Watch] go on until their context ends.
//
// # Images
//
// [Image.ReadAt] fetches the blocks covering the range it is asked for. By
// default it asks with RFC 9177 Q-Block2 and takes the gateway's bursts of
// non-confirmable blocks into a bounded window (qblock.go: timers, limits,
// recovery; [WithQBlock], [WithQBlockParams]); against a gateway without
// Q-Block2 (4.02, a Block2 answer, or silence) it reads lock-step for the
// rest of the connection: each block its own stateless GET carrying Block2
// (num, size). Either way it can start or resume at any offset. Every
// block's ETag must be the first 8 bytes of the image digest
// ([ErrImageChanged] otherwise). When the gateway answers with smaller
// blocks than asked, the image goes on at the gateway's size.
//
// # Manifest
//
// [Client.Watch] registers an observation (RFC 7641) of
// /n/{node}/manifest and calls back with every representation whose ETag
// differs from the last one delivered. It registers again when the
// observation ends, when no notification came for Max-Age plus a margin,
// when the connection was replaced, and when the link comes back after a
// failed keepalive ping or poll; a conditional GET every poll interval
// ([WithPollInterval]) catches what the observation missed. A gateway that
// answers 4.04 (it does not know the node, for example after losing its
// state) is sent the last Hello again.
package gwlink
