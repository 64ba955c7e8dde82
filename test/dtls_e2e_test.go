package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"edgeota/gateway/admin"
	"edgeota/gateway/gatewaytest"
	"edgeota/protocol"
	"edgeota/test/testutil"
)

// The DTLS tests (issue 9): a gateway that serves CoAP over DTLS 1.2 with a
// pre-shared key per node (PSK identity = node id), reached by libcoap's
// client and by edgeota node processes; nodes without their key are
// refused, a node touches only its own /n/{id}/ resources, and a flood from
// one address does not starve the others.

// dtlsModelHeader makes the simulated runtime run a healthy model: it
// never fails an inference, so it never breaks signDTLSModel's 100
// per-mille bound. At 1 per-mille a node reverted with 3 errors of 29 of
// the 20 to 101 inferences a probation judges, P = 3.6e-6 by the binomial.
const dtlsModelHeader = "edgeota-sim-model error_permille=0 p50_us=5000 p99_us=20000"

// dtlsSlotSize is the slot size of every node of these tests.
const dtlsSlotSize = "524288"

// dtlsGateway is a gateway process serving CoAP over DTLS on a loopback
// port it chose itself.
type dtlsGateway struct {
	coaps string // host:port of CoAP over DTLS
	coap  string // host:port of plain CoAP; "" when off
	admin string // base URL of the admin API
	p     *loggedProc
}

// dtlsServing is the gateway's log line naming the addresses it serves on.
var dtlsServing = regexp.MustCompile(`msg="gateway serving" coaps=(\S+) coap=(\S+) admin=(\S+)`)

// startDTLSGateway imports keys (node id to key, as a key file writes it)
// with `edgeota gateway keys import` into dir/gw-data, then starts a
// gateway trusting dir/op.pub with DTLS and its admin API on ports it
// picks (127.0.0.1:0), plus extra flags, and reads the ports from its log
// as scripts/demo does.
func startDTLSGateway(t *testing.T, dir string, keys map[string]string, extra ...string) *dtlsGateway {
	t.Helper()
	var csv strings.Builder
	csv.WriteString("node_id,psk\n")
	ids := make([]string, 0, len(keys))
	for id := range keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		fmt.Fprintf(&csv, "%s,%s\n", id, keys[id])
	}
	if err := os.WriteFile(filepath.Join(dir, "node-keys.csv"), []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, dir, "gateway", "keys", "import", "--data", "gw-data", "node-keys.csv")
	if want := fmt.Sprintf("imported %d keys", len(keys)); !strings.Contains(out, want) {
		t.Fatalf("keys import said %q, want %q", out, want)
	}
	args := append([]string{"gateway", "--data", "gw-data", "--trust", "op.pub", "--coaps", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, extra...)
	p := startLogged(t, dir, "gateway", args...)
	var m []string
	testutil.Eventually(t, "the gateway to log its addresses", func() bool {
		if p.exited() {
			t.Fatalf("the gateway exited:\n%s", p.log.String())
		}
		m = dtlsServing.FindStringSubmatch(p.log.String())
		return m != nil
	})
	g := &dtlsGateway{coaps: m[1], admin: "http://" + m[3], p: p}
	if m[2] != "off" {
		g.coap = m[2]
	}
	testutil.Eventually(t, "the gateway's admin API", func() bool {
		return adminUp(g.admin)
	})
	return g
}

// metric returns the value of one series of the gateway's /metrics, such
// as `edgeota_refused_total{reason="identity"}`; 0 when it is absent (a
// counter vector shows a label only once it counted).
func (g *dtlsGateway) metric(t testing.TB, series string) float64 {
	t.Helper()
	api, err := admin.NewClient(g.admin)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := api.Metrics(ctx)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metrics: %s: %v", sc.Text(), err)
			}
			return f
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("metrics: %v", err)
	}
	return 0
}

// Series of the gateway's /metrics these tests read.
const (
	handshakesOK     = `edgeota_dtls_handshakes_total{result="ok"}`
	handshakesFailed = `edgeota_dtls_handshakes_total{result="failed"}`
	refusedIdentity  = `edgeota_refused_total{reason="identity"}`
	refusedSource    = `edgeota_refused_total{reason="source_rate"}`
	refusedNode      = `edgeota_refused_total{reason="node_rate"}`
	sessionsRefused  = `edgeota_dtls_sessions_refused_total`
)

