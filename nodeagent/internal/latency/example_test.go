package latency_test

import (
	"fmt"

	"edgeota/nodeagent/internal/latency"
)

func Example() {
	var h latency.Histogram
	for i := range uint64(100) {
		h.Record(8000 + 100*i) // 8.0 ms to 17.9 ms
	}
	// The exact p50 is 12900 and p99 17800; both are rounded up to their
	// bucket's upper bound, and p99 is clamped to the maximum.
	fmt.Println(h.Count(), h.Quantile(0.5), h.Quantile(0.99), h.Max())
	// Output:
	// 100 13311 17900 17900
}
