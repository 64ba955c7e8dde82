package provisioner_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-ble/ble"

	"edgeota/firmware-sim/blelink"
	"edgeota/gateway/provisioner"
	"edgeota/nodeagent/provisioning"
	"edgeota/protocol"
	"edgeota/protocol/provision"
	"edgeota/protocol/sign"
)

var (
	operator      = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x41}, 32))
	stranger      = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x42}, 32))
	manifestKey   = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x43}, 32)).Public().(ed25519.PublicKey)
	factorySecret = bytes.Repeat([]byte{0x44}, 32)
	psk           = bytes.Repeat([]byte{0x45}, 16)
	class, _      = protocol.ParseClass("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
)

func opPub() ed25519.PublicKey { return operator.Public().(ed25519.PublicKey) }

// simNode is a simulated node advertising its provisioning service on air.
type simNode struct {
	svc     *provisioning.Service
	store   *provisioning.MemStore
	commits chan provisioning.NodeConfig
}

func advertise(t testing.TB, air *blelink.Air, addr, id string) *simNode {
	t.Helper()
	n := &simNode{store: &provisioning.MemStore{}, commits: make(chan provisioning.NodeConfig, 4)}
	svc, err := provisioning.New(provisioning.Config{NodeID: id, Class: class, AgentVersion: "0.1.0",
		FactorySecret: factorySecret, FactoryKeys: []ed25519.PublicKey{opPub()}, Store: n.store,
		OnCommit: func(c provisioning.NodeConfig) { n.commits <- c }})
	if err != nil {
		t.Fatal(err)
	}
	n.svc = svc
	stop, err := air.Advertise(blelink.Peripheral{Addr: addr, Name: id, Services: []ble.UUID{ble.MustParse(provision.ServiceUUID)},
		Accept: func(c ble.Conn) { svc.ServeConn(context.Background(), c) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(); air.Wait() })
	return n
}

func bundle(t testing.TB, signer ed25519.PrivateKey, id string, serial uint64) []byte {
	t.Helper()
	sealed, err := provision.Seal(factorySecret, id, serial, psk)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := provision.Sign(&provision.Bundle{Format: provision.Format, NodeID: id, Serial: serial, Issued: 1795000000,
		Labels: map[string]string{"site": "plant-3", "line": "l2"}, Component: "kws-model", Gateway: "coap://10.0.0.1:5683",
		ManifestKeys: []ed25519.PublicKey{manifestKey}, OperatorKeys: []ed25519.PublicKey{opPub()}, PSK: sealed}, signer)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func TestScan(t *testing.T) {
	air := blelink.NewAir()
	advertise(t, air, "0a:00:00:00:00:01", "node-1")
	advertise(t, air, "0a:00:00:00:00:02", "node-2")
	// Something else on the air, without the service.
	stop, _ := air.Advertise(blelink.Peripheral{Addr: "0a:00:00:00:00:09", Name: "headset", Accept: func(ble.Conn) {}})
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var streamed []string
	found, err := provisioner.Scan(ctx, air, func(f provisioner.Found) { streamed = append(streamed, f.Name) })
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || len(streamed) != 2 || found[0].Addr != "0a:00:00:00:00:01" || found[1].Name != "node-2" {
		t.Fatalf("found %+v (streamed %v)", found, streamed)
	}
}

// TestProvision provisions a simulated node end to end: scan, dial, MTU
// exchange, discovery, reads, chunked write, status notifications,
// commit; at the default MTU and after an exchange.
func TestProvision(t *testing.T) {
	for _, mtu := range []int{0, ble.DefaultMTU, 64} {
		t.Run("", func(t *testing.T) {
			air := blelink.NewAir()
			n := advertise(t, air, "0A:00:00:00:00:07", "node-7")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cli, err := provisioner.Connect(ctx, air, "0a:00:00:00:00:07")
			if err != nil {
				t.Fatal(err)
			}
			signed := bundle(t, operator, "node-7", 1)
			res, err := provisioner.Provision(ctx, cli, signed, provisioner.Options{MTU: mtu, Now: func() time.Time { return time.Unix(1795000100, 0) }})
			if err != nil {
				t.Fatal(err)
			}
			if res.Node.NodeID != "node-7" || res.Node.Class != class.String() || res.Node.AgentVersion != "0.1.0" || res.Node.Serial != 0 ||
				res.Serial != 1 || res.Signer != sign.KeyIDOf(opPub()).String() || res.Bytes != len(signed) || res.Committed.Unix() != 1795000100 {
				t.Fatalf("result %+v", res)
			}
			if mtu == ble.DefaultMTU && res.Chunks < len(signed)/16 {
				t.Fatalf("%d chunks at the default MTU", res.Chunks)
			}
			cfg := <-n.commits
			if cfg.Labels["site"] != "plant-3" || !bytes.Equal(cfg.PSK, psk) || cfg.Gateway != "coap://10.0.0.1:5683" {
				t.Fatalf("node committed %v", cfg)
			}
		})
	}
}

func TestApplyRefused(t *testing.T) {
	air := blelink.NewAir()
	n := advertise(t, air, "0a:00:00:00:00:07", "node-7")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	apply := func(signed []byte) error {
		cli, err := provisioner.Connect(ctx, air, "0a:00:00:00:00:07")
		if err != nil {
			t.Fatal(err)
		}
		_, err = provisioner.Provision(ctx, cli, signed, provisioner.Options{})
		return err
	}
	// Refused by the node: a key it does not trust.
	err := apply(bundle(t, stranger, "node-7", 1))
	var rej *provisioner.RejectedError
	if !errors.As(err, &rej) || rej.Status.Reason != provision.ReasonUntrusted || !errors.Is(err, provisioner.ErrRejected) {
		t.Fatalf("stranger's bundle: %v", err)
	}
	// Refused by the provisioner before sending: another node's bundle.
	if err := apply(bundle(t, operator, "node-8", 1)); err == nil || !strings.Contains(err.Error(), `for node "node-8"`) {
		t.Fatalf("other node's bundle: %v", err)
	}
	if err := apply(bundle(t, operator, "node-7", 3)); err != nil {
		t.Fatal(err)
	}
	<-n.commits
	// Refused by the provisioner: not newer than what the node holds.
	if err := apply(bundle(t, operator, "node-7", 3)); err == nil || !strings.Contains(err.Error(), "holds serial 3") {
		t.Fatalf("replay: %v", err)
	}
	if err := apply([]byte("not a bundle")); err == nil {
		t.Fatal("garbage applied")
	}
	select {
	case c := <-n.commits:
		t.Fatalf("unexpected commit %v", c)
	default:
	}
}

// TestSessionReplayAtNode bypasses the provisioner's own serial check to
// see the node refuse a replay with a status.
func TestSessionReplayAtNode(t *testing.T) {
	air := blelink.NewAir()
	advertise(t, air, "0a:00:00:00:00:07", "node-7")
	ctx := context.Background()
	for i, want := range []error{nil, provisioner.ErrRejected} {
		cli, err := provisioner.Connect(ctx, air, "0a:00:00:00:00:07")
		if err != nil {
			t.Fatal(err)
		}
		s, err := provisioner.Open(ctx, cli, provisioner.Options{MTU: ble.DefaultMTU})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Send(ctx, bundle(t, operator, "node-7", 2))
		if err == nil {
			err = s.Commit(ctx)
		}
		s.Close()
		if !errors.Is(err, want) {
			t.Fatalf("attempt %d: %v, want %v", i, err, want)
		}
		if want != nil && !strings.Contains(err.Error(), "replay") {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
}

func TestConnectNotFound(t *testing.T) {
	air := blelink.NewAir()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := provisioner.Connect(ctx, air, "0a:00:00:00:00:07"); !errors.Is(err, provisioner.ErrNotFound) {
		t.Fatalf("Connect: %v", err)
	}
}