// push uploads m.cose and m.bin (edgeota model push), assigned to every
// node when assign is set, and returns the image's digest.
func (g *dtlsGateway) push(t *testing.T, dir string, assign bool) string {
	t.Helper()
	args := []string{"model", "push", "--admin", g.admin, "--manifest", "m.cose", "--image", "m.bin", "--json"}
	if assign {
		args = append(args, "--assign", "all")
	}
	out := mustRun(t, dir, args...)
	var pushed struct {
		Model struct{ Digest string } `json:"model"`
	}
	if err := json.Unmarshal([]byte(out), &pushed); err != nil || len(pushed.Model.Digest) != 64 {
		t.Fatalf("push output %q: %v", out, err)
	}
	return pushed.Model.Digest
}

// signDTLSModel makes the operator key op.key/op.pub and a model image
// m.bin of size bytes, signed as m.cose: component kws, version 1.0.0, seq
// 1, a probation of 1 s and 20 inferences.
func signDTLSModel(t *testing.T, dir string, size int) {
	t.Helper()
	mustRun(t, dir, "keygen", "--out", "op")
	writeModel(t, filepath.Join(dir, "m.bin"), dtlsModelHeader, size)
	mustRun(t, dir, "sign", "--key", "op.key", "--image", "m.bin", "--component", "kws", "--version", "1.0.0", "--seq", "1",
		"--class", class, "--probation-seconds", "1", "--min-inferences", "20", "--max-error-permille", "100", "--out", "m.cose")
}

// literalKey returns a fresh random key as its literal string (24
// printable characters, as libcoap's -k takes it).
func literalKey(t testing.TB) string {
	t.Helper()
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// hexKey returns a fresh random 16-byte key written "hex:...".
func hexKey(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "hex:" + hex.EncodeToString(b)
}

// startDTLSNode starts `edgeota node --id id` on the flash file
// flash+".flash" against gateway (a coaps:// or coap:// URL), with key
// (literal or hex:) in the --psk-file flash+".psk" unless key is empty.
func startDTLSNode(t *testing.T, dir, id, flash, gateway, key string) *loggedProc {
	t.Helper()
	args := []string{"node", "--id", id, "--flash", flash + ".flash", "--slot-size", dtlsSlotSize,
		"--class", class, "--trust", "op.pub", "--component", "kws", "--labels", "hw=rev2",
		"--gateway", gateway, "--inference-rate", "100", "--health-interval", "500ms"}
	if key != "" {
		if err := os.WriteFile(filepath.Join(dir, flash+".psk"), []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--psk-file", flash+".psk")
	}
	return startLogged(t, dir, "node "+id+" ("+flash+")", args...)
}

// runLibcoap runs libcoap's client and returns its stdout and stderr. It
// exits 0 even when the handshake or the request failed: callers check
// what it printed and wrote.
func runLibcoap(t *testing.T, client string, args ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.DefaultCeiling)
	defer cancel()
	cmd := exec.CommandContext(ctx, client, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(client), strings.Join(args, " "), err, o.String(), e.String())
	}
	return o.String(), e.String()
}

// libcoapError matches the line libcoap's client prints for an error
// answer: its code, then its diagnostic payload if any ("4.03 not your
// node id").
var libcoapError = regexp.MustCompile(`(?m)^[45]\.[0-9]{2}( .*)?$`)

// coapError returns the error answer libcoap printed in out, or "".
func coapError(out string) string {
	return libcoapError.FindString(out)
}

