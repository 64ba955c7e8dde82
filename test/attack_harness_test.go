package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"edgeota/gateway/admin"
	"edgeota/test/testutil"
)

// The harness of the attack tests (attack_test.go): edgeota processes whose
// logs the test reads while they run, one way to start a gateway, a fleet
// of node agents, and the views the tests assert on (the gateway's admin
// API and `edgeota node status --json` on each node's flash).

// logBuffer collects a process's output; the test reads it while the
// process writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// loggedProc is an edgeota process started by the test.
type loggedProc struct {
	cmd  *exec.Cmd
	log  *logBuffer
	done chan struct{}
	once sync.Once
}

// startLogged starts edgeota with args in dir; t.Cleanup stops it and, when
// the test failed, logs the end of its output under name.
func startLogged(t *testing.T, dir, name string, args ...string) *loggedProc {
	t.Helper()
	return startLoggedEnv(t, dir, name, nil, args...)
}

// startLoggedEnv is startLogged with env added to the process's
// environment.
func startLoggedEnv(t *testing.T, dir, name string, env []string, args ...string) *loggedProc {
	t.Helper()
	cmd := exec.Command(edgeota(t), args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	p := &loggedProc{cmd: cmd, log: &logBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s output (last 80 lines):\n%s", name, lastLines(p.log.String(), 80))
		}
	})
	return p
}

// exited reports whether the process has exited.
func (p *loggedProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop interrupts the process and waits for it to exit, killing it after
// 10 seconds. Stopping twice does nothing.
func (p *loggedProc) stop() {
	p.once.Do(func() {
		p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	})
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// gatewayTransportFlags keep a test gateway on plain CoAP over UDP on
// loopback (--insecure-udp: nodes still verify every manifest end to end,
// which is what these tests attack), with its DTLS listener on a free
// loopback port so that parallel tests never compete for :5684.
var gatewayTransportFlags = []string{"--insecure-udp", "--coaps", "127.0.0.1:0"}

// attackGateway is an edgeota gateway process that can be stopped and
// started again on the same addresses and data directory.
type attackGateway struct {
	dir   string
	coap  string // host:port of its CoAP service
	admin string // base URL of its admin API
	args  []string
	p     *loggedProc
	logs  []*loggedProc // every run, the current one last
}

// startAttackGateway starts a gateway in dir (data in dir/gw-data) on free
// loopback ports, with extra flags (trust keys, gateway id, MQTT), and
// waits for its admin API. Every gateway of the attack tests starts here.
func startAttackGateway(t *testing.T, dir string, extra ...string) *attackGateway {
	t.Helper()
	coap := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, "udp"))
	admin := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, "tcp"))
	g := &attackGateway{dir: dir, coap: coap, admin: "http://" + admin}
	g.args = append([]string{"gateway", "--data", "gw-data", "--coap", coap, "--admin", admin}, gatewayTransportFlags...)
	g.args = append(g.args, extra...)
	g.start(t)
	return g
}

// start runs the gateway process and waits until its admin API answers.
func (g *attackGateway) start(t *testing.T) {
	t.Helper()
	g.p = startLogged(t, g.dir, fmt.Sprintf("gateway (run %d)", len(g.logs)+1), g.args...)
	g.logs = append(g.logs, g.p)
	testutil.Eventually(t, "the gateway's admin API", func() bool {
		select {
		case <-g.p.done:
			t.Fatalf("the gateway exited:\n%s", g.p.log.String())
		default:
		}
		return adminUp(g.admin)
	})
}

// stop stops the gateway process (SIGINT) and waits for it to exit.
func (g *attackGateway) stop() { g.p.stop() }

// log returns the output of every run of the gateway so far.
func (g *attackGateway) log() string {
	var b strings.Builder
	for _, p := range g.logs {
		b.WriteString(p.log.String())
	}
	return b.String()
}

