package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"edgeota/nodeagent"
	"edgeota/nodeagent/provisioning"
	"edgeota/protocol"
)

func TestCommitChannelKeepsTheLatest(t *testing.T) {
	on, ch := commitChannel()
	on(provisioning.NodeConfig{Serial: 1})
	on(provisioning.NodeConfig{Serial: 2})
	if c := <-ch; c.Serial != 2 {
		t.Fatalf("got serial %d", c.Serial)
	}
}

func TestSuperviseAgent(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	commits := make(chan provisioning.NodeConfig)
	started := make(chan *provisioning.NodeConfig)
	done := make(chan error, 1)
	go func() {
		done <- superviseAgent(ctx, slog.New(slog.DiscardHandler), nil, commits, func(ctx context.Context, pc *provisioning.NodeConfig) error {
			started <- pc
			if pc == nil {
				return nil // nothing to run before provisioning
			}
			<-ctx.Done()
			return ctx.Err()
		})
	}()
	if pc := <-started; pc != nil {
		t.Fatal("first run was given a configuration")
	}
	commits <- provisioning.NodeConfig{Serial: 1}
	if pc := <-started; pc == nil || pc.Serial != 1 {
		t.Fatalf("after the first commit: %v", pc)
	}
	commits <- provisioning.NodeConfig{Serial: 2}
	if pc := <-started; pc == nil || pc.Serial != 2 {
		t.Fatalf("after the second commit: %v", pc)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("superviseAgent did not return")
	}
}

func TestApplyProvisioned(t *testing.T) {
	mk := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
	pc := provisioning.NodeConfig{NodeID: "n1", Labels: map[string]string{"a": "b"}, Component: "kws-model",
		Gateway: "coap://127.0.0.1:5683", ManifestKeys: []ed25519.PublicKey{mk}}
	var cfg nodeagent.Config
	if err := applyProvisioned(&cfg, pc); err != nil {
		t.Fatal(err)
	}
	if cfg.NodeID != "n1" || cfg.Labels["a"] != "b" || cfg.Gateway != pc.Gateway || cfg.Trust.Len() != 1 || cfg.PSK != nil {
		t.Fatalf("%+v", cfg)
	}
	pc.Gateway, pc.PSK = "coaps://gw:5684", []byte("0123456789abcdef")
	if err := applyProvisioned(&cfg, pc); err != nil || string(cfg.PSK) != "0123456789abcdef" {
		t.Fatalf("coaps: PSK %q, %v", cfg.PSK, err)
	}
	cfg.NodeID = "n2"
	if err := applyProvisioned(&cfg, pc); err == nil {
		t.Fatal("applied another node's configuration")
	}
}

func TestBLEFlagsService(t *testing.T) {
	f := newProvFixture(t)
	var b bleFlags
	cmd := &cobra.Command{Use: "node"}
	b.register(cmd)
	if err := cmd.ParseFlags([]string{"--ble", "--hci", "hci1", "--factory-secret-file", f.secret, "--factory-operator-key", f.opPub}); err != nil {
		t.Fatal(err)
	}
	if !b.enabled || b.hci != "hci1" || len(b.factoryKeys) != 1 {
		t.Fatalf("flags %+v", b)
	}
	flash := filepath.Join(f.dir, "node.flash")
	svc, err := b.service(flash, "n1", protocol.Class{}, "", nil, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := svc.Current(); ok {
		t.Fatal("fresh node is provisioned")
	}
	if got := b.store(flash).Path; got != flash+".provisioning.json" {
		t.Fatalf("store path %s", got)
	}
	b.factoryKeys = nil
	if _, err := b.service(flash, "n1", protocol.Class{}, "", nil, nil, nil); err == nil {
		t.Fatal("--ble without factory keys")
	}
	if err := serveBLE(context.Background(), "bogus", svc); err == nil {
		t.Fatal("serveBLE with a bad --hci")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := serveBLE(ctx, "hci0", svc); err != nil && !errors.Is(err, provisioning.ErrNoAdapter) && !errors.Is(err, provisioning.ErrPermission) && !errors.Is(err, provisioning.ErrBusy) {
		t.Fatalf("serveBLE: %v", err)
	}
}
