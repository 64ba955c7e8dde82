package clock

import (
	"fmt"
	"math"
	"time"
)

// Source is the clock a [Scaled] clock runs on: [Real] in the simulator, a
// [Fake] in its tests.
type Source interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// Real is the wall clock. Its zero value is ready to use.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Scaled is a clock that runs Scale times faster than its source from the
// moment it was made: after one second of its source, Scale seconds of it
// have passed. It is safe for concurrent use.
type Scaled struct {
	src   Source
	start time.Time
	scale float64
}

// NewScaled returns a clock that starts at src.Now() and runs scale times
// faster than src. Use [Real] as src outside tests. It panics if scale is
// not a positive, finite number, as time.NewTicker panics on a
// non-positive period: the caller validates what a user typed.
func NewScaled(src Source, scale float64) *Scaled {
	if !(scale > 0) || math.IsInf(scale, 1) {
		panic(fmt.Sprintf("clock: time scale %g is not a positive number", scale))
	}
	return &Scaled{src: src, start: src.Now(), scale: scale}
}

// Now returns the scaled time: the start plus Scale times the source's
// time since the start.
func (c *Scaled) Now() time.Time { return c.start.Add(c.Elapsed()) }

// After waits d of scaled time (d/Scale of the source's time), then sends
// the scaled time on the channel it returned.
func (c *Scaled) After(d time.Duration) <-chan time.Time {
	out := make(chan time.Time, 1)
	if _, ok := c.src.(Real); ok { // no goroutine parked per wait
		time.AfterFunc(c.Real(d), func() { out <- c.Now() })
		return out
	}
	src := c.src.After(c.Real(d))
	go func() { <-src; out <- c.Now() }()
	return out
}

// Elapsed returns the scaled time passed since the start.
func (c *Scaled) Elapsed() time.Duration {
	return time.Duration(float64(c.src.Now().Sub(c.start)) * c.scale)
}

// Real converts a duration of scaled time into the source's time: d/Scale.
func (c *Scaled) Real(d time.Duration) time.Duration {
	return time.Duration(float64(d) / c.scale)
}

// Start returns the moment the clock was made, in both its time and its
// source's.
func (c *Scaled) Start() time.Time { return c.start }

// Scale returns how many times faster than its source the clock runs.
func (c *Scaled) Scale() float64 { return c.scale }
