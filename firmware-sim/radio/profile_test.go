package radio

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"testing"
	"time"

	"edgeota/firmware-sim/clock"
)

var epoch = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func TestFramesAndAirtime(t *testing.T) {
	thread, err := LookupProfile(ProfileThread)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		link     Link
		n        int
		frames   int // per hop
		airBytes int
		airtime  time.Duration
	}{
		{"no bandwidth", Link{}, 1000, 1, 1000, 0},
		{"one frame per datagram", Link{Bandwidth: 8000, FrameOverhead: 10}, 90, 1, 100, 100 * time.Millisecond},
		{"exactly one frame", Link{Bandwidth: 8000, FrameMTU: 100}, 100, 1, 100, 100 * time.Millisecond},
		{"one byte over a frame", Link{Bandwidth: 8000, FrameMTU: 100}, 101, 2, 101, 101 * time.Millisecond},
		{"gaps per frame", Link{Bandwidth: 8000, FrameMTU: 100, FrameGap: time.Millisecond}, 250, 3, 250, 253 * time.Millisecond},
		{"hops repeat everything", Link{Bandwidth: 8000, FrameMTU: 100, FrameOverhead: 10, FrameGap: time.Millisecond, Hops: 3},
			250, 3, 3 * 280, 3*280*time.Millisecond + 9*time.Millisecond},
		// A 1 KiB CoAP block (1044 bytes) on Thread: ceil(1044/104) = 11
		// frames, (1044 + 11*22) * 2 hops = 2572 bytes on air, 2572*8 bits
		// at 250 kbit/s = 82.304 ms, plus 22 frames * 2 ms of gaps.
		{"thread 1 KiB block", thread, 1044, 11, 2572, 82304*time.Microsecond + 44*time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.link.Frames(tc.n); got != tc.frames {
				t.Errorf("Frames(%d) = %d, want %d", tc.n, got, tc.frames)
			}
			if got := tc.link.AirBytes(tc.n); got != tc.airBytes {
				t.Errorf("AirBytes(%d) = %d, want %d", tc.n, got, tc.airBytes)
			}
			if got := tc.link.Airtime(tc.n); got != tc.airtime {
				t.Errorf("Airtime(%d) = %v, want %v", tc.n, got, tc.airtime)
			}
		})
	}
}

func TestProfiles(t *testing.T) {
	for _, tc := range []struct {
		name      string
		bandwidth int
		minRTT    time.Duration // 2 * hops * Latency
		maxRTT    time.Duration // 2 * hops * (Latency + Jitter)
	}{
		{ProfileBLE, 1_000_000, 50 * time.Millisecond, 150 * time.Millisecond},
		{ProfileNBIoT, 60_000, time.Second, 2 * time.Second},
		{ProfileSubGHz, 50_000, 200 * time.Millisecond, 200 * time.Millisecond},
		{ProfileThread, 250_000, 80 * time.Millisecond, 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := LookupProfile(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.validate(); err != nil {
				t.Fatal(err)
			}
			hops := time.Duration(l.hops())
			if l.Bandwidth != tc.bandwidth || 2*hops*l.Latency != tc.minRTT || 2*hops*(l.Latency+l.Jitter) != tc.maxRTT {
				t.Errorf("%+v: want %d bit/s, round trip %v to %v", l, tc.bandwidth, tc.minRTT, tc.maxRTT)
			}
			if l.Loss != 0 || l.FrameLoss != 0 {
				t.Errorf("profile %s has loss: the scenario sets it", tc.name)
			}
		})
	}
	if got := ProfileNames(); len(got) != 4 || got[0] != ProfileBLE {
		t.Errorf("ProfileNames() = %v", got)
	}
	if _, err := LookupProfile("wifi"); !errors.Is(err, ErrUnknownProfile) {
		t.Errorf("LookupProfile(wifi) = %v, want ErrUnknownProfile", err)
	}
}

// newTestDirection is a direction that records what it sends, with no
// scheduler running: tests call arrive and due themselves.
func newTestDirection(l Link, seed uint64, sent chan<- *item) *direction {
	return newDirection("test", l, seed, downStream, slog.New(slog.DiscardHandler), func(it *item) error {
		if sent != nil {
			sent <- it
		}
		return nil
	})
}

