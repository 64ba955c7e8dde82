package scenario_test

import (
	"fmt"
	"os"
	"time"

	"edgeota/firmware-sim/scenario"
)

func Example() {
	s, err := scenario.Parse([]byte(`name: canary
duration: 10m
time_scale: 60
fleet:
  - {count: 2, labels: {hw: rev2}}
models:
  - {name: v1, version: 1.0.0}
  - {name: v2, version: 2.0.0}
initial: v1
deployments:
  - {id: to-v2, at: 1m, model: v2, cohort: "hw:rev2", waves: [{percent: 50, bake: 1m}, {percent: 100}]}
faults:
  - {at: 2m, kind: power-cut, nodes: 50%}
expect:
  - {kind: all-run, cohort: "hw:rev2", model: v2}
  - {kind: rollout, deployment: to-v2, phase: completed}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	// What the fleet simulator would report after running s.
	r := &scenario.Result{
		Seed: 7, SimElapsed: 4 * time.Minute, RealElapsed: 4 * time.Second, Finished: true,
		Nodes: []scenario.NodeResult{
			{ID: "node-0", Labels: map[string]string{"hw": "rev2"}, Model: "v2", State: "confirmed"},
			{ID: "node-1", Labels: map[string]string{"hw": "rev2"}, Model: "v1", State: "confirmed", PowerCuts: 1},
		},
		Rollouts: []scenario.RolloutResult{
			{ID: "to-v2", Model: "v2", Phase: "paused", MaxWave: 1, Touched: 2, Succeeded: 1, Failed: 1},
		},
	}
	outs := scenario.Evaluate(s, r)
	scenario.WriteSummary(os.Stdout, s, r, outs)
	fmt.Println("passed:", scenario.Passed(outs))
	// Output:
	// scenario  canary
	// seed      7 (replay with --seed 7)
	// time      4m0s simulated in 4s real (time scale 60), all deployments ended
	// nodes     2
	//
	// model  version  nodes  confirmed  trial
	// v1     1.0.0    1      1          0
	// v2     2.0.0    1      1          0
	//
	// rollout  model  phase   max wave  touched  succeeded  failed  time
	// to-v2    v2     paused  1 of 2    2        1          1       -
	//
	// health    0 accepted, 0 delivered, 0 duplicates
	//
	// FAIL every hw:rev2 node runs v2 (2.0.0) — 1 of 2 hw:rev2 nodes run v2; node-1 runs v1 (confirmed)
	// FAIL rollout to-v2 completed — rollout to-v2 paused at wave 1 of 2, 2 touched, 1 succeeded, 1 failed; want phase completed
	//
	// 0 of 2 expectations passed
	// passed: false
}
