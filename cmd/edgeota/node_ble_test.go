package main

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"edgeota/cmd/edgeota/internal/hci"
	"edgeota/protocol"
)

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
	if err := serveBLE(ctx, "hci0", svc); err != nil && !errors.Is(err, hci.ErrNoAdapter) && !errors.Is(err, hci.ErrPermission) && !errors.Is(err, hci.ErrBusy) {
		t.Fatalf("serveBLE: %v", err)
	}
}
