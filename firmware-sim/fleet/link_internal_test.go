package fleet

import (
	"testing"
	"time"

	"edgeota/firmware-sim/clock"
	"edgeota/firmware-sim/radio"
	"edgeota/firmware-sim/scenario"
)

// TestAckTimeout: a node on a profile's link retransmits after a
// simulated ACK timeout scaled to real time; on a link without a profile
// it keeps the real 300 ms.
func TestAckTimeout(t *testing.T) {
	nbiot, err := radio.LookupProfile(radio.ProfileNBIoT)
	if err != nil {
		t.Fatal(err)
	}
	steady := nbiot
	steady.Jitter = 0
	for _, tc := range []struct {
		name  string
		link  scenario.Link
		scale float64
		sim   time.Duration // simAckTimeout
		real  time.Duration // ackTimeout
	}{
		{"real-time link", scenario.Link{Latency: 100 * time.Millisecond}, 60, 400 * time.Millisecond, 300 * time.Millisecond},
		// The thread round trip is 2*2*50 ms plus the airtime of 1100
		// and 100 bytes (129.888 and 11.808 ms): twice 341.696 ms.
		{"thread", scenario.Link{Profile: "thread", Hops: 2, Latency: 20 * time.Millisecond, Jitter: 30 * time.Millisecond,
			Bandwidth: 250_000, FrameMTU: 104, FrameOverhead: 22, FrameGap: 2 * time.Millisecond}, 10, 683392 * time.Microsecond, 68339200 * time.Nanosecond},
		// 1 s of latency both ways, 1112 and 112 bytes at 60 kbit/s
		// (148.266666 and 14.933333 ms): twice 1.1632 s.
		{"nbiot at 1 s", scenario.Link{Profile: "nbiot", Hops: 1, Latency: 500 * time.Millisecond, Bandwidth: 60_000, FrameOverhead: 12},
			100, 2326399998 * time.Nanosecond, 23263999 * time.Nanosecond},
		{"floor of 10 ms real", scenario.Link{Profile: "ble", Latency: 10 * time.Millisecond, Bandwidth: 1_000_000}, 100, 100 * time.Millisecond, 10 * time.Millisecond},
		{"floor of 100 ms simulated", scenario.Link{Profile: "ble"}, 1, 100 * time.Millisecond, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &sim{sc: &scenario.Scenario{Link: tc.link, TimeScale: tc.scale}, clock: clock.NewScaled(clock.Real{}, tc.scale)}
			if got := simAckTimeout(radioLink(tc.link)); got != tc.sim {
				t.Errorf("simAckTimeout = %v, want %v", got, tc.sim)
			}
			if got := s.ackTimeout(); got != tc.real {
				t.Errorf("ackTimeout = %v, want %v", got, tc.real)
			}
		})
	}
	if got := simAckTimeout(steady); got != 2326399998*time.Nanosecond {
		t.Errorf("nbiot profile without jitter: %v", got)
	}
}
