package probation

import (
	"math"
	"strings"
	"testing"
	"time"

	"edgeota/protocol"
)

func u(v uint64) *uint64 { return &v }

// run feeds j n inferences of latency lat, the first errs of them failed.
func run(j *Judge, n, errs int, lat time.Duration) {
	for i := range n {
		j.Observe(lat, i >= errs)
	}
}

func TestDecide(t *testing.T) {
	const ms = time.Millisecond
	// policy: 60 s, 1000 inferences, at most 20‰ errors, p99 at most
	// 20000 µs, 256 KiB of RAM, 800‰ of CPU.
	policy := func(f ...func(*protocol.Probation)) *protocol.Probation {
		p := &protocol.Probation{
			Seconds: 60, MinInferences: 1000,
			MaxErrorPermille: u(20), MaxP99Micros: u(20000),
			MaxRAMBytes: u(262144), MaxCPUPermille: u(800),
		}
		for _, f := range f {
			f(p)
		}
		return p
	}
	confirmOnShortfall := func(p *protocol.Probation) { p.OnShortfall = protocol.ShortfallConfirm }

	tests := []struct {
		name    string
		policy  *protocol.Probation
		feed    func(j *Judge)
		elapsed time.Duration
		verdict Verdict
		reason  protocol.Reason
		text    string // the exact Text, or a prefix when it ends in "..."
	}{
		{name: "nil policy confirms at once", feed: func(j *Judge) { run(j, 10, 10, time.Hour); j.Sample(1<<40, 5000) }, verdict: Confirm},
		{name: "zero policy confirms at once", policy: &protocol.Probation{}, verdict: Confirm},
		{name: "zero policy with a resource breach", policy: &protocol.Probation{MaxRAMBytes: u(10)}, feed: func(j *Judge) { j.Sample(11, 0) },
			verdict: Revert, reason: protocol.ReasonProbationResources, text: "probation resources: RAM 11 bytes over the bound of 10"},
		{name: "nil bounds are not checked", policy: &protocol.Probation{Seconds: 1, MinInferences: 5},
			feed: func(j *Judge) { run(j, 5, 5, time.Minute); j.Sample(1<<40, 5000) }, elapsed: time.Second, verdict: Confirm},

		// The end of probation.
		{name: "healthy, both reached exactly", policy: policy(), feed: func(j *Judge) { run(j, 1000, 0, 8*ms) }, elapsed: 60 * time.Second, verdict: Confirm},
		{name: "seconds reached, inferences not", policy: policy(), feed: func(j *Judge) { run(j, 999, 0, 8*ms) }, elapsed: 239 * time.Second, verdict: Continue},
		{name: "inferences reached, seconds not", policy: policy(), feed: func(j *Judge) { run(j, 5000, 0, 8*ms) }, elapsed: 60*time.Second - 1, verdict: Continue},
		{name: "seconds past the largest duration", policy: policy(func(p *protocol.Probation) { p.Seconds = math.MaxUint64 }),
			feed: func(j *Judge) { run(j, 5000, 0, 8*ms) }, elapsed: math.MaxInt64, verdict: Continue},
		{name: "negative elapsed is 0", policy: policy(func(p *protocol.Probation) { p.Seconds, p.MinInferences = 0, 0 }), elapsed: -time.Second, verdict: Confirm},

		// Errors.
		{name: "errors exactly at the bound", policy: policy(), feed: func(j *Judge) { run(j, 1000, 20, 8*ms) }, elapsed: time.Minute, verdict: Confirm},
		{name: "errors one over the bound", policy: policy(), feed: func(j *Judge) { run(j, 1000, 21, 8*ms) }, elapsed: time.Minute,
			verdict: Revert, reason: protocol.ReasonProbationErrors, text: "probation errors: 21 of 1000 inferences failed, over the bound of 20 per-mille"},
		{name: "an early error in a small sample does not revert", policy: policy(), feed: func(j *Judge) { run(j, 10, 1, 8*ms) }, elapsed: time.Second, verdict: Continue},
		{name: "early errors that the required inferences can still absorb", policy: policy(), feed: func(j *Judge) { run(j, 100, 20, 8*ms) }, elapsed: time.Second, verdict: Continue},
		{name: "errors over the bound are not judged before the end", policy: policy(), feed: func(j *Judge) { run(j, 100, 21, 8*ms) }, elapsed: time.Second,
			verdict: Continue},
		{name: "past the minimum, errors at the bound so far", policy: policy(), feed: func(j *Judge) { run(j, 2000, 40, 8*ms) }, elapsed: time.Second, verdict: Continue},
		{name: "past the minimum, errors over the bound so far, seconds not reached", policy: policy(), feed: func(j *Judge) { run(j, 2000, 41, 8*ms) }, elapsed: time.Second,
			verdict: Continue},
		{name: "errors over the bound at the end", policy: policy(), feed: func(j *Judge) { run(j, 2000, 41, 8*ms) }, elapsed: time.Minute,
			verdict: Revert, reason: protocol.ReasonProbationErrors, text: "probation errors: 41 of 2000 inferences failed, over the bound of 20 per-mille"},
		{name: "zero error bound: one error reverts at the end", policy: policy(func(p *protocol.Probation) { p.MaxErrorPermille = u(0) }),
			feed: func(j *Judge) { run(j, 1000, 1, 8*ms) }, elapsed: time.Minute, verdict: Revert, reason: protocol.ReasonProbationErrors},
		{name: "error bound of 1000 never reverts", policy: policy(func(p *protocol.Probation) { p.MaxErrorPermille = u(1000) }),
			feed: func(j *Judge) { run(j, 1000, 1000, 8*ms) }, elapsed: time.Minute, verdict: Confirm},

		// Latency.
		{name: "p99 exactly at the bound", policy: policy(), feed: func(j *Judge) { run(j, 1000, 0, 20*ms) }, elapsed: time.Minute, verdict: Confirm},
		{name: "p99 one over the bound", policy: policy(), feed: func(j *Judge) { run(j, 1000, 0, 20001*time.Microsecond) }, elapsed: time.Minute,
			verdict: Revert, reason: protocol.ReasonProbationLatency, text: "probation latency: p99 20001us over 1000 inferences, over the bound of 20000us"},
		{name: "1% slow inferences is within p99", policy: policy(), feed: func(j *Judge) { run(j, 990, 0, 8*ms); run(j, 10, 0, time.Second) }, elapsed: time.Minute, verdict: Confirm},
		{name: "1% and one slow inferences breaks p99", policy: policy(), feed: func(j *Judge) { run(j, 989, 0, 8*ms); run(j, 11, 0, time.Second) }, elapsed: time.Minute,
			verdict: Revert, reason: protocol.ReasonProbationLatency, text: "probation latency: p99 1000000us over 1000 inferences..."},
		{name: "failed inferences count for latency", policy: policy(func(p *protocol.Probation) { p.MaxErrorPermille = nil }),
			feed: func(j *Judge) { run(j, 980, 0, 8*ms); run(j, 20, 20, time.Second) }, elapsed: time.Minute, verdict: Revert, reason: protocol.ReasonProbationLatency},
		{name: "latency is not judged early", policy: policy(), feed: func(j *Judge) { run(j, 5000, 0, time.Second) }, elapsed: 59 * time.Second, verdict: Continue},
		{name: "errors are judged before latency", policy: policy(), feed: func(j *Judge) { run(j, 1000, 21, time.Second) }, elapsed: time.Minute,
			verdict: Revert, reason: protocol.ReasonProbationErrors},

		// Resources, judged at once.
		{name: "RAM exactly at the bound", policy: policy(), feed: func(j *Judge) { j.Sample(262144, 0) }, verdict: Continue},
		{name: "RAM one over the bound", policy: policy(), feed: func(j *Judge) { j.Sample(262145, 0) },
			verdict: Revert, reason: protocol.ReasonProbationResources, text: "probation resources: RAM 262145 bytes over the bound of 262144"},
		{name: "CPU exactly at the bound", policy: policy(), feed: func(j *Judge) { j.Sample(0, 800) }, verdict: Continue},
		{name: "CPU one over the bound", policy: policy(), feed: func(j *Judge) { j.Sample(0, 801) },
			verdict: Revert, reason: protocol.ReasonProbationResources, text: "probation resources: CPU 801 per-mille over the bound of 800"},
		{name: "a breach is remembered", policy: policy(), feed: func(j *Judge) { j.Sample(0, 801); j.Sample(0, 0); run(j, 1000, 0, 8*ms) }, elapsed: time.Minute,
			verdict: Revert, reason: protocol.ReasonProbationResources, text: "probation resources: CPU 801 per-mille over the bound of 800"},
		{name: "the first breach is reported", policy: policy(), feed: func(j *Judge) { j.Sample(0, 900); j.Sample(1<<20, 0) },
			verdict: Revert, reason: protocol.ReasonProbationResources, text: "probation resources: CPU 900 per-mille..."},
		{name: "resources before errors", policy: policy(), feed: func(j *Judge) { run(j, 100, 100, 8*ms); j.Sample(1<<20, 0) },
			verdict: Revert, reason: protocol.ReasonProbationResources},

		// Shortfall.
		{name: "shortfall just before 4 times the seconds", policy: policy(), feed: func(j *Judge) { run(j, 12, 0, 8*ms) }, elapsed: 240*time.Second - 1, verdict: Continue},
		{name: "shortfall reverts", policy: policy(), feed: func(j *Judge) { run(j, 12, 0, 8*ms) }, elapsed: 240 * time.Second,
			verdict: Revert, reason: protocol.ReasonOther, text: "probation shortfall: 12 of 1000 inferences in 240s"},
		{name: "shortfall reverts even when healthy", policy: policy(), elapsed: time.Hour,
			verdict: Revert, reason: protocol.ReasonOther, text: "probation shortfall: 0 of 1000 inferences in 3600s"},
		{name: "shortfall confirms", policy: policy(confirmOnShortfall), feed: func(j *Judge) { run(j, 12, 0, 8*ms) }, elapsed: 240 * time.Second,
			verdict: Confirm, text: "probation shortfall: 12 of 1000 inferences in 240s; confirmed as the policy says"},
		{name: "shortfall confirms without inferences", policy: policy(confirmOnShortfall), elapsed: 240 * time.Second, verdict: Confirm, text: "probation shortfall: 0 of 1000..."},
		{name: "shortfall confirm judges errors", policy: policy(confirmOnShortfall), feed: func(j *Judge) { run(j, 12, 1, 8*ms) }, elapsed: 240 * time.Second,
			verdict: Revert, reason: protocol.ReasonProbationErrors, text: "probation errors: 1 of 12 inferences failed, over the bound of 20 per-mille"},
		{name: "shortfall confirm judges latency", policy: policy(confirmOnShortfall), feed: func(j *Judge) { run(j, 12, 0, 21*ms) }, elapsed: 240 * time.Second,
			verdict: Revert, reason: protocol.ReasonProbationLatency},
		{name: "0 seconds: shortfall at once", policy: policy(func(p *protocol.Probation) { p.Seconds = 0 }), feed: func(j *Judge) { run(j, 10, 0, 8*ms) },
			verdict: Revert, reason: protocol.ReasonOther, text: "probation shortfall: 10 of 1000 inferences in 0s"},
		{name: "0 seconds: confirm at the minimum", policy: policy(func(p *protocol.Probation) { p.Seconds = 0 }), feed: func(j *Judge) { run(j, 1000, 0, 8*ms) }, verdict: Confirm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := New(tt.policy)
			if tt.feed != nil {
				tt.feed(j)
			}
			got := j.Decide(tt.elapsed)
			if got.Verdict != tt.verdict || got.Reason != tt.reason {
				t.Fatalf("Decide = %v %v %q, want %v %v", got.Verdict, got.Reason, got.Text, tt.verdict, tt.reason)
			}
			if prefix, ok := strings.CutSuffix(tt.text, "..."); ok {
				if !strings.HasPrefix(got.Text, prefix) {
					t.Errorf("Text = %q, want prefix %q", got.Text, prefix)
				}
			} else if tt.text != "" && got.Text != tt.text {
				t.Errorf("Text = %q, want %q", got.Text, tt.text)
			}
			if tt.verdict == Revert && got.Text == "" {
				t.Error("a Revert without Text")
			}
			if tt.verdict == Continue && got != (Result{}) {
				t.Errorf("Continue with %v %q", got.Reason, got.Text)
			}
			if len(got.Text) > 256 {
				t.Errorf("Text of %d bytes is over the status event's 256", len(got.Text))
			}
		})
	}
}

