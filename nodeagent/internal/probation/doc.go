// Package probation judges a model image on probation after its activation
// (docs/protocol.md section 3, probation map): it says when to confirm the image
// and when to revert it, and why.
//
// The package is pure logic, with no clocks or goroutines: the node agent
// feeds a [Judge] each inference ([Judge.Observe]) and each resource sample
// ([Judge.Sample]), and asks for a [Result] with the time elapsed since
// activation ([Judge.Decide]).
//
// # Rules
//
// Probation ends when both its seconds and its minimum inferences are
// reached. A nil bound is not checked; a value exactly at a bound passes and
// one over it fails.
//
//   - Resources: a sample whose RAM is over MaxRAMBytes or whose CPU is over
//     MaxCPUPermille reverts at the next Decide, whenever it happens, with
//     [protocol.ReasonProbationResources].
//   - Errors: judged over every inference observed once probation ends;
//     errors*1000 > MaxErrorPermille*inferences reverts with
//     [protocol.ReasonProbationErrors]. Nothing is judged early: how many
//     inferences the probation will see is only known at its end (its
//     seconds may bring more than the minimum), and the contract judges the
//     bound over all of them.
//   - Latency: the p99 of every inference observed, failed ones included,
//     is judged once probation ends; a p99 over MaxP99Micros reverts with
//     [protocol.ReasonProbationLatency]. The p99 comes from a fixed-memory
//     histogram that rounds up by at most 6.25%, never down (see package
//     edgeota/nodeagent/internal/latency): a p99 at most 6.25% under the
//     bound may be judged over it.
//   - Shortfall: when 4 times the seconds have elapsed and the inferences
//     are still under MinInferences, OnShortfall decides. Revert reverts
//     with [protocol.ReasonOther] and a text such as "probation shortfall:
//     12 of 1000 inferences in 2400s". Confirm judges the error and latency
//     bounds over the inferences observed, then confirms with reason 0 and
//     a text explaining the shortfall. With 0 seconds and a positive
//     MinInferences, the shortfall deadline is 0: the first Decide before
//     MinInferences are reached applies OnShortfall.
//
// A nil policy confirms at the first Decide. A policy of 0 seconds and 0
// minimum inferences confirms at the first Decide unless a resource sample
// broke a bound. The first Confirm or Revert is final: every later Decide
// returns it, whatever is observed after.
package probation
