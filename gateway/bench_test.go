package gateway_test

import (
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"edgeota/gateway"
	"edgeota/protocol"
)

// blockClient is a node's per-block request loop on a raw UDP socket with
// go-coap's codec: lock-step CON requests, retransmitted after a timeout.
type blockClient struct {
	conn net.Conn // a UDP socket, or a DTLS session
	out  []byte
	in   []byte
	opt  []byte
	mid  uint16
}

func newBlockClient(tb testing.TB, server *net.UDPAddr) *blockClient {
	c, err := net.DialUDP("udp", nil, server)
	if err != nil {
		tb.Fatal(err)
	}
	return &blockClient{conn: c, out: make([]byte, 256), in: make([]byte, 2048), opt: make([]byte, 128)}
}

// get fetches block n of path and returns its payload length and whether
// more blocks follow.
func (c *blockClient) get(path string, n int64) (int, bool, error) {
	c.mid++
	opts, used, _ := message.Options{}.SetPath(c.opt, path)
	v, _ := blockwise.EncodeBlockOption(blockwise.SZX1024, n, false)
	opts, _, _ = opts.SetUint32(c.opt[used:], message.Block2, v)
	m := message.Message{Code: codes.GET, Type: message.Confirmable, MessageID: int32(c.mid), Token: []byte{byte(c.mid)}, Options: opts}
	k, err := coder.DefaultCoder.Encode(m, c.out)
	if err != nil {
		return 0, false, err
	}
	for try := 0; try < 8; try++ {
		if _, err := c.conn.Write(c.out[:k]); err != nil {
			return 0, false, err
		}
		c.conn.SetReadDeadline(time.Now().Add(time.Second << try))
		r, err := c.conn.Read(c.in)
		if err != nil {
			continue
		}
		resp := message.Message{Options: make(message.Options, 0, 8)}
		if _, err := coder.DefaultCoder.Decode(c.in[:r], &resp); err != nil || resp.MessageID != int32(c.mid) {
			continue
		}
		if resp.Code != codes.Content {
			return 0, false, fmt.Errorf("block %d: %v", n, resp.Code)
		}
		bv, _ := resp.Options.GetUint32(message.Block2)
		_, _, more, _ := blockwise.DecodeBlockOption(bv)
		return len(resp.Payload), more, nil
	}
	return 0, false, fmt.Errorf("block %d: no answer", n)
}

func (c *blockClient) fetchAll(path string) (int, error) {
	total := 0
	for n := int64(0); ; n++ {
		k, more, err := c.get(path, n)
		if err != nil {
			return total, err
		}
		total += k
		if !more {
			return total, nil
		}
	}
}

func benchGateway(b *testing.B, size int) (*env, model, *net.UDPAddr) {
	// One loopback address stands for a fleet here (BenchmarkServeBlock1K
	// starts a new transfer every 256 blocks, tens of thousands a second),
	// so the request-rate limits are raised as for the uplink benchmark
	// (benchRate): the limiter stays in the path and never refuses.
	e := newEnv(b, opts{maxTransfers: 1024, limits: gateway.Limits{SourceRate: benchRate, NodeRate: benchRate}})
	md := e.model(1, size)
	if err := e.push(md.signed, md.image); err != nil {
		b.Fatalf("push: %v", err)
	}
	addr, _ := net.ResolveUDPAddr("udp", e.coap)
	return e, md, addr
}

// fanout runs clients concurrent per-block loops, each fetching the whole
// image, and reports aggregate goodput.
func fanout(b *testing.B, addr *net.UDPAddr, path string, clients, want int) {
	cs := make([]*blockClient, clients)
	for i := range cs {
		cs[i] = newBlockClient(b, addr)
		defer cs[i].conn.Close()
	}
	var bytesDone atomic.Int64
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		var wg sync.WaitGroup
		var failed atomic.Int64
		for _, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := c.fetchAll(path)
				if err != nil || n != want {
					failed.Add(1)
				}
				bytesDone.Add(int64(n))
			}()
		}
		wg.Wait()
		if failed.Load() > 0 {
			b.Fatalf("%d of %d transfers failed", failed.Load(), clients)
		}
	}
	el := time.Since(start).Seconds()
	b.ReportMetric(float64(bytesDone.Load())/el/1e6, "MB/s")
	b.ReportMetric(float64(bytesDone.Load())/1024/el, "blocks/s")
}

