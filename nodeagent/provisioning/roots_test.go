package provisioning_test

import (
	"path/filepath"
	"testing"

	"edgeota/nodeagent"
	"edgeota/nodeagent/provisioning"
	"edgeota/protocol/provision"
	"edgeota/protocol/trust"
)

// TestBundleRoots: a bundle's root keys (v1.3, key 64) and threshold (key
// 65) are committed with the configuration, kept by a FileStore across a
// restart, and given to the agent by Apply; a bundle without roots leaves
// the agent's own roots (its --trust-root) in place.
func TestBundleRoots(t *testing.T) {
	root, err := trust.KeyOf(pub(key(0x05)))
	if err != nil {
		t.Fatal(err)
	}
	store := provisioning.FileStore{Path: filepath.Join(t.TempDir(), "node.json")}
	n := newNode(t, store)
	got := n.provisionOK(t, bundleFor(t, factoryOp, 5, func(b *provision.Bundle, _ *[]byte) {
		b.RootKeys, b.RootThreshold = []trust.Key{root}, 1
	}))
	if len(got.RootKeys) != 1 || !got.RootKeys[0].Equal(root) || got.RootThreshold != 1 {
		t.Fatalf("committed roots %v threshold %d", got.RootKeys, got.RootThreshold)
	}
	loaded, ok, err := store.Load()
	if err != nil || !ok || len(loaded.RootKeys) != 1 || !loaded.RootKeys[0].Equal(root) {
		t.Fatalf("loaded %v %v: roots %v", ok, err, loaded.RootKeys)
	}
	mine, _ := trust.KeyOf(pub(key(0x06)))
	for _, tc := range []struct {
		name string
		pc   provisioning.NodeConfig
		want trust.Key
	}{
		{"the bundle's roots", loaded, root},
		{"no roots in the bundle", func() provisioning.NodeConfig { c := loaded; c.RootKeys, c.RootThreshold = nil, 0; return c }(), mine},
	} {
		cfg := nodeagent.Config{Roots: []trust.Key{mine}}
		if err := provisioning.Apply(&cfg, tc.pc); err != nil {
			t.Fatal(err)
		}
		if len(cfg.Roots) != 1 || !cfg.Roots[0].Equal(tc.want) {
			t.Errorf("%s: agent roots %v, want %v", tc.name, cfg.Roots, tc.want)
		}
	}
}