// TestLibcoapFetchesModelOverDTLS: libcoap's client fetches a pushed model
// over DTLS with its node's PSK and gets the same bytes; with a wrong key,
// or an identity the gateway has no key for, it gets nothing, and the
// gateway counts both failed handshakes (and no successful one).
func TestLibcoapFetchesModelOverDTLS(t *testing.T) {
	t.Parallel()
	client := requirePeer(t, "coap-client-openssl", "libcoap3-bin")
	dir := t.TempDir()
	signDTLSModel(t, dir, 300_000)
	keyA := literalKey(t)
	g := startDTLSGateway(t, dir, map[string]string{"node-a": keyA})
	if g.coap != "" {
		t.Fatalf("plain CoAP is on (%s) without --insecure-udp", g.coap)
	}
	digest := g.push(t, dir, false)
	url := "coaps://" + g.coaps + "/m/" + digest
	want, err := os.ReadFile(filepath.Join(dir, "m.bin"))
	if err != nil {
		t.Fatal(err)
	}

	good := filepath.Join(dir, "fetched.bin")
	stdout, stderr := runLibcoap(t, client, "-u", "node-a", "-k", keyA, "-m", "get", "-b", "1024", "-o", good, url)
	if got, err := os.ReadFile(good); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("with node-a's key: got %d bytes (%v), want the %d of m.bin; libcoap said:\n%s%s", len(got), err, len(want), stdout, stderr)
	}
	okBefore, failedBefore := g.metric(t, handshakesOK), g.metric(t, handshakesFailed)
	if okBefore < 1 {
		t.Fatalf("%s = %v after a fetch over DTLS, want at least 1", handshakesOK, okBefore)
	}

	for _, c := range []struct{ name, identity, key string }{
		{"wrong key", "node-a", literalKey(t)},
		{"unknown identity", "node-z", keyA},
	} {
		out := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".bin")
		stdout, stderr := runLibcoap(t, client, "-u", c.identity, "-k", c.key, "-m", "get", "-b", "1024", "-B", "3", "-o", out, url)
		if got, err := os.ReadFile(out); err == nil && len(got) > 0 {
			t.Errorf("%s: libcoap wrote %d bytes of the model", c.name, len(got))
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if strings.Contains(stdout+stderr, "edgeota-sim-model") { // the image's first line
			t.Errorf("%s: libcoap printed the model:\nstdout: %q\nstderr: %q", c.name, stdout, stderr)
		}
	}
	// An unknown identity fails at once; a wrong key when the gateway's
	// handshake timeout (10 s) passes: the client's Finished never verifies.
	testutil.Eventually(t, "the gateway to count both failed handshakes", func() bool {
		return g.metric(t, handshakesFailed) >= failedBefore+2
	})
	if ok := g.metric(t, handshakesOK); ok != okBefore {
		t.Errorf("%s went from %v to %v: a handshake with a wrong key or an unknown identity succeeded", handshakesOK, okBefore, ok)
	}
	if log := g.p.log.String(); !strings.Contains(log, `no key for that identity \"node-z\"`) {
		t.Errorf("the gateway did not log the unknown identity node-z:\n%s", log)
	}
}

