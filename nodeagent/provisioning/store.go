package provisioning

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"edgeota/protocol"
	"edgeota/protocol/provision"
	"edgeota/protocol/sign"
	"edgeota/protocol/trust"
)

// NodeConfig is a node's provisioned configuration: what a committed
// bundle gave it. It holds the node's DTLS pre-shared key: its String and
// LogValue leave the key out, and a [FileStore] keeps it in a 0600 file.
type NodeConfig struct {
	// NodeID is the node the bundle named (always this node).
	NodeID string `json:"node_id"`
	// Serial is the bundle's serial; the next bundle must be higher.
	Serial uint64 `json:"serial"`
	// Issued is when the bundle was signed, Unix seconds.
	Issued uint64 `json:"issued"`
	// Labels are the node's labels, said in its Hello.
	Labels map[string]string `json:"labels"`
	// Component is the component the node runs.
	Component string `json:"component"`
	// Gateway is the gateway's CoAP URI.
	Gateway string `json:"gateway"`
	// ManifestKeys are the keys the node trusts for manifests.
	ManifestKeys []ed25519.PublicKey `json:"manifest_keys"`
	// OperatorKeys are the keys the node accepts its next bundle from.
	OperatorKeys []ed25519.PublicKey `json:"operator_keys"`
	// RootKeys (v1.3) are the keys that may sign the node's first trust
	// update, RootThreshold how many must (0: 1); none: the node's own
	// (its --trust-root), or it refuses trust updates.
	RootKeys      []trust.Key `json:"root_keys,omitempty"`
	RootThreshold uint64      `json:"root_threshold,omitempty"`
	// PSK is the DTLS pre-shared key; the PSK identity is the node id.
	PSK []byte `json:"psk"`
	// Signer is the key id (lowercase hex) of the operator key that signed
	// the bundle: the actor of the provisioning (status key 10).
	Signer string `json:"signer"`
	// CommittedAt is when the node committed the bundle, Unix seconds.
	CommittedAt int64 `json:"committed_at"`
}

// ManifestTrust returns a manifest-role trust store of the configured keys,
// for nodeagent.Config.Trust.
func (c NodeConfig) ManifestTrust() (*sign.TrustStore, error) {
	return sign.NewTrustStore(sign.RoleManifest, c.ManifestKeys...)
}

// String describes the configuration without its PSK.
func (c NodeConfig) String() string {
	return fmt.Sprintf("node %s serial %d component %s gateway %s labels %v signer %s", c.NodeID, c.Serial, c.Component, c.Gateway, c.Labels, c.Signer)
}

// LogValue logs the configuration without its PSK.
func (c NodeConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("node", c.NodeID), slog.Uint64("serial", c.Serial), slog.String("component", c.Component),
		slog.String("gateway", c.Gateway), slog.Any("labels", c.Labels), slog.String("signer", c.Signer))
}

// clone returns a deep copy of c.
func (c NodeConfig) clone() NodeConfig {
	c.Labels = maps.Clone(c.Labels)
	c.ManifestKeys = cloneKeys(c.ManifestKeys)
	c.OperatorKeys = cloneKeys(c.OperatorKeys)
	if c.RootKeys != nil {
		roots := make([]trust.Key, len(c.RootKeys))
		for i, k := range c.RootKeys {
			roots[i] = trust.Key{Alg: k.Alg, Public: slices.Clone(k.Public)}
		}
		c.RootKeys = roots
	}
	c.PSK = slices.Clone(c.PSK)
	return c
}

func cloneKeys(ks []ed25519.PublicKey) []ed25519.PublicKey {
	out := make([]ed25519.PublicKey, len(ks))
	for i, k := range ks {
		out[i] = slices.Clone(k)
	}
	return out
}

