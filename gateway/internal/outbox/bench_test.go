package outbox

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchPayload is about the size of a health report in CBOR.
var benchPayload = make([]byte, 120)

// BenchmarkAppendGroupCommit appends b.N health reports from a number of
// goroutines, each waiting for done before its next append, the way CoAP
// handlers wait before they answer; fsync included. With S senders a commit
// carries at most S appends, so S / commit latency bounds the rate: 8 is
// the figure, 256 closer to a gateway serving many nodes at once.
func BenchmarkAppendGroupCommit(b *testing.B) {
	for _, senders := range []int{8, 32, 256} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) {
			o, _ := openTest(b, Config{})
			var left atomic.Int64
			left.Store(int64(b.N))
			b.ReportAllocs()
			b.SetBytes(int64(len(benchPayload)))
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for g := range senders {
				wg.Go(func() {
					node := fmt.Sprintf("node-%d", g)
					ch := make(chan error, 1)
					done := func(err error) { ch <- err }
					for left.Add(-1) >= 0 {
						if err := o.Append(KindHealth, node, benchPayload, done); err != nil {
							b.Error(err)
							return
						}
						if err := <-ch; err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			st := o.Stats()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
			b.ReportMetric(float64(st.Commits)/float64(b.N), "commits/op")
		})
	}
}

// BenchmarkPeekAck1024 peeks a batch of 1024 health reports and acks it,
// what the publisher does per MQTT message; the outbox is refilled outside
// the timer.
func BenchmarkPeekAck1024(b *testing.B) {
	o, _ := openTest(b, Config{})
	fill := func() {
		var wg sync.WaitGroup
		for g := range 64 {
			wg.Go(func() {
				ch := make(chan error, 1)
				for range 16 * 1024 / 64 {
					if err := o.Append(KindHealth, fmt.Sprintf("node-%d", g), benchPayload, func(err error) { ch <- err }); err != nil {
						b.Error(err)
						return
					}
					if err := <-ch; err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	fill()
	b.ReportAllocs()
	b.SetBytes(1024 * int64(len(benchPayload)))
	for b.Loop() {
		if o.Stats().Health.Depth < 1024 {
			b.StopTimer()
			fill()
			b.StartTimer()
		}
		items, err := o.Peek(KindHealth, 1024)
		if err != nil || len(items) != 1024 {
			b.Fatal(len(items), err)
		}
		if err := o.Ack(items); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1024, "ns/item")

}
