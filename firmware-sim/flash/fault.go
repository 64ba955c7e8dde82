package flash

import (
	"fmt"
	"math/rand/v2"
)

// CutMode says what a power cut leaves of the operation it interrupts.
type CutMode int

const (
	// CutBefore cuts power before the operation changes anything.
	CutBefore CutMode = iota
	// CutMidway cuts power while the operation is under way: a Program leaves
	// a prefix of its units written and one unit partly written, an Erase
	// leaves its blocks an undefined mix of erased, old and half-erased bytes.
	CutMidway
)

// String returns "before" or "midway".
func (m CutMode) String() string {
	switch m {
	case CutBefore:
		return "before"
	case CutMidway:
		return "midway"
	}
	return fmt.Sprintf("CutMode(%d)", int(m))
}

// Ops returns the number of counted operations, Program and Erase calls
// that were not refused, performed so far, including one cut by a power cut.
func (s *Sim) Ops() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ops
}

// CutPowerAt arms a power cut at the n-th counted operation from now on: n
// = 1 cuts the very next one. Refused operations do not count towards n. The
// cut happens once and disarms itself; arming again replaces the previous
// cut, and n = 0 disarms. CutPowerAt panics if mode is not a [CutMode]
// constant.
func (s *Sim) CutPowerAt(n uint64, mode CutMode) {
	if mode != CutBefore && mode != CutMidway {
		panic(fmt.Sprintf("flash: CutPowerAt: invalid %v", mode))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n == 0 {
		s.cutAt = 0
		return
	}
	s.cutAt = s.ops + n
	s.cutMode = mode
}

// Disarm cancels a power cut armed with [Sim.CutPowerAt] that has not
// happened yet.
func (s *Sim) Disarm() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cutAt = 0
}

// PowerOn restores power after a cut, as a reboot would: the contents are
// those the cut left, and operations work again. It does nothing while the
// power is on.
func (s *Sim) PowerOn() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.off = false
}

// FlipBit inverts bit (0 is the least significant) of the byte at off, to
// inject a bit error. It is not a counted operation and works also while the
// power is cut. FlipBit panics if off is outside the device or bit > 7.
func (s *Sim) FlipBit(off int64, bit uint) {
	if bit > 7 {
		panic(fmt.Sprintf("flash: FlipBit: bit %d out of range", bit))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if off < 0 || off >= s.geo.size {
		panic(fmt.Sprintf("flash: FlipBit: offset %#x out of range", off))
	}
	s.data[off] ^= 1 << bit
}

// cutNow is called with s.mu held, after the current operation was counted.
// When it is the armed one, cutNow disarms, turns the power off and reports
// the mode.
func (s *Sim) cutNow() (CutMode, bool) {
	if s.cutAt == 0 || s.ops != s.cutAt {
		return 0, false
	}
	s.cutAt = 0
	s.off = true
	return s.cutMode, true
}

// rand returns the random source for the current operation, a function of
// the seed and the operation number only, so that clones and reruns cut the
// same way.
func (s *Sim) rand() *rand.Rand {
	return rand.New(rand.NewPCG(uint64(s.seed), s.ops))
}

// programMidway leaves dst, erased, as an interrupted Program of p would:
// a random number of whole units written, then one unit with a random subset
// of the bits p clears cleared. It returns the bytes fully written.
func programMidway(dst, p []byte, unit int, r *rand.Rand) int {
	done := r.IntN(len(p)/unit) * unit
	copy(dst[:done], p[:done])
	for i := done; i < done+unit; i++ {
		dst[i] &^= ^p[i] & byte(r.Uint32())
	}
	return done
}

// eraseMidway leaves dst as an interrupted Erase would: each byte erased,
// unchanged, or with a random set of bits set.
func eraseMidway(dst []byte, r *rand.Rand) {
	for i := range dst {
		switch r.IntN(3) {
		case 0:
			dst[i] = erased
		case 1:
			// Not reached by the erase yet.
		case 2:
			dst[i] |= byte(r.Uint32())
		}
	}
}
