//go:build !linux

package flash

import "os"

// datasync flushes f to stable storage; outside Linux this is a full fsync.
func datasync(f *os.File) error {
	return f.Sync()
}