// api is a client of the gateway's admin API.
func (g *attackGateway) api(t *testing.T) *admin.Client {
	t.Helper()
	c, err := admin.NewClient(g.admin, admin.WithHTTPClient(&http.Client{Timeout: 10 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// nodes returns the gateway's node registry by node id; nil when the
// gateway does not answer.
func (g *attackGateway) nodes(t *testing.T) map[string]admin.Node {
	t.Helper()
	m := map[string]admin.Node{}
	for n, err := range g.api(t).AllNodes(context.Background(), admin.NodeQuery{}) {
		if err != nil {
			return nil
		}
		m[n.ID] = n
	}
	return m
}

// rollouts returns the ids of the gateway's rollouts, sorted.
func (g *attackGateway) rollouts(t *testing.T) []string {
	t.Helper()
	rs, err := g.api(t).Rollouts(context.Background())
	if err != nil {
		t.Fatalf("rollouts: %v", err)
	}
	ids := []string{}
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	return ids
}

// Models of the attack tests: a healthy one and one whose errors break
// its probation (signModel's: 1 s at 100 inferences/s, at least 20, so a
// probation judges 20 to 101 inferences, fewer on a loaded machine). The
// healthy one never fails an inference, so it never breaks the bound. The
// bad one passes 50 per-mille only with at most 1 error of 20 to 39 (2 of
// 40 to 59, ...): at most P = 1.7e-9 per node (1 of 20) by the binomial,
// 3.3e-9 for a test's 2 nodes. At 1 and 300 per-mille they were 7.2e-4 (2
// errors of 39) and 7.6e-3 per node.
const (
	goodModel = "edgeota-sim-model error_permille=0 p50_us=5000 p99_us=20000"
	badModel  = "edgeota-sim-model error_permille=700 p50_us=5000 p99_us=20000"
)

// attackSlotSize is the slot size of every node of the attack tests.
const attackSlotSize = "262144"

// signModel writes the image name.bin (header, then size deterministic
// bytes) unless it exists, and signs it with key.key as name.cose:
// component kws, version name, the given seq and epoch, and a probation
// of 1 second and 20 inferences with at most 50 errors per mille.
func signModel(t *testing.T, dir, key, name, header string, size int, seq, epoch uint64) {
	t.Helper()
	img := filepath.Join(dir, name+".bin")
	if _, err := os.Stat(img); err != nil {
		writeModel(t, img, header, size)
	}
	mustRun(t, dir, "sign", "--key", key+".key", "--image", name+".bin", "--component", "kws", "--version", name,
		"--seq", strconv.FormatUint(seq, 10), "--epoch", strconv.FormatUint(epoch, 10), "--class", class,
		"--probation-seconds", "1", "--min-inferences", "20", "--max-error-permille", "50", "--out", name+".cose")
}

// signModelOf signs an existing image (image.bin) as name.cose with key.
func signModelOf(t *testing.T, dir, key, image, name string, seq, epoch uint64) {
	t.Helper()
	mustRun(t, dir, "sign", "--key", key+".key", "--image", image+".bin", "--component", "kws", "--version", name,
		"--seq", strconv.FormatUint(seq, 10), "--epoch", strconv.FormatUint(epoch, 10), "--class", class,
		"--probation-seconds", "1", "--min-inferences", "20", "--max-error-permille", "50", "--out", name+".cose")
}

// fileDigest returns the SHA-256 of a file.
func fileDigest(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// attackFleet is a gateway and the node agents (edgeota node) behind it.
type attackFleet struct {
	t     *testing.T
	dir   string
	gw    *attackGateway
	ids   []string
	procs map[string]*loggedProc
}

// startFleet starts node agents with the given ids against gw, trusting
// only op.pub, and waits until each said Hello.
func startFleet(t *testing.T, dir string, gw *attackGateway, ids ...string) *attackFleet {
	t.Helper()
	f := &attackFleet{t: t, dir: dir, gw: gw, ids: ids, procs: map[string]*loggedProc{}}
	for _, id := range ids {
		f.procs[id] = startLogged(t, dir, "node "+id, "node", "--id", id, "--flash", id+".flash", "--slot-size", attackSlotSize,
			"--class", class, "--component", "kws", "--trust", "op.pub", "--labels", "hw=rev2",
			"--gateway", "coap://"+gw.coap, "--inference-rate", "100", "--health-interval", "500ms", "--poll-interval", "2s")
	}
	testutil.Eventually(t, "the nodes to say Hello", func() bool {
		ns := gw.nodes(t)
		for _, id := range ids {
			if _, ok := ns[id]; !ok {
				return false
			}
		}
		return true
	})
	return f
}

// push uploads name.cose and name.bin to the gateway (edgeota model push),
// assigned to every node when assign is set.
func (f *attackFleet) push(name string, assign bool) {
	f.t.Helper()
	args := []string{"model", "push", "--admin", f.gw.admin, "--manifest", name + ".cose", "--image", name + ".bin"}
	if assign {
		args = append(args, "--assign", "all")
	}
	mustRun(f.t, f.dir, args...)
}

// pushManifest uploads manifest.cose with image.bin and assigns it to every
// node.
func (f *attackFleet) pushManifest(manifest, image string) {
	f.t.Helper()
	mustRun(f.t, f.dir, "model", "push", "--admin", f.gw.admin, "--manifest", manifest+".cose", "--image", image+".bin", "--assign", "all")
}

// waitRunning waits until every node of the fleet runs seq, confirmed, as
// the gateway sees it.
func (f *attackFleet) waitRunning(seq uint64) {
	f.t.Helper()
	testutil.Eventually(f.t, fmt.Sprintf("every node to confirm seq %d", seq), func() bool {
		ns := f.gw.nodes(f.t)
		for _, id := range f.ids {
			if n := ns[id]; n.RunningSeq != seq || n.ActiveState != "confirmed" {
				return false
			}
		}
		return true
	})
}

// flashStatus is `edgeota node status --json`: a node's boot state read
// from its flash.
type flashStatus struct {
	Active  string `json:"active"`
	Pending string `json:"pending"`
	Slots   []struct {
		Slot, State, Version, Digest string
		Seq, Epoch                   uint64
	} `json:"slots"`
	EpochFloor uint64 `json:"epoch_floor"`
	HighestSeq uint64 `json:"highest_seq"`
	Download   *struct {
		Seq          uint64 `json:"seq"`
		WrittenBytes uint64 `json:"written_bytes"`
	} `json:"download"`
	LastState  string `json:"last_state"`
	LastReason string `json:"last_reason"`
	LastCode   string `json:"last_reason_code"`
}

// flash reads a node's status from its flash, beside the running agent.
func (f *attackFleet) flash(id string) flashStatus {
	f.t.Helper()
	out := mustRun(f.t, f.dir, "node", "status", "--flash", id+".flash", "--slot-size", attackSlotSize, "--json")
	var st flashStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		f.t.Fatalf("node status of %s %q: %v", id, out, err)
	}
	return st
}

// slot returns the status of the slot named name (A or B).
func (st flashStatus) slot(name string) (state, version string, seq uint64) {
	for _, s := range st.Slots {
		if s.Slot == name {
			return s.State, s.Version, s.Seq
		}
	}
	return "", "", 0
}

// expectRefused waits until every node has refused an update with the
// status event reason code code (its name, as `edgeota node status`
// prints it) and a reason naming why, then checks that each one still
// runs seq, confirmed, with nothing pending or half downloaded, and goes
// on running it: its health reports keep arriving at the gateway.
func (f *attackFleet) expectRefused(code, why string, seq uint64) {
	f.t.Helper()
	testutil.Eventually(f.t, fmt.Sprintf("every node to refuse the update (%s: %s)", code, why), func() bool {
		ns := f.gw.nodes(f.t)
		done := true
		for _, id := range f.ids {
			n := ns[id]
			if n.RunningSeq != seq || n.ActiveState != "confirmed" {
				f.t.Fatalf("node %s took the update: %+v", id, n)
			}
			done = done && n.LastState == "failed" && strings.Contains(n.LastReason, why)
		}
		return done
	})
	before := f.gw.nodes(f.t)
	for _, id := range f.ids {
		st := f.flash(id)
		state, _, running := st.slot(st.Active)
		if st.LastState != "failed" || st.LastCode != code || !strings.Contains(st.LastReason, why) {
			f.t.Errorf("node %s: last state %s, reason code %q (%s); want failed, %q (%s)", id, st.LastState, st.LastCode, st.LastReason, code, why)
		}
		if state != "confirmed" || running != seq || st.Pending != "" || st.Download != nil {
			f.t.Errorf("node %s after the refusal: %+v; want seq %d confirmed in the active slot, nothing pending or downloading", id, st, seq)
		}
		if n := before[id]; n.RunningSeq != seq || n.ActiveState != "confirmed" {
			f.t.Errorf("the gateway sees node %s run seq %d (%s), want %d confirmed", id, n.RunningSeq, n.ActiveState, seq)
		}
	}
	testutil.Eventually(f.t, "health reports after the refusal", func() bool {
		ns := f.gw.nodes(f.t)
		for _, id := range f.ids {
			n := ns[id]
			if n.HealthReports < before[id].HealthReports+2 {
				return false
			}
			if n.RunningSeq != seq || n.ActiveState != "confirmed" || n.LastState != "failed" {
				f.t.Fatalf("node %s changed after refusing: %+v", id, n)
			}
		}
		return true
	})
}

// flipImageBit flips one bit in the middle of the cached image with digest
// d in a stopped gateway's database, where the store keeps it:
// images/<digest>/<chunk index, 8 bytes big-endian> (gateway/internal/store).
func flipImageBit(t *testing.T, dbPath string, d [32]byte) {
	t.Helper()
	db, err := bolt.Open(dbPath, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open the gateway's database: %v", err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		images := tx.Bucket([]byte("images"))
		if images == nil {
			return fmt.Errorf("no images bucket: the store's layout changed")
		}
		img := images.Bucket(d[:])
		if img == nil {
			return fmt.Errorf("no image bucket for %s", hex.EncodeToString(d[:]))
		}
		var chunks uint64
		if err := img.ForEach(func(_, _ []byte) error { chunks++; return nil }); err != nil {
			return err
		}
		var key [8]byte
		binary.BigEndian.PutUint64(key[:], chunks/2)
		v := img.Get(key[:])
		if len(v) == 0 {
			return fmt.Errorf("chunk %d of %d missing", chunks/2, chunks)
		}
		tampered := bytes.Clone(v)
		tampered[len(tampered)/2] ^= 0x01
		return img.Put(key[:], tampered)
	})
	if err != nil {
		t.Fatalf("tamper with the cached image: %v", err)
	}
}
