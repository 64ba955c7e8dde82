// Package store is the edge gateway's persistent state in one bbolt file:
// the cache of verified signed models, the registry of nodes and the
// manifest assigned to each node.
//
// Every change is one bbolt transaction committed with fsync (the store
// never sets NoSync), so a kill -9 or a power cut at any moment leaves the
// file at the last committed change. Values bbolt hands out point into its
// mmap and are only valid inside their transaction: everything this package
// returns is copied out first.
//
// # Layout
//
// Top-level buckets of schema version 2 (meta/format):
//
//	meta          format -> 1; standing -> assignment record of the standing
//	              rule; deployment-seq -> highest deployment seq applied
//	models        digest (32 bytes) -> model record
//	images        digest -> bucket: chunk index (8-byte big-endian) -> chunk bytes
//	staging       random id -> bucket: digest -> bucket of chunks, while a put runs
//	nodes         node id -> node record; the bucket's sequence is the
//	              number of records (the registry's size, [WithMaxNodes])
//	assignments   node id -> assignment record
//	deltas        base digest || target digest (64 bytes) -> delta record
//	deltablobs    delta digest -> bucket: chunk index -> chunk bytes, as images
//	rollouts      deployment id -> bucket of the rollout engine's records
//	              for that rollout (created with the first rollout; the
//	              engine chooses the keys, [DB.CommitRollouts] writes them
//	              with the assignments they decided, in one transaction)
//
// The buckets psks, observers and audit, created when first written, hold
// the nodes' DTLS keys, the manifest observations and the provisioning
// audit (their files say how).
//
// The buckets deltas and deltablobs (delta updates, docs/protocol.md
// "Delta updates (v1.4)") came without a new schema version: a release
// that does not know them ignores them, and [Open] deletes the deltas
// whose images such a release evicted. A delta goes with its base or
// target image, in the transaction that deletes the image.
//
// Schema version 1 kept a rollout as one value, rollouts/<id>; the
// migration to version 2 moves it to rollouts/<id>/legacy, which the
// rollout engine reads and writes again as records.
//
// The freelist is not written by commits (bbolt's NoFreelistSync): a
// commit writes only the pages it changed, and [Open] rebuilds the
// freelist by walking the file.
//
// Records are a format byte (1) followed by CBOR (Core Deterministic
// Encoding, integer keys). An image bucket's sequence (bbolt
// [go.etcd.io/bbolt.Bucket.Sequence]) is the image size in bytes; every
// chunk but the last holds exactly the chunk size of the put that wrote it,
// so [DB.ReadAt] learns the chunk size from chunk 0 and reads only the
// chunks that cover the range asked for.
//
// # Schema version
//
// meta/format is the file's schema version ([SchemaVersion] is the one
// this build writes). [Open] brings an older file up to it with the
// migration steps of package edgeota/gateway/internal/schema, each in one
// transaction together with the version it reaches, so a step that fails
// or is cut by a crash leaves the file as the older release wrote it; a
// file of a newer version is refused with [ErrSchemaTooNew] and not
// changed. [Copy] copies a file, of any version, without opening it for
// writing.
//
// # Putting a model
//
// [DB.PutModel] verifies the signed manifest before anything is written.
// It then streams the image into staging/<random id>/<digest>, a few MiB per
// transaction, hashing as it goes and refusing as soon as the stream is
// longer than the manifest says. When the digest and size match, one final
// transaction moves the staged bucket to images/<digest> with
// [go.etcd.io/bbolt.Bucket.MoveBucket] (a pointer move, no copy of the
// chunks) and writes the model record; a model is therefore visible
// entirely or not at all. A failed put deletes its staging bucket; a put
// cut by a crash leaves one that [Open] deletes.
//
// # Assignments
//
// An assignment is the signed manifest a node should run now ([DB.Assign]).
// A standing rule ([DB.SetStandingRule]) assigns one manifest to every node
// of its class and component, including nodes that say Hello later. An
// image assigned to a node or named by the standing rule is never evicted
// or deleted.
package store
