package coapd

import "testing"

// TestFastPolicy walks the reader's choice between the fast wait and the
// poller through hits, misses and load.
func TestFastPolicy(t *testing.T) {
	type step struct {
		loaded bool
		want   bool // fast wait allowed
		got    bool // what the fast wait found, when it ran
	}
	hit := step{want: true, got: true}
	miss := step{want: true}
	poll := step{want: false}
	streak := make([]step, fastYieldEvery)
	for i := range streak {
		streak[i] = hit
	}
	tests := []struct {
		name  string
		wait  bool
		steps []step
	}{
		{"off", false, []step{poll, poll}},
		{"hits stay fast", true, []step{hit, hit, hit}},
		{"a yield to the poller every fastYieldEvery hits", true, append(append([]step{}, streak...), poll, hit)},
		{"load parks in the poller", true, []step{hit, {loaded: true, want: false}, hit}},
		{"misses back off, doubling", true, []step{miss, poll, miss, poll, poll, miss, poll, poll, poll, poll, miss}},
		{"a hit resets the back-off", true, []step{miss, poll, miss, poll, poll, hit, miss, poll, hit}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := fastPolicy{backoff: 1}
			if tc.wait {
				p.wait = defaultFastWait
			}
			for i, st := range tc.steps {
				if got := p.next(st.loaded); got != st.want {
					t.Fatalf("step %d: fast wait %v, want %v (%+v)", i, got, st.want, p)
				}
				if st.want {
					p.done(st.got)
				}
			}
		})
	}
}

// TestFastPolicyBackoffBound: fruitless fast waits cost at most one per
// maxFastBackoff reads once the back-off is full.
func TestFastPolicyBackoffBound(t *testing.T) {
	p := fastPolicy{wait: defaultFastWait, backoff: 1}
	waits := 0
	const reads = 100 * maxFastBackoff
	for i := 0; i < reads; i++ {
		if p.next(false) {
			waits++
			p.done(false)
		}
	}
	// 1+2+...+1024 reads pass in the first 11 waits, then one per 1025.
	if max := 11 + reads/maxFastBackoff; waits > max {
		t.Fatalf("%d fruitless fast waits in %d reads, want at most %d", waits, reads, max)
	}
}
