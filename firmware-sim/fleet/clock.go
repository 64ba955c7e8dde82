package fleet

import "time"

// scaledClock is a clock that runs scale times faster than real time; it
// implements the node agent's Clock.
type scaledClock struct {
	start time.Time
	scale float64
}

func newScaledClock(start time.Time, scale float64) *scaledClock {
	return &scaledClock{start: start, scale: scale}
}

// Now is the simulated time.
func (c *scaledClock) Now() time.Time {
	return c.start.Add(time.Duration(float64(time.Since(c.start)) * c.scale))
}

// After waits d of simulated time.
func (c *scaledClock) After(d time.Duration) <-chan time.Time {
	return time.After(time.Duration(float64(d) / c.scale))
}

// Elapsed is the simulated time since the start.
func (c *scaledClock) Elapsed() time.Duration { return c.Now().Sub(c.start) }

// real converts a simulated duration into real time.
func (c *scaledClock) real(d time.Duration) time.Duration { return time.Duration(float64(d) / c.scale) }
