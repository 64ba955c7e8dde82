// Package coapd is the gateway's CoAP endpoint over UDP (RFC 7252): a
// datagram loop that uses go-coap's message codec and nothing of its
// connection layer.
//
// go-coap's UDP server keeps every response it sends, marshalled, in a
// per-connection cache for EXCHANGE_LIFETIME (247 s) and walks that cache
// on every incoming datagram (go-coap issue #586): a block-wise transfer of
// n blocks costs O(n²) CPU and holds about 1.7 times the bytes served in
// memory, and the server offers no option to replace or bound the cache.
// This package serves every block statelessly instead, so a block costs
// O(1) in CPU and memory whatever the image size and history:
//
//   - Requests are decoded with go-coap's udp/coder into message.Message
//     and dispatched to a [Handler] on the worker that read them; a
//     response to a confirmable request is piggybacked on its ACK, a
//     non-confirmable request gets a non-confirmable response.
//   - Duplicate detection (RFC 7252 section 4.5) is done here, bounded and
//     O(1): a retransmitted non-idempotent request (POST, PUT, DELETE) from
//     the same endpoint and message id gets the stored response again and
//     is not handed to the handler twice. GET is idempotent and is simply
//     served again, which is what RFC 7252 allows; nothing of a block is
//     kept after it is sent.
//   - Notifications ([Server.Notify]) are non-confirmable by default; a
//     confirmable one is retransmitted with exponential back-off on timers
//     and never blocks a worker, so one silent observer cannot stall the
//     others. A Reset to a notification, or a confirmable one that is never
//     acknowledged, calls the observer's failure function.
//   - Critical options the endpoint does not know get 4.02 Bad Option, a
//     malformed confirmable message a Reset, and datagrams over the size
//     limit 4.13; nothing malformed reaches a handler.
//
// One goroutine, the reader, always reads the socket; when the traffic is
// light it waits for the next datagram in the kernel on its own thread
// (the fast wait), so that a lone lock-step transfer costs two system
// calls per block and no goroutine hand-off. A backlog of datagrams wakes
// helpers (GOMAXPROCS workers in all) that read in batches through Go's
// network poller until the load has passed (reader.go). The socket's
// receive buffer is raised (4 MiB by default) so that hundreds of
// concurrent transfers do not lose datagrams to a full buffer.
package coapd
