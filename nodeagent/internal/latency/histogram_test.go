package latency

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestBuckets(t *testing.T) {
	if numBuckets != 385 {
		t.Errorf("numBuckets = %d, want 385", numBuckets)
	}
	// Every value lies in its bucket, the buckets tile 0..MaxTracked without
	// gaps, and each is at most 1/SubBuckets of its values wide.
	prevUpper := uint64(0)
	for i := range numBuckets - 1 {
		lo := uint64(0)
		if i > 0 {
			lo = prevUpper + 1
		}
		hi := upper(i)
		if bucket(lo) != i || bucket(hi) != i {
			t.Fatalf("bucket %d: [%d, %d] maps to %d and %d", i, lo, hi, bucket(lo), bucket(hi))
		}
		if (hi-lo)*SubBuckets > lo {
			t.Fatalf("bucket %d: [%d, %d] spans more than 1/%d of %d", i, lo, hi, SubBuckets, lo)
		}
		prevUpper = hi
	}
	if prevUpper != MaxTracked {
		t.Errorf("last regular bucket ends at %d, want %d", prevUpper, MaxTracked)
	}
	for _, v := range []uint64{MaxTracked + 1, 1 << 40, math.MaxUint64} {
		if bucket(v) != numBuckets-1 {
			t.Errorf("bucket(%d) = %d, want the overflow bucket %d", v, bucket(v), numBuckets-1)
		}
	}
}

// exact returns the nearest-rank q-quantile of sorted.
func exact(sorted []uint64, q float64) uint64 {
	rank := max(int(math.Ceil(q*float64(len(sorted)))), 1)
	return sorted[min(rank, len(sorted))-1]
}

func TestQuantileBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tt := range []struct {
		name string
		draw func() uint64
	}{
		{"uniform small", func() uint64 { return rng.Uint64N(40) }},
		{"log-uniform 1us..100s", func() uint64 { return uint64(math.Exp(rng.Float64() * math.Log(1e8))) }},
		{"log-normal around 8ms", func() uint64 { return uint64(8000 * math.Exp(0.4*rng.NormFloat64())) }},
		{"with overflow", func() uint64 { return MaxTracked - 1000 + rng.Uint64N(3000) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, n := range []int{1, 2, 99, 100, 101, 1000, 10_000} {
				var h Histogram
				vals := make([]uint64, n)
				for i := range vals {
					vals[i] = tt.draw()
					h.Record(vals[i])
				}
				slices.Sort(vals)
				if h.Count() != uint64(n) || h.Max() != vals[n-1] {
					t.Fatalf("n=%d: Count, Max = %d, %d; want %d, %d", n, h.Count(), h.Max(), n, vals[n-1])
				}
				for _, q := range []float64{0, 0.01, 0.5, 0.9, 0.99, 0.999, 1} {
					want, got := exact(vals, q), h.Quantile(q)
					if got < want {
						t.Errorf("n=%d q=%v: %d is below the exact %d", n, q, got, want)
					}
					if float64(got-want) > float64(want)/SubBuckets {
						t.Errorf("n=%d q=%v: %d is over 1/%d above the exact %d", n, q, got, SubBuckets, want)
					}
				}
			}
		})
	}
}

func TestQuantile(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Quantile(0.99) != 0 || h.Max() != 0 || h.Count() != 0 {
		t.Error("empty histogram is not all zeros")
	}
	for range 99 {
		h.Record(1000)
	}
	h.Record(50_000)
	// 1000 is bucket [992, 1023], 50000 is [49152, 51199].
	for _, tt := range []struct {
		q    float64
		want uint64
	}{
		{math.NaN(), 1023}, {-1, 1023}, {0, 1023}, {0.5, 1023}, {0.99, 1023},
		{0.991, 50_000}, {1, 50_000}, {2, 50_000},
	} {
		if got := h.Quantile(tt.q); got != tt.want {
			t.Errorf("Quantile(%v) = %d, want %d", tt.q, got, tt.want)
		}
	}
	h.Reset()
	if h != (Histogram{}) {
		t.Error("Reset left data")
	}
	h.Record(7)
	if got := h.Quantile(0.5); got != 7 {
		t.Errorf("exact small value: Quantile = %d, want 7", got)
	}
}

func TestMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var a, b, all Histogram
	for i := range 5000 {
		v := rng.Uint64N(1_000_000)
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	a.Merge(&b)
	a.Merge(nil)
	if a != all {
		t.Error("merging two halves differs from recording all")
	}
	var empty Histogram
	empty.Merge(&all)
	if empty != all {
		t.Error("merging into an empty histogram differs")
	}
}

func TestRecordAllocs(t *testing.T) {
	var h Histogram
	v := uint64(1)
	if n := testing.AllocsPerRun(1000, func() {
		h.Record(v)
		v = v*7 + 3
	}); n != 0 {
		t.Errorf("Record allocates %v times per run", n)
	}
}

func BenchmarkRecord(b *testing.B) {
	var h Histogram
	v := uint64(1)
	b.ReportAllocs()
	for b.Loop() {
		h.Record(v & (1<<30 - 1))
		v = v*6364136223846793005 + 1442695040888963407
	}
}

func BenchmarkQuantile(b *testing.B) {
	var h Histogram
	rng := rand.New(rand.NewPCG(5, 6))
	for range 100_000 {
		h.Record(uint64(8000 * math.Exp(0.4*rng.NormFloat64())))
	}
	b.ReportAllocs()
	for b.Loop() {
		h.Quantile(0.99)
	}
}
