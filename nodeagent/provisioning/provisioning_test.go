package provisioning_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-ble/ble"
	"github.com/go-ble/ble/linux/gatt"

	"edgeota/firmware-sim/blelink"
	"edgeota/nodeagent/provisioning"
	"edgeota/protocol/provision"
	"edgeota/protocol/sign"
	"edgeota/test/testutil"
)

func TestReads(t *testing.T) {
	n := newNode(t, &provisioning.MemStore{})
	c := n.connect(t, false)
	for _, tc := range []struct {
		uuid string
		want []byte
	}{
		{provision.NodeIDUUID, []byte(nodeID)},
		{provision.ClassUUID, testClass[:]},
		{provision.ComponentUUID, []byte("kws-model")},
		{provision.RunningVersionUUID, []byte("1.4.0")},
		{provision.AgentVersionUUID, []byte("0.1.0")},
		{provision.SerialUUID, make([]byte, 8)},
		{provision.StatusUUID, []byte{0, 0}},
	} {
		got, err := c.cli.ReadLongCharacteristic(c.char(t, tc.uuid))
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("read %s = %q, %v; want %q", tc.uuid, got, err, tc.want)
		}
	}
	for _, u := range []string{provision.BundleUUID, provision.ControlUUID} {
		if _, err := c.cli.ReadCharacteristic(c.char(t, u)); !errors.Is(err, ble.ErrReadNotPerm) {
			t.Errorf("read of write-only %s: %v, want ErrReadNotPerm", u, err)
		}
	}
	// The GAP device name is the node id cut to fit one read.
	name, err := c.cli.ReadCharacteristic(c.char(t, ble.DeviceNameUUID.String()))
	if err != nil || string(name) != nodeID[:provision.MaxValueLen] {
		t.Errorf("device name %q, %v", name, err)
	}
}

// TestProvision provisions a fresh node at the default MTU (the bundle
// takes dozens of 16-byte chunks), then checks that what it committed is
// in force and that nothing secret is readable over GATT.
func TestProvision(t *testing.T) {
	store := &provisioning.MemStore{}
	n := newNode(t, store)
	signed := bundleFor(t, factoryOp, 5, func(b *provision.Bundle, _ *[]byte) {
		b.OperatorKeys = []ed25519.PublicKey{pub(newOp)}
		b.Labels = map[string]string{"region": "eu-west", "hw": "rev2"}
	})
	cfg := n.provisionOK(t, signed)
	want := provisioning.NodeConfig{
		NodeID: nodeID, Serial: 5, Issued: 1795000000, Labels: map[string]string{"region": "eu-west", "hw": "rev2"},
		Component: "kws-model", Gateway: "coap://127.0.0.1:5683", ManifestKeys: []ed25519.PublicKey{manifestKey},
		OperatorKeys: []ed25519.PublicKey{pub(newOp)}, PSK: testPSK, Signer: sign.KeyIDOf(pub(factoryOp)).String(),
		CommittedAt: 1795000000,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("OnCommit got\n%+v\nwant\n%+v", cfg, want)
	}
	stored, ok, err := store.Load()
	if err != nil || !ok || !reflect.DeepEqual(stored, want) {
		t.Fatalf("store holds %+v, %v, %v", stored, ok, err)
	}
	if cur, ok := n.svc.Current(); !ok || cur.Serial != 5 {
		t.Fatalf("Current = %+v, %v", cur, ok)
	}
	if strings.Contains(cfg.String(), string(testPSK)) {
		t.Fatal("String shows the PSK")
	}

	// Nothing readable holds the PSK or the factory secret.
	c := n.connect(t, false)
	for _, s := range c.prof.Services {
		for _, ch := range s.Characteristics {
			if ch.Property&ble.CharRead == 0 {
				continue
			}
			v, err := c.cli.ReadLongCharacteristic(ch)
			if err != nil {
				continue
			}
			for _, secret := range [][]byte{testPSK, factorySecret, testPSK[:8], factorySecret[:8]} {
				if bytes.Contains(v, secret) {
					t.Fatalf("characteristic %s reveals a secret: %x", ch.UUID, v)
				}
			}
		}
	}
	v, err := c.cli.ReadCharacteristic(c.char(t, provision.SerialUUID))
	if err != nil || binary.BigEndian.Uint64(v) != 5 {
		t.Fatalf("serial reads %x, %v", v, err)
	}
}

