// Package nodeagent is the edgeota node agent: dual-slot, flash-style
// activation of signed ML models that survives a power cut at any flash
// operation, and reverts a misbehaving model by itself.
//
// # Flash layout
//
// A node's flash ([Flash], laid out by [NewLayout]) holds a journal and two
// image slots, A and B. Each slot has a header with the signed manifest of
// its image. The boot state (active slot, pending trial slot, trial boot
// count, per-slot state, epoch floor, highest installed seq, download
// progress, boot count, last state and reason) lives only in the journal:
// records with a sequence number and a CRC, each written twice, in a ring
// of erase blocks whose previous block is never erased before the new
// record is down (package internal/journal). Nothing that matters lives only
// in process memory.
//
// # The update
//
// [Device] is the state machine; [Agent] runs it with a model runtime, a
// clock and a reporter. An update goes:
//
//  1. Begin: verify the manifest's signature against the trust store, then
//     class, component, requires and the anti-rollback rules
//     ([protocol.Admit]); record the target slot as being written (the
//     running slot is never the target) and write its header.
//  2. Write: erase and program the image erase block by erase block, with a
//     progress record every checkpoint; after a power cut the download
//     resumes from the last progress record. Or WriteDelta: rebuild the
//     image from a delta offered with the manifest, reading the running
//     image and writing the inactive slot sequentially, the patcher's
//     checkpoint in each progress record; a delta that fails falls back
//     to the full image (docs/deltas.md, The node).
//  3. Verify: hash the slot; record it verified.
//  4. Activate: record it pending; the next boot runs it on trial.
//  5. Probation: the model runs; the manifest's policy (seconds, minimum
//     inferences, error rate, p99 latency, RAM, CPU, shortfall) is judged
//     over every inference ([Agent.Run], [Agent.Settle]).
//  6. Confirm (the trial slot becomes active, the epoch floor rises, an
//     image below it in the other slot is invalidated) or Revert (the slot
//     is invalidated, the old one boots again).
//
// Each step is written to the journal before it acts, and emits a status
// event ([Transition]).
//
// # Boot
//
// [Device.Boot] is the bootloader's part: it counts the boot; a pending
// slot gets a trial boot, and more than [MaxTrialBoots] of them revert it
// (boot loop); otherwise the active slot runs if its bytes match its signed
// manifest, else the other slot if it is confirmed and not below the epoch
// floor. It never runs an unverified image; with nothing runnable it
// returns [ErrNoRunnable] and the agent waits for a model.
//
// The simulated flash of edgeota/firmware-sim/flash implements [Flash] in
// memory (with power-cut injection) and on a file; the tests cut power at
// every single flash operation of whole updates.
package nodeagent
