package radio

import (
	"fmt"
	"math"
	"time"
)

// DefaultQueue is the number of datagrams a direction holds at most when
// [Link.Queue] is zero, like the buffer of a real radio.
const DefaultQueue = 4096

// DefaultReorderDelay is how long a datagram chosen for reordering is held
// back at most, past its normal delivery time, when [Link.ReorderDelay] is
// zero.
const DefaultReorderDelay = 20 * time.Millisecond

// Link is the behaviour of one direction of a [Relay]. Its zero value is a
// perfect link: no loss, no delay, unlimited bandwidth.
//
// A direction is one shared medium: every client's datagrams in that
// direction go through the same queue, the same bandwidth limit and the same
// random stream. Delivery is in arrival order (jitter delays but never
// reorders) except for the datagrams that [Link.Reorder] picks.
type Link struct {
	// Loss is the probability, in [0, 1], that a datagram is dropped after
	// it has been transmitted (it still takes its share of Bandwidth).
	Loss float64
	// Latency is the fixed one-way delay added to every datagram.
	Latency time.Duration
	// Jitter is the upper bound of a uniform extra delay in [0, Jitter)
	// added to every datagram on top of Latency.
	Jitter time.Duration
	// Duplicate is the probability, in [0, 1], that a datagram is
	// delivered twice, both copies at the same time.
	Duplicate float64
	// Reorder is the probability, in [0, 1], that a datagram is held back
	// and delivered right after the next datagram of the same direction,
	// or, if none is sent in time, ReorderDelay after its normal delivery
	// time. While one datagram is held back no other is picked.
	Reorder float64
	// ReorderDelay is the longest a reordered datagram is held back past
	// its normal delivery time; zero means [DefaultReorderDelay].
	ReorderDelay time.Duration
	// Bandwidth is the link rate in bits per second; zero means unlimited.
	// A datagram takes its airtime (see [Link.Airtime]: its frames, their
	// overhead and gaps, on every hop) to transmit, and waits for the
	// previous datagram of the direction to finish before it starts.
	// Latency and Jitter count from the end of transmission.
	Bandwidth int
	// FrameMTU is the most datagram bytes one radio frame carries; a
	// larger datagram is fragmented into ceil(n/FrameMTU) frames (as
	// 6LoWPAN fragments an IPv6 datagram into 802.15.4 frames), and the
	// datagram is lost if any of its frames is lost (FrameLoss). Zero
	// means one frame per datagram.
	FrameMTU int
	// FrameOverhead is the bytes every frame adds on air to the datagram
	// bytes it carries: PHY preamble and header, MAC header, checksum and
	// fragment header. It counts in the airtime and in [DirStats.AirBytes].
	FrameOverhead int
	// FrameGap is the idle time every frame costs besides its bytes: MAC
	// backoff, clear-channel assessment, turnaround and the link-layer
	// acknowledgement. It counts in the airtime; it needs a Bandwidth.
	FrameGap time.Duration
	// FrameLoss is the probability, in [0, 1], that one frame is lost
	// after the link layer's own retries; a datagram of k frames on h hops
	// survives with probability (1-FrameLoss)^(k*h), on top of Loss.
	FrameLoss float64
	// Hops is the number of radio hops between client and server (a mesh
	// route); zero means 1. Every hop carries every frame on the same
	// channel, so a datagram takes Hops times its airtime, Latency and
	// Jitter are per hop (Hops*Latency plus a uniform jitter in
	// [0, Hops*Jitter)), and FrameLoss applies on each hop.
	Hops int
	// Queue is the most datagrams the direction holds at once, waiting to
	// be transmitted or in flight; one arriving over the limit is dropped
	// and counted in [DirStats.Overflow]. Zero means [DefaultQueue].
	Queue int
	// Outage, if not nil, is asked with the current time when a datagram
	// arrives and again when it is due: while it returns true, every
	// datagram of the direction is dropped, including those already in
	// flight. It may be called from several goroutines at once, and must
	// be quick: it runs on the relay's packet path.
	Outage func(now time.Time) bool
}

// validate reports the first field of l that is out of range.
func (l Link) validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"Loss", l.Loss}, {"Duplicate", l.Duplicate}, {"Reorder", l.Reorder}, {"FrameLoss", l.FrameLoss}} {
		if math.IsNaN(p.v) || p.v < 0 || p.v > 1 {
			return fmt.Errorf("%w: %s %v not in [0, 1]", ErrInvalidLink, p.name, p.v)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Latency", l.Latency}, {"Jitter", l.Jitter}, {"ReorderDelay", l.ReorderDelay}, {"FrameGap", l.FrameGap}} {
		if d.v < 0 {
			return fmt.Errorf("%w: negative %s %v", ErrInvalidLink, d.name, d.v)
		}
	}
	if l.Bandwidth < 0 {
		return fmt.Errorf("%w: negative Bandwidth %d", ErrInvalidLink, l.Bandwidth)
	}
	for _, v := range []struct {
		name string
		v    int
	}{{"Queue", l.Queue}, {"FrameMTU", l.FrameMTU}, {"FrameOverhead", l.FrameOverhead}, {"Hops", l.Hops}} {
		if v.v < 0 {
			return fmt.Errorf("%w: negative %s %d", ErrInvalidLink, v.name, v.v)
		}
	}
	if l.Hops > maxHops {
		return fmt.Errorf("%w: Hops %d over %d", ErrInvalidLink, l.Hops, maxHops)
	}
	return nil
}

