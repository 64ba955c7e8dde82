//go:build !unix

package fleet

import "time"

// cpuTime is zero where the platform does not say.
func cpuTime() time.Duration { return 0 }

// openFileLimit is unknown where the platform does not say.
func openFileLimit() (uint64, bool) { return 0, false }