// TestNodeUpdatesOverDTLS: an edgeota node process with --gateway coaps://
// and its --psk-file (a hex: key) says Hello to a gateway that serves only
// DTLS, then downloads, verifies, activates and confirms the model
// assigned to it.
func TestNodeUpdatesOverDTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	signDTLSModel(t, dir, 300_000)
	key := hexKey(t)
	g := startDTLSGateway(t, dir, map[string]string{"node-1": key})
	if g.coap != "" {
		t.Fatalf("plain CoAP is on (%s) without --insecure-udp", g.coap)
	}
	start := time.Now()
	startDTLSNode(t, dir, "node-1", "node-1", "coaps://"+g.coaps, key)
	testutil.Eventually(t, "node-1 to say Hello over DTLS", func() bool {
		_, ok := gatewayNodes(t, dir, g.admin)["node-1"]
		return ok
	})
	t.Logf("Hello after %v", time.Since(start).Round(time.Millisecond))
	digest := g.push(t, dir, true)
	testutil.Eventually(t, "node-1 to run and confirm seq 1", func() bool {
		n := gatewayNodes(t, dir, g.admin)["node-1"]
		return n.RunningSeq == 1 && n.ActiveState == "confirmed"
	})
	t.Logf("confirmed after %v", time.Since(start).Round(time.Millisecond))
	if ok := g.metric(t, handshakesOK); ok < 1 {
		t.Errorf("%s = %v, want at least 1", handshakesOK, ok)
	}
	if s := g.metric(t, "edgeota_dtls_sessions"); s < 1 {
		t.Errorf("edgeota_dtls_sessions = %v while node-1 runs, want at least 1", s)
	}
	// The node's own view, from its flash: the pushed image runs, confirmed.
	out := mustRun(t, dir, "node", "status", "--flash", "node-1.flash", "--slot-size", dtlsSlotSize, "--json")
	type slot struct {
		Slot, Digest, State string
		Seq                 uint64
	}
	var st struct {
		Active string `json:"active"`
		Slots  []slot `json:"slots"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("node status --json %q: %v", out, err)
	}
	i := slices.IndexFunc(st.Slots, func(s slot) bool { return s.Slot == st.Active })
	if i < 0 || st.Slots[i].Digest != digest || st.Slots[i].Seq != 1 || st.Slots[i].State != "confirmed" {
		t.Errorf("node-1's flash after the update: %s; want the active slot to hold %s, seq 1, confirmed", out, digest)
	}
}

// registeredNode is a node as `edgeota nodes --json` shows it.
type registeredNode struct {
	ID            string            `json:"id"`
	Labels        map[string]string `json:"labels"`
	HealthReports uint64            `json:"health_reports"`
}

func registeredNodes(t *testing.T, dir, admin string) map[string]registeredNode {
	t.Helper()
	out := mustRun(t, dir, "nodes", "--admin", admin, "--json")
	var ns []registeredNode
	if err := json.Unmarshal([]byte(out), &ns); err != nil {
		t.Fatalf("nodes --json %q: %v", out, err)
	}
	m := map[string]registeredNode{}
	for _, n := range ns {
		m[n.ID] = n
	}
	return m
}

// helloFile writes a Hello of node id with labels as CBOR into dir and
// returns its name, for libcoap's -f.
func helloFile(t *testing.T, dir, name, id string, labels map[string]string) string {
	t.Helper()
	cls, err := protocol.ParseClass(class)
	if err != nil {
		t.Fatal(err)
	}
	b, err := protocol.Marshal(&protocol.Hello{NodeID: id, Class: cls, Labels: labels, AgentVersion: "0.1.0", Component: "kws"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestNodeWithoutItsKeyIsRefused: a node process claiming node-b's id with
// another node's key, and one whose id has no key, never get a session nor
// a place in the registry, while node-b with its own key then registers;
// and a node with a valid session (libcoap as node-a) is answered 4.03 on
// node-b's resources and for documents naming node-b, but not on its own.
func TestNodeWithoutItsKeyIsRefused(t *testing.T) {
	t.Parallel()
	client := requirePeer(t, "coap-client-openssl", "libcoap3-bin")
	dir := t.TempDir()
	mustRun(t, dir, "keygen", "--out", "op")
	keyA, keyB := literalKey(t), hexKey(t)
	g := startDTLSGateway(t, dir, map[string]string{"node-a": keyA, "node-b": keyB})

	// node-b's id with node-a's (valid) key, and node-x that has no key.
	impostors := []*loggedProc{
		startDTLSNode(t, dir, "node-b", "impostor-b", "coaps://"+g.coaps, keyA),
		startDTLSNode(t, dir, "node-x", "node-x", "coaps://"+g.coaps, literalKey(t)),
	}
	started := time.Now()
	// Each handshake is decided when its node gives up, or at the latest
	// when the gateway's handshake timeout (10 s) has passed.
	testutil.Eventually(t, "the gateway to fail both impostors' handshakes", func() bool {
		ns := registeredNodes(t, dir, g.admin)
		for _, id := range []string{"node-b", "node-x"} {
			if _, ok := ns[id]; ok {
				t.Fatalf("%s is in the registry without its key: %+v", id, ns[id])
			}
		}
		decided := (impostors[0].exited() && impostors[1].exited()) || time.Since(started) > 12*time.Second
		return decided && g.metric(t, handshakesFailed) >= 2
	})
	if ok := g.metric(t, handshakesOK); ok != 0 {
		t.Fatalf("%s = %v with only impostors talking: one got a session", handshakesOK, ok)
	}
	if ns := registeredNodes(t, dir, g.admin); len(ns) != 0 {
		t.Fatalf("registry after the impostors: %+v, want it empty", ns)
	}

	// The real node-b, with its own key.
	startDTLSNode(t, dir, "node-b", "node-b", "coaps://"+g.coaps, keyB)
	testutil.Eventually(t, "node-b with its own key to say Hello", func() bool {
		_, ok := registeredNodes(t, dir, g.admin)["node-b"]
		return ok
	})
	if ok := g.metric(t, handshakesOK); ok < 1 {
		t.Errorf("%s = %v after node-b registered, want at least 1", handshakesOK, ok)
	}

	// node-a's valid session against node-b's resources.
	base := "coaps://" + g.coaps
	asA := []string{"-u", "node-a", "-k", keyA}
	spoof := helloFile(t, dir, "spoof.cbor", "node-b", map[string]string{"hw": "spoofed"})
	own := helloFile(t, dir, "own.cbor", "node-a", map[string]string{"hw": "libcoap"})
	for _, c := range []struct {
		name string
		args []string
		want string // libcoap's line for the answer: code and diagnostic; "" for a success
	}{
		{"POST a Hello of node-b to node-b", []string{"-m", "post", "-t", "60", "-f", spoof, base + "/n/node-b/hello"}, "4.03 not your node id"},
		{"GET node-b's manifest", []string{"-m", "get", base + "/n/node-b/manifest"}, "4.03 not your node id"},
		{"POST a Hello of node-b to node-a", []string{"-m", "post", "-t", "60", "-f", spoof, base + "/n/node-a/hello"}, "4.03 document names another node"},
		// The same session on its own resources: no 4.03.
		{"GET its own manifest (none assigned)", []string{"-m", "get", base + "/n/node-a/manifest"}, "4.04"},
		{"POST its own Hello", []string{"-m", "post", "-t", "60", "-f", own, base + "/n/node-a/hello"}, ""},
	} {
		stdout, stderr := runLibcoap(t, client, append(slices.Clone(asA), c.args...)...)
		if got := coapError(stdout + stderr); got != c.want {
			t.Errorf("%s as node-a: libcoap printed %q, want the answer %q", c.name, stdout+stderr, c.want)
		}
	}
	if n := g.metric(t, refusedIdentity); n != 3 {
		t.Errorf("%s = %v, want 3", refusedIdentity, n)
	}
	ns := registeredNodes(t, dir, g.admin)
	if got := ns["node-a"].Labels["hw"]; got != "libcoap" {
		t.Errorf("node-a's labels after its own Hello: %v, want hw=libcoap", ns["node-a"].Labels)
	}
	if got := ns["node-b"].Labels["hw"]; got != "rev2" {
		t.Errorf("node-b's labels after node-a's spoofed Hello: %v, want hw=rev2", ns["node-b"].Labels)
	}
	if _, ok := ns["node-x"]; ok {
		t.Errorf("node-x is in the registry: %+v", ns["node-x"])
	}
	// The real node-b goes on reporting.
	before := ns["node-b"].HealthReports
	testutil.Eventually(t, "node-b's health reports to keep arriving", func() bool {
		return registeredNodes(t, dir, g.admin)["node-b"].HealthReports >= before+2
	})
}

// floodStats counts what a flooder sent and what the gateway answered.
type floodStats struct {
	sent      atomic.Int64 // requests sent
	content   atomic.Int64 // 2.05 answers
	limited   atomic.Int64 // 4.29 answers with Max-Age 1
	badMaxAge atomic.Int64 // 4.29 answers without Max-Age 1
	other     atomic.Int64 // any other answer
}

func (s *floodStats) String() string {
	return fmt.Sprintf("sent %d, 2.05 %d, 4.29 %d (without Max-Age 1: %d), other %d",
		s.sent.Load(), s.content.Load(), s.limited.Load(), s.badMaxAge.Load(), s.other.Load())
}

// count classifies one datagram from the gateway.
func (s *floodStats) count(b []byte) {
	m := message.Message{Options: make(message.Options, 0, 16)} // the decoder fills, never grows, Options
	if _, err := coder.DefaultCoder.Decode(b, &m); err != nil {
		s.other.Add(1)
		return
	}
	switch m.Code {
	case codes.Content:
		s.content.Add(1)
	case codes.TooManyRequests:
		if age, err := m.Options.GetUint32(message.MaxAge); err == nil && age == 1 {
			s.limited.Add(1)
		} else {
			s.badMaxAge.Add(1)
		}
	default:
		s.other.Add(1)
	}
}

// wellKnownCoreGET is a confirmable GET of /.well-known/core (RFC 7252
// section 3); the flooders rewrite its message id and token before each
// send.
var wellKnownCoreGET = []byte{
	0x42,       // version 1, type 0 (CON), token length 2
	0x01,       // code 0.01 GET
	0x00, 0x00, // message id
	0x00, 0x00, // token
	0xbb, // option delta 11 (Uri-Path), length 11
	'.', 'w', 'e', 'l', 'l', '-', 'k', 'n', 'o', 'w', 'n',
	0x04, // option delta 0 (Uri-Path), length 4
	'c', 'o', 'r', 'e',
}

// floodTick is how often a flooder sends its next batch: perSecond/100
// requests every 10 ms.
const floodTick = 10 * time.Millisecond

// floodGETs sends confirmable GETs of /.well-known/core on c at perSecond
// until ctx ends, each with a new message id and token, while it counts
// the answers read from c; it closes c. The rate is a ceiling, never
// exceeded: a batch of perSecond/100 per tick of a time.Ticker, which
// drops the ticks a busy sender misses instead of catching up. A flood as
// fast as the CPU allows would measure how many cores the flooder takes
// from the gateway, not how the gateway treats a source over its rate.
func floodGETs(ctx context.Context, c net.Conn, perSecond int, st *floodStats) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, err := c.Read(buf)
			if err != nil {
				var ne net.Error
				if ctx.Err() == nil && errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				return // closed by flood, or the gateway ended the session
			}
			st.count(buf[:n])
		}
	}()
	batch := max(1, perSecond*int(floodTick)/int(time.Second))
	tick := time.NewTicker(floodTick)
	defer tick.Stop()
	msg := slices.Clone(wellKnownCoreGET)
	var id uint16
	for ctx.Err() == nil {
		for range batch {
			id++
			binary.BigEndian.PutUint16(msg[2:4], id)
			binary.BigEndian.PutUint16(msg[4:6], id)
			if _, err := c.Write(msg); err == nil {
				st.sent.Add(1)
			}
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	c.Close()
	wg.Wait()
}

// dialFrom opens a UDP socket from the loopback address from (another
// source address than the nodes' 127.0.0.1) to addr.
func dialFrom(t *testing.T, from, addr string) *net.UDPConn {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(from)}, raddr)
	if err != nil {
		t.Fatalf("a socket from %s: %v", from, err)
	}
	return c
}

// dialDTLS opens a DTLS session from the loopback address from to addr
// with identity and key, as a node would.
func dialDTLS(t *testing.T, from, addr, identity string, key []byte) *piondtls.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.DefaultCeiling)
	defer cancel()
	dc, err := gatewaytest.DialDTLS(ctx, from, addr, identity, key)
	if err != nil {
		t.Fatalf("DTLS handshake as %s from %s: %v", identity, from, err)
	}
	return dc
}

// floodRate is the rate each flooder of
// TestFloodFromOneAddressDoesNotStarveOthers sends at, in requests per
// second: 10 times its source's rate and 40 times its node's rate there,
// and a small share of what the gateway can refuse (it answered over
// 30,000 refused requests a second on a 2-core machine whose two cores the
// flooders kept busy).
const floodRate = 2000

// TestFloodFromOneAddressDoesNotStarveOthers: while two flooders send
// confirmable requests at floodRate each (one from 127.0.0.2 over plain
// UDP, one from 127.0.0.3 over its own DTLS session), three node processes
// on 127.0.0.1, two over DTLS and one over plain UDP, each sharing a socket
// with a flooder, say Hello and download, verify and confirm a 400 kB
// model; the flooders get 4.29 with Max-Age 1 and no more 2.05 than the
// node rate allows, and the gateway counts refusals for both rates, before
// the nodes start and still after they all confirmed. Blocks of an
// admitted transfer are exempt from the rates by design; the nodes'
// Hellos, manifests and first blocks count on 127.0.0.1's own bucket.
//
// The test is of the gateway's fairness, its limiter, not of its capacity:
// the flood has a fixed rate the gateway can refuse on a fraction of one
// core. Flooding as fast as the CPU allows (as this test once did) makes
// the flooders take both cores of a 2-core machine, and the kernel then
// drops most datagrams at the gateway's socket before the gateway reads
// them, the nodes' among them (in one 17 s run, 864,000 of the 1.38
// million sent: RcvbufErrors in /proc/net/snmp); the plain-UDP node,
// waiting out CoAP's retransmission back-off on most blocks, took 12 to
// 45 s and sometimes did not finish in 60 s. What a flood at the CPU's speed costs the gateway and the other
// nodes is measured by issue 14's benchmark, not asserted here.
func TestFloodFromOneAddressDoesNotStarveOthers(t *testing.T) {
	t.Parallel()
	const nodeRate, nodeBurst = 50, 100 // --rate-node, and its default burst (twice the rate)
	dir := t.TempDir()
	signDTLSModel(t, dir, 400_000)
	flooderKey := literalKey(t)
	keys := map[string]string{"node-f1": hexKey(t), "node-f2": literalKey(t), "flooder": flooderKey}
	g := startDTLSGateway(t, dir, keys, "--insecure-udp", "--coap", "127.0.0.1:0",
		"--rate-source", "200", "--rate-node", strconv.Itoa(nodeRate))
	if g.coap == "" {
		t.Fatal("the gateway serves no plain CoAP with --insecure-udp")
	}

	var udpFlood, dtlsFlood floodStats
	flooders := []struct {
		name string
		st   *floodStats
	}{{"plain UDP", &udpFlood}, {"DTLS", &dtlsFlood}}
	udpConn := dialFrom(t, "127.0.0.2", g.coap)
	dtlsConn := dialDTLS(t, "127.0.0.3", g.coaps, "flooder", []byte(flooderKey))
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); floodGETs(ctx, udpConn, floodRate, &udpFlood) }()
	go func() { defer wg.Done(); floodGETs(ctx, dtlsConn, floodRate, &dtlsFlood) }()
	stopFlood := sync.OnceFunc(func() {
		cancel()
		wg.Wait()
	})
	t.Cleanup(stopFlood)
	// admittedWithinRate fails the test at once when a flooder has been
	// answered 2.05 more often than its node bucket allows: its burst,
	// then the rate, over at most the time since start (the flood began
	// after start; the answers are counted before the time is read).
	admittedWithinRate := func() {
		t.Helper()
		for _, f := range flooders {
			got := f.st.content.Load()
			if allowed := int64(nodeBurst + nodeRate*time.Since(start).Seconds() + 5); got > allowed {
				t.Fatalf("%s flooder got %d 2.05 answers in %v; the node rate allows %d", f.name, got, time.Since(start), allowed)
			}
		}
	}
	// limitedNow waits until every flooder has been answered 4.29 more
	// often than before, and the gateway has counted more refusals of each
	// rate than before: the flood is on and limited at this point.
	type refusals struct{ udp, dtls, source, node float64 }
	var seen refusals
	limitedNow := func(when string) {
		t.Helper()
		was := seen
		testutil.Eventually(t, "the flooders to be answered 4.29 "+when, func() bool {
			admittedWithinRate()
			seen = refusals{float64(udpFlood.limited.Load()), float64(dtlsFlood.limited.Load()), g.metric(t, refusedSource), g.metric(t, refusedNode)}
			return seen.udp > was.udp && seen.dtls > was.dtls && seen.source > was.source && seen.node > was.node
		})
	}
	limitedNow("before the nodes start")

	// Two nodes over DTLS (the DTLS flooder's socket), one over plain UDP
	// (the plain flooder's socket), all from 127.0.0.1.
	gateways := map[string]string{"node-f1": "coaps://" + g.coaps, "node-f2": "coaps://" + g.coaps, "node-u": "coap://" + g.coap}
	ids := []string{"node-f1", "node-f2", "node-u"}
	for _, id := range ids {
		startDTLSNode(t, dir, id, id, gateways[id], keys[id])
	}
	// The waits' ceiling is a safety net for a hung run, not the
	// assertion: at floodRate a node's update takes seconds. Each check
	// runs `edgeota nodes`: every 100 ms is often enough.
	testutil.Eventually(t, "the nodes to say Hello during the flood", func() bool {
		admittedWithinRate()
		ns := gatewayNodes(t, dir, g.admin)
		for _, id := range ids {
			if _, ok := ns[id]; !ok {
				return false
			}
		}
		return true
	}, testutil.Every(100*time.Millisecond))
	hello := time.Since(start)
	g.push(t, dir, true)
	testutil.Eventually(t, "the nodes to download and confirm the model during the flood", func() bool {
		admittedWithinRate()
		ns := gatewayNodes(t, dir, g.admin)
		for _, id := range ids {
			if n := ns[id]; n.RunningSeq != 1 || n.ActiveState != "confirmed" {
				return false
			}
		}
		return true
	}, testutil.Every(100*time.Millisecond))
	updated := time.Since(start)
	limitedNow("after the nodes confirmed")
	stopFlood()
	t.Logf("Hello after %v, all confirmed after %v of flood at %d/s", hello.Round(time.Millisecond), updated.Round(time.Millisecond), floodRate)
	t.Logf("plain UDP flooder: %v", &udpFlood)
	t.Logf("DTLS flooder: %v", &dtlsFlood)

	admittedWithinRate()
	for _, f := range flooders {
		if f.st.badMaxAge.Load() != 0 || f.st.other.Load() != 0 {
			t.Errorf("%s flooder: %v; want only 2.05 and 4.29 with Max-Age 1", f.name, f.st)
		}
	}
}
