package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"edgeota/gateway"
	"edgeota/gateway/admin"
	"edgeota/gateway/gatewaytest"
	"edgeota/protocol"
	"edgeota/protocol/sign"
)

// The scale benchmarks (issue 21, Performance) drive one gateway with a
// fleet of simulated nodes over real UDP loopback CoAP, as nodes do: every
// node says Hello, a signed deployment is started over all of them, and
// then each node walks through the rollout with the node documents a node
// agent sends (docs/protocol.md section 4), each answered only once the
// gateway acted on it durably (a Hello once the registry and the rollout
// took it, a status event or health report once the rollout took it and
// the outbox holds it for the uplink).
//
// The gateway is a production one: an uplink to its embedded MQTT broker
// (so status events and health reports are forwarded through the outbox
// and the rollout status is published), its database on the file system
// of the test's temporary directory. The request-rate limits are raised as
// for the uplink benchmark (benchRate): one loopback address stands for a
// whole fleet.

// scaleWorkers is the most nodes that talk to the gateway at once, each waiting
// for its answer before it sends the next document (CoAP's NSTART = 1).
const scaleWorkers = 256

// The documents one node sends in one rollout, in the order the node agent
// sends them (package nodeagent): the status events of the download and
// the install, then, booted on trial, the status event of the trial and
// the Hello, health reports of the probation, the status event and Hello
// of the confirmation, and one health report while it soaks.
const (
	stepDownloading = iota
	stepDownloaded
	stepVerified
	stepPending
	stepTrial // the first document of the trial boot
	stepTrialHello
	stepHealth1
	stepHealth2
	stepConfirmed
	stepConfirmedHello
	stepSoakHealth
	scriptSteps // documents per node per rollout
)

// scaleNode is what a simulated node keeps between documents.
type scaleNode struct {
	id     string
	slot   protocol.Slot
	runs   uint64 // running seq
	digest protocol.Digest
	boot   uint64
	events uint64 // status events sent in this boot
	health uint64 // health reports sent in this boot
}

// scaleFleet is a gateway, its fleet and the rollout it runs.
type scaleFleet struct {
	tb           testing.TB
	dir          string
	g            *gateway.Gateway
	adminURL     string
	api          *admin.Client
	manifester   *sign.Signer
	deployer     *sign.Signer
	posters      []*poster // scaleWorkers of them
	senders      int       // how many of them send at once (parallel)
	nodes        []scaleNode
	pass         uint64 // the rollout under way: 1, 2, ...
	digest       protocol.Digest
	nodesDone    int     // nodes through this rollout
	heapBefore   uint64  // live heap before the first Hello
	heapPerNode  float64 // live heap grown per node by the Hellos and the rollout's start
	startPerNode float64 // bytes written per node by the first rollout's start
	startBytes   int64   // bytes written by the rollout starts (start)
}

// newScaleFleet starts a gateway and makes n nodes say Hello to it; no
// rollout runs yet. The gateway and its database (in a temporary directory)
// live as long as owner: a benchmark's parent, so that the runs of a
// sub-benchmark with growing b.N go on with the same fleet.
func newScaleFleet(owner testing.TB, n int) *scaleFleet {
	tb := owner
	tb.Helper()
	dir := owner.TempDir()
	manifestKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	deployKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, 32))
	ms, _ := sign.NewSigner(manifestKey)
	ds, _ := sign.NewSigner(deployKey)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	conn.SetReadBuffer(4 << 20)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	g := gatewaytest.Start(tb, gateway.Config{DataDir: dir, Trust: []ed25519.PublicKey{manifestKey.Public().(ed25519.PublicKey)},
		DeployTrust: []ed25519.PublicKey{deployKey.Public().(ed25519.PublicKey)}, CoAPConn: conn, InsecureUDP: true,
		CoAPSAddr: "-", AdminListener: ln, MQTT: "embedded", GatewayID: "scale",
		Limits: gateway.Limits{SourceRate: benchRate, NodeRate: benchRate}})
	base := "http://" + ln.Addr().String()
	api, err := admin.NewClient(base)
	if err != nil {
		tb.Fatal(err)
	}
	f := &scaleFleet{tb: tb, dir: dir, g: g, adminURL: base, api: api, manifester: ms, deployer: ds, nodes: make([]scaleNode, n)}
	for range scaleWorkers {
		c, err := net.DialUDP("udp", nil, conn.LocalAddr().(*net.UDPAddr))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { c.Close() })
		f.posters = append(f.posters, &poster{conn: c, out: make([]byte, 2048), in: make([]byte, 2048), opt: make([]byte, 64)})
	}
	f.senders = scaleWorkers
	for i := range f.nodes {
		f.nodes[i] = scaleNode{id: fmt.Sprintf("node-%05d", i), boot: 1}
	}
	f.heapBefore = liveHeap()
	f.parallel(func(w int, p *poster) error {
		for i := w; i < n; i += len(f.posters) {
			if err := f.hello(p, &f.nodes[i], protocol.SlotConfirmed); err != nil {
				return err
			}
		}
		return nil
	})
	return f
}