// maxHops bounds [Link.Hops]: a mesh route longer than this is not a
// radio link anyone deploys (Thread allows 32 routers).
const maxHops = 32

// Frames returns how many frames a datagram of n bytes takes on one hop:
// ceil(n/FrameMTU), at least 1.
func (l Link) Frames(n int) int {
	if l.FrameMTU <= 0 || n <= l.FrameMTU {
		return 1
	}
	return (n + l.FrameMTU - 1) / l.FrameMTU
}

// hops is Hops, or 1 when it is zero.
func (l Link) hops() int { return max(l.Hops, 1) }

// AirBytes returns the bytes a datagram of n bytes puts on air over all
// its hops: its own bytes plus FrameOverhead per frame, times Hops.
func (l Link) AirBytes(n int) int {
	return (n + l.Frames(n)*l.FrameOverhead) * l.hops()
}

// Airtime returns how long a datagram of n bytes occupies the direction:
// its air bytes at Bandwidth plus FrameGap per frame, on every hop. It is
// zero without a Bandwidth (an unlimited link has no airtime).
func (l Link) Airtime(n int) time.Duration {
	if l.Bandwidth <= 0 {
		return 0
	}
	bits := time.Duration(l.AirBytes(n)) * 8
	gaps := time.Duration(l.Frames(n)*l.hops()) * l.FrameGap
	return bits*time.Second/time.Duration(l.Bandwidth) + gaps
}

// LossOf returns the probability that a datagram of n bytes is lost on
// l: 1 - (1-Loss) * (1-FrameLoss)^(frames*hops), or Loss itself when
// FrameLoss is zero.
func (l Link) LossOf(n int) float64 {
	if l.FrameLoss == 0 {
		return l.Loss
	}
	return 1 - (1-l.Loss)*math.Pow(1-l.FrameLoss, float64(l.Frames(n)*l.hops()))
}

func (l Link) queue() int {
	if l.Queue == 0 {
		return DefaultQueue
	}
	return l.Queue
}

func (l Link) reorderDelay() time.Duration {
	if l.ReorderDelay == 0 {
		return DefaultReorderDelay
	}
	return l.ReorderDelay
}

// Stats counts what a [Relay] did, per direction.
type Stats struct {
	// Up is client to server.
	Up DirStats
	// Down is server to client.
	Down DirStats
}

// DirStats counts the datagrams of one direction. Once the relay is closed,
// or whenever nothing is queued, In + Duplicated == Delivered + Dropped.
type DirStats struct {
	// In is the number of datagrams received from the sending side.
	In uint64
	// BytesIn is the number of payload bytes received.
	BytesIn uint64
	// Delivered is the number of datagrams written to the receiving side,
	// duplicate copies included.
	Delivered uint64
	// BytesDelivered is the number of payload bytes delivered.
	BytesDelivered uint64
	// Dropped is the number of datagrams (or duplicate copies) that were
	// not delivered: lost, dropped in an outage, over the queue limit,
	// failed to write, or still queued when the relay closed.
	Dropped uint64
	// Overflow is the part of Dropped that arrived over the queue limit.
	Overflow uint64
	// Oversize is the part of Dropped that was over the relay's MTU
	// ([Config.MTU]); BytesIn counts of each only what was read, MTU + 1.
	Oversize uint64
	// Outage is the part of Dropped that an outage ([Link.Outage])
	// dropped, on arrival or when it fell due.
	Outage uint64
	// Duplicated is the number of extra copies made.
	Duplicated uint64
	// Reordered is the number of datagrams held back to be delivered after
	// a later one.
	Reordered uint64
	// Frames is the number of radio frames put on air, counted once per
	// hop: every datagram transmitted, lost ones included (see
	// [Link.Frames]). Datagrams dropped before transmission (outage on
	// arrival, queue overflow, oversize) put nothing on air.
	Frames uint64
	// AirBytes is the bytes put on air with those frames, frame overhead
	// included, once per hop (see [Link.AirBytes]).
	AirBytes uint64
	// Airtime is the time the direction spent transmitting (see
	// [Link.Airtime]), on the relay's clock; zero without a Bandwidth.
	Airtime time.Duration
}

// Add returns the sum of two directions' counters, for totals over links.
func (s DirStats) Add(o DirStats) DirStats {
	return DirStats{
		In: s.In + o.In, BytesIn: s.BytesIn + o.BytesIn,
		Delivered: s.Delivered + o.Delivered, BytesDelivered: s.BytesDelivered + o.BytesDelivered,
		Dropped: s.Dropped + o.Dropped, Overflow: s.Overflow + o.Overflow, Oversize: s.Oversize + o.Oversize,
		Outage: s.Outage + o.Outage, Duplicated: s.Duplicated + o.Duplicated, Reordered: s.Reordered + o.Reordered,
		Frames: s.Frames + o.Frames, AirBytes: s.AirBytes + o.AirBytes, Airtime: s.Airtime + o.Airtime,
	}
}
