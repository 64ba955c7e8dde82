package fleet

import "sync"

// reportID names one health report: (NodeID, BootCount, Number).
type reportID struct {
	node         string
	boot, number uint64
}

// Bits of a health report's fate in a [ledger].
const (
	reportAccepted = 1 << iota // the gateway answered 2.04
	reportReceived             // it reached the broker
)

// ledger tracks every health report of a run: accepted by the gateway,
// received on the broker, and how many reached the broker more than once.
// Its counts are kept as reports come, so reading them costs nothing at
// any fleet size (the drive loop reads them 20 times a second).
type ledger struct {
	mu        sync.Mutex
	fate      map[reportID]uint8
	accepted  int
	delivered int // accepted and received
	dups      int
}

// mark records that report id was accepted or received (bit) and returns
// whether it had been before.
func (l *ledger) mark(id reportID, bit uint8) (again bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fate == nil {
		l.fate = map[reportID]uint8{}
	}
	f := l.fate[id]
	if f&bit != 0 {
		if bit == reportReceived {
			l.dups++
		}
		return true
	}
	l.fate[id] = f | bit
	if bit == reportAccepted {
		l.accepted++
	}
	if f|bit == reportAccepted|reportReceived {
		l.delivered++
	}
	return false
}

// counts returns how many distinct reports the gateway accepted, how many
// of those reached the broker, and how many copies reached it again.
func (l *ledger) counts() (accepted, delivered, dups int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.accepted, l.delivered, l.dups
}
