package gwlink

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpserver "github.com/plgd-dev/go-coap/v3/udp/server"

	"edgeota/protocol"
)

var (
	seedFlag = flag.Uint64("gwlink.seed", 20261128, "seed of the lossy relay and of the test images")
	logFlag  = flag.Bool("gwlink.log", false, "log the client at debug level to stderr")
)

// testLogger discards unless -gwlink.log is given.
func testLogger() *slog.Logger {
	if *logFlag {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// fastOpts suit loopback: a short ACK timeout and backoff.
func fastOpts(extra ...Option) []Option {
	return append([]Option{
		WithTransmission(20*time.Millisecond, 6),
		WithRequestTimeout(3 * time.Second),
		WithBackoff(10*time.Millisecond, 200*time.Millisecond),
		WithLogger(testLogger()),
		WithQBlock(false), // lock-step: the Q-Block2 tests ask for it
	}, extra...)
}

// testNode is the node id the tests use.
const testNode = "node-1"

// testImage is an image the test gateway serves.
type testImage struct {
	data   []byte
	digest protocol.Digest
}

func newTestImage(size int, seed uint64) testImage {
	rng := rand.New(rand.NewPCG(seed, 1))
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	return testImage{data: data, digest: sha256.Sum256(data)}
}

// testObserver is an observation registered at the test gateway.
type testObserver struct {
	cc    mux.Conn
	token []byte
}

// testGateway implements docs/protocol.md section 5 for the tests with go-coap's
// UDP server and mux, and an observer registry of its own.
type testGateway struct {
	addr    string
	srv     *udpserver.Server
	served  chan struct{}
	builtin bool // images through go-coap's block-wise server
	notify  sync.WaitGroup

	mu           sync.Mutex
	images       map[string]testImage
	imageBusy    int   // 5.03 answers left for images
	blocks       int   // image answers given
	changeAt     int   // > 0: from this many image answers on, another ETag
	truncate     int   // > 0: serve only this many bytes of each image
	sizes        []int // block sizes asked for
	known        map[string]bool
	manifests    map[string][]byte
	maxAge       uint32
	observers    map[string][]*testObserver
	registered   int // observe registrations
	seq          uint32
	posts        map[string][][]byte
	postTries    map[string]int
	postCode     map[string]codes.Code
	postBusy     map[string]int
	manifestGets int
}

// startGateway serves on addr ("127.0.0.1:0" for any port).
func startGateway(addr string, builtin bool) (*testGateway, error) {
	g := &testGateway{
		builtin:   builtin,
		served:    make(chan struct{}),
		images:    map[string]testImage{},
		known:     map[string]bool{},
		manifests: map[string][]byte{},
		maxAge:    defaultMaxAge,
		observers: map[string][]*testObserver{},
		posts:     map[string][][]byte{},
		postTries: map[string]int{},
		postCode:  map[string]codes.Code{},
		postBusy:  map[string]int{},
	}
	r := mux.NewRouter()
	if err := r.Handle("/m/{digest}", mux.HandlerFunc(g.serveImage)); err != nil {
		return nil, err
	}
	if err := r.Handle("/n/{node}/manifest", mux.HandlerFunc(g.serveManifest)); err != nil {
		return nil, err
	}
	if err := r.Handle("/n/{node}/{kind:hello|health|status}", mux.HandlerFunc(g.servePost)); err != nil {
		return nil, err
	}
	l, err := coapnet.NewListenUDP("udp", addr)
	if err != nil {
		return nil, err
	}
	g.addr = l.LocalAddr().String()
	g.srv = udp.NewServer(
		options.WithMux(r),
		options.WithErrors(func(error) {}),
		options.WithBlockwise(builtin, blockwise.SZX1024, time.Minute),
	)
	go func() {
		defer close(g.served)
		_ = g.srv.Serve(l)
	}()
	return g, nil
}

// newGateway starts a gateway stopped at the end of the test.
func newGateway(tb testing.TB, addr string, builtin bool) *testGateway {
	tb.Helper()
	g, err := startGateway(addr, builtin)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(g.stop)
	return g
}

// stop stops the server; it may be called more than once.
func (g *testGateway) stop() {
	g.srv.Stop()
	<-g.served
	g.notify.Wait()
}

func (g *testGateway) addImage(img testImage) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.images[img.digest.String()] = img
}

func (g *testGateway) setKnown(node string, known bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.known[node] = known
}

func (g *testGateway) with(f func(g *testGateway)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(g)
}

func u32(id message.OptionID, v uint32) message.Option {
	buf := make([]byte, 4)
	n, _ := message.EncodeUint32(buf, v)
	return message.Option{ID: id, Value: buf[:n]}
}

func answer(w mux.ResponseWriter, code codes.Code, opts ...message.Option) {
	_ = w.SetResponse(code, message.TextPlain, nil, opts...)
}

func (g *testGateway) serveImage(w mux.ResponseWriter, r *mux.Message) {
	g.mu.Lock()
	defer g.mu.Unlock()
	img, ok := g.images[r.RouteParams.Vars["digest"]]
	if !ok {
		answer(w, codes.NotFound)
		return
	}
	if g.imageBusy > 0 {
		g.imageBusy--
		answer(w, codes.ServiceUnavailable, u32(message.MaxAge, 1))
		return
	}
	g.blocks++
	etag := img.digest.ETag()
	if g.changeAt > 0 && g.blocks > g.changeAt {
		etag = []byte("changed!")
	}
	data := img.data
	if g.truncate > 0 {
		data = data[:g.truncate]
	}
	etagOpt := message.Option{ID: message.ETag, Value: etag}
	if g.builtin {
		_ = w.SetResponse(codes.Content, message.AppOctets, bytes.NewReader(data), etagOpt)
		return
	}
	szx, num := blockwise.SZX1024, int64(0)
	if v, err := r.Options().GetUint32(message.Block2); err == nil {
		if szx, num, _, err = blockwise.DecodeBlockOption(v); err != nil || szx > blockwise.SZX1024 {
			answer(w, codes.BadOption)
			return
		}
	}
	g.sizes = append(g.sizes, int(szx.Size()))
	start := num * szx.Size()
	if start >= int64(len(data)) {
		answer(w, codes.BadOption)
		return
	}
	end := min(start+szx.Size(), int64(len(data)))
	v, _ := blockwise.EncodeBlockOption(szx, num, end < int64(len(data)))
	_ = w.SetResponse(codes.Content, message.AppOctets, bytes.NewReader(data[start:end]),
		etagOpt, u32(message.Block2, v), u32(message.Size2, uint32(len(data))))
}

func etagOf(body []byte) []byte {
	sum := sha256.Sum256(body)
	return sum[:8]
}

func (g *testGateway) serveManifest(w mux.ResponseWriter, r *mux.Message) {
	node := r.RouteParams.Vars["node"]
	g.mu.Lock()
	defer g.mu.Unlock()
	g.manifestGets++
	if !g.known[node] {
		answer(w, codes.NotFound)
		return
	}
	body := g.manifests[node]
	etag := etagOf(body)
	opts := []message.Option{{ID: message.ETag, Value: etag}, u32(message.MaxAge, g.maxAge)}
	if obs, err := r.Options().Observe(); err == nil {
		switch obs {
		case 0:
			cc := w.Conn()
			list := g.observers[node][:0:0]
			for _, o := range g.observers[node] {
				if o.cc != cc {
					list = append(list, o)
				}
			}
			g.observers[node] = append(list, &testObserver{cc: cc, token: bytes.Clone(r.Token())})
			g.registered++
			cc.AddOnClose(func() { g.dropObserver(node, cc) })
			g.seq++
			opts = append(opts, u32(message.Observe, g.seq))
			_ = w.SetResponse(codes.Content, message.AppCoseSign1, bytes.NewReader(body), opts...)
			return
		case 1:
			tok := r.Token()
			list := g.observers[node][:0:0]
			for _, o := range g.observers[node] {
				if !bytes.Equal(o.token, tok) {
					list = append(list, o)
				}
			}
			g.observers[node] = list
		}
	}
	if et, err := r.ETag(); err == nil && bytes.Equal(et, etag) {
		answer(w, codes.Valid, opts...)
		return
	}
	_ = w.SetResponse(codes.Content, message.AppCoseSign1, bytes.NewReader(body), opts...)
}

func (g *testGateway) dropObserver(node string, cc mux.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	list := g.observers[node][:0:0]
	for _, o := range g.observers[node] {
		if o.cc != cc {
			list = append(list, o)
		}
	}
	g.observers[node] = list
}

func (g *testGateway) observerCount(node string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.observers[node])
}

