package gateway_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"edgeota/gateway"
	"edgeota/gateway/admin"
	"edgeota/gateway/gatewaytest"
	"edgeota/protocol"
	"edgeota/protocol/sign"
	"edgeota/test/testutil"
)

var testClass = protocol.Class{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}

type env struct {
	t      testing.TB
	g      *gateway.Gateway
	api    *admin.Client
	coap   string
	coaps  string // DTLS address, with opts.keys
	signer *sign.Signer
	cancel context.CancelFunc
	done   chan error
	dir    string
}

type opts struct {
	maxPerNode   int
	maxTransfers int
	dir          string
	keys         map[string][]byte // imported before start; DTLS on a loopback port too
	limits       gateway.Limits
	maxNodes     int
	logger       *slog.Logger
	roots        []crypto.PublicKey // TrustRoots
	qblock       gateway.QBlockParams
}

func newEnv(t testing.TB, o opts) *env {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	s, _ := sign.NewSigner(priv)
	if o.dir == "" {
		o.dir = t.TempDir()
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	coaps := "-"
	if o.keys != nil {
		if _, err := gateway.ImportKeys(o.dir, o.keys); err != nil {
			t.Fatal(err)
		}
		coaps = "127.0.0.1:0"
	}
	g, err := gateway.New(gateway.Config{DataDir: o.dir, Trust: []ed25519.PublicKey{priv.Public().(ed25519.PublicKey)},
		CoAPConn: conn, InsecureUDP: true, CoAPSAddr: coaps, AdminListener: ln, MaxTransfersPerNode: o.maxPerNode, MaxTransfers: o.maxTransfers,
		Limits: o.limits, MaxNodes: o.maxNodes, Logger: o.logger, TrustRoots: o.roots, QBlock: o.qblock})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	api, err := admin.NewClient("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, g: g, api: api, coap: conn.LocalAddr().String(), signer: s,
		cancel: cancel, done: make(chan error, 1), dir: o.dir}
	if a := g.CoAPSAddr(); a != nil {
		e.coaps = a.String()
	}
	go func() { e.done <- g.Run(ctx) }()
	t.Cleanup(e.stop)
	return e
}

func (e *env) stop() {
	if e.cancel != nil {
		e.cancel()
		if err := <-e.done; err != nil {
			e.t.Errorf("gateway Run: %v", err)
		}
		e.cancel = nil
	}
}

type model struct {
	signed []byte
	image  []byte
	m      *protocol.Manifest
}

func (e *env) model(seq uint64, size int) model {
	img := make([]byte, size)
	r := rand.New(rand.NewPCG(seq, uint64(size)))
	for i := range img {
		img[i] = byte(r.Uint32())
	}
	m := &protocol.Manifest{Format: 1, Seq: seq, Component: "kws", Version: fmt.Sprintf("1.%d", seq),
		Digest: sha256.Sum256(img), Size: uint64(size), Class: testClass, Epoch: 1}
	signed, err := e.signer.SignManifest(m)
	if err != nil {
		e.t.Fatal(err)
	}
	return model{signed, img, m}
}

// push stores a model through the admin API.
func (e *env) push(signed, image []byte) error {
	_, err := e.api.PutModel(context.Background(), signed, bytes.NewReader(image))
	return err
}

func (e *env) assign(signed []byte, nodes []string, all bool) {
	var err error
	if all {
		_, err = e.api.AssignAll(context.Background(), signed)
	} else {
		_, err = e.api.Assign(context.Background(), signed, nodes)
	}
	if err != nil {
		e.t.Fatalf("assign: %v", err)
	}
}

func (e *env) dial() *udpClient.Conn {
	c, err := udp.Dial(e.coap, options.WithBlockwise(false, blockwise.SZX1024, time.Minute), options.WithErrors(func(error) {}))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testutil.DefaultCeiling)
	t.Cleanup(cancel)
	return ctx
}

