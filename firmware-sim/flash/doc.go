// Package flash simulates NOR flash for the node agent and its tests.
//
// It provides two devices with the same geometry rules and the same method
// set: [Sim], held in memory and able to cut power at any operation, and
// [File], backed by a regular file so that its contents outlive the process.
// Both satisfy the Flash interface that package nodeagent declares; this
// package declares no interface of its own, because the consumer owns it.
//
// # Geometry
//
// A device has a size, an erase-block size ([WithEraseSize], 4096 bytes by
// default) and a write unit ([WithWriteSize], 8 bytes by default). The write
// unit is a power of two that divides the erase-block size, and the size is a
// positive multiple of the erase-block size. [New] and [OpenFile] refuse any
// other geometry with [ErrGeometry].
//
// # Programming and erasing
//
// Erased flash reads as 0xFF, and a new device starts erased. [Sim.Erase] sets
// whole erase blocks back to 0xFF. [Sim.Program] writes whole write units, and
// only to units that are fully erased: like MCUboot's simulator, and unlike
// bare NOR, it refuses to program a unit again before it has been erased, even
// when the new value would only clear bits. The check is on contents: a unit
// is erased when all of its bytes read 0xFF. So, unlike in MCUboot's
// simulator, which remembers every write, a unit that was programmed with
// 0xFF, or that a power cut left reading 0xFF, can be programmed again.
//
// An operation is refused, changing nothing and counting nothing, when it is
// misaligned ([ErrAlignment]), outside the device ([ErrRange]) or when it would
// program a unit that is not erased ([ErrNotErased]). Every other Program or
// Erase call is one counted operation, whatever its length: [Sim.Ops] counts
// them, and it is the clock that power cuts are scheduled against. Reading is
// never counted. A zero-length Program or Erase at a valid offset does nothing
// and is not counted.
//
// # Power cuts
//
// [Sim.CutPowerAt] arms one power cut at the n-th counted operation from now
// on, n = 1 being the very next one. What the cut operation leaves behind
// depends on the [CutMode]:
//
//   - [CutBefore]: the operation does not happen at all.
//   - [CutMidway] on Program: a prefix of the write units, possibly empty, is
//     fully programmed; the next unit is partly programmed, which means that a
//     random subset of the bits the new value clears are cleared and every
//     other bit is still 1; the units after it are still erased. The partial
//     unit may be any unit of the write, the first or the last included, and
//     by chance it can read as erased or as the intended value.
//   - [CutMidway] on Erase: every block in the range is left in an undefined
//     state. Each byte independently is either erased (0xFF), unchanged, or
//     its old value with a random set of bits set to 1. No bit is cleared by an
//     interrupted erase.
//
// The cut operation returns [ErrPowerCut], and the device is then off: every
// Program, Erase and ReadAt returns [ErrPowerCut] until [Sim.PowerOn], which
// stands for the reboot. Contents persist across the cut. The cut counts as
// an operation, so Ops includes it.
//
// The random choices come from the seed given with [WithSeed] (0 by default)
// and the number of the cut operation, and from nothing else: the same seed,
// the same operations and the same cut give the same contents, in a [Sim] and
// in every [Sim.Clone] of it. An exhaustive sweep clones a prepared device,
// cuts power at operation 1, 2, 3, ... of the scenario, reboots, and checks
// that recovery leaves a consistent state each time. [Sim.FlipBit] injects a
// single bit error outside this schedule.
//
// # File-backed flash
//
// [File] keeps the contents in a file of exactly the device size. Program
// reads the target units back with pread, checks that they are erased and
// writes with pwrite; Erase writes 0xFF. By default nothing is flushed, so the
// contents survive the process being killed (they sit in the page cache) but
// not necessarily a crash of the host; [WithSync] flushes after every
// operation. A File cannot cut its own power: kill the process instead. Its
// erase counters live in memory and restart at zero when the file is opened.
//
// # Concurrency
//
// Both devices are safe for concurrent use. Each operation holds the device's
// lock for its whole duration, so operations are atomic with respect to each
// other.
package flash
