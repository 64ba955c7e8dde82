package provisioning_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/go-ble/ble"
	"github.com/go-ble/ble/linux/gatt"

	"edgeota/firmware-sim/blelink"
	"edgeota/nodeagent/provisioning"
	"edgeota/protocol"
	"edgeota/protocol/provision"
	"edgeota/test/testutil"
)

// Test keys: factoryOp is the operator key nodes are manufactured to
// trust; newOp an anchor a bundle can hand over to; stranger nobody trusts.
var (
	factoryOp     = key(0x31)
	newOp         = key(0x32)
	stranger      = key(0x33)
	manifestKey   = key(0x34).Public().(ed25519.PublicKey)
	factorySecret = bytes.Repeat([]byte{0x5a}, 32)
	testClass     = protocol.Class{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
)

const nodeID = "node-with-a-rather-long-identifier-0001" // longer than one read at MTU 23

func key(b byte) ed25519.PrivateKey { return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, 32)) }

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// node is a provisioning service under test with what it committed.
type node struct {
	svc     *provisioning.Service
	store   provisioning.Store
	commits chan provisioning.NodeConfig
}

func newNode(t testing.TB, store provisioning.Store) *node {
	t.Helper()
	n := &node{store: store, commits: make(chan provisioning.NodeConfig, 8)}
	svc, err := provisioning.New(provisioning.Config{
		NodeID: nodeID, Class: testClass, Component: "kws-model", AgentVersion: "0.1.0",
		RunningVersion: func() string { return "1.4.0" },
		FactorySecret:  factorySecret, FactoryKeys: []ed25519.PublicKey{pub(factoryOp)}, Store: store,
		OnCommit: func(c provisioning.NodeConfig) { n.commits <- c },
		Now:      func() time.Time { return time.Unix(1795000000, 0) },
	})
	if err != nil {
		t.Fatal(err)
	}
	n.svc = svc
	return n
}

// conn is a central's GATT client connected to a node over blelink.
type conn struct {
	cli   *gatt.Client
	prof  *ble.Profile
	notes chan provision.Status
}

// connect links a central to the node's ServeConn, discovers the profile
// and, when subscribe is set, subscribes to the status. Cleanup
// disconnects and waits for ServeConn to return.
func (n *node) connect(t testing.TB, subscribe bool) *conn {
	t.Helper()
	central, periph := blelink.Pipe("0a:00:00:00:00:00", "0a:00:00:00:00:01")
	served := make(chan error, 1)
	go func() { served <- n.svc.ServeConn(context.Background(), periph) }()
	cli, err := gatt.NewClient(central)
	if err != nil {
		t.Fatal(err)
	}
	c := &conn{cli: cli, notes: make(chan provision.Status, 32)}
	t.Cleanup(func() {
		cli.CancelConnection()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("ServeConn: %v", err)
			}
		case <-time.After(testutil.DefaultCeiling):
			t.Error("ServeConn did not return after the disconnect")
		}
	})
	if c.prof, err = cli.DiscoverProfile(true); err != nil {
		t.Fatal(err)
	}
	if subscribe {
		err := cli.Subscribe(c.char(t, provision.StatusUUID), false, func(v []byte) {
			st, err := provision.ParseStatus(v)
			if err != nil {
				t.Errorf("bad status notification %x: %v", v, err)
				return
			}
			c.notes <- st
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c *conn) char(t testing.TB, u string) *ble.Characteristic {
	t.Helper()
	ch, ok := c.prof.Find(ble.NewCharacteristic(ble.MustParse(u))).(*ble.Characteristic)
	if !ok {
		t.Fatalf("characteristic %s not found", u)
	}
	return ch
}

// write writes v to characteristic u and returns the ATT error code (0 on
// success).
func (c *conn) write(t testing.TB, u string, v []byte) ble.ATTError {
	t.Helper()
	err := c.cli.WriteCharacteristic(c.char(t, u), v, false)
	if err == nil {
		return ble.ErrSuccess
	}
	var ae ble.ATTError
	if !errors.As(err, &ae) {
		t.Fatalf("write %s: %v, not an ATT error", u, err)
	}
	return ae
}

// send writes a signed bundle in chunks of the link's size and returns
// the ATT error of the first refused chunk.
func (c *conn) send(t testing.TB, signed []byte) ble.ATTError {
	t.Helper()
	chunks, err := provision.Split(signed, c.cli.Conn().TxMTU()-3)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range chunks {
		if e := c.write(t, provision.BundleUUID, v); e != ble.ErrSuccess {
			return e
		}
	}
	return ble.ErrSuccess
}

// status waits for the next status notification whose state is not
// receiving.
func (c *conn) status(t testing.TB) provision.Status {
	t.Helper()
	for {
		select {
		case st := <-c.notes:
			if st.State != provision.StateReceiving {
				return st
			}
		case <-time.After(testutil.DefaultCeiling):
			t.Fatal("no status notification")
		}
	}
}

// bundleFor builds a bundle for the test node, mod edits it before it is
// sealed and signed by signer.
func bundleFor(t testing.TB, signer ed25519.PrivateKey, serial uint64, mod func(*provision.Bundle, *[]byte)) []byte {
	t.Helper()
	b := &provision.Bundle{
		Format: provision.Format, NodeID: nodeID, Serial: serial, Issued: 1795000000,
		Labels: map[string]string{"region": "eu-west"}, Component: "kws-model", Gateway: "coap://127.0.0.1:5683",
		ManifestKeys: []ed25519.PublicKey{manifestKey}, OperatorKeys: []ed25519.PublicKey{pub(factoryOp)},
	}
	secret := factorySecret
	if mod != nil {
		mod(b, &secret)
	}
	var err error
	if b.PSK, err = provision.Seal(secret, b.NodeID, b.Serial, testPSK); err != nil {
		t.Fatal(err)
	}
	signed, err := provision.Sign(b, signer)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

var testPSK = bytes.Repeat([]byte{0xc3}, 32)

// provisionOK runs a whole provisioning and checks it committed.
func (n *node) provisionOK(t testing.TB, signed []byte) provisioning.NodeConfig {
	t.Helper()
	c := n.connect(t, true)
	if e := c.send(t, signed); e != ble.ErrSuccess {
		t.Fatalf("send: ATT error %v", e)
	}
	if st := c.status(t); st.State != provision.StateAccepted {
		t.Fatalf("status after the bundle: %v", st)
	}
	if e := c.write(t, provision.ControlUUID, []byte{provision.ControlCommit}); e != ble.ErrSuccess {
		t.Fatalf("commit: ATT error %v", e)
	}
	if st := c.status(t); st.State != provision.StateCommitted {
		t.Fatalf("status after commit: %v", st)
	}
	select {
	case cfg := <-n.commits:
		return cfg
	default:
		t.Fatal("OnCommit was not called")
	}
	return provisioning.NodeConfig{}
}
