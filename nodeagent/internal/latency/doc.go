// Package latency is a fixed-memory histogram of inference latencies in
// microseconds, for the node agent's health reports (p50 and p99 over the
// inferences since the last report, docs/protocol.md section 4) and for
// probation (p99 over every inference observed in probation, section 3).
//
// # Buckets
//
// A [Histogram] is log-linear: values below [SubBuckets] have a bucket each,
// and every power of two above is split into SubBuckets equal buckets, up to
// [MaxTracked] (about 134 s). Larger values share the last bucket. A
// bucket's width is at most 1/SubBuckets of any value in it, so a quantile
// is within 1/SubBuckets (6.25%) of the exact one. The histogram is a fixed
// array of 3 KiB; [Histogram.Record] never allocates.
//
// # Conservative quantiles
//
// [Histogram.Quantile] returns the upper bound of the bucket that holds the
// quantile, clamped to the largest value recorded: never below the exact
// nearest-rank quantile, and at most 6.25% above it. A reported p99 is thus
// never better than the truth, and a latency bound is never passed by
// rounding down; the price is that a p99 up to 6.25% under a bound can be
// reported over it.
package latency