// validate checks a stored configuration, which a corrupted or edited file
// could break.
func (c NodeConfig) validate() error {
	if !protocol.ValidID(c.NodeID) || !protocol.ValidID(c.Component) || c.Serial == 0 {
		return fmt.Errorf("%w: node id, component or serial", ErrCorrupt)
	}
	if err := protocol.ValidateLabels(c.Labels); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if err := provision.ValidateGateway(c.Gateway); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	for _, ks := range [][]ed25519.PublicKey{c.ManifestKeys, c.OperatorKeys} {
		if len(ks) == 0 {
			return fmt.Errorf("%w: no trust anchors", ErrCorrupt)
		}
		for _, k := range ks {
			if len(k) != ed25519.PublicKeySize {
				return fmt.Errorf("%w: key of %d bytes", ErrCorrupt, len(k))
			}
		}
	}
	for _, k := range c.RootKeys {
		if err := k.Validate(); err != nil {
			return fmt.Errorf("%w: root key: %v", ErrCorrupt, err)
		}
	}
	if n := len(c.PSK); n < provision.MinPSKLen || n > provision.MaxPSKLen {
		return fmt.Errorf("%w: psk of %d bytes", ErrCorrupt, n)
	}
	if _, err := hex.DecodeString(c.Signer); err != nil || len(c.Signer) != 16 {
		return fmt.Errorf("%w: signer %q", ErrCorrupt, c.Signer)
	}
	return nil
}

// ErrCorrupt means a stored configuration does not decode or breaks a rule.
var ErrCorrupt = errors.New("stored provisioning configuration is corrupt")

// ErrFormatTooNew means a stored configuration is of a format newer than
// this node agent reads ([FileFormat]): a newer agent wrote it.
var ErrFormatTooNew = errors.New("stored provisioning configuration written by a newer node agent")

// FileFormat is the format of the file a [FileStore] writes (its "format"
// key), and the newest it reads. Files written before the key existed have
// none and are format 1. A change an older agent would misread (a key it
// would ignore while acting on the others) raises it.
const FileFormat = 1

// configFile is the JSON document of a FileStore: the configuration's
// keys and "format".
type configFile struct {
	Format int `json:"format"`
	NodeConfig
}

// Store keeps a node's provisioned configuration. Save must be atomic:
// after a crash at any moment, Load returns either the old configuration
// or the new one, whole.
type Store interface {
	// Load returns the configuration, or ok false on a node never
	// provisioned.
	Load() (cfg NodeConfig, ok bool, err error)
	// Save replaces the configuration.
	Save(cfg NodeConfig) error
}

// FileStore keeps the configuration in one JSON file, mode 0600, replaced
// atomically: write a temporary file beside it, fsync, rename over it,
// fsync the directory. The file says its format ([FileFormat]); Load
// refuses a newer one with [ErrFormatTooNew].
type FileStore struct {
	// Path is the file's name.
	Path string
}

// Load reads the file; a missing file means never provisioned.
func (f FileStore) Load() (NodeConfig, bool, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return NodeConfig{}, false, nil
	}
	if err != nil {
		return NodeConfig{}, false, fmt.Errorf("provisioning: %w", err)
	}
	var doc configFile
	if err := json.Unmarshal(b, &doc); err != nil {
		return NodeConfig{}, false, fmt.Errorf("%w: %s: %v", ErrCorrupt, f.Path, err)
	}
	if doc.Format < 0 {
		return NodeConfig{}, false, fmt.Errorf("%w: %s: format %d", ErrCorrupt, f.Path, doc.Format)
	}
	if doc.Format > FileFormat {
		return NodeConfig{}, false, fmt.Errorf("%w: %s has format %d, this node agent reads formats up to %d; run the newer node agent (the file was not changed)",
			ErrFormatTooNew, f.Path, doc.Format, FileFormat)
	}
	c := doc.NodeConfig
	if err := c.validate(); err != nil {
		return NodeConfig{}, false, fmt.Errorf("%s: %w", f.Path, err)
	}
	return c, true, nil
}

// Save writes the configuration atomically.
func (f FileStore) Save(c NodeConfig) error {
	b, err := json.MarshalIndent(configFile{Format: FileFormat, NodeConfig: c}, "", "  ")
	if err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	dir := filepath.Dir(f.Path)
	tmp, err := os.CreateTemp(dir, filepath.Base(f.Path)+".tmp*")
	if err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.Path); err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	ok = true
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("provisioning: sync %s: %w", dir, err)
	}
	return nil
}

// MemStore keeps the configuration in memory: for simulated nodes and
// tests. The zero value is a never-provisioned node; it is safe for
// concurrent use.
type MemStore struct {
	mu  sync.Mutex
	cfg *NodeConfig
}

// Load returns a copy of the configuration.
func (m *MemStore) Load() (NodeConfig, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cfg == nil {
		return NodeConfig{}, false, nil
	}
	return m.cfg.clone(), true, nil
}

// Save stores a copy of the configuration.
func (m *MemStore) Save(c NodeConfig) error {
	c = c.clone()
	m.mu.Lock()
	m.cfg = &c
	m.mu.Unlock()
	return nil
}