// forgetObservers drops every observation without telling the observers.
func (g *testGateway) forgetObservers() {
	g.mu.Lock()
	defer g.mu.Unlock()
	clear(g.observers)
}

// setManifest assigns body to node and notifies its observers
// (confirmable notifications, each from its own goroutine).
func (g *testGateway) setManifest(node string, body []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.manifests[node] = body
	etag := etagOf(body)
	for _, o := range g.observers[node] {
		g.seq++
		seq, maxAge := g.seq, g.maxAge
		g.notify.Add(1)
		go func() {
			defer g.notify.Done()
			m := o.cc.AcquireMessage(o.cc.Context())
			defer o.cc.ReleaseMessage(m)
			m.SetCode(codes.Content)
			m.SetToken(o.token)
			m.SetObserve(seq)
			_ = m.SetETag(etag)
			m.SetContentFormat(message.AppCoseSign1)
			m.SetOptionUint32(message.MaxAge, maxAge)
			m.SetBody(bytes.NewReader(body))
			_ = o.cc.WriteMessage(m)
		}()
	}
}

func (g *testGateway) servePost(w mux.ResponseWriter, r *mux.Message) {
	node, kind := r.RouteParams.Vars["node"], r.RouteParams.Vars["kind"]
	g.mu.Lock()
	defer g.mu.Unlock()
	g.postTries[kind]++
	if g.postBusy[kind] > 0 {
		g.postBusy[kind]--
		answer(w, codes.ServiceUnavailable, u32(message.MaxAge, 1))
		return
	}
	if code, ok := g.postCode[kind]; ok {
		_ = w.SetResponse(code, message.TextPlain, bytes.NewReader([]byte("forced by the test")))
		return
	}
	if cf, err := r.ContentFormat(); err != nil || cf != message.AppCBOR {
		answer(w, codes.UnsupportedMediaType)
		return
	}
	body, err := r.ReadBody()
	if err != nil {
		answer(w, codes.BadRequest)
		return
	}
	var id string
	switch kind {
	case "hello":
		var h *protocol.Hello
		if h, err = protocol.DecodeHello(body); err == nil {
			id = h.NodeID
		}
	case "health":
		var hr protocol.HealthReport
		if err = protocol.DecodeHealthReport(body, &hr); err == nil {
			id = hr.NodeID
		}
	case "status":
		var e *protocol.StatusEvent
		if e, err = protocol.DecodeStatusEvent(body); err == nil {
			id = e.NodeID
		}
	}
	if err != nil || id != node {
		answer(w, codes.BadRequest)
		return
	}
	g.posts[kind] = append(g.posts[kind], body)
	if kind == "hello" {
		g.known[node] = true
	}
	answer(w, codes.Changed)
}

