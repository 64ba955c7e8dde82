// Package wave orders the nodes of a deployment's cohort and splits them into waves
// (docs/protocol.md section 7, "Wave order", and deployment key 6 "waves").
//
// # Order
//
// Every node of a cohort gets a key that depends only on the deployment id and its
// own node id ([Key]):
//
//	h = first 8 bytes, big-endian, of sha256(deployment id || 0x00 || node id)
//
// Nodes are taken in ascending h ([Order]). The order is stable: a node that joins
// the cohort later takes its place among the others without moving them, and a
// different deployment shuffles the fleet differently, so the same nodes are not
// always the canaries.
//
// # Waves
//
// A deployment lists its waves as cumulative basis points (1 basis point = 0.01 %,
// 10000 = the whole cohort), increasing, the last one 10000. Wave k has taken enough
// nodes when [Target](bp_k, N) = max(1, ceil(bp_k × N / 10000)) nodes of the current
// cohort of N have been targeted. [Plan] gives the nodes of each wave for a cohort
// fixed at one moment; [WaveOf] gives the wave of a single node.
//
// The package is pure: no goroutines, clocks or files. It does not decide when a
// wave advances (bake time, gates); the rollout logic that calls it does.
package wave
