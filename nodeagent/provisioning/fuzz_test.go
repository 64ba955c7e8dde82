package provisioning_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"edgeota/nodeagent/provisioning"
)

// FuzzFileStoreLoad feeds arbitrary bytes, as a damaged or edited file
// would hold them, to the stored configuration's loader: it loads a valid
// configuration or refuses with ErrCorrupt (or ErrFormatTooNew), never panics, and what it
// loads, written back in Save's format, loads back the same.
func FuzzFileStoreLoad(f *testing.F) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	good, _ := json.Marshal(provisioning.NodeConfig{NodeID: "node-1", Serial: 3, Labels: map[string]string{"hw": "rev2"},
		Component: "kws", Gateway: "coaps://10.0.0.1:5684", ManifestKeys: []ed25519.PublicKey{key},
		OperatorKeys: []ed25519.PublicKey{key}, PSK: bytes.Repeat([]byte{7}, 16), Signer: "0011223344556677"})
	f.Add(good)
	f.Add([]byte(`{"node_id":"n","serial":1}`))
	f.Add([]byte(`{`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "provisioning.json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		st := provisioning.FileStore{Path: path}
		c, ok, err := st.Load()
		if err != nil {
			if !errors.Is(err, provisioning.ErrCorrupt) && !errors.Is(err, provisioning.ErrFormatTooNew) {
				t.Fatalf("refused without ErrCorrupt or ErrFormatTooNew: %v", err)
			}
			return
		}
		if !ok {
			t.Fatal("an existing file loaded as never provisioned")
		}
		// Written back as Save writes it (without Save's fsyncs, which
		// would make each run take milliseconds), it loads the same.
		b2, err := json.MarshalIndent(c, "", "  ")
		if err != nil {
			t.Fatalf("loaded but does not encode: %v", err)
		}
		if err := os.WriteFile(path, b2, 0o600); err != nil {
			t.Fatal(err)
		}
		c2, ok, err := st.Load()
		if err != nil || !ok || !reflect.DeepEqual(c, c2) {
			t.Fatalf("saved %+v, loaded back %+v (%v, %v)", c, c2, ok, err)
		}
	})
}
