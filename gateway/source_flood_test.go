package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
	"golang.org/x/sys/unix"

	"edgeota/gateway"
	"edgeota/gateway/gatewaytest"
	"edgeota/protocol"
	"edgeota/test/testutil"
)

// refusedSourceRate is the sample of edgeota_refused_total that counts
// the source gate's drops (and the 4.29 answers of the source rate).
const refusedSourceRate = `edgeota_refused_total{reason="source_rate"}`

// flooder's counters: what it sent, and its OS thread's CPU time, both
// brought up to date every millisecond.
type flooder struct {
	sent, cpu atomic.Int64
}

// flood sends datagram from conn at perSecond datagrams a second until ctx
// ends: every millisecond, the datagrams due at that rate since it began
// (at most 10 ms' worth at once), so the load is bounded whatever the
// machine's speed. It closes started (when not nil) after its first
// burst, and runs on an OS thread of its own.
func (f *flooder) flood(ctx context.Context, conn net.Conn, datagram []byte, perSecond int, started chan<- struct{}) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := threadCPU()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	t0, due := time.Now(), 0
	for {
		// What the rate allows by now, and at most 10 ms of it at once
		// when the thread fell behind.
		target := int(time.Since(t0).Seconds()*float64(perSecond)) + 1
		for due = max(due, target-perSecond/100); due < target; due++ {
			if _, err := conn.Write(datagram); err == nil {
				f.sent.Add(1)
			}
		}
		f.cpu.Store(int64(threadCPU() - start))
		if started != nil {
			close(started)
			started = nil
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func threadCPU() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// dialFrom opens a UDP socket from the local address from to addr.
func dialFrom(tb testing.TB, from, addr string) *net.UDPConn {
	tb.Helper()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(from)}, raddr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// blockRequest returns a confirmable GET of block 0 of path: what a
// flooder that looks like a node sends.
func blockRequest(tb testing.TB, path string) []byte {
	opts, used, _ := message.Options{}.SetPath(make([]byte, 128), path)
	v, _ := blockwise.EncodeBlockOption(blockwise.SZX1024, 0, false)
	buf := make([]byte, 128)
	opts, _, _ = opts.SetUint32(buf[used:], message.Block2, v)
	out := make([]byte, 256)
	n, err := coder.DefaultCoder.Encode(message.Message{Code: codes.GET, Type: message.Confirmable, MessageID: 7, Token: []byte{7},
		Options: opts}, out)
	if err != nil {
		tb.Fatal(err)
	}
	return out[:n]
}

// coreRequest returns a confirmable GET of the resource directory: a
// request every source's request rate counts (4.29 beyond it).
func coreRequest(tb testing.TB) []byte {
	opts, _, _ := message.Options{}.SetPath(make([]byte, 64), protocol.PathCore)
	out := make([]byte, 128)
	n, err := coder.DefaultCoder.Encode(message.Message{Code: codes.GET, Type: message.Confirmable, MessageID: 9, Token: []byte{9},
		Options: opts}, out)
	if err != nil {
		tb.Fatal(err)
	}
	return out[:n]
}

// TestSourceFloodDroppedBeforeDecoding: while 127.0.0.2 floods a port at
// 10,000 datagrams a second (bounded: what is due every millisecond), five
// times its address's drop rate, a node on 127.0.1.1 fetches the whole
// image through that port, every byte, and the gateway counts the
// flooder's excess as refused for source_rate, before and after the
// node's fetch. On plain CoAP the flood is requests for a block; on the
// DTLS port, a replayed ClientHello. The request-rate limits are off, so
// only the source gate counts there: without it (or, on the DTLS port,
// without the gateway's own reader in front of pion) the metric stays at
// 0 and the wait fails.
func TestSourceFloodDroppedBeforeDecoding(t *testing.T) {
	const dropRate, dropBurst, floodRate = 2000, 500, 10_000
	for _, secure := range []bool{false, true} {
		name := "plain"
		if secure {
			name = "dtls"
		}
		t.Run(name, func(t *testing.T) {
			key := []byte("source-flood-node-key")
			e := newEnv(t, opts{keys: map[string][]byte{"node-a": key},
				limits: gateway.Limits{SourceRate: -1, NodeRate: -1, SourceDropRate: dropRate, SourceDropBurst: dropBurst}})
			md := e.model(1, 64<<10)
			if err := e.push(md.signed, md.image); err != nil {
				t.Fatal(err)
			}
			path := protocol.ImagePath(md.m.Digest)
			target, datagram := e.coap, blockRequest(t, path)
			if secure {
				target, datagram = e.coaps, clientHello(t)
			}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Add(1)
			var f flooder
			conn := dialFrom(t, "127.0.0.2", target)
			go func() {
				defer wg.Done()
				f.flood(ctx, conn, datagram, floodRate, nil)
			}()
			t.Cleanup(func() { cancel(); wg.Wait() })
			// The flood is on and dropped before the node starts.
			testutil.Eventually(t, "the flooder's datagrams refused", func() bool { return metricValue(t, e, refusedSourceRate) > 0 })

			var nc net.Conn = dialFrom(t, "127.0.1.1", e.coap)
			if secure {
				dc, err := gatewaytest.DialDTLS(ctxT(t), "127.0.1.1", e.coaps, "node-a", key)
				if err != nil {
					t.Fatalf("the node's handshake during the flood: %v", err)
				}
				t.Cleanup(func() { dc.Close() })
				nc = dc
			}
			c := &blockClient{conn: nc, out: make([]byte, 256), in: make([]byte, 2048), opt: make([]byte, 128)}
			n, err := c.fetchAll(path)
			if err != nil || n != len(md.image) {
				t.Fatalf("the node fetched %d of %d bytes during the flood: %v", n, len(md.image), err)
			}
			// Still refused after the node finished: the flood went on throughout.
			before := metricValue(t, e, refusedSourceRate)
			testutil.Eventually(t, "more of the flooder's datagrams refused", func() bool { return metricValue(t, e, refusedSourceRate) > before })
			cancel()
			wg.Wait()
			t.Logf("flooder sent %d, %v refused", f.sent.Load(), metricValue(t, e, refusedSourceRate))
		})
	}
}

// floodNodes and floodImage are the fetches BenchmarkFloodOthers times:
// each node on its own loopback address, as nodes on a network are.
// floodDropBurst is the source gate's burst there: lowered from its
// default (one second's worth, 20,000) so that a flood reaches the
// gate's steady state within the run's few seconds.
const (
	floodNodes     = 32
	floodImage     = 256 << 10
	floodDropBurst = 2000
)

// BenchmarkFloodOthers measures what a flood from one other address
// (127.0.0.2) does to other nodes' transfers and costs the gateway: 32
// nodes, each on its own loopback address, fetch a 256 KiB image at once
// in lock-step with RFC 7252 retransmission, without a flood and then
// under floods at fixed rates of 10,000 and 50,000 datagrams a second
// (paced in bursts every millisecond), side by side in one run, over plain
// UDP (the flood: requests for the resource directory, which the source
// rate counts: 2,000 a second answered, then 4.29 up to the source gate's
// 20,000 a second, dropped beyond) and over DTLS (the flood: a
// ClientHello replayed from one port). The gateway runs with its default
// limits but for the gate's burst (floodDropBurst). Per flood it reports:
// slowdown-Nk, the nodes' time with it over their time without;
// us/refused-Nk, the gateway's CPU per refused datagram while the nodes
// fetch (the process's CPU less the flooder thread's and less the same
// fetch's CPU without a flood, over the refusals counted in
// edgeota_refused_total{reason="source_rate"}; on DTLS over the datagrams
// sent, which the gate drops or pion's handshake handles); us/flood-dgram-Nk,
// the same CPU over every flood datagram; refused-share-Nk, refusals over
// datagrams sent (below 1 while the source rate still answers some).
func BenchmarkFloodOthers(b *testing.B) {
	rates := []int{10_000, 50_000}
	for _, secure := range []bool{false, true} {
		name := "udp"
		if secure {
			name = "dtls"
		}
		b.Run(name, func(b *testing.B) {
			keys := map[string][]byte{}
			for i := range floodNodes {
				keys[fmt.Sprintf("flood-node-%02d", i)] = []byte(fmt.Sprintf("flood-node-key-%02d", i))
			}
			e := newEnv(b, opts{keys: keys, limits: gateway.Limits{SourceDropBurst: floodDropBurst}})
			md := e.model(1, floodImage)
			if err := e.push(md.signed, md.image); err != nil {
				b.Fatal(err)
			}
			path := protocol.ImagePath(md.m.Digest)
			clients := make([]*blockClient, floodNodes)
			for i := range clients {
				from := fmt.Sprintf("127.0.1.%d", i+1)
				var conn net.Conn
				if secure {
					id := fmt.Sprintf("flood-node-%02d", i)
					dc, err := gatewaytest.DialDTLS(context.Background(), from, e.coaps, id, keys[id])
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { dc.Close() })
					conn = dc
				} else {
					conn = dialFrom(b, from, e.coap)
				}
				clients[i] = &blockClient{conn: conn, out: make([]byte, 256), in: make([]byte, 2048), opt: make([]byte, 128)}
			}
			target, datagram := e.coap, coreRequest(b)
			if secure {
				target, datagram = e.coaps, clientHello(b)
			}
			fetchAll := func() (time.Duration, time.Duration) {
				cpu0, t0 := processCPU(), time.Now()
				var wg sync.WaitGroup
				var failed atomic.Int64
				for _, c := range clients {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if n, err := c.fetchAll(path); err != nil || n != floodImage {
							failed.Add(1)
						}
					}()
				}
				wg.Wait()
				if failed.Load() > 0 {
					b.Fatalf("%d of %d transfers failed", failed.Load(), floodNodes)
				}
				return time.Since(t0), processCPU() - cpu0
			}
			fetchAll() // warm: the image's blocks cached, the sessions' first records
			var base, baseCPU time.Duration
			took := make([]time.Duration, len(rates))
			perRefused, perSent, share := make([]float64, len(rates)), make([]float64, len(rates)), make([]float64, len(rates))
			iters := 0
			b.ResetTimer()
			for b.Loop() {
				iters++
				d, cpu := fetchAll()
				base, baseCPU = base+d, baseCPU+cpu
				for k, rate := range rates {
					ctx, cancel := context.WithCancel(context.Background())
					var f flooder
					done, started := make(chan struct{}), make(chan struct{})
					conn := dialFrom(b, "127.0.0.2", target)
					go func() {
						defer close(done)
						f.flood(ctx, conn, datagram, rate, started)
					}()
					<-started
					if !secure { // refused before the nodes start: the buckets of 127.0.0.2 are empty
						for r := metricValue(b, e, refusedSourceRate); metricValue(b, e, refusedSourceRate) == r; {
							time.Sleep(time.Millisecond) // a benchmark's pacing, not a test's wait
						}
					}
					// The window measured: the nodes' fetch, the flood on.
					refused0, sent0, floodCPU0, cpu0 := metricValue(b, e, refusedSourceRate), f.sent.Load(), f.cpu.Load(), processCPU()
					d, _ := fetchAll()
					refused, sent := metricValue(b, e, refusedSourceRate)-refused0, float64(f.sent.Load()-sent0)
					cpu := processCPU() - cpu0 - time.Duration(f.cpu.Load()-floodCPU0) - baseCPU/time.Duration(iters)
					cancel()
					<-done
					took[k] += d
					if secure {
						refused = sent // pion never sees them: no count but the gate's
					}
					if refused > 0 {
						perRefused[k] += float64(cpu) / 1e3 / refused
					}
					if sent > 0 {
						perSent[k] += float64(cpu) / 1e3 / sent
						share[k] += refused / sent
					}
				}
			}
			for k, rate := range rates {
				b.ReportMetric(float64(took[k])/float64(base), fmt.Sprintf("slowdown-%dk", rate/1000))
				b.ReportMetric(perRefused[k]/float64(iters), fmt.Sprintf("us/refused-%dk", rate/1000))
				b.ReportMetric(perSent[k]/float64(iters), fmt.Sprintf("us/flood-dgram-%dk", rate/1000))
				b.ReportMetric(share[k]/float64(iters), fmt.Sprintf("refused-share-%dk", rate/1000))
			}
			b.ReportMetric(float64(base.Milliseconds())/float64(iters), "ms/fetch-alone")
		})
	}
}

// clientHello returns the first datagram a DTLS PSK client sends: a
// ClientHello a flooder replays.
func clientHello(tb testing.TB) []byte {
	tb.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer pc.Close()
	uc, err := net.DialUDP("udp", nil, pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		tb.Fatal(err)
	}
	dc, err := piondtls.ClientWithOptions(dtlsnet.PacketConnFromConn(uc), uc.RemoteAddr(),
		piondtls.WithPSK(func([]byte) ([]byte, error) { return []byte("flooder-key-0123"), nil }),
		piondtls.WithPSKIdentityHint([]byte("flooder")),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8))
	if err != nil {
		tb.Fatal(err)
	}
	defer dc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.DefaultCeiling)
	defer cancel()
	go dc.HandshakeContext(ctx)
	buf := make([]byte, 2048)
	pc.SetReadDeadline(time.Now().Add(testutil.DefaultCeiling))
	n, _, err := pc.ReadFrom(buf)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		tb.Fatal(err)
	}
	return buf[:n]
}
