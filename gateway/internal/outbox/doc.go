// Package outbox is the gateway's durable store-and-forward queue for MQTT:
// every health report and status event a node sends over CoAP is appended
// here before the node gets its 2.04, and leaves only when the broker
// acknowledged (QoS 1 PUBACK) the publish that carried it (docs/protocol.md
// section 6).
//
// # Lifecycle
//
// [Open] starts a writer goroutine and [Outbox.Close] stops it; there is no
// Run method. Close refuses new appends and acks, commits everything already
// accepted (so every done callback runs before it returns), and closes the
// file.
//
// # Durability and group commit
//
// The outbox has its own bbolt file, committed with fsync (never NoSync), so
// a kill -9 or a power cut at any moment leaves it at its last commit.
// [Outbox.Append] never blocks: it encodes the item and queues it for the
// writer goroutine, which commits many appends, and any pending acks, in one
// transaction and one fsync, then calls each append's done callback. The
// CoAP side answers the node from done, so a 2.04 always means durable.
//
// Appends that arrive while a commit runs share the next one. Before a
// commit the writer also lingers, for at most Config.CommitInterval after
// the first request arrived, until as many appends wait as the previous
// commit carried: a steady set of concurrent senders is then committed
// together rather than split over two fsyncs, and a lone append waits at
// most the interval. A commit carries at most Config.CommitBatch appends.
//
// # Delivery
//
// Each [Kind] is a queue of its own, in append order, so the order of one
// node's reports (and of its events) is kept. [Outbox.Peek] returns the
// next committed items of a kind that this handle has not handed out yet,
// so the publisher can send the next batch while the previous waits for its
// PUBACK; [Outbox.Ack] deletes the items of a PUBACKed batch, in any order;
// [Outbox.Nack], after a broker disconnect, makes the next Peek start again
// from the oldest item not acked. After a restart every item not acked is
// sent again (QoS 1 allows duplicates; consumers drop them by node id, boot
// count and report or event number, docs/protocol.md section 4).
//
// # Full policy
//
// The queue holds at most Config.MaxItems items and Config.MaxBytes bytes
// (stored size: payload, node id and a 14-byte header), both kinds
// together. When admitting an item would exceed either bound, the commit
// that stores it first deletes the oldest health reports, whether sent and
// waiting for their PUBACK or not yet sent, until the item fits. Dropped
// reports are counted in [Stats].DroppedHealth and reported to
// Config.OnDrop; a report dropped by the very commit that carried it still
// gets done(nil), as it was accepted under this policy. Status events are
// never dropped. If the item would not fit even with every health report
// dropped (status events fill the bounds, or the item alone exceeds
// MaxBytes), Append returns [ErrFull] at once and queues nothing; the CoAP
// side answers 5.03 with Max-Age, and the node sends it again later. Append
// also returns ErrFull when the writer is far behind: more appends wait
// than eight commits carry (or 32 MiB of them).
//
// # Layout
//
// Top-level buckets of schema version 1 (meta/format, the file's schema
// version: [Open] migrates an older file with the steps of package
// edgeota/gateway/internal/schema, each in one transaction, and refuses a
// newer one with [ErrSchemaTooNew], changing nothing):
//
//	meta      format -> 1; the bucket's sequence is the last item
//	          sequence number committed
//	health    sequence (8-byte big-endian) -> item
//	events    sequence (8-byte big-endian) -> item
//
// Sequence numbers are shared by the kinds and increase across restarts.
// An item value is a format byte (1), Added in Unix nanoseconds (8 bytes,
// big-endian), the node id's length (1 byte) and the node id, the payload,
// and a CRC-32C of all that (4 bytes, big-endian). Every value read is
// checked: Open deletes a corrupted item, Peek skips it and the next commit
// deletes it, both logging it and counting it in [Stats].Corrupt. Open
// reads every item once to count them.
package outbox