func post(t *testing.T, c *udpClient.Conn, path string, cf message.MediaType, body []byte) *pool.Message {
	t.Helper()
	resp, err := c.Post(ctxT(t), path, cf, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func hello(t *testing.T, c *udpClient.Conn, id string) {
	t.Helper()
	b, err := protocol.Marshal(&protocol.Hello{NodeID: id, Class: testClass, AgentVersion: "0.1.0", Component: "kws",
		Labels: map[string]string{"hw": "rev2"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := post(t, c, protocol.NodePath(id, protocol.ResHello), message.AppCBOR, b); r.Code() != codes.Changed {
		t.Fatalf("hello: %v", r.Code())
	}
}

// fetch downloads an image block by block at the given size.
func fetch(t *testing.T, c *udpClient.Conn, d protocol.Digest, size int) []byte {
	t.Helper()
	szx, _ := sizeSZX(size)
	var out []byte
	for n := int64(0); ; n++ {
		req, _ := c.NewGetRequest(ctxT(t), protocol.ImagePath(d))
		v, _ := blockwise.EncodeBlockOption(szx, n, false)
		req.SetOptionUint32(message.Block2, v)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Code() != codes.Content {
			t.Fatalf("block %d: %v", n, resp.Code())
		}
		if tag, _ := resp.Options().GetBytes(message.ETag); !bytes.Equal(tag, d[:8]) {
			t.Fatalf("block %d: ETag %x", n, tag)
		}
		body, _ := resp.ReadBody()
		out = append(out, body...)
		bv, _ := resp.Options().GetUint32(message.Block2)
		_, num, more, _ := blockwise.DecodeBlockOption(bv)
		if num != n {
			t.Fatalf("asked block %d, got %d", n, num)
		}
		if !more {
			return out
		}
	}
}

func sizeSZX(size int) (blockwise.SZX, bool) {
	for s := blockwise.SZX16; s <= blockwise.SZX1024; s++ {
		if int(s.Size()) == size {
			return s, true
		}
	}
	return 0, false
}

func TestPushAndServeImage(t *testing.T) {
	e := newEnv(t, opts{})
	md := e.model(5, 300_000)
	if err := e.push(md.signed, md.image); err != nil {
		t.Fatalf("push: %v", err)
	}
	c := e.dial()
	for _, bs := range []int{1024, 256, 64} {
		if got := fetch(t, c, md.m.Digest, bs); !bytes.Equal(got, md.image) {
			t.Fatalf("block size %d: image differs (%d bytes)", bs, len(got))
		}
	}
	// A node resumes with a plain request for block N.
	req, _ := c.NewGetRequest(ctxT(t), protocol.ImagePath(md.m.Digest))
	v, _ := blockwise.EncodeBlockOption(blockwise.SZX1024, 100, false)
	req.SetOptionUint32(message.Block2, v)
	resp, err := c.Do(req)
	if err != nil || resp.Code() != codes.Content {
		t.Fatalf("block 100: %v %v", resp, err)
	}
	body, _ := resp.ReadBody()
	if !bytes.Equal(body, md.image[100*1024:101*1024]) {
		t.Fatal("block 100 differs")
	}
	// Past the end: 4.02; unknown image: 4.04; upper-case hex: 4.04.
	v, _ = blockwise.EncodeBlockOption(blockwise.SZX1024, 300, false)
	req, _ = c.NewGetRequest(ctxT(t), protocol.ImagePath(md.m.Digest))
	req.SetOptionUint32(message.Block2, v)
	if resp, _ := c.Do(req); resp.Code() != codes.BadOption {
		t.Fatalf("past the end: %v", resp.Code())
	}
	other := e.model(6, 10)
	if resp, _ := c.Get(ctxT(t), protocol.ImagePath(other.m.Digest)); resp.Code() != codes.NotFound {
		t.Fatalf("unknown image: %v", resp.Code())
	}
	// Link-format discovery lists the image and no node.
	resp, _ = c.Get(ctxT(t), "/.well-known/core")
	body, _ = resp.ReadBody()
	want := fmt.Sprintf(`</m/%s>;rt="edgeota.image";ct=42;sz=300000`, md.m.Digest)
	if string(body) != want {
		t.Fatalf("core: %s", body)
	}
}

func TestPushRefusesBadModels(t *testing.T) {
	e := newEnv(t, opts{})
	md := e.model(5, 5000)
	bad := append([]byte(nil), md.image...)
	bad[100] ^= 1
	tampered := append([]byte(nil), md.signed...)
	tampered[len(tampered)-70] ^= 1
	intruder, _ := sign.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{4}, 32)))
	foreign, _ := intruder.SignManifest(md.m)
	tests := []struct {
		name          string
		signed, image []byte
		reason        string
	}{
		{"wrong digest", md.signed, bad, "digest mismatch"},
		{"short image", md.signed, md.image[:4000], "size mismatch"},
		{"long image", md.signed, append(md.image, 1), "size mismatch"},
		{"tampered manifest", tampered, md.image, "bad signature"},
		{"unknown key", foreign, md.image, "unknown kid"},
		{"not COSE", []byte("hello"), md.image, "malformed manifest"},
	}
	for _, tt := range tests {
		err := e.push(tt.signed, tt.image)
		var ae *admin.Error
		if !errors.As(err, &ae) || ae.StatusCode != http.StatusUnprocessableEntity || ae.Body.Reason != tt.reason {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	models, err := e.api.Models(ctxT(t))
	if err != nil || len(models) != 0 {
		t.Fatalf("a refused model was stored: %v", models)
	}
}

func TestManifestObserveAndNodeDocuments(t *testing.T) {
	e := newEnv(t, opts{})
	c := e.dial()
	// A node that never said Hello: 4.04.
	if resp, _ := c.Get(ctxT(t), protocol.NodePath("node-1", protocol.ResManifest)); resp.Code() != codes.NotFound {
		t.Fatalf("unknown node: %v", resp.Code())
	}
	hello(t, c, "node-1")
	notes := make(chan []byte, 8)
	obs, err := c.Observe(ctxT(t), protocol.NodePath("node-1", protocol.ResManifest), func(m *pool.Message) {
		b, _ := m.ReadBody()
		notes <- append([]byte{}, b...)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Cancel(context.Background())
	if first := <-notes; len(first) != 0 {
		t.Fatalf("nothing assigned, got %d bytes", len(first))
	}
	md := e.model(7, 2000)
	e.push(md.signed, md.image)
	e.assign(md.signed, []string{"node-1"}, false)
	select {
	case got := <-notes:
		if !bytes.Equal(got, md.signed) {
			t.Fatal("notification is not the assigned manifest")
		}
	case <-time.After(testutil.DefaultCeiling):
		t.Fatal("no notification after the assignment")
	}
	// Polling: ETag and 2.03.
	resp, _ := c.Get(ctxT(t), protocol.NodePath("node-1", protocol.ResManifest))
	etag, _ := resp.Options().GetBytes(message.ETag)
	if ma, _ := resp.Options().GetUint32(message.MaxAge); ma != 3600 {
		t.Fatalf("Max-Age %d", ma)
	}
	req, _ := c.NewGetRequest(ctxT(t), protocol.NodePath("node-1", protocol.ResManifest))
	req.SetOptionBytes(message.ETag, etag)
	if resp, _ := c.Do(req); resp.Code() != codes.Valid {
		t.Fatalf("conditional GET: %v", resp.Code())
	}
	// A health report retransmitted by the client is stored once; bad
	// documents get 4.xx and change nothing.
	hb, _ := protocol.Marshal(&protocol.HealthReport{NodeID: "node-1", Inferences: 10, Number: 1})
	if r := post(t, c, protocol.NodePath("node-1", protocol.ResHealth), message.AppCBOR, hb); r.Code() != codes.Changed {
		t.Fatalf("health: %v", r.Code())
	}
	if r := post(t, c, protocol.NodePath("node-1", protocol.ResHealth), message.TextPlain, hb); r.Code() != codes.UnsupportedMediaType {
		t.Fatalf("wrong content format: %v", r.Code())
	}
	if r := post(t, c, protocol.NodePath("node-2", protocol.ResHealth), message.AppCBOR, hb); r.Code() != codes.BadRequest {
		t.Fatalf("node id mismatch: %v", r.Code())
	}
	if r := post(t, c, protocol.NodePath("node-1", protocol.ResHealth), message.AppCBOR, []byte{0xa1, 0x01}); r.Code() != codes.BadRequest {
		t.Fatalf("malformed CBOR: %v", r.Code())
	}
	otherClass := testClass
	otherClass[0] ^= 1
	hl, _ := protocol.Marshal(&protocol.Hello{NodeID: "node-1", Class: otherClass, AgentVersion: "0.1.0", Component: "kws"})
	if r := post(t, c, protocol.NodePath("node-1", protocol.ResHello), message.AppCBOR, hl); r.Code() != codes.Forbidden {
		t.Fatalf("class change: %v", r.Code())
	}
	node, err := e.api.Node(ctxT(t), "node-1")
	if err != nil {
		t.Fatal(err)
	}
	if node.HealthReports != 1 || node.AssignedSeq != 7 || node.Labels["hw"] != "rev2" {
		t.Fatalf("node %+v", node)
	}
}

// TestTransferLimit: beyond the per-node transfer limit a new transfer's
// first block gets 5.03 with Max-Age; an admitted transfer is never
// refused.
func TestTransferLimit(t *testing.T) {
	e := newEnv(t, opts{maxPerNode: 1})
	a, b := e.model(1, 5000), e.model(2, 5000)
	e.push(a.signed, a.image)
	e.push(b.signed, b.image)
	c := e.dial()
	get := func(d protocol.Digest, n int64) *pool.Message {
		req, _ := c.NewGetRequest(ctxT(t), protocol.ImagePath(d))
		v, _ := blockwise.EncodeBlockOption(blockwise.SZX1024, n, false)
		req.SetOptionUint32(message.Block2, v)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := get(a.m.Digest, 0); r.Code() != codes.Content {
		t.Fatalf("first transfer: %v", r.Code())
	}
	r := get(b.m.Digest, 0)
	if ma, _ := r.Options().GetUint32(message.MaxAge); r.Code() != codes.ServiceUnavailable || ma == 0 {
		t.Fatalf("second transfer: %v, Max-Age %d", r.Code(), ma)
	}
	for n := int64(1); n < 5; n++ {
		if r := get(a.m.Digest, n); r.Code() != codes.Content {
			t.Fatalf("admitted transfer refused at block %d: %v", n, r.Code())
		}
	}
	// The last block ended it: the other image is admitted now.
	if r := get(b.m.Digest, 0); r.Code() != codes.Content {
		t.Fatalf("after the first ended: %v", r.Code())
	}
}

func TestBackupWhileRunning(t *testing.T) {
	e := newEnv(t, opts{})
	md := e.model(9, 100_000)
	e.push(md.signed, md.image)
	var b bytes.Buffer
	n, err := e.api.Backup(ctxT(t), &b)
	if err != nil || n != int64(b.Len()) || n < 100_000 {
		t.Fatalf("backup: %d bytes (%d written), %v", n, b.Len(), err)
	}
}

// TestNewRefusesConfigs: New says what is wrong with a configuration in
// the library's terms (no command-line flag), with a sentinel where a
// caller branches, and never changes the caller's Config.
func TestNewRefusesConfigs(t *testing.T) {
	pub := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, tc := range []struct {
		name string
		cfg  gateway.Config
		is   error  // nil: any error
		want string // in the message
	}{
		{"no data dir", gateway.Config{Trust: []ed25519.PublicKey{pub}}, nil, "DataDir"},
		{"no manifest key", gateway.Config{DataDir: t.TempDir()}, nil, "Trust"},
		{"no CoAP service", gateway.Config{DataDir: t.TempDir(), Trust: []ed25519.PublicKey{pub}, CoAPSAddr: "-"}, gateway.ErrNoCoAP, "no CoAP service"},
		{"plain socket without InsecureUDP", gateway.Config{DataDir: t.TempDir(), Trust: []ed25519.PublicKey{pub}, CoAPConn: conn}, nil, "InsecureUDP"},
		{"a Q-Block2 burst over 256 blocks", gateway.Config{DataDir: t.TempDir(), Trust: []ed25519.PublicKey{pub}, CoAPSAddr: "127.0.0.1:0",
			QBlock: gateway.QBlockParams{MaxPayloads: 1000}}, nil, "MaxPayloads"},
		{"admin beyond loopback without a token", gateway.Config{DataDir: t.TempDir(), Trust: []ed25519.PublicKey{pub}, CoAPSAddr: "127.0.0.1:0",
			AdminAddr: "0.0.0.0:0"}, gateway.ErrAdminNoToken, "without a token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.cfg
			_, err := gateway.New(tc.cfg)
			if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want %v with %q", err, tc.is, tc.want)
			}
			if strings.Contains(err.Error(), "--") {
				t.Errorf("the library names a command-line flag: %v", err)
			}
			if !reflect.DeepEqual(before, tc.cfg) {
				t.Errorf("New changed the caller's Config: %+v, was %+v", tc.cfg, before)
			}
		})
	}
}

// TestObservationsSurviveRestart: a node's observation is saved, so the
// restarted gateway notifies it of a new assignment without the node
// registering again.
func TestObservationsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, opts{dir: dir})
	c := e.dial()
	hello(t, c, "node-1")
	notes := make(chan []byte, 8)
	obs, err := c.Observe(ctxT(t), protocol.NodePath("node-1", protocol.ResManifest), func(m *pool.Message) {
		b, _ := m.ReadBody()
		notes <- append([]byte{}, b...)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Cancel(context.Background())
	<-notes // the initial, empty representation
	addr := e.coap
	e.stop()

	ua, _ := net.ResolveUDPAddr("udp", addr)
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	gatewaytest.Start(t, gateway.Config{DataDir: dir, Trust: []ed25519.PublicKey{priv.Public().(ed25519.PublicKey)}, CoAPConn: conn, InsecureUDP: true, CoAPSAddr: "-", AdminListener: ln})
	api, err := admin.NewClient("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	e2 := &env{t: t, api: api, signer: e.signer}
	md := e2.model(3, 1000)
	if err := e2.push(md.signed, md.image); err != nil {
		t.Fatal(err)
	}
	e2.assign(md.signed, []string{"node-1"}, false)
	select {
	case got := <-notes:
		if !bytes.Equal(got, md.signed) {
			t.Fatal("the notification is not the new assignment")
		}
	case <-time.After(testutil.DefaultCeiling):
		t.Fatal("no notification from the restarted gateway")
	}
}