// TestBadInput sends every kind of bad input to a node provisioned at
// serial 5 (anchors: newOp), each on its own connection, and checks that
// each is refused with an ATT error or a status, and changes nothing.
func TestBadInput(t *testing.T) {
	store := &provisioning.MemStore{}
	n := newNode(t, store)
	n.provisionOK(t, bundleFor(t, factoryOp, 5, func(b *provision.Bundle, _ *[]byte) {
		b.OperatorKeys = []ed25519.PublicKey{pub(newOp)}
	}))
	before, _, _ := store.Load()
	good := bundleFor(t, newOp, 6, nil)
	chunks, _ := provision.Split(good, provision.MaxValueLen)
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-70] ^= 1
	garbagePayload, _ := mustSigner(t, newOp).Sign(provision.ContentType, []byte{0xa1, 0x01, 0xff})

	type step = func(t *testing.T, c *conn)
	refuse := func(v []byte, want ble.ATTError) step {
		return func(t *testing.T, c *conn) {
			if got := c.write(t, provision.BundleUUID, v); got != want {
				t.Fatalf("chunk %x: ATT error %v, want %v", v, got, want)
			}
		}
	}
	accept := func(v []byte) step { return refuse(v, ble.ErrSuccess) }
	rejected := func(signed []byte, reason provision.Reason) step {
		return func(t *testing.T, c *conn) {
			if got := c.send(t, signed); got != ble.ATTError(provision.ATTRejected) {
				t.Fatalf("bundle: ATT error %v, want rejected", got)
			}
			if st := c.status(t); st.State != provision.StateRejected || st.Reason != reason {
				t.Fatalf("status %v, want rejected (%v)", st, reason)
			}
		}
	}
	control := func(v []byte, want ble.ATTError) step {
		return func(t *testing.T, c *conn) {
			if got := c.write(t, provision.ControlUUID, v); got != want {
				t.Fatalf("control %x: ATT error %v, want %v", v, got, want)
			}
		}
	}
	outOfOrder := ble.ATTError(provision.ATTOutOfOrder)
	tests := []struct {
		name  string
		steps []step
	}{
		{"chunk without data", []step{refuse([]byte{0, 0, 0, 1}, ble.ErrInvalAttrValueLen)}},
		{"one byte", []step{refuse([]byte{0}, ble.ErrInvalAttrValueLen)}},
		{"index past total", []step{refuse([]byte{0, 3, 0, 3, 1}, ble.ErrInvalAttrValueLen)}},
		{"first chunk not index 0", []step{refuse(chunks[1], outOfOrder)}},
		{"duplicate chunk", []step{accept(chunks[0]), refuse(chunks[0], outOfOrder)}},
		{"skipped chunk", []step{accept(chunks[0]), refuse(chunks[2], outOfOrder)}},
		{"total changes", []step{accept(chunks[0]), refuse(provision.AppendChunk(nil, 1, 99, chunks[1][4:]), outOfOrder)}},
		{"short middle chunk", []step{accept(chunks[0]), refuse(chunks[1][:10], ble.ErrInvalAttrValueLen)}},
		{"oversized transfer", []step{refuse(provision.AppendChunk(nil, 0, 400, make([]byte, 16)), ble.ErrInvalAttrValueLen)}},
		{"not COSE", []step{rejected(bytes.Repeat([]byte{0x42}, 40), provision.ReasonMalformed)}},
		{"malformed CBOR payload", []step{rejected(garbagePayload, provision.ReasonMalformed)}},
		{"bad signature", []step{rejected(flipped, provision.ReasonSignature)}},
		{"other node id", []step{rejected(bundleFor(t, newOp, 6, func(b *provision.Bundle, _ *[]byte) { b.NodeID = "node-2" }), provision.ReasonNodeID)}},
		{"replayed serial", []step{rejected(bundleFor(t, newOp, 5, nil), provision.ReasonReplay)}},
		{"older serial", []step{rejected(bundleFor(t, newOp, 4, nil), provision.ReasonReplay)}},
		{"psk sealed under another secret", []step{rejected(bundleFor(t, newOp, 6, func(_ *provision.Bundle, s *[]byte) {
			*s = bytes.Repeat([]byte{0x5b}, 32)
		}), provision.ReasonSeal)}},
		{"reprovision by a factory key that is no longer an anchor", []step{rejected(bundleFor(t, factoryOp, 6, nil), provision.ReasonUntrusted)}},
		{"reprovision by a stranger", []step{rejected(bundleFor(t, stranger, 6, nil), provision.ReasonUntrusted)}},
		{"commit with nothing", []step{control([]byte{provision.ControlCommit}, ble.ATTError(provision.ATTNothingToCommit))}},
		{"commit after a rejection", []step{rejected(flipped, provision.ReasonSignature), control([]byte{provision.ControlCommit}, ble.ATTError(provision.ATTNothingToCommit))}},
		{"control of two bytes", []step{control([]byte{1, 1}, ble.ErrInvalAttrValueLen)}},
		{"unknown control", []step{control([]byte{9}, ble.ATTError(provision.ATTUnknownOp))}},
		{"abort then commit", []step{
			func(t *testing.T, c *conn) {
				if c.send(t, good) != ble.ErrSuccess || c.status(t).State != provision.StateAccepted {
					t.Fatal("good bundle not accepted")
				}
			},
			control([]byte{provision.ControlAbort}, ble.ErrSuccess),
			control([]byte{provision.ControlCommit}, ble.ATTError(provision.ATTNothingToCommit)),
		}},
		{"chunk while a bundle waits for commit", []step{
			func(t *testing.T, c *conn) {
				if c.send(t, good) != ble.ErrSuccess {
					t.Fatal("good bundle refused")
				}
			},
			refuse(chunks[0], outOfOrder),
		}},
		{"cut off after the whole bundle, before commit", []step{
			func(t *testing.T, c *conn) {
				if c.send(t, good) != ble.ErrSuccess || c.status(t).State != provision.StateAccepted {
					t.Fatal("good bundle not accepted")
				}
				c.cli.CancelConnection()
				<-c.cli.Disconnected()
			},
		}},
		{"cut off in the middle", []step{accept(chunks[0]), accept(chunks[1]), func(t *testing.T, c *conn) { c.cli.CancelConnection() }}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := n.connect(t, true)
			for _, s := range tc.steps {
				s(t, c)
			}
			// A new connection starts afresh: a commit finds nothing.
			c2 := n.connect(t, false)
			if got := c2.write(t, provision.ControlUUID, []byte{provision.ControlCommit}); got != ble.ATTError(provision.ATTNothingToCommit) {
				t.Fatalf("commit on a new connection: %v", got)
			}
			after, _, _ := store.Load()
			if !reflect.DeepEqual(before, after) {
				t.Fatalf("configuration changed:\n%+v\n%+v", before, after)
			}
			select {
			case cfg := <-n.commits:
				t.Fatalf("OnCommit called with %v", cfg)
			default:
			}
		})
	}

	// After all that, the good bundle still goes through, signed by the
	// anchor the first bundle named.
	cfg := n.provisionOK(t, good)
	if cfg.Serial != 6 || cfg.Signer != sign.KeyIDOf(pub(newOp)).String() {
		t.Fatalf("reprovisioned to %v", cfg)
	}
}

