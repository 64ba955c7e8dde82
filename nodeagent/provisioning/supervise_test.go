package provisioning

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"testing"
	"time"

	"edgeota/nodeagent"
	"edgeota/test/testutil"
)

func TestCommitChannelKeepsTheLatest(t *testing.T) {
	on, ch := CommitChannel()
	on(NodeConfig{Serial: 1})
	on(NodeConfig{Serial: 2})
	if c := <-ch; c.Serial != 2 {
		t.Fatalf("got serial %d", c.Serial)
	}
}

func TestSuperviseAgent(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	commits := make(chan NodeConfig)
	started := make(chan *NodeConfig)
	done := make(chan error, 1)
	go func() {
		done <- Supervise(ctx, slog.New(slog.DiscardHandler), nil, commits, func(ctx context.Context, pc *NodeConfig, committed bool) error {
			if committed != (pc != nil) {
				panic("committed is true exactly on the runs after a commit")
			}
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
	commits <- NodeConfig{Serial: 1}
	if pc := <-started; pc == nil || pc.Serial != 1 {
		t.Fatalf("after the first commit: %v", pc)
	}
	commits <- NodeConfig{Serial: 2}
	if pc := <-started; pc == nil || pc.Serial != 2 {
		t.Fatalf("after the second commit: %v", pc)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testutil.DefaultCeiling):
		t.Fatal("Supervise did not return")
	}
}

func TestApplyProvisioned(t *testing.T) {
	mk := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
	pc := NodeConfig{NodeID: "n1", Labels: map[string]string{"a": "b"}, Component: "kws-model",
		Gateway: "coap://127.0.0.1:5683", ManifestKeys: []ed25519.PublicKey{mk}}
	var cfg nodeagent.Config
	if err := Apply(&cfg, pc); err != nil {
		t.Fatal(err)
	}
	if cfg.NodeID != "n1" || cfg.Labels["a"] != "b" || cfg.Gateway != pc.Gateway || cfg.Trust.Len() != 1 || cfg.PSK != nil {
		t.Fatalf("%+v", cfg)
	}
	pc.Gateway, pc.PSK = "coaps://gw:5684", []byte("0123456789abcdef")
	if err := Apply(&cfg, pc); err != nil || string(cfg.PSK) != "0123456789abcdef" {
		t.Fatalf("coaps: PSK %q, %v", cfg.PSK, err)
	}
	cfg.NodeID = "n2"
	if err := Apply(&cfg, pc); err == nil {
		t.Fatal("applied another node's configuration")
	}
}
