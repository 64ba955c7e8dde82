package test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"edgeota/test/coapload"
	"edgeota/test/testutil"
)

// BenchmarkFanoutVsLibcoap is issue 14's fan-out rows, side by side in one
// run: 64 and 500 nodes each fetching a 256 KiB image at once, lock-step
// Block2 with retransmission (test/coapload), from the edgeota gateway
// and from libcoap's coap-server-notls, each a process of its own started
// the same way (neither pinned: both may use both cores). Reported per
// run: blocks/s, requests retransmitted (datagrams the server dropped or
// answered after the timeout) and the server's CPU per block (its user
// plus system time from /proc, at 10 ms resolution).
func BenchmarkFanoutVsLibcoap(b *testing.B) {
	server, err := exec.LookPath("coap-server-notls")
	if err != nil {
		b.Skip("coap-server-notls not found (libcoap3-bin)")
	}
	client, err := exec.LookPath("coap-client-notls")
	if err != nil {
		b.Skip("coap-client-notls not found (libcoap3-bin)")
	}
	const size = 256 << 10
	dir := b.TempDir()
	mustRun(b, dir, "keygen", "--out", "op")
	img := filepath.Join(dir, "m.bin")
	writeModelB(b, img, size)
	mustRun(b, dir, "sign", "--key", "op.key", "--image", img, "--component", "kws", "--version", "1",
		"--seq", "1", "--class", class, "--out", img+".cose")

	// The gateway, with the request-rate limits off: 500 nodes share one
	// loopback address here, where a fleet has one address each.
	coapPort, adminPort := testutil.FreePort(b, "udp"), testutil.FreePort(b, "tcp")
	gw := exec.Command(edgeota(b), "gateway", "--data", "gw", "--trust", "op.pub", "--insecure-udp", "--coaps", "-",
		"--coap", fmt.Sprintf("127.0.0.1:%d", coapPort), "--admin", fmt.Sprintf("127.0.0.1:%d", adminPort),
		"--rate-source", "-1", "--rate-node", "-1", "--max-transfers", "1024", "--log-level", "error")
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
	out := mustRun(b, dir, "model", "push", "--admin", admin, "--manifest", img+".cose", "--image", img, "--json")
	i := bytes.Index([]byte(out), []byte(`"digest": "`))
	if i < 0 {
		b.Fatalf("model push printed no digest: %s", out)
	}
	gwPath := "/m/" + out[i+11:i+11+64]

	// libcoap's server, with the image PUT once.
	lport := testutil.FreePort(b, "udp")
	ls := exec.Command(server, "-d", "10", "-A", "127.0.0.1", "-p", strconv.Itoa(lport), "-v", "0")
	if err := ls.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { ls.Process.Kill(); ls.Wait() }()
	libcoapHold(b, client, img, fmt.Sprintf("coap://127.0.0.1:%d/m", lport))

	servers := []struct {
		name string
		pid  int
		port int
		path string
	}{
		{"edgeota", gw.Process.Pid, coapPort, gwPath},
		{"libcoap", ls.Process.Pid, lport, "/m"},
	}
	// Each sub-benchmark runs both servers, alternately, and reports
	// both sides and the ratio of their times (edgeota's over libcoap's:
	// below 1 is edgeota ahead).
	for _, nodes := range []int{64, 500} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			var res [2]coapload.Result
			var cpu [2]time.Duration
			for n := 0; n < b.N; n++ {
				for k, s := range servers {
					addr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: s.port}
					before, err := coapload.CPUTime(s.pid)
					if err != nil {
						b.Fatal(err)
					}
					r, err := coapload.Run(context.Background(), addr, coapload.Config{Nodes: nodes, Path: s.path, Size: size})
					if err != nil {
						b.Fatalf("%s: %v", s.name, err)
					}
					after, err := coapload.CPUTime(s.pid)
					if err != nil {
						b.Fatal(err)
					}
					cpu[k] += after - before
					res[k].Elapsed += r.Elapsed
					res[k].Blocks += r.Blocks
					res[k].Retransmits += r.Retransmits
				}
			}
			for k, s := range servers {
				b.ReportMetric(res[k].BlocksPerSecond(), s.name+"-blocks/s")
				b.ReportMetric(float64(res[k].Retransmits)/float64(b.N), s.name+"-retransmits/op")
				b.ReportMetric(float64(cpu[k].Microseconds())/float64(res[k].Blocks), s.name+"-server-us/block")
			}
			b.ReportMetric(res[0].Elapsed.Seconds()/res[1].Elapsed.Seconds(), "time-ratio")
		})
	}
}

// libcoapHold PUTs an image to libcoap's coap-server at url until a GET
// reads it back whole: libcoap has no readiness signal, and coap-client
// exits 0 after a PUT whose first datagrams met no socket yet.
func libcoapHold(b *testing.B, client, img, url string) {
	b.Helper()
	want, err := os.ReadFile(img)
	if err != nil {
		b.Fatal(err)
	}
	back := img + ".back"
	testutil.Eventually(b, "libcoap's server to hold "+filepath.Base(img), func() bool {
		if exec.Command(client, "-m", "put", "-b", "1024", "-B", "2", "-f", img, url).Run() != nil {
			return false
		}
		os.Remove(back)
		if exec.Command(client, "-m", "get", "-b", "1024", "-B", "2", "-o", back, url).Run() != nil {
			return false
		}
		got, err := os.ReadFile(back)
		return err == nil && bytes.Equal(got, want)
	}, testutil.Every(100*time.Millisecond))
}
