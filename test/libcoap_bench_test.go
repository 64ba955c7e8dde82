package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"edgeota/test/coapload"
	"edgeota/test/testutil"
)

// pinned runs a command on vCPU 0 when taskset is there, so that client
// and server compare like with like (on this VM a lock-step exchange
// across vCPUs is 4-6 times slower than on one).
func pinned(name string, args ...string) *exec.Cmd {
	if ts, err := exec.LookPath("taskset"); err == nil {
		return exec.Command(ts, append([]string{"-c", "0", name}, args...)...)
	}
	return exec.Command(name, args...)
}

// BenchmarkLibcoapClient fetches 1 MiB and 4 MiB images with libcoap's
// coap-client-notls -b 1024, from the edgeota gateway and, side by side in
// the same run, from libcoap's own coap-server (-d, the image PUT once),
// client and servers pinned to the same vCPU. ns/op is one whole fetch,
// process start included (about 1-2 ms, the same for both).
//
// Each line also reports server-us/block: the CPU time the server process
// used during the fetches (all its threads, user and system), per 1 KiB
// block served. The libcoap line of each size adds the gateway's figures
// over libcoap's from the same run: time-ratio (ns/op) and cpu-ratio
// (server-us/block); at most 1 is the goal (issue 14).
func BenchmarkLibcoapClient(b *testing.B) {
	client, err := exec.LookPath("coap-client-notls")
	if err != nil {
		b.Skip("coap-client-notls not found (libcoap3-bin)")
	}
	server, err := exec.LookPath("coap-server-notls")
	if err != nil {
		b.Skip("coap-server-notls not found (libcoap3-bin)")
	}
	dir := b.TempDir()
	mustRun(b, dir, "keygen", "--out", "op")
	sizes := []int{1 << 20, 4 << 20}
	digests := map[int]string{}
	for _, size := range sizes {
		img := filepath.Join(dir, fmt.Sprintf("m%d.bin", size))
		writeModelB(b, img, size)
		mustRun(b, dir, "sign", "--key", "op.key", "--image", img, "--component", "kws", "--version", "1",
			"--seq", strconv.Itoa(size), "--class", class, "--out", img+".cose")
	}
	// The edgeota gateway, pinned.
	coapPort, adminPort := testutil.FreePort(b, "udp"), testutil.FreePort(b, "tcp")
	gw := pinned(edgeota(b), "gateway", "--data", "gw", "--trust", "op.pub", "--insecure-udp", "--coaps", "-", "--coap", fmt.Sprintf("127.0.0.1:%d", coapPort),
		"--admin", fmt.Sprintf("127.0.0.1:%d", adminPort), "--log-level", "error")
	gw.Dir = dir
	if err := gw.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { gw.Process.Kill(); gw.Wait() }()
	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	testutil.Eventually(b, "the gateway's admin API", func() bool {
		_, _, code := run(b, dir, "model", "list", "--admin", admin)
		return code == 0
	}, testutil.Every(50*time.Millisecond))
	for _, size := range sizes {
		img := filepath.Join(dir, fmt.Sprintf("m%d.bin", size))
		out := mustRun(b, dir, "model", "push", "--admin", admin, "--manifest", img+".cose", "--image", img, "--json")
		i := bytes.Index([]byte(out), []byte(`"digest": "`))
		digests[size] = out[i+11 : i+11+64]
	}
	// libcoap's server, pinned, with each image PUT once.
	lport := testutil.FreePort(b, "udp")
	ls := pinned(server, "-d", "10", "-A", "127.0.0.1", "-p", strconv.Itoa(lport), "-v", "0")
	if err := ls.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { ls.Process.Kill(); ls.Wait() }()
	for _, size := range sizes {
		img := filepath.Join(dir, fmt.Sprintf("m%d.bin", size))
		libcoapHold(b, client, img, fmt.Sprintf("coap://127.0.0.1:%d/m%d", lport, size))
	}
	// fetch runs b.N fetches and returns the time per fetch and the server's
	// CPU time per block.
	fetch := func(b *testing.B, pid int, url string, size int) (perFetch, perBlock float64) {
		out := filepath.Join(dir, "out.bin")
		cpu0 := processCPU(b, pid)
		start := time.Now()
		for i := 0; i < b.N; i++ {
			os.Remove(out)
			cmd := pinned(client, "-m", "get", "-b", "1024", "-o", out, url)
			if res, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v %s", err, res)
			}
			if st, err := os.Stat(out); err != nil || st.Size() != int64(size) {
				b.Fatalf("fetched %v bytes, want %d", st, size)
			}
		}
		el := time.Since(start)
		blocks := float64(b.N * size / 1024)
		perBlock = float64(processCPU(b, pid)-cpu0) / 1e3 / blocks
		b.SetBytes(int64(size))
		b.ReportMetric(perBlock, "server-us/block")
		return float64(el) / float64(b.N), perBlock
	}
	for _, size := range sizes {
		name := fmt.Sprintf("%dMiB", size>>20)
		var gwFetch, gwBlock float64
		b.Run("server=edgeota/size="+name, func(b *testing.B) {
			gwFetch, gwBlock = fetch(b, gw.Process.Pid, fmt.Sprintf("coap://127.0.0.1:%d/m/%s", coapPort, digests[size]), size)
		})
		b.Run("server=libcoap/size="+name, func(b *testing.B) {
			lcFetch, lcBlock := fetch(b, ls.Process.Pid, fmt.Sprintf("coap://127.0.0.1:%d/m%d", lport, size), size)
			if gwFetch > 0 && lcFetch > 0 && lcBlock > 0 {
				b.ReportMetric(gwFetch/lcFetch, "time-ratio")
				b.ReportMetric(gwBlock/lcBlock, "cpu-ratio")
			}
		})
	}
}

// processCPU returns the CPU time a process has used, in nanoseconds:
// the sum over its threads of the time on CPU the scheduler counts
// (/proc/PID/task/TID/schedstat, nanosecond resolution), or, where the
// kernel has no schedstat, utime+stime of /proc/PID/stat (clock ticks of
// 10 ms, too coarse for one fetch). taskset execs the server, so the pid
// is the server's.
// processCPU is the CPU time a server process has used so far, in
// nanoseconds.
func processCPU(tb testing.TB, pid int) int64 {
	d, err := coapload.CPUTime(pid)
	if err != nil {
		tb.Fatalf("server CPU time: %v", err)
	}
	return int64(d)
}

func writeModelB(b *testing.B, path string, size int) {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + i>>8)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
}
