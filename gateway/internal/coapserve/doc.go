// Package coapserve answers the gateway's CoAP resources (docs/protocol.md
// section 5), behind the endpoint of package coapd:
//
//   - GET /.well-known/core: one link per cached image (RFC 6690), never
//     per-node links.
//   - GET /m/{digest}: an image, one block per request (RFC 7959), at the
//     block size the node asks; the first block of a transfer is admitted
//     under the transfer bounds and the request rates, its later blocks
//     never refused.
//   - GET /n/{node}/manifest: the node's assigned signed manifest, with
//     Observe (RFC 7641); [Handler.Notify] and [Handler.NotifyDue] send
//     the notifications.
//   - POST /n/{node}/hello, /health and /status: the node's documents,
//     decoded and checked against the path, recorded, told to the
//     rollouts and, with an uplink, forwarded: appended to the durable
//     outbox before the node gets its 2.04. A Hello from a new node
//     when the node registry is full gets 5.03 with Max-Age 60.
//
// Under DTLS a node touches only its own resources. Every path is read by
// protocol.ParsePath. The handler owns no socket and no long-lived
// goroutine (a Hello to be stored is stored on a goroutine of its own, at
// most 256 at once, so that its commit does not hold a worker): what it
// needs comes in through the small interfaces it declares.
package coapserve
