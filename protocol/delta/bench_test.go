package delta

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"fmt"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"edgeota/protocol/delta/corpus"
)

// corpusSeed is the seed of the corpus docs/deltas.md describes.
const corpusSeed = 15

// compressors are the alternatives BenchmarkDeltaCorpus compares, each
// applied to the same records cut into the same chunks.
func compressors(tb testing.TB) []struct {
	name string
	fn   func([]byte) ([]byte, error)
} {
	zw, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(4096),
		zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithLowerEncoderMem(true))
	if err != nil {
		tb.Fatal(err)
	}
	return []struct {
		name string
		fn   func([]byte) ([]byte, error)
	}{
		{"lzma", compressLZMA},
		{"zstd", func(b []byte) ([]byte, error) { return zw.EncodeAll(b, nil), nil }},
		{"flate", func(b []byte) ([]byte, error) {
			var buf bytes.Buffer
			w, _ := flate.NewWriter(&buf, flate.BestCompression)
			w.Write(b)
			err := w.Close()
			return buf.Bytes(), err
		}},
		{"none", nil},
	}
}

// patchSizes returns the patch size from base to target with each
// compressor.
func patchSizes(tb testing.TB, base, target []byte) []int {
	ix, err := newIndex(base)
	if err != nil {
		tb.Fatal(err)
	}
	o := options{chunkRaw: DefaultChunkSize, packedMax: DefaultChunkPacked}
	recs := encodeRecords(base, target, matches(ix, target), o.packedMax-30)
	var sizes []int
	for _, c := range compressors(tb) {
		p, err := packChunks(make([]byte, HeaderSize), recs, o, c.fn)
		if err != nil {
			tb.Fatal(err)
		}
		sizes = append(sizes, len(p))
	}
	return sizes
}

// BenchmarkDeltaCorpus measures, for each pair of the corpus
// (docs/deltas.md), the delta's size with format 1 (LZMA) and with the other
// compressors side by side (sizes), the time to compute it (diff), and the
// time and heap to apply it, against the time to write the full image by
// copying and hashing it as a node does with a download (apply); then
// Diff's time and allocation on two 1 MiB images.
func BenchmarkDeltaCorpus(b *testing.B) {
	pairs := corpus.Pairs(corpusSeed)
	head, unrelated := corpus.Large(corpusSeed)
	b.Run("sizes", func(b *testing.B) {
		table := "pair           image B  format1  ratio   zstd B  flate B   none B  image lzma B\n"
		for b.Loop() {
			for _, pr := range pairs {
				sizes := patchSizes(b, pr.Base, pr.Target)
				whole, _ := compressLZMA(pr.Target)
				table += fmt.Sprintf("%-12s %8d %8d %5.1f%% %8d %8d %8d %8d\n", pr.Name, len(pr.Target), sizes[0],
					100*float64(sizes[0])/float64(len(pr.Target)), sizes[1], sizes[2], sizes[3], len(whole))
			}
		}
		b.Log("delta sizes, the same records and chunks under each compressor:\n" + table)
	})
	for _, pr := range pairs {
		patch, err := Diff(pr.Base, pr.Target)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(pr.Name+"/diff", func(b *testing.B) {
			benchDiff(b, pr)
			b.ReportMetric(100*float64(len(patch))/float64(len(pr.Target)), "ratio-%")
		})
		b.Run(pr.Name+"/apply", func(b *testing.B) { benchApply(b, pr.Base, pr.Target, patch) })
	}
	for _, pr := range []corpus.Pair{head, unrelated} {
		b.Run(pr.Name+"/diff", func(b *testing.B) { benchDiff(b, pr) })
	}
}

// benchDiff times Diff and reports the sizes, the CPU time (which a busy
// machine does not inflate as it does the wall time) and the bytes
// allocated, an upper bound of the peak heap.
func benchDiff(b *testing.B, pr corpus.Pair) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	cpu := cpuTime()
	var patch []byte
	for b.Loop() {
		var err error
		if patch, err = Diff(pr.Base, pr.Target); err != nil {
			b.Fatal(err)
		}
	}
	cpu = cpuTime() - cpu
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(len(pr.Target)), "image-B")
	b.ReportMetric(float64(len(patch)), "delta-B")
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "alloc-MiB/op")
}

// benchApply applies patch as a node would (in 1 KiB blocks, into a slot,
// hashing what is written) and reports it against writing the full image
// the same way.
func benchApply(b *testing.B, base, target, patch []byte) {
	slot := make([]byte, 0, len(target))
	h, _ := ParseHeader(patch)
	emit := func(p []byte) error { slot = append(slot, p...); return nil }
	full := func() {
		slot = slot[:0]
		d := sha256.New()
		for blk := range bytesChunk(target, 1024) {
			emit(blk)
			d.Write(blk)
		}
	}
	copyNs := math.MaxFloat64
	for range 20 { // the fastest of 20, to see through a busy machine
		start := time.Now()
		full()
		copyNs = min(copyNs, float64(time.Since(start).Nanoseconds()))
	}
	b.ReportAllocs()
	br := bytes.NewReader(base)
	for b.Loop() {
		slot = slot[:0]
		d := sha256.New()
		p, err := NewPatcher(h, br, Checkpoint{}, func(q []byte) error { d.Write(q); return emit(q) })
		if err != nil {
			b.Fatal(err)
		}
		for blk := range bytesChunk(patch, 1024) {
			if _, err := p.Write(blk); err != nil {
				b.Fatal(err)
			}
		}
		if err := p.Close(); err != nil {
			b.Fatal(err)
		}
		if [32]byte(d.Sum(nil)) != h.Target {
			b.Fatal("target digest differs")
		}
	}
	b.ReportMetric(float64(liveHeap(b, h, base, patch)), "live-heap-B")
	b.ReportMetric(float64(len(target))/(float64(b.Elapsed().Nanoseconds())/float64(b.N))*1e3, "target-MB/s")
	b.ReportMetric(copyNs, "full-image-ns")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/copyNs, "x-full-image")
}

func bytesChunk(b []byte, n int) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(b) > 0 {
			k := min(n, len(b))
			if !yield(b[:k]) {
				return
			}
			b = b[k:]
		}
	}
}

// liveHeap returns the heap the Patcher holds in the middle of applying
// patch: the bytes live after a collection forced from inside emit, when
// half the target is out, less those live before NewPatcher.
func liveHeap(b *testing.B, h Header, base, patch []byte) uint64 {
	var before, during runtime.MemStats
	br := bytes.NewReader(base)
	out, half := int64(0), h.TargetSize/2
	emit := func(q []byte) error {
		if out < half && out+int64(len(q)) >= half {
			runtime.GC()
			runtime.ReadMemStats(&during)
		}
		out += int64(len(q))
		return nil
	}
	runtime.GC()
	runtime.ReadMemStats(&before)
	p, err := NewPatcher(h, br, Checkpoint{}, emit)
	if err != nil {
		b.Fatal(err)
	}
	for blk := range bytesChunk(patch, 1024) {
		if _, err := p.Write(blk); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		b.Fatal(err)
	}
	if during.HeapAlloc < before.HeapAlloc {
		return 0
	}
	return during.HeapAlloc - before.HeapAlloc
}
