package probation_test

import (
	"fmt"
	"time"

	"edgeota/nodeagent/internal/probation"
	"edgeota/protocol"
)

func Example() {
	bound := func(v uint64) *uint64 { return &v }
	policy := &protocol.Probation{
		Seconds:          600,
		MinInferences:    1000,
		MaxErrorPermille: bound(20),
		MaxP99Micros:     bound(80000),
		MaxRAMBytes:      bound(256 << 10),
	}

	// A healthy model: 1200 inferences in 600 s, 0.5% failed.
	j := probation.New(policy)
	for i := range 1200 {
		j.Observe(9*time.Millisecond, i%200 != 0)
		if i%100 == 0 {
			j.Sample(180000, 300)
		}
	}
	fmt.Println(j.Decide(599 * time.Second).Verdict)
	fmt.Println(j.Decide(600 * time.Second).Verdict)

	// A model that needs too much RAM reverts at once.
	j = probation.New(policy)
	j.Sample(300000, 300)
	r := j.Decide(time.Second)
	fmt.Printf("%v, code %d (%v): %s\n", r.Verdict, r.Reason, r.Reason, r.Text)

	// Too few inferences within 4 times the seconds reverts by default.
	j = probation.New(policy)
	j.Observe(9*time.Millisecond, true)
	r = j.Decide(40 * time.Minute)
	fmt.Printf("%v, code %d (%v): %s\n", r.Verdict, r.Reason, r.Reason, r.Text)
	// Output:
	// continue
	// confirm
	// revert, code 10 (probation resources): probation resources: RAM 300000 bytes over the bound of 262144
	// revert, code 14 (other): probation shortfall: 1 of 1000 inferences in 2400s
}
