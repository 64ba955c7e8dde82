package simmodel

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"edgeota/nodeagent"
)

func load(t testing.TB, seed int64, image string) *Model {
	t.Helper()
	m, err := Runtime{Seed: seed}.Load(strings.NewReader(image), int64(len(image)))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return m
}

// quantile returns the nearest-rank q-quantile of sorted.
func quantile(sorted []time.Duration, q float64) time.Duration {
	return sorted[int(math.Ceil(q*float64(len(sorted))))-1]
}

func TestLatencyQuantiles(t *testing.T) {
	const draws = 10_000
	for _, tt := range []struct {
		name     string
		p50, p99 uint64
	}{
		{"healthy", 8000, 20000},
		{"tight", 1000, 1100},
		{"constant", 5000, 5000},
		{"demo", 9000, 30000},
		// Wider still, 10k draws of a log-normal tail no longer pin p99
		// within 10% for every seed (p99/p50 = 30: 3% of seeds miss).
		{"wide", 2000, 20000},
		{"one microsecond", 1, 1},
		{"slow", 5_000_000, 100_000_000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := Healthy()
			b.P50Micros, b.P99Micros = tt.p50, tt.p99
			m := load(t, 1, b.Header()+"\nweights")
			lat := make([]time.Duration, draws)
			for i := range lat {
				d, err := m.Infer()
				if err != nil {
					t.Fatalf("Infer: %v", err)
				}
				if d <= 0 || d > 4*time.Duration(tt.p99)*time.Microsecond {
					t.Fatalf("latency %v outside (0, 4*p99]", d)
				}
				lat[i] = d
			}
			slices.Sort(lat)
			for _, c := range []struct {
				q    float64
				want uint64
			}{{0.50, tt.p50}, {0.99, tt.p99}} {
				got := float64(quantile(lat, c.q)) / float64(time.Microsecond)
				if rel := math.Abs(got-float64(c.want)) / float64(c.want); rel > 0.10 {
					t.Errorf("p%02.0f = %.0fus, want %dus within 10%% (off by %.1f%%)", c.q*100, got, c.want, rel*100)
				} else {
					t.Logf("p%02.0f = %.0fus, target %dus (off by %.2f%%)", c.q*100, got, c.want, rel*100)
				}
			}
		})
	}
}

func TestErrorRate(t *testing.T) {
	const draws = 20_000
	for _, permille := range []uint64{0, 1, 5, 20, 500, 999, 1000} {
		b := Healthy()
		b.ErrorPermille = permille
		m := load(t, 7, b.Header())
		var errs int
		for range draws {
			d, err := m.Infer()
			if d <= 0 {
				t.Fatalf("latency %v with error %v", d, err)
			}
			if err != nil {
				if err != ErrInference {
					t.Fatalf("err = %v, want ErrInference", err)
				}
				errs++
			}
		}
		// Binomial: allow 5 standard deviations, and at least 3 errors.
		p := float64(permille) / 1000
		want := p * draws
		tol := max(5*math.Sqrt(draws*p*(1-p)), 3)
		if math.Abs(float64(errs)-want) > tol {
			t.Errorf("error_permille=%d: %d errors in %d, want %.0f ± %.0f", permille, errs, draws, want, tol)
		}
	}
}

func TestDeterminism(t *testing.T) {
	image := "edgeota-sim-model error_permille=100 p50_us=900 p99_us=4000\nweights"
	run := func(seed int64, image string) []time.Duration {
		m := load(t, seed, image)
		var out []time.Duration
		for range 1000 {
			d, err := m.Infer()
			if err != nil {
				d = -d // fold the outcome into the sequence
			}
			out = append(out, d)
		}
		return out
	}
	a := run(42, image)
	if b := run(42, image); !slices.Equal(a, b) {
		t.Error("same seed and image gave different sequences")
	}
	if b := run(43, image); slices.Equal(a, b) {
		t.Error("different seeds gave the same sequence")
	}
	other := strings.Replace(image, "p50_us=900", "p50_us=0900", 1) // same behaviour, other line
	if b := run(42, other); slices.Equal(a, b) {
		t.Error("different first lines gave the same sequence")
	}
	if b := run(42, image+"more weights"); !slices.Equal(a, b) {
		t.Error("bytes after the first line changed the sequence")
	}
}