// TestBurstQueuesBehindItself: datagrams that arrive together leave one
// after the other, each after the airtime of those ahead of it, and a
// datagram that arrives once the burst has gone waits for nothing.
func TestBurstQueuesBehindItself(t *testing.T) {
	// 500 bytes in 100-byte frames with 10 bytes of overhead: 5 frames,
	// 550 bytes on air per hop, 1100 on 2 hops: 8800 bits at 88 kbit/s
	// is 100 ms, plus 10 gaps of 1 ms: 110 ms of airtime per datagram.
	l := Link{Bandwidth: 88_000, FrameMTU: 100, FrameOverhead: 10, FrameGap: time.Millisecond, Hops: 2, Latency: 20 * time.Millisecond}
	const air = 110 * time.Millisecond
	if got := l.Airtime(500); got != air {
		t.Fatalf("Airtime(500) = %v, want %v", got, air)
	}
	d := newTestDirection(l, 1, nil)
	for range 4 {
		d.arrive(epoch, make([]byte, 500), nil)
	}
	late := epoch.Add(time.Second) // the burst left the radio at 440 ms
	d.arrive(late, make([]byte, 500), nil)

	got, _ := d.due(epoch.Add(time.Hour), nil)
	if len(got) != 5 {
		t.Fatalf("%d datagrams due, want 5", len(got))
	}
	for i, it := range got[:4] {
		// The i-th of the burst ends its transmission (i+1) airtimes in,
		// then takes 2 hops of 20 ms.
		if want := epoch.Add(time.Duration(i+1)*air + 40*time.Millisecond); !it.at.Equal(want) {
			t.Errorf("datagram %d due at +%v, want +%v", i, it.at.Sub(epoch), want.Sub(epoch))
		}
	}
	if want := late.Add(air + 40*time.Millisecond); !got[4].at.Equal(want) {
		t.Errorf("the late datagram due at +%v, want +%v", got[4].at.Sub(epoch), want.Sub(epoch))
	}
	st := d.snapshot()
	if st.Frames != 5*10 || st.AirBytes != 5*1100 || st.Airtime != 5*air {
		t.Errorf("frames %d, air bytes %d, airtime %v; want 50, 5500, %v", st.Frames, st.AirBytes, st.Airtime, 5*air)
	}
}

// TestSchedulerRunsOnTheRelayClock: the scheduler delivers a datagram
// when the relay's (fake) clock reaches its due time, not before, however
// little real time passes.
func TestSchedulerRunsOnTheRelayClock(t *testing.T) {
	fake := clock.NewFake(epoch)
	sent := make(chan *item, 4)
	l := Link{Bandwidth: 8000, Latency: time.Second} // 100 bytes: 100 ms on air
	d := newTestDirection(l, 1, sent)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() { defer close(stopped); d.run(done, fake) }()
	defer func() { close(done); <-stopped }()

	d.arrive(fake.Now(), make([]byte, 100), nil)
	d.arrive(fake.Now(), make([]byte, 100), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The scheduler waits for the first datagram, due at 1.1 s.
	if err := fake.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	fake.Advance(1100*time.Millisecond - time.Nanosecond)
	if err := fake.BlockUntil(ctx, 1); err != nil { // still waiting: nothing sent
		t.Fatal(err)
	}
	select {
	case <-sent:
		t.Fatal("a datagram was delivered before its time")
	default:
	}
	fake.Advance(time.Nanosecond)
	if it := <-sent; !it.at.Equal(epoch.Add(1100 * time.Millisecond)) {
		t.Errorf("first delivered, due at +%v", it.at.Sub(epoch))
	}
	fake.Advance(100 * time.Millisecond) // the second left the radio 100 ms later
	if it := <-sent; !it.at.Equal(epoch.Add(1200 * time.Millisecond)) {
		t.Errorf("second delivered, due at +%v", it.at.Sub(epoch))
	}
}

// TestFragmentLoss: a datagram is lost when any of its frames is, on any
// hop. Each case sends n = 20,000 datagrams; the standard deviation of the
// measured rate is at most sqrt(0.25/20000) = 0.0036, so the tolerance of
// 0.025 is 7 standard deviations: a chance failure below 1e-11 per case,
// whatever the seed.
func TestFragmentLoss(t *testing.T) {
	const n, tol = 20_000, 0.025
	for _, tc := range []struct {
		name string
		link Link
		size int
		want float64
	}{
		{"one frame", Link{FrameMTU: 100, FrameLoss: 0.1}, 100, 0.1},
		{"ten frames", Link{FrameMTU: 100, FrameLoss: 0.1}, 1000, 1 - math.Pow(0.9, 10)},
		{"three hops", Link{FrameMTU: 100, FrameLoss: 0.1, Hops: 3}, 100, 1 - math.Pow(0.9, 3)},
		{"frames and datagram loss", Link{FrameMTU: 100, FrameLoss: 0.05, Loss: 0.2}, 250, 1 - 0.8*math.Pow(0.95, 3)},
		{"no frame loss", Link{FrameMTU: 100, Loss: 0.2}, 1000, 0.2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.link.LossOf(tc.size); math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("LossOf(%d) = %v, want %v", tc.size, got, tc.want)
			}
			l := tc.link
			l.Queue = n // nothing leaves the queue: no scheduler runs
			d := newTestDirection(l, seed, nil)
			for range n {
				d.arrive(epoch, make([]byte, tc.size), nil)
			}
			st := d.snapshot()
			if st.Overflow != 0 {
				t.Fatalf("%d overflowed", st.Overflow)
			}
			if rate := float64(st.Dropped) / n; math.Abs(rate-tc.want) > tol {
				t.Errorf("lost %d of %d (%.4f), want %.4f±%v", st.Dropped, n, rate, tc.want, tol)
			}
			frames := uint64(n * tc.link.Frames(tc.size) * tc.link.hops())
			if st.Frames != frames {
				t.Errorf("frames on air %d, want %d: lost datagrams take their airtime too", st.Frames, frames)
			}
		})
	}
}
