package latency

import (
	"math"
	"math/bits"
)

// SubBuckets is the number of buckets per power of two, the inverse of the
// histogram's worst relative error.
const SubBuckets = 16

// subBits is log2(SubBuckets).
const subBits = 4

// maxBits is the bit length of the largest tracked value.
const maxBits = 27

// MaxTracked is the largest value, in microseconds, the log-linear buckets
// hold: 2^27-1 µs, about 134 s. Larger values share one overflow bucket,
// and a quantile that falls in it is reported as [Histogram.Max].
const MaxTracked = 1<<maxBits - 1

// numBuckets covers 0 to SubBuckets-1 one by one, then SubBuckets buckets
// for each power of two from 2^subBits to 2^(maxBits-1), then the overflow
// bucket.
const numBuckets = SubBuckets + (maxBits-subBits)*SubBuckets + 1

// Histogram counts latencies in microseconds in log-linear buckets. Its zero
// value is empty and ready to use. It is not safe for concurrent use.
type Histogram struct {
	counts [numBuckets]uint64
	count  uint64
	max    uint64
}

// bucket returns the index of the bucket holding us.
func bucket(us uint64) int {
	if us > MaxTracked {
		return numBuckets - 1
	}
	if us < SubBuckets {
		return int(us)
	}
	shift := bits.Len64(us) - 1 - subBits // the power of two above SubBuckets
	return shift*SubBuckets + int(us>>shift)
}

// upper returns the largest value bucket i holds; the last bucket holds
// every value over MaxTracked.
func upper(i int) uint64 {
	if i == numBuckets-1 {
		return math.MaxUint64
	}
	if i < SubBuckets {
		return uint64(i)
	}
	shift := (i - SubBuckets) / SubBuckets
	mantissa := uint64(SubBuckets + (i-SubBuckets)%SubBuckets)
	return (mantissa+1)<<shift - 1
}

// Record counts one latency of us microseconds.
func (h *Histogram) Record(us uint64) {
	h.counts[bucket(us)]++
	h.count++
	h.max = max(h.max, us)
}

// Count returns how many latencies were recorded.
func (h *Histogram) Count() uint64 { return h.count }

// Max returns the largest latency recorded, exactly, or 0 when empty.
func (h *Histogram) Max() uint64 { return h.max }

// Quantile returns the q-quantile in microseconds, 0 when the histogram is
// empty. It is the nearest-rank quantile (the ceil(q*Count())-th smallest
// latency, at least the first) rounded up to its bucket's upper bound and
// clamped to Max: never below the exact quantile and at most 1/SubBuckets
// above it. Quantile(1) is Max; q at or below 0, or NaN, means the
// smallest latency's bucket.
func (h *Histogram) Quantile(q float64) uint64 {
	if h.count == 0 {
		return 0
	}
	rank := uint64(1)
	switch {
	case q >= 1:
		return h.max
	case q > 0:
		rank = max(uint64(math.Ceil(q*float64(h.count))), 1)
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(upper(i), h.max)
		}
	}
	return h.max // not reached: the counts sum to count
}

// Reset empties the histogram.
func (h *Histogram) Reset() { *h = Histogram{} }

// Merge adds every latency other recorded to h. A nil other adds nothing.
func (h *Histogram) Merge(other *Histogram) {
	if other == nil {
		return
	}
	for i, c := range other.counts {
		h.counts[i] += c
	}
	h.count += other.count
	h.max = max(h.max, other.max)
}