// lossyRelay forwards UDP datagrams between clients and a target, dropping
// each one, in either direction, with probability drop.
type lossyRelay struct {
	pc       net.PacketConn
	target   *net.UDPAddr
	drop     float64
	mu       sync.Mutex
	rng      *rand.Rand
	up       map[string]*net.UDPConn
	wg       sync.WaitGroup
	dropped  atomic.Int64
	passed   atomic.Int64
	requests atomic.Int64 // datagrams from the clients
	// filter, when set, sees each datagram from a client first; true
	// consumes it (it may answer on pc itself).
	filter func(pc net.PacketConn, from net.Addr, d []byte) bool
	// down, when set, sees each datagram to a client first; true drops it.
	down func(d []byte) bool
}

func newRelay(tb testing.TB, target string, drop float64, seed uint64) *lossyRelay {
	tb.Helper()
	return startRelay(tb, target, drop, seed, nil)
}

// newFilterRelay is a relay that loses nothing and shows each datagram
// from a client to filter first.
func newFilterRelay(tb testing.TB, target string, filter func(pc net.PacketConn, from net.Addr, d []byte) bool) *lossyRelay {
	tb.Helper()
	return startRelay(tb, target, 0, 1, filter)
}

// newDownRelay is a relay that loses nothing but the datagrams to a
// client that down says to drop.
func newDownRelay(tb testing.TB, target string, down func(d []byte) bool) *lossyRelay {
	tb.Helper()
	return startRelay(tb, target, 0, 1, nil, down)
}