func TestLoad(t *testing.T) {
	t.Run("healthy without header", func(t *testing.T) {
		m := load(t, 0, "\x00\x01binary weights")
		if m.Behaviour() != Healthy() || m.RAMBytes() != 131072 || m.CPUPermille() != 300 {
			t.Errorf("got %+v, want Healthy", m.Behaviour())
		}
	})
	t.Run("empty image", func(t *testing.T) {
		if m := load(t, 0, ""); m.Behaviour() != Healthy() {
			t.Errorf("got %+v, want Healthy", m.Behaviour())
		}
	})
	t.Run("accessors", func(t *testing.T) {
		m := load(t, 0, "edgeota-sim-model ram_bytes=77 cpu_permille=880")
		if m.RAMBytes() != 77 || m.CPUPermille() != 880 {
			t.Errorf("RAMBytes, CPUPermille = %d, %d; want 77, 880", m.RAMBytes(), m.CPUPermille())
		}
	})
	t.Run("metrics", func(t *testing.T) {
		m := load(t, 0, "edgeota-sim-model metric.low_confidence_permille=80")
		if got := m.Metrics(); !maps.Equal(got, map[string]int64{"low_confidence_permille": 80}) {
			t.Errorf("Metrics = %v, want low_confidence_permille 80", got)
		}
		if got := load(t, 0, "edgeota-sim-model").Metrics(); got != nil {
			t.Errorf("Metrics of a model declaring none = %v, want nil", got)
		}
	})
	t.Run("crash on boot", func(t *testing.T) {
		image := "edgeota-sim-model crash_on_boot=1\n"
		m, err := Runtime{}.Load(strings.NewReader(image), int64(len(image)))
		if !errors.Is(err, ErrCrashOnBoot) || m != nil {
			t.Errorf("Load = %v, %v; want nil, ErrCrashOnBoot", m, err)
		}
	})
	t.Run("bad header", func(t *testing.T) {
		image := "edgeota-sim-model speed=11\n"
		_, err := Runtime{}.Load(strings.NewReader(image), int64(len(image)))
		if !errors.Is(err, ErrHeader) || !strings.Contains(err.Error(), `"speed"`) {
			t.Errorf("err = %v, want ErrHeader naming the key", err)
		}
	})
	t.Run("header line too long", func(t *testing.T) {
		image := "edgeota-sim-model" + strings.Repeat(" ", MaxHeaderLen) + "p50_us=1\n"
		_, err := Runtime{}.Load(strings.NewReader(image), int64(len(image)))
		if !errors.Is(err, ErrHeader) || !strings.Contains(err.Error(), "longer than 256") {
			t.Errorf("err = %v, want ErrHeader about length", err)
		}
	})
	t.Run("header filling the image", func(t *testing.T) {
		image := "edgeota-sim-model ram_bytes=5" + strings.Repeat(" ", MaxHeaderLen-29)
		if m := load(t, 0, image); m.RAMBytes() != 5 {
			t.Errorf("RAMBytes = %d, want 5", m.RAMBytes())
		}
	})
	t.Run("long binary image", func(t *testing.T) {
		image := strings.Repeat("\xff", 10*MaxHeaderLen)
		if m := load(t, 0, image); m.Behaviour() != Healthy() {
			t.Errorf("got %+v, want Healthy", m.Behaviour())
		}
	})
	t.Run("reads at most MaxHeaderLen bytes", func(t *testing.T) {
		r := &countingReader{r: strings.NewReader(strings.Repeat("x", 4096))}
		if _, err := (Runtime{}).Load(r, 4096); err != nil {
			t.Fatal(err)
		}
		if r.n > MaxHeaderLen {
			t.Errorf("read %d bytes, want at most %d", r.n, MaxHeaderLen)
		}
	})
	t.Run("short image", func(t *testing.T) {
		_, err := Runtime{}.Load(bytes.NewReader([]byte("abc")), 100)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("err = %v, want ErrUnexpectedEOF", err)
		}
	})
	t.Run("negative size", func(t *testing.T) {
		if _, err := (Runtime{}).Load(bytes.NewReader(nil), -1); err == nil {
			t.Error("err = nil")
		}
	})
}

type countingReader struct {
	r io.ReaderAt
	n int
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n += n
	return n, err
}

func TestConcurrentInfer(t *testing.T) {
	m := load(t, 3, "edgeota-sim-model error_permille=10")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				m.Infer()
			}
		})
	}
	wg.Wait()
}

func BenchmarkInfer(b *testing.B) {
	m := load(b, 1, Healthy().Header())
	b.ReportAllocs()
	for b.Loop() {
		m.Infer()
	}
}

// TestForAgent: the agent's view of the runtime loads the same models, its
// models are Measurers, and a failed load is a nil Model, not a nil
// *Model in a non-nil interface.
func TestForAgent(t *testing.T) {
	rt := Runtime{Seed: 3}.ForAgent()
	image := "edgeota-sim-model metric.low_confidence_permille=80\n"
	m, err := rt.Load(strings.NewReader(image), int64(len(image)))
	if err != nil {
		t.Fatal(err)
	}
	ms, ok := m.(nodeagent.Measurer)
	if !ok || ms.Metrics()["low_confidence_permille"] != 80 {
		t.Fatalf("model %T is not a Measurer reporting low_confidence_permille=80", m)
	}
	crash := "edgeota-sim-model crash_on_boot=1\n"
	m, err = rt.Load(strings.NewReader(crash), int64(len(crash)))
	if !errors.Is(err, ErrCrashOnBoot) || m != nil {
		t.Fatalf("Load of a crashing model = %v (%T), %v; want nil, ErrCrashOnBoot", m, m, err)
	}
}
