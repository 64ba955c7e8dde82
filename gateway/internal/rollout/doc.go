// Package rollout runs a gateway's local canary waves (docs/protocol.md section
// 7): a signed deployment becomes a persisted state machine that assigns its
// manifest to its cohort wave by wave, judges every node by its own Hello,
// health reports and status events, and stops a bad model after the first
// few nodes, pausing or putting every touched node back.
//
// # States
//
// A rollout is pending, then in wave 1..n, then completed; or paused,
// aborted or rolled back. Each node of the cohort is waiting, assigned
// (told to download), in trial, confirmed (soaking), succeeded, failed
// (reverted, refused the update, or breached a gate), timed out, or rolled
// back. Every transition and every per-node decision is saved before it
// takes effect, so a gateway killed at any moment resumes exactly where it
// stood.
//
// # Saving, and the cost of a node event
//
// A rollout is saved as records (records.go): a summary, one record per
// node, one per decision. A call (a node's Hello, health report or status
// event, a tick, an operator's command) changes the rollout in memory and
// stages the records it touched and the assignments it made; a committer
// goroutine writes everything staged in one transaction of the gateway's
// database (group commit: calls that arrive while a transaction is written
// share the next one), the assignments in the same transaction, then
// notifies the assigned nodes' observers and completes the callers'
// [Commit]s. The gateway answers a node once its Commit is durable.
//
// Counts kept on every node change (tally.go) answer the gates and the
// wave rule, and two heaps in wave order give the next nodes to target and
// to assign, so the work of a node event does not grow with the rollout;
// a tick judges only the nodes assigned, on trial or confirmed. The status
// ([StatusView]) counts nodes and never lists them; [Engine.Nodes] pages
// them.
//
// # Waves
//
// Nodes of the cohort (its expression, the manifest's class and component)
// are taken in the stable order of package wave; wave k has taken enough
// nodes when Target(bp_k, N) of the current cohort of N are targeted, so a
// node that says Hello later takes its place by the same rule. At most
// max_concurrent nodes are downloading at once; the others of the wave wait
// their turn. A wave advances when every node it targeted has finished
// (succeeded, failed or timed out), at least one was activated, and every
// gate is green.
//
// # Success and gates
//
// A node succeeds only when its Hello shows the new manifest confirmed in
// the active slot, it sent min_reports health reports since activation,
// and its soak (the wave's bake, counted from its confirmation) passed with
// no gate breached. Per node: error rate, highest p99 (absolute, and
// relative to the highest p99 it reported in the hour before), model
// metrics. A node that reverts, refuses the manifest, breaches a gate or
// does not progress within node_timeout fails; it is assigned back what it
// ran before and is never offered this manifest again by this deployment.
// Over the deployment: max_failed (failed, reverted and timed out) and
// max_boot_loops. A red deployment gate pauses or rolls back as on_failure
// says; rollback assigns each touched node the manifest it ran before (a
// node that still holds it re-activates it without a download), or the
// deployment's rollback manifest, or leaves it paused and reported.
package rollout
