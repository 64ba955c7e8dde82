package fleet

import (
	"fmt"
	"testing"

	"edgeota/firmware-sim/scenario"
)

// TestSimMaxPayloads pins the Q-Block2 set size the simulator gives the
// gateway and the nodes on each profile: two round trips' worth of
// blocks, from RFC 9177's 10 to the node agent's most, 32. Sets of 10 on
// the long-link benchmark's links left the link idle a round trip every
// ten blocks (BenchmarkLongLink).
func TestSimMaxPayloads(t *testing.T) {
	for _, tc := range []struct {
		link string
		want int
	}{
		{"{profile: nbiot}", 32},
		{"{profile: nbiot, jitter: 0s, loss: 0.05, bandwidth: 127000}", 32},
		{"{profile: ble}", 32},
		{"{profile: ble, latency: 50ms, jitter: 0s, loss: 0.05}", 28},
		{"{profile: thread}", 21},
		{"{profile: subghz}", 10},
	} {
		sc, err := scenario.Parse(fmt.Appendf(nil, `name: mp
seed: 1
duration: 1m
fleet:
  - count: 1
link: %s
models:
  - {name: v1, version: 1.0.0, size: 4096}
initial: v1
expect:
  - {kind: all-run, model: v1}
`, tc.link))
		if err != nil {
			t.Fatal(err)
		}
		if got := simMaxPayloads(radioLink(sc.Link)); got != tc.want {
			t.Errorf("%s: MAX_PAYLOADS %d, want %d", tc.link, got, tc.want)
		}
	}
}