// parallel runs fn on f.senders workers at once and fails the benchmark
// if one failed.
func (f *scaleFleet) parallel(fn func(w int, p *poster) error) {
	var wg sync.WaitGroup
	errs := make([]error, f.senders)
	for w, p := range f.posters[:f.senders] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = fn(w, p)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			f.tb.Fatal(err)
		}
	}
}

var scaleClass = protocol.Class{0x5c, 0xa1, 0xe0}

func (f *scaleFleet) hello(p *poster, n *scaleNode, state protocol.SlotState) error {
	h := &protocol.Hello{NodeID: n.id, Class: scaleClass, Labels: map[string]string{"hw": "rev2", "site": "hall-" + n.id[len(n.id)-1:]},
		RunningSeq: n.runs, RunningDigest: n.digest, ActiveSlot: n.slot, AgentVersion: "0.9.0", EpochFloor: 1,
		ActiveState: state, Component: "kws"}
	if n.runs == 0 {
		h.ActiveState = protocol.SlotNone
	}
	body, err := protocol.Marshal(h)
	if err != nil {
		return err
	}
	return p.post(protocol.NodePath(n.id, protocol.ResHello), body)
}

func (f *scaleFleet) status(p *poster, n *scaleNode, st protocol.State) error {
	n.events++
	e := &protocol.StatusEvent{NodeID: n.id, State: st, Seq: f.pass, Digest: f.digest, BootCount: n.boot, Number: n.events}
	if st != protocol.StateDownloading {
		e.BytesReceived = 32 << 10
	}
	body, err := protocol.Marshal(e)
	if err != nil {
		return err
	}
	return p.post(protocol.NodePath(n.id, protocol.ResStatus), body)
}

func (f *scaleFleet) report(p *poster, n *scaleNode) error {
	n.health++
	r := &protocol.HealthReport{NodeID: n.id, UptimeSeconds: 60 * n.health, RunningSeq: n.runs, ActiveSlot: n.slot, Inferences: 600,
		Errors: 1, LatencyP50Micros: 12000, LatencyP99Micros: 41000, CPUPermille: 350, RAMBytes: 180224, BootCount: n.boot,
		Time: 1795000000 + n.health, Number: n.health}
	body, err := protocol.Marshal(r)
	if err != nil {
		return err
	}
	return p.post(protocol.NodePath(n.id, protocol.ResHealth), body)
}

// step sends node n's document s of the current rollout.
func (f *scaleFleet) step(p *poster, n *scaleNode, s int) error {
	switch s {
	case stepDownloading:
		return f.status(p, n, protocol.StateDownloading)
	case stepDownloaded:
		return f.status(p, n, protocol.StateDownloaded)
	case stepVerified:
		return f.status(p, n, protocol.StateVerified)
	case stepPending:
		return f.status(p, n, protocol.StatePending)
	case stepTrial: // booted on trial
		n.boot++
		n.events, n.health = 0, 0
		n.slot ^= 1
		n.runs, n.digest = f.pass, f.digest
		return f.status(p, n, protocol.StateTrial)
	case stepTrialHello:
		return f.hello(p, n, protocol.SlotTrial)
	case stepHealth1, stepHealth2, stepSoakHealth:
		return f.report(p, n)
	case stepConfirmed:
		return f.status(p, n, protocol.StateConfirmed)
	case stepConfirmedHello:
		return f.hello(p, n, protocol.SlotConfirmed)
	}
	return fmt.Errorf("no step %d", s)
}

