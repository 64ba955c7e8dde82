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
	// A datagram of n bytes takes n*8/Bandwidth seconds to transmit, and
	// waits for the previous datagram of the direction to finish before
	// it starts. Latency and Jitter count from the end of transmission.
	Bandwidth int
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
	}{{"Loss", l.Loss}, {"Duplicate", l.Duplicate}, {"Reorder", l.Reorder}} {
		if math.IsNaN(p.v) || p.v < 0 || p.v > 1 {
			return fmt.Errorf("%w: %s %v not in [0, 1]", ErrInvalidLink, p.name, p.v)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Latency", l.Latency}, {"Jitter", l.Jitter}, {"ReorderDelay", l.ReorderDelay}} {
		if d.v < 0 {
			return fmt.Errorf("%w: negative %s %v", ErrInvalidLink, d.name, d.v)
		}
	}
	if l.Bandwidth < 0 {
		return fmt.Errorf("%w: negative Bandwidth %d", ErrInvalidLink, l.Bandwidth)
	}
	if l.Queue < 0 {
		return fmt.Errorf("%w: negative Queue %d", ErrInvalidLink, l.Queue)
	}
	return nil
}

// airtime is how long n bytes take to transmit on l.
func (l Link) airtime(n int) time.Duration {
	if l.Bandwidth <= 0 {
		return 0
	}
	return time.Duration(n) * 8 * time.Second / time.Duration(l.Bandwidth)
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
}