func TestVerdictIsFinal(t *testing.T) {
	p := &protocol.Probation{Seconds: 10, MinInferences: 10, MaxErrorPermille: u(100), MaxRAMBytes: u(100)}
	j := New(p)
	run(j, 10, 0, time.Millisecond)
	if got := j.Decide(5 * time.Second); got.Verdict != Continue {
		t.Fatalf("at 5s: %v", got.Verdict)
	}
	want := j.Decide(10 * time.Second)
	if want.Verdict != Confirm {
		t.Fatalf("at 10s: %v", want.Verdict)
	}
	j.Sample(1000, 0)
	run(j, 100, 100, time.Millisecond)
	if got := j.Decide(11 * time.Second); got != want {
		t.Errorf("after Confirm: %+v, want %+v", got, want)
	}

	j = New(p)
	j.Sample(101, 0)
	want = j.Decide(0)
	p.MaxRAMBytes = nil // New copied the policy: changing it changes nothing
	if got := j.Decide(time.Hour); got != want || got.Verdict != Revert {
		t.Errorf("after Revert: %+v, want %+v", got, want)
	}
}

func TestPolicyIsCopied(t *testing.T) {
	p := &protocol.Probation{MaxRAMBytes: u(10)}
	j := New(p)
	p.MaxRAMBytes = nil
	j.Sample(11, 0)
	if got := j.Decide(0); got.Verdict != Revert {
		t.Errorf("Decide = %v, want revert under the policy given to New", got.Verdict)
	}
}