func mustSigner(t testing.TB, k ed25519.PrivateKey) *sign.Signer {
	t.Helper()
	s, err := sign.NewSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestGuard sends the raw PDUs that crash the pinned go-ble ATT server and
// checks they are answered with an error and the server still serves.
func TestGuard(t *testing.T) {
	n := newNode(t, &provisioning.MemStore{})
	central, periph := blelink.Pipe("0a:00:00:00:00:00", "0a:00:00:00:00:01")
	served := make(chan error, 1)
	go func() { served <- n.svc.ServeConn(context.Background(), periph) }()
	defer func() { central.Close(); <-served }()
	rpc := func(pdu []byte) []byte {
		if _, err := central.Write(pdu); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, ble.MaxMTU)
		k, err := central.Read(b)
		if err != nil {
			t.Fatal(err)
		}
		return b[:k]
	}
	if got := rpc([]byte{0x18, 0x01}); !bytes.Equal(got, []byte{0x01, 0x18, 0, 0, byte(ble.ErrReqNotSupp)}) {
		t.Fatalf("execute write: %x", got)
	}
	if got := rpc([]byte{0x16, 0x03, 0x00, 0, 0, 1}); got[0] != 0x01 || got[4] != byte(ble.ErrReqNotSupp) {
		t.Fatalf("prepare write: %x", got)
	}
	// Find the status CCCD: the handle after the status value.
	cli := n.connect(t, false)
	cccd := cli.char(t, provision.StatusUUID).CCCD.Handle
	if got := rpc([]byte{0x12, byte(cccd), byte(cccd >> 8), 1}); !bytes.Equal(got, []byte{0x01, 0x12, byte(cccd), byte(cccd >> 8), byte(ble.ErrInvalAttrValueLen)}) {
		t.Fatalf("1-byte CCCD write: %x", got)
	}
	central.Write([]byte{0x52, byte(cccd), byte(cccd >> 8), 1}) // a command: dropped, no answer
	// Still serving: read the node id (handle discovered on the other link;
	// both links have the same attribute table).
	nid := cli.char(t, provision.NodeIDUUID).ValueHandle
	if got := rpc([]byte{0x0a, byte(nid), byte(nid >> 8)}); got[0] != 0x0b || string(got[1:]) != nodeID[:22] {
		t.Fatalf("read after the bad PDUs: %x", got)
	}
}

