package fleet

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"edgeota/firmware-sim/scenario"
)

// socketsPerNode is how many file descriptors a virtual node holds: its
// agent's UDP socket, and its radio relay's listening socket and socket
// towards the gateway.
const socketsPerNode = 3

// fdReserve is the file descriptors a run needs besides its nodes': the
// gateway's sockets and database files, the broker, the admin API and its
// clients, with room to spare.
const fdReserve = 256

// checkDescriptors refuses a fleet whose sockets would not fit the
// process's limit on open files, before the first node starts, instead of
// failing halfway through with "too many open files". Go raises the soft
// limit to the hard one at start; the hard one is the operator's.
func checkDescriptors(nodes int) error {
	limit, ok := openFileLimit()
	need := uint64(nodes*socketsPerNode + fdReserve)
	if ok && limit < need {
		return fmt.Errorf("fleet: %d nodes need about %d file descriptors (%d sockets each), and this process may open %d: "+
			"raise the limit (ulimit -n %d, or LimitNOFILE= under systemd) or run fewer nodes", nodes, need, socketsPerNode, limit, need)
	}
	return nil
}

// usage is a sample of what the process holds.
type usage struct {
	heap       uint64 // Go heap in use after a collection
	rss        int64  // resident set, bytes
	fds        int
	goroutines int
}

// sample collects the garbage and measures the process.
func sample() usage {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	u := usage{heap: ms.HeapInuse, goroutines: runtime.NumGoroutine()}
	u.rss, _ = procStatus("VmRSS")
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		u.fds = len(ents)
	}
	return u
}

// resources is the cost of a run of n nodes: before is sampled before the
// nodes started, after once every node said Hello; cpu0 is the process's
// CPU time at the start.
func resources(n int, before, after usage, cpu0 time.Duration) *scenario.Resources {
	r := &scenario.Resources{CPU: cpuTime() - cpu0, FDs: after.fds, Goroutines: after.goroutines}
	if n > 0 {
		r.HeapPerNode = (int64(after.heap) - int64(before.heap)) / int64(n)
		if before.rss > 0 && after.rss > 0 {
			r.RSSPerNode = (after.rss - before.rss) / int64(n)
		}
	}
	r.PeakRSS, _ = procStatus("VmHWM")
	return r
}

// procStatus reads one "kB" field of /proc/self/status, in bytes.
func procStatus(field string) (int64, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), field+":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		return kb << 10, err == nil
	}
	return 0, false
}
