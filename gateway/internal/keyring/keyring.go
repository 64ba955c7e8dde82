// Package keyring holds the gateway's trusted keys: the manifest keys
// that verify models, the deployment keys that verify deployments, and
// the root keys that verify a trust update (docs/protocol.md "Trust
// update", v1.3), which replaces all three sets at once.
//
// The keys start as the gateway was configured (--trust, --deploy-trust,
// --trust-root). A trust update it accepts ([Keyring.Apply]) is saved in
// the data directory (a temporary file, fsync, rename, fsync of the
// directory) before it takes effect; on start ([Open]) the saved update,
// when there is one, wins over the configured keys: the gateway checked it
// when it was pushed, against the roots it held then.
//
// A Keyring is safe for concurrent use: readers verify against a snapshot
// that an Apply replaces whole.
package keyring

import (
	"crypto"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"edgeota/protocol"
	"edgeota/protocol/sign"
	"edgeota/protocol/trust"
)

// FileName is the file in the data directory that keeps the last trust
// update applied: its signed bytes, as pushed.
const FileName = "trust.cose"

// ErrNoDeploymentKeys says the gateway has no deployment key: every
// deployment is refused.
var ErrNoDeploymentKeys = errors.New("no deployment keys")

// Config is the keys a gateway was configured with.
type Config struct {
	// Manifest are the manifest keys (at least one).
	Manifest []crypto.PublicKey
	// Deployment are the deployment keys (none: deployments are refused).
	Deployment []crypto.PublicKey
	// Roots may sign the first trust update, Threshold of them (0: 1);
	// without roots every trust update is refused.
	Roots     []crypto.PublicKey
	Threshold uint64
}

// keys is one snapshot.
type keys struct {
	manifest, deployment *sign.TrustStore
	anchor               trust.Anchor
	update               *trust.Update // nil before the first trust update
	signed               []byte
}

// Keyring is the gateway's trusted keys.
type Keyring struct {
	path string
	mu   sync.Mutex // serializes Apply
	cur  atomic.Pointer[keys]
}

// Open returns the keyring of a gateway whose data directory is dir: the
// keys of the trust update saved there, or else those of cfg.
func Open(dir string, cfg Config) (*Keyring, error) {
	k := &Keyring{path: filepath.Join(dir, FileName)}
	signed, err := os.ReadFile(k.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		ks, err := configured(cfg)
		if err != nil {
			return nil, err
		}
		k.cur.Store(ks)
		return k, nil
	case err != nil:
		return nil, fmt.Errorf("keyring: %w", err)
	}
	u, _, err := trust.Inspect(signed)
	if err != nil {
		return nil, fmt.Errorf("keyring: %s: %w", k.path, err)
	}
	ks, err := fromUpdate(u, signed)
	if err != nil {
		return nil, fmt.Errorf("keyring: %s: %w", k.path, err)
	}
	k.cur.Store(ks)
	return k, nil
}

func configured(cfg Config) (*keys, error) {
	ks := &keys{anchor: trust.Anchor{Threshold: cfg.Threshold}}
	var err error
	if ks.manifest, err = sign.NewTrustStore(sign.RoleManifest, cfg.Manifest...); err != nil {
		return nil, fmt.Errorf("keyring: manifest keys: %w", err)
	}
	if ks.deployment, err = sign.NewTrustStore(sign.RoleDeployment, cfg.Deployment...); err != nil {
		return nil, fmt.Errorf("keyring: deployment keys: %w", err)
	}
	for _, r := range cfg.Roots {
		k, err := trust.KeyOf(r)
		if err != nil {
			return nil, fmt.Errorf("keyring: root key: %w", err)
		}
		ks.anchor.Roots = append(ks.anchor.Roots, k)
	}
	if len(cfg.Roots) > 0 && cfg.Threshold > uint64(len(cfg.Roots)) {
		return nil, fmt.Errorf("keyring: root threshold %d, but %d root keys", cfg.Threshold, len(cfg.Roots))
	}
	return ks, nil
}

func fromUpdate(u *trust.Update, signed []byte) (*keys, error) {
	ks := &keys{anchor: u.Anchor(), update: u, signed: signed}
	var err error
	if ks.manifest, err = trust.Store(sign.RoleManifest, u.ManifestKeys); err != nil {
		return nil, err
	}
	if ks.deployment, err = trust.Store(sign.RoleDeployment, u.DeploymentKeys); err != nil {
		return nil, err
	}
	return ks, nil
}

// Apply checks a signed trust update against the current roots and
// version (trust.Anchor.Check), saves it, and makes its keys the
// gateway's. A refused update changes nothing; its error wraps the reason
// (package trust's and sign's sentinels).
func (k *Keyring) Apply(signed []byte) (*trust.Update, []sign.KeyID, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	u, kids, err := k.cur.Load().anchor.Check(signed)
	if err != nil {
		return nil, nil, err
	}
	ks, err := fromUpdate(u, append([]byte(nil), signed...))
	if err != nil {
		return nil, nil, err
	}
	if err := writeFile(k.path, signed); err != nil {
		return nil, nil, fmt.Errorf("keyring: save: %w", err)
	}
	k.cur.Store(ks)
	return u, kids, nil
}

// Signed returns the last trust update applied, as signed, or nil.
func (k *Keyring) Signed() []byte { return k.cur.Load().signed }

// Update returns the last trust update applied, or nil.
func (k *Keyring) Update() *trust.Update { return k.cur.Load().update }

// Anchor returns what the next trust update is checked against.
func (k *Keyring) Anchor() trust.Anchor { return k.cur.Load().anchor }

// Manifest returns the current manifest keys.
func (k *Keyring) Manifest() *sign.TrustStore { return k.cur.Load().manifest }

// Deployment returns the current deployment keys.
func (k *Keyring) Deployment() *sign.TrustStore { return k.cur.Load().deployment }

// VerifyManifest verifies a signed manifest against the current manifest
// keys.
func (k *Keyring) VerifyManifest(b []byte) (*protocol.Manifest, error) {
	return k.Manifest().VerifyManifest(b)
}

// VerifyDeployment verifies a signed deployment against the current
// deployment keys; with none it fails with [ErrNoDeploymentKeys].
func (k *Keyring) VerifyDeployment(b []byte) (*protocol.Deployment, error) {
	d := k.Deployment()
	if d.Len() == 0 {
		return nil, ErrNoDeploymentKeys
	}
	return d.VerifyDeployment(b)
}

// writeFile replaces path with data atomically: a temporary file beside
// it, fsynced, renamed over it, and the directory fsynced.
func writeFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
