package flash

import "errors"

// ErrGeometry reports a geometry that is not allowed, such as a size that is
// not a multiple of the erase-block size, or a file whose size does not match
// the device size asked for.
var ErrGeometry = errors.New("bad flash geometry")

// ErrAlignment reports a Program or Erase whose offset or length is not a
// multiple of the write unit or erase block. The operation was refused and
// changed nothing.
var ErrAlignment = errors.New("misaligned")

// ErrRange reports an operation that reaches outside the device. A refused
// Program or Erase changed nothing.
var ErrRange = errors.New("out of range")

// ErrNotErased reports a Program over a write unit that is not fully erased.
// The operation was refused and changed nothing; the error names the offset
// of the first such unit.
var ErrNotErased = errors.New("write unit not erased")

// ErrPowerCut is returned by the operation at which a power cut was armed
// with [Sim.CutPowerAt], and by every operation after it until
// [Sim.PowerOn].
var ErrPowerCut = errors.New("power cut")

// ErrReadOnly is returned by Program and Erase on a [File] opened with
// [OpenFileReadOnly].
var ErrReadOnly = errors.New("read-only flash")
