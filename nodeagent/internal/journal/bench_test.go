package journal

import (
	"bytes"
	"strconv"
	"testing"
)

// erasesPer1000 appends n records of size bytes to a fresh journal on g and
// returns the erase operations per 1000 appends.
func erasesPer1000(tb testing.TB, g geometry, size, n int) float64 {
	f := newSim(tb, g, 0)
	j := mustOpen(tb, f, g.blocks)
	p := bytes.Repeat([]byte{0x5A}, size)
	for range n {
		if err := j.Append(p); err != nil {
			tb.Fatal(err)
		}
	}
	return float64(j.Stats().Erases) * 1000 / float64(n)
}

// TestEraseRate reports the erases per 1000 appends of 100-byte records on
// four 4096-byte blocks, and checks it against the layout: a 100-byte
// record takes two copies of 120 bytes, so 17 fit in a block and every 17th
// append but the first erases one.
func TestEraseRate(t *testing.T) {
	const n = 17 * 1000
	got := erasesPer1000(t, geo4096w8, 100, n+1)
	want := 1000.0 * 1000 / (n + 1)
	if got != want {
		t.Errorf("%.2f erases per 1000 appends, want %.2f", got, want)
	}
	t.Logf("100-byte records, 4 blocks of 4096, write size 8: %.1f erases per 1000 appends (%.1f per block)", got, got/4)
}

func TestAppendAllocs(t *testing.T) {
	f := newSim(t, geo4096w8, 0)
	j := mustOpen(t, f, geo4096w8.blocks)
	p := bytes.Repeat([]byte{1}, 100)
	if n := testing.AllocsPerRun(1000, func() {
		if err := j.Append(p); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Append allocates %.1f times per call, want 0", n)
	}
}

func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{100, MaxPayload} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) {
			g := geo4096w8
			f := newSim(b, g, 0)
			j := mustOpen(b, f, g.blocks)
			p := bytes.Repeat([]byte{0x5A}, size)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				if err := j.Append(p); err != nil {
					b.Fatal(err)
				}
			}
			s := j.Stats()
			b.ReportMetric(float64(s.Erases)*1000/float64(s.Appends), "erases/1000appends")
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	g := geo4096w8
	f := newSim(b, g, 0)
	j := mustOpen(b, f, g.blocks)
	for _, p := range scenario(13, 100) {
		mustAppend(b, j, p)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Open(f, 0, g.blocks); err != nil {
			b.Fatal(err)
		}
	}
}