// start starts the next rollout: a deployment of a new manifest (its image
// is not needed: no node fetches it here) over every node, in one wave,
// every node assigned at once.
func (f *scaleFleet) start() {
	f.tb.Helper()
	f.pass++
	f.nodesDone = 0
	f.digest = sha256.Sum256([]byte(fmt.Sprintf("scale model %d", f.pass)))
	m := &protocol.Manifest{Format: 1, Seq: f.pass, Component: "kws", Version: fmt.Sprintf("2.%d", f.pass), Digest: f.digest,
		Size: 32 << 10, Class: scaleClass, Epoch: 1}
	signed, err := f.manifester.SignManifest(m)
	if err != nil {
		f.tb.Fatal(err)
	}
	now := uint64(time.Now().Unix())
	d := &protocol.Deployment{ID: f.rolloutID(), Seq: f.pass, Manifest: signed, Cohort: "hw:rev2",
		Waves: []protocol.Wave{{BasisPoints: 10000}}, OnFailure: protocol.FailurePause, NodeTimeoutSeconds: 24 * 3600,
		MaxConcurrent: uint64(len(f.nodes)), Issued: now, Expires: now + 24*3600}
	dep, err := f.deployer.SignDeployment(d)
	if err != nil {
		f.tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	before := writeBytes(f.tb)
	if _, err := f.api.PostDeployment(ctx, dep); err != nil {
		f.tb.Fatalf("start rollout %d over %d nodes: %v", f.pass, len(f.nodes), err)
	}
	f.startBytes += writeBytes(f.tb) - before
}

// settle waits until the outbox is empty (every forwarded document
// published and its removal committed), then has the gateway record the
// node activity it holds in memory (GET /v1/nodes/{id} does that first):
// what the documents sent so far cause to be written is written.
func (f *scaleFleet) settle() {
	f.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		m, err := f.api.Metrics(ctx)
		if err != nil {
			f.tb.Fatalf("settle: %v", err)
		}
		if metricIn(m, "edgeota_outbox_depth") <= 0 { // -1: no uplink
			break
		}
		select {
		case <-ctx.Done():
			f.tb.Fatalf("settle: the outbox still holds %v items", metricIn(m, "edgeota_outbox_depth"))
		case <-time.After(10 * time.Millisecond): // polling a gauge
		}
	}
	if _, err := f.api.Node(ctx, f.nodes[0].id); err != nil {
		f.tb.Fatalf("settle: %v", err)
	}
}