// BenchmarkFanout500x256K: 500 nodes at once, each fetching a 256 KiB
// image block by block from one gateway.
func BenchmarkFanout500x256K(b *testing.B) {
	_, md, addr := benchGateway(b, 256<<10)
	fanout(b, addr, protocol.ImagePath(md.m.Digest), 500, 256<<10)
}

// BenchmarkRawUDPFanout500 is the anchor: the same 500 lock-step loops
// against a raw UDP server that answers each request with 1024 bytes and
// nothing else.
func BenchmarkRawUDPFanout500(b *testing.B) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadBuffer(4 << 20)
	conn.SetWriteBuffer(4 << 20)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		go func() {
			in := make([]byte, 2048)
			out := make([]byte, 2048)
			for {
				n, from, err := conn.ReadFromUDPAddrPort(in)
				if err != nil {
					return
				}
				m := message.Message{Options: make(message.Options, 0, 8)}
				if _, err := coder.DefaultCoder.Decode(in[:n], &m); err != nil {
					continue
				}
				bv, _ := m.Options.GetUint32(message.Block2)
				_, num, _, _ := blockwise.DecodeBlockOption(bv)
				v, _ := blockwise.EncodeBlockOption(blockwise.SZX1024, num, num < 255)
				buf := make([]byte, 8)
				opts, _, _ := message.Options{}.SetUint32(buf, message.Block2, v)
				r := message.Message{Code: codes.Content, Type: message.Acknowledgement, MessageID: m.MessageID, Token: m.Token,
					Options: opts, Payload: make([]byte, 1024)}
				k, _ := coder.DefaultCoder.Encode(r, out)
				conn.WriteToUDPAddrPort(out[:k], from)
			}
		}()
	}
	fanout(b, conn.LocalAddr().(*net.UDPAddr), "/raw", 500, 256<<10)
}

// BenchmarkServeBlock1K is one block served by one client, lock-step:
// CPU and allocations per block on the gateway side plus the client's.
func BenchmarkServeBlock1K(b *testing.B) {
	for _, size := range []int{256 << 10, 4 << 20} {
		b.Run(fmt.Sprintf("image=%dKiB", size>>10), func(b *testing.B) {
			_, md, addr := benchGateway(b, size)
			c := newBlockClient(b, addr)
			defer c.conn.Close()
			path := protocol.ImagePath(md.m.Digest)
			blocks := int64(size / 1024)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, _, err := c.get(path, int64(i)%blocks); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestMemoryPerTransferFlat measures the gateway's heap per active
// transfer with 300 transfers in progress, for a 256 KiB and a 4 MiB
// image: it must stay under 16 KiB and not grow with the image.
func TestMemoryPerTransferFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("measures heap")
	}
	var per []float64
	for _, size := range []int{256 << 10, 4 << 20} {
		e := newEnv(t, opts{})
		md := e.model(1, size)
		e.push(md.signed, md.image)
		addr, _ := net.ResolveUDPAddr("udp", e.coap)
		const n = 300
		cs := make([]*blockClient, n)
		for i := range cs {
			cs[i] = newBlockClient(t, addr)
			defer cs[i].conn.Close()
		}
		path := protocol.ImagePath(md.m.Digest)
		warm := newBlockClient(t, addr) // warm up pools and buffers first
		warm.fetchAll(path)
		warm.conn.Close()
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		// Every client starts a transfer and fetches 16 blocks of it.
		for _, c := range cs {
			for k := int64(0); k < 16; k++ {
				if _, _, err := c.get(path, k); err != nil {
					t.Fatal(err)
				}
			}
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		grow := float64(int64(after.HeapAlloc) - int64(before.HeapAlloc))
		per = append(per, grow/n)
		t.Logf("image %d KiB: live heap %d -> %d bytes with %d transfers active (%d in the table): %+.0f bytes per transfer",
			size>>10, before.HeapAlloc, after.HeapAlloc, n, int(metricValue(t, e, "edgeota_image_transfers_active")), grow/n)
		e.stop()
	}
	for _, p := range per {
		if p > 16<<10 {
			t.Fatalf("more than 16 KiB per transfer: %v", per)
		}
	}
}