func startRelay(tb testing.TB, target string, drop float64, seed uint64, filter func(pc net.PacketConn, from net.Addr, d []byte) bool, down ...func(d []byte) bool) *lossyRelay {
	tb.Helper()
	taddr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		tb.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r := &lossyRelay{pc: pc, target: taddr, drop: drop, rng: rand.New(rand.NewPCG(seed, 2)), up: map[string]*net.UDPConn{}, filter: filter}
	if len(down) > 0 {
		r.down = down[0]
	}
	r.wg.Add(1)
	go r.serve()
	tb.Cleanup(r.close)
	return r
}

func (r *lossyRelay) addr() string { return r.pc.LocalAddr().String() }

func (r *lossyRelay) lose() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rng.Float64() < r.drop {
		r.dropped.Add(1)
		return true
	}
	r.passed.Add(1)
	return false
}

func (r *lossyRelay) serve() {
	defer r.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := r.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		r.requests.Add(1)
		if r.filter != nil && r.filter(r.pc, from, buf[:n]) {
			continue
		}
		up, err := r.upstream(from)
		if err != nil {
			return
		}
		if !r.lose() {
			_, _ = up.Write(buf[:n])
		}
	}
}

// upstream is the socket that speaks to the target for client from.
func (r *lossyRelay) upstream(from net.Addr) (*net.UDPConn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if up, ok := r.up[from.String()]; ok {
		return up, nil
	}
	up, err := net.DialUDP("udp", nil, r.target)
	if err != nil {
		return nil, err
	}
	r.up[from.String()] = up
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		buf := make([]byte, 2048)
		for {
			n, err := up.Read(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				continue // ICMP port unreachable while the target is down
			}
			if r.down != nil && r.down(buf[:n]) {
				continue
			}
			if !r.lose() {
				_, _ = r.pc.WriteTo(buf[:n], from)
			}
		}
	}()
	return up, nil
}

func (r *lossyRelay) close() {
	_ = r.pc.Close()
	r.mu.Lock()
	for _, up := range r.up {
		_ = up.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// dial returns a client of testNode closed at the end of the test.
func dial(tb testing.TB, addr string, opts ...Option) *Client {
	tb.Helper()
	c, err := Dial(context.Background(), addr, testNode, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// testHello is a valid Hello of node.
func testHello(node string) *protocol.Hello {
	return &protocol.Hello{NodeID: node, Labels: map[string]string{"site": "lab"}, AgentVersion: "0.1.0", Component: "kws-model"}
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

func describe(b []byte) string {
	if b == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%q", b)
}