func TestServeConnContext(t *testing.T) {
	n := newNode(t, &provisioning.MemStore{})
	_, periph := blelink.Pipe("0a:00:00:00:00:00", "0a:00:00:00:00:01")
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- n.svc.ServeConn(ctx, periph) }()
	cancel()
	select {
	case err := <-served:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("ServeConn: %v", err)
		}
	case <-time.After(testutil.DefaultCeiling):
		t.Fatal("ServeConn ignored its context")
	}
	<-periph.Disconnected()
}

// failingStore fails every Save.
type failingStore struct{ provisioning.MemStore }

func (*failingStore) Save(provisioning.NodeConfig) error { return errors.New("flash worn out") }

func TestStoreFailure(t *testing.T) {
	n := newNode(t, &failingStore{})
	c := n.connect(t, true)
	if c.send(t, bundleFor(t, factoryOp, 1, nil)) != ble.ErrSuccess || c.status(t).State != provision.StateAccepted {
		t.Fatal("bundle not accepted")
	}
	if got := c.write(t, provision.ControlUUID, []byte{provision.ControlCommit}); got != ble.ATTError(provision.ATTStoreFailed) {
		t.Fatalf("commit: %v", got)
	}
	if st := c.status(t); st.Reason != provision.ReasonStore {
		t.Fatalf("status %v", st)
	}
	if _, ok := n.svc.Current(); ok {
		t.Fatal("a configuration that was not saved is current")
	}
}