func TestStats(t *testing.T) {
	j := New(nil)
	if got := j.Stats(); got != (Stats{}) {
		t.Errorf("empty: %+v", got)
	}
	run(j, 95, 3, 8*time.Millisecond)
	run(j, 5, 0, 40*time.Millisecond)
	j.Observe(-time.Second, true)
	j.Sample(1000, 500)
	j.Sample(500, 700)
	want := Stats{Inferences: 101, Errors: 3, P99Micros: 40000, MaxRAMBytes: 1000, MaxCPUPermille: 700}
	if got := j.Stats(); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestOver(t *testing.T) {
	for _, tt := range []struct {
		errors, permille, n uint64
		want                bool
	}{
		{0, 0, 0, false},
		{1, 0, 0, true},
		{20, 20, 1000, false},
		{21, 20, 1000, true},
		{math.MaxUint64, 1000, math.MaxUint64, false},
		{math.MaxUint64, 999, math.MaxUint64, true},
		{1, 1000, math.MaxUint64, false},
	} {
		if got := over(tt.errors, tt.permille, tt.n); got != tt.want {
			t.Errorf("over(%d, %d, %d) = %v, want %v", tt.errors, tt.permille, tt.n, got, tt.want)
		}
	}
}

func TestVerdictString(t *testing.T) {
	for v, want := range map[Verdict]string{Continue: "continue", Confirm: "confirm", Revert: "revert", 7: "Verdict(7)"} {
		if got := v.String(); got != want {
			t.Errorf("%d: %q, want %q", int(v), got, want)
		}
	}
}

func BenchmarkObserve(b *testing.B) {
	j := New(&protocol.Probation{Seconds: 60, MinInferences: 1000, MaxP99Micros: u(20000)})
	b.ReportAllocs()
	for b.Loop() {
		j.Observe(8*time.Millisecond, true)
	}
}
