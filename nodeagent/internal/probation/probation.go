package probation

import (
	"fmt"
	"math"
	"math/bits"
	"time"

	"edgeota/nodeagent/internal/latency"
	"edgeota/protocol"
)

// Verdict is what a Judge says to do with the image on probation.
type Verdict int

// Verdicts.
const (
	// Continue keeps the image on probation: ask again later.
	Continue Verdict = iota
	// Confirm ends probation: mark the image confirmed.
	Confirm
	// Revert ends probation: go back to the other slot.
	Revert
)

// String returns "continue", "confirm" or "revert".
func (v Verdict) String() string {
	switch v {
	case Continue:
		return "continue"
	case Confirm:
		return "confirm"
	case Revert:
		return "revert"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// Result is a Judge's decision.
type Result struct {
	// Verdict is what to do.
	Verdict Verdict
	// Reason is the status event's reason code (key 7) of a Revert; it is
	// protocol.ReasonNone for Continue and Confirm.
	Reason protocol.Reason
	// Text is the status event's readable reason (key 5), under 256 bytes:
	// set for a Revert and for a Confirm on shortfall, empty otherwise.
	Text string
}

// Stats is what a Judge has observed.
type Stats struct {
	// Inferences is the number of inferences observed.
	Inferences uint64
	// Errors is the number of them that failed.
	Errors uint64
	// P99Micros is their p99 latency in microseconds, rounded up as the
	// package documentation says; 0 without inferences.
	P99Micros uint64
	// MaxRAMBytes is the largest RAM sampled.
	MaxRAMBytes uint64
	// MaxCPUPermille is the largest CPU sampled, per-mille of one core.
	MaxCPUPermille uint64
}

// Judge judges one image's probation; make one with New. Its zero value
// behaves as New(nil). It is not safe for concurrent use.
type Judge struct {
	p *protocol.Probation // a copy; nil: no probation

	lat        latency.Histogram
	inferences uint64
	errors     uint64
	maxRAM     uint64
	maxCPU     uint64
	breach     string // the first resource breach, empty when none
	final      Result // the first Confirm or Revert
	decided    bool
}

// New returns a Judge of policy p, which it copies. A nil p means the image
// has no probation: the first Decide confirms.
func New(p *protocol.Probation) *Judge {
	j := new(Judge)
	if p != nil {
		c := *p
		j.p = &c
	}
	return j
}

// Observe records one inference: its latency, and whether it succeeded.
// A negative latency counts as 0.
func (j *Judge) Observe(latency time.Duration, ok bool) {
	j.lat.Record(uint64(max(latency.Microseconds(), 0)))
	j.inferences++
	if !ok {
		j.errors++
	}
}

// Sample records one resource sample: the RAM in use in bytes and the CPU
// in per-mille of one core. A sample over a bound makes the next Decide
// revert.
func (j *Judge) Sample(ramBytes, cpuPermille uint64) {
	j.maxRAM = max(j.maxRAM, ramBytes)
	j.maxCPU = max(j.maxCPU, cpuPermille)
	if j.p == nil || j.breach != "" {
		return
	}
	if b := j.p.MaxRAMBytes; b != nil && ramBytes > *b {
		j.breach = fmt.Sprintf("probation resources: RAM %d bytes over the bound of %d", ramBytes, *b)
	} else if b := j.p.MaxCPUPermille; b != nil && cpuPermille > *b {
		j.breach = fmt.Sprintf("probation resources: CPU %d per-mille over the bound of %d", cpuPermille, *b)
	}
}

// Decide returns the verdict after elapsed time on probation, following the
// rules of the package documentation. Once it returns Confirm or Revert, it
// returns the same Result forever.
func (j *Judge) Decide(elapsed time.Duration) Result {
	if !j.decided {
		j.final = j.decide(max(elapsed, 0))
		j.decided = j.final.Verdict != Continue
	}
	return j.final
}

func (j *Judge) decide(elapsed time.Duration) Result {
	p := j.p
	if p == nil {
		return Result{Verdict: Confirm}
	}
	if j.breach != "" {
		return revert(protocol.ReasonProbationResources, j.breach)
	}
	enough := j.inferences >= p.MinInferences
	switch {
	case enough && reached(elapsed, p.Seconds, 1):
		if r, broken := j.bounds(); broken {
			return r
		}
		return Result{Verdict: Confirm}
	case !enough && reached(elapsed, p.Seconds, 4):
		text := fmt.Sprintf("probation shortfall: %d of %d inferences in %ds",
			j.inferences, p.MinInferences, int64(elapsed/time.Second))
		if p.OnShortfall != protocol.ShortfallConfirm {
			return revert(protocol.ReasonOther, text)
		}
		if r, broken := j.bounds(); broken {
			return r
		}
		return Result{Verdict: Confirm, Text: text + "; confirmed as the policy says"}
	}
	return Result{Verdict: Continue}
}

// bounds judges the error and latency bounds over every inference observed.
func (j *Judge) bounds() (Result, bool) {
	if b := j.p.MaxErrorPermille; b != nil && over(j.errors, *b, j.inferences) {
		return j.errorsRevert(*b), true
	}
	if b := j.p.MaxP99Micros; b != nil {
		if p99 := j.lat.Quantile(0.99); p99 > *b {
			return revert(protocol.ReasonProbationLatency, fmt.Sprintf(
				"probation latency: p99 %dus over %d inferences, over the bound of %dus", p99, j.inferences, *b)), true
		}
	}
	return Result{}, false
}

func (j *Judge) errorsRevert(bound uint64) Result {
	return revert(protocol.ReasonProbationErrors, fmt.Sprintf(
		"probation errors: %d of %d inferences failed, over the bound of %d per-mille", j.errors, j.inferences, bound))
}

func revert(reason protocol.Reason, text string) Result {
	return Result{Verdict: Revert, Reason: reason, Text: text}
}

// over reports whether errors*1000 > permille*n, without overflow.
func over(errors, permille, n uint64) bool {
	eh, el := bits.Mul64(errors, 1000)
	bh, bl := bits.Mul64(permille, n)
	return eh > bh || eh == bh && el > bl
}

// reached reports whether elapsed is at least times*seconds, a deadline
// past the largest Duration never being reached.
func reached(elapsed time.Duration, seconds, times uint64) bool {
	limit := uint64(math.MaxInt64 / int64(time.Second))
	if seconds > limit/times {
		return false
	}
	return elapsed >= time.Duration(seconds*times)*time.Second
}

// Stats returns what the Judge has observed so far.
func (j *Judge) Stats() Stats {
	return Stats{
		Inferences:     j.inferences,
		Errors:         j.errors,
		P99Micros:      j.lat.Quantile(0.99),
		MaxRAMBytes:    j.maxRAM,
		MaxCPUPermille: j.maxCPU,
	}
}
