package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-ble/ble"

	"edgeota/firmware-sim/blelink"
	"edgeota/gateway/provisioner"
	"edgeota/nodeagent/provisioning"
	"edgeota/protocol/provision"
	"edgeota/protocol/sign"
	"edgeota/test/testutil"
)

// provFixture holds the files of a provisioning: operator and manifest
// keys, a PSK and a factory secret.
type provFixture struct {
	dir, opKey, opPub, manPub, psk, secret string
	op                                     ed25519.PrivateKey
	secretBytes, pskBytes                  []byte
}

func newProvFixture(t testing.TB) provFixture {
	t.Helper()
	dir := t.TempDir()
	f := provFixture{dir: dir, opKey: filepath.Join(dir, "op.key"), opPub: filepath.Join(dir, "op.pub"),
		manPub: filepath.Join(dir, "models.pub"), psk: filepath.Join(dir, "n.psk"), secret: filepath.Join(dir, "n.secret"),
		op: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x61}, 32)), secretBytes: bytes.Repeat([]byte{0x62}, 32), pskBytes: bytes.Repeat([]byte{0x63}, 16)}
	kb, _ := sign.MarshalPrivateKey(f.op)
	pb, _ := sign.MarshalPublicKey(f.op.Public().(ed25519.PublicKey))
	mb, _ := sign.MarshalPublicKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x64}, 32)).Public().(ed25519.PublicKey))
	for name, b := range map[string][]byte{f.opKey: kb, f.opPub: pb, f.manPub: mb,
		f.psk: []byte("hex:" + hex.EncodeToString(f.pskBytes) + "\n"), f.secret: []byte("hex:" + hex.EncodeToString(f.secretBytes))} {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f provFixture) bundleArgs() []string {
	return []string{"--labels", "site=plant-3,line=l2", "--psk-file", f.psk, "--gateway-uri", "coap://10.0.0.1:5683",
		"--key", f.opKey, "--factory-secret-file", f.secret, "--trust", f.manPub}
}

func TestProvisionBundle(t *testing.T) {
	f := newProvFixture(t)
	out := filepath.Join(f.dir, "n1.bundle")
	mustCLI(t, append([]string{"provision", "bundle", "--node", "n1", "--component", "kws-model", "--serial", "9", "--out", out}, f.bundleArgs()...)...)
	signed, _ := os.ReadFile(out)
	trust, _ := sign.NewTrustStore(sign.RoleOperator, f.op.Public().(ed25519.PublicKey))
	b, _, err := provision.Verify(signed, trust)
	if err != nil {
		t.Fatal(err)
	}
	if b.NodeID != "n1" || b.Serial != 9 || b.Labels["line"] != "l2" || !b.OperatorKeys[0].Equal(f.op.Public()) {
		t.Fatalf("bundle %+v", b)
	}
	if psk, err := b.OpenPSK(f.secretBytes); err != nil || !bytes.Equal(psk, f.pskBytes) {
		t.Fatalf("psk %x, %v", psk, err)
	}
	if bytes.Contains(signed, f.pskBytes) {
		t.Fatal("the bundle file holds the PSK in clear")
	}
	// Usage errors.
	for _, args := range [][]string{
		{"provision", "bundle", "--out", out},
		append([]string{"provision", "bundle", "--node", "n1", "--out", out + "2", "--gateway-uri", "http://x"}, f.bundleArgs()[:2]...),
		{"provision", "apply"},
		{"provision", "scan", "--hci", "usb0"},
	} {
		if _, errs, code := cli(t, args...); code != 2 {
			t.Errorf("%v: exit %d, %s", args, code, errs)
		}
	}
}

// airAdapter is an in-memory air as the CLI's adapter.
type airAdapter struct{ *blelink.Air }

func (airAdapter) Close() error { return nil }

func useAir(t testing.TB, air *blelink.Air) {
	t.Helper()
	old := openAdapter
	openAdapter = func(int) (bleAdapter, error) { return airAdapter{air}, nil }
	t.Cleanup(func() { openAdapter = old })
}

