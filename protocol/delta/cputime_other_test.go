//go:build !unix

package delta

import "time"

// cpuTime is not measured here: it returns zero.
func cpuTime() time.Duration { return 0 }