// metricIn returns the value of an unlabelled metric in a Prometheus text
// exposition, or -1 when it is absent.
func metricIn(exposition []byte, name string) float64 {
	for line := range strings.Lines(string(exposition)) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// writeBytes returns the bytes this process has caused to be sent to the
// storage layer so far: write_bytes of /proc/self/io, which the kernel
// counts when a page of a file is dirtied (4 KiB granular; a page dirtied
// again after it was written back, as a database page rewritten after an
// fsync, counts again). It counts what reaches the disk, unlike wchar
// (bytes passed to write calls, page cache or not). On tmpfs it stays 0:
// the data directory must be on a disk (the test's temporary directory,
// TMPDIR, is; t.TempDir is checked by the first call).
func writeBytes(tb testing.TB) int64 {
	tb.Helper()
	f, err := os.Open("/proc/self/io")
	if err != nil {
		tb.Skipf("no I/O accounting: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "write_bytes: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return n
		}
	}
	tb.Skip("no write_bytes in /proc/self/io")
	return 0
}

// liveHeap returns the bytes of live heap objects after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func (f *scaleFleet) rolloutID() string { return fmt.Sprintf("scale-%d", f.pass) }

// runNodes walks k whole nodes through the rollout: every document of
// each, the next nodes of this rollout first, then the first ones of the
// next rollout (started while the timer is stopped) once every node of
// this one went through it. b may be nil (a test).
func (f *scaleFleet) runNodes(b *testing.B, k int) {
	n := len(f.nodes)
	for k > 0 {
		if f.nodesDone == n {
			if b != nil {
				b.StopTimer()
			}
			f.start()
			if b != nil {
				b.StartTimer()
			}
		}
		m := min(k, n-f.nodesDone)
		f.runBlock(f.nodesDone, m)
		f.nodesDone += m
		k -= m
	}
}

// runBlock walks nodes [first, first+m) through every step of the rollout.
func (f *scaleFleet) runBlock(first, m int) {
	f.parallel(func(w int, p *poster) error {
		for s := range scriptSteps {
			for i := first + w; i < first+m; i += f.senders {
				if err := f.step(p, &f.nodes[i], s); err != nil {
					return fmt.Errorf("node %s step %d of rollout %d: %w", f.nodes[i].id, s, f.pass, err)
				}
			}
		}
		return nil
	})
}

// BenchmarkNodeEvents measures how a gateway keeps up with the node
// documents of a rollout over 100, 1,000, 2,000 and 10,000 nodes. One
// operation is one node's walk through the rollout: its scriptSteps
// documents (status events, Hellos, health reports) sent over UDP
// loopback, each waiting for its answer, which comes once the gateway
// acted on it durably. senders=S says how many nodes speak at once: 100
// at every size (the whole smallest fleet: the sizes compare at equal
// load), and 256 (what a fleet of thousands offers a gateway; the
// gateway's capacity, as its commits are shared by the documents that
// arrive together). It reports:
//
//   - events/s: documents per second (issue 21: at least 5,000 on 2
//     cores, flat within 1.5x across the sizes);
//   - bytes/node: bytes the process wrote to its disk per node walked,
//     from /proc/self/io (issue 21: at most 64 KiB at 2,000 and 10,000
//     nodes), read once the outbox is drained and the node activity
//     recorded; the writes of the housekeeping's ticks during the run are
//     in it;
//   - start-bytes/node: what starting the rollout wrote, per node of it;
//   - retransmits: requests a node sent again, its answer not come within
//     1 s (each costs a second of that node's time: a figure with one is
//     a figure of a stall);
//   - heap-bytes/node: the gateway's memory per known node, the live heap
//     grown by the nodes' Hellos and the rollout's start over them (the
//     registry and its caches, the rollout engine's state), this
//     benchmark's own state of each node allocated before.
//
// Once every node went through the rollout, the next rollout (a new
// manifest) starts, outside the timer and the byte count. The database is
// on the file system of the test's temporary directory (TMPDIR): on tmpfs
// nothing is counted and bytes/node says 0.
func BenchmarkNodeEvents(b *testing.B) {
	for _, n := range []int{100, 1000, 2000, 10000} {
		var f *scaleFleet
		parent := b
		for _, senders := range []int{100, scaleWorkers} {
			if senders > n || (senders == scaleWorkers && n == 100) {
				continue
			}
			b.Run(fmt.Sprintf("nodes=%d/senders=%d", n, senders), func(b *testing.B) {
				if f == nil {
					f = newScaleFleet(parent, n)
					f.tb = b
					f.start()
					f.settle()
					f.heapPerNode = (float64(liveHeap()) - float64(f.heapBefore)) / float64(n)
					f.startPerNode = float64(f.startBytes) / float64(n)
				}
				f.tb, f.senders = b, senders
				f.settle()
				before, starts, resent := writeBytes(b), f.startBytes, posterRetransmits.Load()
				b.ResetTimer()
				t0 := time.Now()
				f.runNodes(b, b.N)
				elapsed := time.Since(t0)
				b.StopTimer()
				f.settle()
				written := writeBytes(b) - before - (f.startBytes - starts)
				b.ReportMetric(float64(b.N*scriptSteps)/elapsed.Seconds(), "events/s")
				b.ReportMetric(float64(written)/float64(b.N), "bytes/node")
				b.ReportMetric(f.startPerNode, "start-bytes/node")
				b.ReportMetric(f.heapPerNode, "heap-bytes/node")
				b.ReportMetric(float64(posterRetransmits.Load()-resent), "retransmits")
			})
		}
	}
}

// BenchmarkNodeWritesByKind measures the bytes written to the gateway's
// disk per node document of one kind, 100 nodes at a time, with no
// rollout running: what the registry and the outbox cost without the
// rollout engine. One operation is one document; the nodes take turns.
func BenchmarkNodeWritesByKind(b *testing.B) {
	const n = 2000
	f := newScaleFleet(b, n)
	kinds := []struct {
		name string
		send func(p *poster, x *scaleNode) error
	}{
		{"hello-repeated", func(p *poster, x *scaleNode) error { return f.hello(p, x, protocol.SlotConfirmed) }},
		{"hello-changed", func(p *poster, x *scaleNode) error { // a revert to the other slot
			x.slot ^= 1
			return f.hello(p, x, protocol.SlotConfirmed)
		}},
		{"status", func(p *poster, x *scaleNode) error { return f.status(p, x, protocol.StateDownloading) }},
		{"health", f.report},
	}
	for _, k := range kinds {
		b.Run("kind="+k.name, func(b *testing.B) {
			f.tb, f.senders = b, 100
			f.settle()
			before := writeBytes(b)
			b.ResetTimer()
			t0 := time.Now()
			f.parallel(func(w int, p *poster) error {
				for i := w; i < b.N; i += f.senders {
					if err := k.send(p, &f.nodes[i%n]); err != nil {
						return err
					}
				}
				return nil
			})
			elapsed := time.Since(t0)
			b.StopTimer()
			f.settle()
			b.ReportMetric(float64(writeBytes(b)-before)/float64(b.N), "bytes/doc")
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "docs/s")
		})
	}
}