// airNode puts a fresh node-0001 at 0a:00:00:00:00:01 on an in-memory air
// the CLI's adapter reaches, and returns its configuration store.
func airNode(t testing.TB, f provFixture) *provisioning.MemStore {
	t.Helper()
	air := blelink.NewAir()
	useAir(t, air)
	store := &provisioning.MemStore{}
	svc, err := provisioning.New(provisioning.Config{NodeID: "node-0001", Component: "kws-model", AgentVersion: "0.1.0",
		FactorySecret: f.secretBytes, FactoryKeys: []ed25519.PublicKey{f.op.Public().(ed25519.PublicKey)}, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	stop, _ := air.Advertise(blelink.Peripheral{Addr: "0a:00:00:00:00:01", Name: "node-0001",
		Services: []ble.UUID{ble.MustParse(provision.ServiceUUID)}, Accept: func(c ble.Conn) { svc.ServeConn(context.Background(), c) }})
	t.Cleanup(func() { stop(); air.Wait() })
	return store
}

func TestProvisionApply(t *testing.T) {
	f := newProvFixture(t)
	store := airNode(t, f)

	out := mustCLI(t, "provision", "scan", "--timeout", "50ms", "--json")
	var found []provisioner.Found
	if err := json.Unmarshal([]byte(out), &found); err != nil || len(found) != 1 || found[0].Name != "node-0001" {
		t.Fatalf("scan: %s (%v)", out, err)
	}

	audit := filepath.Join(f.dir, "audit.jsonl")
	out = mustCLI(t, append([]string{"provision", "apply", "--addr", "0A:00:00:00:00:01", "--serial", "7", "--audit", audit, "--json"}, f.bundleArgs()...)...)
	var res provisioner.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.NodeID != "node-0001" || res.Serial != 7 || res.Signer != sign.KeyIDOf(f.op.Public().(ed25519.PublicKey)).String() {
		t.Fatalf("apply: %s (%v)", out, err)
	}
	cfg, ok, _ := store.Load()
	if !ok || cfg.Serial != 7 || cfg.Component != "kws-model" || cfg.Labels["site"] != "plant-3" || !bytes.Equal(cfg.PSK, f.pskBytes) {
		t.Fatalf("node holds %+v", cfg)
	}
	if a, _ := os.ReadFile(audit); !strings.Contains(string(a), `"serial":7`) {
		t.Fatalf("audit log %q", a)
	}
	// The same serial again is refused before anything is sent.
	_, errs, code := cli(t, append([]string{"provision", "apply", "--addr", "0a:00:00:00:00:01", "--serial", "7"}, f.bundleArgs()...)...)
	if code != 2 || !strings.Contains(errs, "holds serial 7") {
		t.Fatalf("replay: exit %d, %s", code, errs)
	}
	// A bundle written beforehand, for another node, is refused too.
	other := filepath.Join(f.dir, "other.bundle")
	mustCLI(t, append([]string{"provision", "bundle", "--node", "node-0002", "--component", "kws-model", "--serial", "8", "--out", other}, f.bundleArgs()...)...)
	if _, errs, code := cli(t, "provision", "apply", "--addr", "0a:00:00:00:00:01", "--bundle", other); code != 1 || !strings.Contains(errs, "node-0002") {
		t.Fatalf("other node's bundle: exit %d, %s", code, errs)
	}
}

func TestProvisionNoAdapter(t *testing.T) {
	_, errs, code := cli(t, "provision", "scan", "--timeout", "10ms")
	if code == 0 {
		t.Skip("a real adapter is present")
	}
	if code != 1 || !strings.Contains(errs, "Bluetooth") {
		t.Fatalf("exit %d, %s", code, errs)
	}
}

// TestProvisionApplyRegistersTheKey: with --admin, 'provision apply'
// registers the PSK it sealed into the bundle with a running gateway (a
// real one, serving DTLS), so the node can open a session with it; the
// admin API is checked before the radio, and a prepared bundle whose
// sealed key is not --psk-file is refused before anything is sent.
func TestProvisionApplyRegistersTheKey(t *testing.T) {
	f := newProvFixture(t)
	store := airNode(t, f)
	gw, token := startCLIGateway(t)
	tokenFile := filepath.Join(f.dir, "admin.token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	badToken := filepath.Join(f.dir, "bad.token")
	os.WriteFile(badToken, []byte("not-the-token\n"), 0o600)
	otherPSK := filepath.Join(f.dir, "other.psk")
	os.WriteFile(otherPSK, []byte("another-key-of-16-bytes"), 0o600)
	admin := "http://" + gw.AdminAddr().String()

	// A wrong token: refused before the radio, the node keeps its state.
	_, errs, code := cli(t, append([]string{"provision", "apply", "--addr", "0a:00:00:00:00:01", "--serial", "5",
		"--admin", admin, "--token-file", badToken}, f.bundleArgs()...)...)
	if code == 0 || !strings.Contains(errs, "key registry") {
		t.Fatalf("wrong token: exit %d, %s", code, errs)
	}
	// A prepared bundle sealing another key than --psk-file.
	prepared := filepath.Join(f.dir, "n.bundle")
	mustCLI(t, append([]string{"provision", "bundle", "--node", "node-0001", "--component", "kws-model", "--serial", "6", "--out", prepared}, f.bundleArgs()...)...)
	_, errs, code = cli(t, "provision", "apply", "--addr", "0a:00:00:00:00:01", "--bundle", prepared, "--admin", admin,
		"--token-file", tokenFile, "--psk-file", otherPSK, "--factory-secret-file", f.secret)
	if code != 2 || !strings.Contains(errs, "another key") {
		t.Fatalf("mismatched bundle: exit %d, %s", code, errs)
	}
	if _, ok, _ := store.Load(); ok {
		t.Fatal("a refused apply changed the node's configuration")
	}

	out := mustCLI(t, append([]string{"provision", "apply", "--addr", "0a:00:00:00:00:01", "--serial", "7", "--json",
		"--admin", admin, "--token-file", tokenFile}, f.bundleArgs()...)...)
	var res struct {
		NodeID        string `json:"node_id"`
		KeyRegistered string `json:"key_registered"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.NodeID != "node-0001" || res.KeyRegistered != admin {
		t.Fatalf("apply: %s (%v)", out, err)
	}
	cfg, ok, _ := store.Load()
	if !ok || cfg.Serial != 7 || !bytes.Equal(cfg.PSK, f.pskBytes) {
		t.Fatalf("node holds %+v", cfg)
	}
	// The gateway accepts a DTLS session as node-0001 with the node's key,
	// and none with another.
	if err := dtlsHandshake(gw.CoAPSAddr().String(), "node-0001", f.pskBytes, testutil.DefaultCeiling); err != nil {
		t.Fatalf("a session with the provisioned key: %v", err)
	}
	if err := dtlsHandshake(gw.CoAPSAddr().String(), "node-0001", []byte("another-key-of-16-bytes"), 2*time.Second); err == nil {
		t.Fatal("a session with another key was accepted")
	}

	// 'gateway keys list' names the node; 'gateway keys delete' locks it
	// out; a second delete finds nothing.
	keysArgs := []string{"--admin", admin, "--token-file", tokenFile, "--json"}
	if out := mustCLI(t, append([]string{"gateway", "keys", "list"}, keysArgs...)...); !strings.Contains(out, `"node-0001"`) {
		t.Fatalf("keys list: %s", out)
	}
	if out := mustCLI(t, append([]string{"gateway", "keys", "delete", "node-0001"}, keysArgs...)...); !strings.Contains(out, `"deleted": "node-0001"`) {
		t.Fatalf("keys delete: %s", out)
	}
	if err := dtlsHandshake(gw.CoAPSAddr().String(), "node-0001", f.pskBytes, 10*time.Second); err == nil {
		t.Fatal("a session with a deleted key was accepted")
	}
	if _, errs, code := cli(t, append([]string{"gateway", "keys", "delete", "node-0001"}, keysArgs...)...); code != 1 || !strings.Contains(errs, "404") && !strings.Contains(errs, "not") {
		t.Fatalf("second delete: exit %d, %s", code, errs)
	}
}