func TestFileStore(t *testing.T) {
	dir := t.TempDir()
	fs := provisioning.FileStore{Path: filepath.Join(dir, "provisioning.json")}
	if _, ok, err := fs.Load(); ok || err != nil {
		t.Fatalf("Load of a missing file: %v, %v", ok, err)
	}
	n := newNode(t, fs)
	cfg := n.provisionOK(t, bundleFor(t, factoryOp, 3, nil))
	got, ok, err := fs.Load()
	if err != nil || !ok || !reflect.DeepEqual(got, cfg) {
		t.Fatalf("Load = %+v, %v, %v", got, ok, err)
	}
	st, err := os.Stat(fs.Path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", st.Mode(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("left %d files behind", len(ents))
	}
	// A restarted node loads it: a bundle at the same serial is a replay.
	n2 := newNode(t, fs)
	if cur, ok := n2.svc.Current(); !ok || cur.Serial != 3 {
		t.Fatalf("restarted node: %v, %v", cur, ok)
	}
	// The file says its format; a file of an agent before formats (no
	// "format") loads the same; one of a newer format is refused.
	var doc map[string]any
	b, _ := os.ReadFile(fs.Path)
	if err := json.Unmarshal(b, &doc); err != nil || doc["format"] != float64(provisioning.FileFormat) {
		t.Fatalf("saved file has format %v (%v), want %d", doc["format"], err, provisioning.FileFormat)
	}
	old, _ := json.Marshal(cfg)
	os.WriteFile(fs.Path, old, 0o600)
	if got, ok, err := fs.Load(); err != nil || !ok || !reflect.DeepEqual(got, cfg) {
		t.Fatalf("Load of a file without format = %+v, %v, %v", got, ok, err)
	}
	doc["format"] = 2
	newer, _ := json.Marshal(doc)
	os.WriteFile(fs.Path, newer, 0o600)
	if _, _, err := fs.Load(); !errors.Is(err, provisioning.ErrFormatTooNew) || !strings.Contains(err.Error(), "format 2, this node agent reads formats up to 1") {
		t.Fatalf("Load of format 2 = %v, want ErrFormatTooNew naming both formats", err)
	}
	// A corrupt file is an error, not a fresh node.
	os.WriteFile(fs.Path, []byte(`{"node_id":"x"`), 0o600)
	if _, _, err := fs.Load(); !errors.Is(err, provisioning.ErrCorrupt) {
		t.Fatalf("corrupt file: %v", err)
	}
	// A file for another node is refused.
	other := cfg
	other.NodeID = "someone-else"
	provisioning.FileStore{Path: fs.Path}.Save(other)
	if _, err := provisioning.New(provisioning.Config{NodeID: nodeID, FactorySecret: factorySecret,
		FactoryKeys: []ed25519.PublicKey{pub(factoryOp)}, Store: fs}); !errors.Is(err, provisioning.ErrCorrupt) {
		t.Fatalf("New with another node's file: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	ok := provisioning.Config{NodeID: "n1", FactorySecret: factorySecret, FactoryKeys: []ed25519.PublicKey{pub(factoryOp)}, Store: &provisioning.MemStore{}}
	for name, mod := range map[string]func(*provisioning.Config){
		"bad node id":  func(c *provisioning.Config) { c.NodeID = "a b" },
		"short secret": func(c *provisioning.Config) { c.FactorySecret = factorySecret[:8] },
		"no keys":      func(c *provisioning.Config) { c.FactoryKeys = nil },
		"short key":    func(c *provisioning.Config) { c.FactoryKeys = []ed25519.PublicKey{make([]byte, 31)} },
		"no store":     func(c *provisioning.Config) { c.Store = nil },
	} {
		c := ok
		mod(&c)
		if _, err := provisioning.New(c); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	if _, err := provisioning.New(ok); err != nil {
		t.Fatal(err)
	}
}

// fakePeripheral is a BLE adapter in the peripheral role whose centrals
// the test hands over on conns.
type fakePeripheral struct {
	conns      chan ble.Conn
	advertised chan []string // name, then the service UUIDs
	stopped    chan struct{} // closed by StopAdvertising
	acceptErr  error         // Accept's error once conns is closed
}

func newFakePeripheral() *fakePeripheral {
	return &fakePeripheral{conns: make(chan ble.Conn), advertised: make(chan []string, 1), stopped: make(chan struct{})}
}

func (p *fakePeripheral) Advertise(name string, services ...ble.UUID) error {
	ad := []string{name}
	for _, u := range services {
		ad = append(ad, u.String())
	}
	p.advertised <- ad
	return nil
}

func (p *fakePeripheral) StopAdvertising() error { close(p.stopped); return nil }

func (p *fakePeripheral) Accept() (ble.Conn, error) {
	c, ok := <-p.conns
	if !ok {
		return nil, p.acceptErr
	}
	return c, nil
}

func (p *fakePeripheral) Addr() string { return "0a:00:00:00:00:01" }

// TestServe: Serve advertises the node and the service, serves a central
// that connects, and when ctx ends disconnects it and stops advertising.
func TestServe(t *testing.T) {
	n := newNode(t, &provisioning.MemStore{})
	p := newFakePeripheral()
	t.Cleanup(func() { // the adapter closes: Accept fails
		p.acceptErr = errors.New("closed")
		close(p.conns)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- n.svc.Serve(ctx, p) }()

	ad := testutil.Receive(t, "the advertisement", p.advertised)
	if len(ad) != 2 || !strings.HasPrefix(nodeID, ad[0]) || ad[0] == "" || ad[1] != ble.MustParse(provision.ServiceUUID).String() {
		t.Fatalf("advertised %q, want a prefix of %q and the service %s", ad, nodeID, provision.ServiceUUID)
	}
	central, periph := blelink.Pipe("0a:00:00:00:00:00", p.Addr())
	p.conns <- periph
	cli, err := gatt.NewClient(central)
	if err != nil {
		t.Fatal(err)
	}
	prof, err := cli.DiscoverProfile(true)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := prof.Find(ble.NewCharacteristic(ble.MustParse(provision.NodeIDUUID))).(*ble.Characteristic)
	if !ok {
		t.Fatal("no node id characteristic")
	}
	if v, err := cli.ReadLongCharacteristic(c); err != nil || string(v) != nodeID {
		t.Fatalf("node id %q, %v; want %q", v, err, nodeID)
	}

	cancel()
	if err := testutil.Receive(t, "Serve to return", served); !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve = %v, want context.Canceled", err)
	}
	testutil.Closed(t, "the central's disconnection", cli.Disconnected())
	testutil.Closed(t, "advertising to stop", p.stopped)
}

// TestServeAcceptFails: an adapter that fails to accept ends Serve with
// its error, after Serve disconnected the central it was serving.
func TestServeAcceptFails(t *testing.T) {
	n := newNode(t, &provisioning.MemStore{})
	p := newFakePeripheral()
	served := make(chan error, 1)
	go func() { served <- n.svc.Serve(context.Background(), p) }()
	testutil.Receive(t, "the advertisement", p.advertised)
	central, periph := blelink.Pipe("0a:00:00:00:00:00", p.Addr())
	p.conns <- periph
	cli, err := gatt.NewClient(central)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.DiscoverProfile(true); err != nil { // the central is served
		t.Fatal(err)
	}

	p.acceptErr = errors.New("adapter gone")
	close(p.conns)
	if err := testutil.Receive(t, "Serve to return", served); err == nil || !strings.Contains(err.Error(), "adapter gone") {
		t.Fatalf("Serve = %v, want the accept error", err)
	}
	testutil.Closed(t, "the central's disconnection", cli.Disconnected())
	testutil.Closed(t, "advertising to stop", p.stopped)
}
