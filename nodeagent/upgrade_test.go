package nodeagent_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"edgeota/firmware-sim/flash"
	"edgeota/nodeagent"
	"edgeota/nodeagent/provisioning"
	"edgeota/nodeagent/simmodel"
	"edgeota/protocol"
	"edgeota/protocol/sign"
)

// The node's on-disk formats, as a release wrote them, are kept under
// testdata/release-NAME/: a file-backed flash with both slots confirmed
// and the boot-state journal that says so (flash.img), and the provisioned
// configuration file (provisioning.json). expect.json is what that
// release read back from them. TestUpgradeNode opens every recorded
// release with this code and checks that nothing was lost. The files are
// the fixed record of a release's format: never regenerate one; record a
// new release into a new directory with
//
//	go test ./nodeagent -run TestRecordNodeRelease -record-release NAME
//
// which refuses a directory that exists.
var recordRelease = flag.String("record-release", "", "write the node files of this build into testdata/release-NAME (must not exist)")

// The recorded node's geometry and keys.
const (
	upgradeSlotSize = 16 << 10
	upgradeJournal  = 4
	upgradeErase    = 4096
)

var (
	upgradeClass  = protocol.Class{0x7f, 0x1c, 0x33, 0x52, 0x0e, 0x4b, 0x4f, 0x7a, 0x9d, 0x61, 0x2a, 0x18, 0x90, 0xc4, 0x5e, 0x01}
	upgradeStart  = time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)
	upgradeKey    = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x31}, ed25519.SeedSize))
	upgradeOpKey  = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x32}, ed25519.SeedSize))
	upgradeSigner = func() *sign.Signer { s, _ := sign.NewSigner(upgradeKey); return s }()
)

// upgradeRunClock runs time forward as fast as the agent waits.
type upgradeRunClock struct{ now time.Time }

func (c *upgradeRunClock) Now() time.Time { return c.now }
func (c *upgradeRunClock) After(d time.Duration) <-chan time.Time {
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

// upgradeModel returns model seq's image (deterministic) and its signed
// manifest.
func upgradeModel(tb testing.TB, seq uint64) (signed, image []byte) {
	tb.Helper()
	image = make([]byte, 5000+1000*int(seq))
	r := rand.New(rand.NewPCG(seq, 0x0b5e))
	for i := range image {
		image[i] = byte(r.Uint32())
	}
	m := &protocol.Manifest{Format: 1, Seq: seq, Component: "kws", Version: fmt.Sprintf("1.%d.0", seq),
		Digest: sha256.Sum256(image), Size: uint64(len(image)), Class: upgradeClass, Epoch: 1,
		Probation: &protocol.Probation{Seconds: 30, MinInferences: 100}}
	signed, err := upgradeSigner.SignManifest(m)
	if err != nil {
		tb.Fatal(err)
	}
	return signed, image
}

// upgradeAgent makes an agent on the flash file at path.
func upgradeAgent(tb testing.TB, path string) (*nodeagent.Agent, *flash.File) {
	tb.Helper()
	f, err := flash.OpenFile(path, nodeagent.FlashSize(upgradeSlotSize, upgradeErase, upgradeJournal), flash.WithEraseSize(upgradeErase))
	if err != nil {
		tb.Fatal(err)
	}
	trust, err := sign.NewTrustStore(sign.RoleManifest, upgradeKey.Public().(ed25519.PublicKey))
	if err != nil {
		tb.Fatal(err)
	}
	a, err := nodeagent.New(nodeagent.Config{NodeID: "node-1", Class: upgradeClass, Flash: f, Trust: trust,
		Models: simmodel.Runtime{}.ForAgent(), SlotSize: upgradeSlotSize, JournalBlocks: upgradeJournal,
		Clock: &upgradeRunClock{now: upgradeStart}})
	if err != nil {
		f.Close()
		tb.Fatal(err)
	}
	return a, f
}

// install installs model seq, boots it on trial and lets probation
// confirm it.
func install(tb testing.TB, a *nodeagent.Agent, seq uint64) {
	tb.Helper()
	ctx := context.Background()
	signed, image := upgradeModel(tb, seq)
	if err := a.Install(ctx, signed, nodeagent.ReaderAtSource{R: bytes.NewReader(image)}, nil); err != nil {
		tb.Fatalf("install seq %d: %v", seq, err)
	}
	if err := a.Boot(ctx); err != nil {
		tb.Fatal(err)
	}
	if err := a.Settle(ctx); err != nil {
		tb.Fatal(err)
	}
}

// upgradeConfig is the recorded node's provisioned configuration.
func upgradeConfig() provisioning.NodeConfig {
	return provisioning.NodeConfig{NodeID: "node-1", Serial: 4, Issued: uint64(upgradeStart.Unix()) - 3600,
		Labels: map[string]string{"hw": "rev2", "site": "plant-7"}, Component: "kws", Gateway: "coaps://10.0.0.1:5684",
		ManifestKeys: []ed25519.PublicKey{upgradeKey.Public().(ed25519.PublicKey)},
		OperatorKeys: []ed25519.PublicKey{upgradeOpKey.Public().(ed25519.PublicKey)},
		PSK:          bytes.Repeat([]byte{0x5a}, 16), Signer: "0011223344556677", CommittedAt: upgradeStart.Unix() - 3500}
}

// nodeExpect is what a release read back from the files it wrote.
type nodeExpect struct {
	Status *nodeagent.Status       `json:"status"`
	Config provisioning.NodeConfig `json:"config"`
}

// TestRecordNodeRelease writes this build's node files into
// testdata/release-NAME with -record-release NAME; see recordRelease.
func TestRecordNodeRelease(t *testing.T) {
	if *recordRelease == "" {
		t.Skip("records a release's node files with -record-release NAME")
	}
	dir := filepath.Join("testdata", "release-"+*recordRelease)
	if _, err := os.Stat(dir); err == nil {
		t.Fatalf("%s exists: a recorded release is never rewritten", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "flash.img")
	a, f := upgradeAgent(t, img)
	a.Boot(context.Background()) // blank: nothing runs yet
	install(t, a, 1)             // slot A, confirmed
	install(t, a, 2)             // slot B, confirmed; A keeps seq 1
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := upgradeConfig()
	if err := (provisioning.FileStore{Path: filepath.Join(dir, "provisioning.json")}).Save(cfg); err != nil {
		t.Fatal(err)
	}
	ro, err := flash.OpenFileReadOnly(img, flash.WithEraseSize(upgradeErase))
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	st, err := nodeagent.ReadStatus(ro, upgradeSlotSize, upgradeJournal)
	if err != nil {
		t.Fatal(err)
	}
	if st.Active != "B" || len(st.Slots) != 2 || st.Slots[0].State != "confirmed" || st.Slots[1].State != "confirmed" {
		t.Fatalf("recorded flash: %+v", st)
	}
	b, _ := json.MarshalIndent(nodeExpect{Status: st, Config: cfg}, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "expect.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	// Written with the build's default modes; the files are data.
	os.Chmod(img, 0o644)
	os.Chmod(filepath.Join(dir, "provisioning.json"), 0o644)
}

// TestUpgradeNode opens the node files of every recorded release with this
// code: the boot state and both slots read back as the release read them,
// the provisioned configuration loads the same, the agent boots the
// confirmed slot (B, seq 2, not on trial) and goes on updating: it
// installs seq 3 into slot A over seq 1, boots it on trial and confirms it.
func TestUpgradeNode(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join("testdata", "release-*"))
	if len(dirs) == 0 {
		t.Fatal("no recorded release under testdata")
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var want nodeExpect
			b, err := os.ReadFile(filepath.Join(dir, "expect.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			// The recorded files are never written: work on copies.
			work := t.TempDir()
			img := filepath.Join(work, "flash.img")
			copyTestFile(t, filepath.Join(dir, "flash.img"), img, 0o600)
			conf := filepath.Join(work, "provisioning.json")
			copyTestFile(t, filepath.Join(dir, "provisioning.json"), conf, 0o600)

			cfg, ok, err := provisioning.FileStore{Path: conf}.Load()
			if err != nil || !ok || !reflect.DeepEqual(cfg, want.Config) {
				t.Fatalf("provisioned configuration = %+v, %v, %v; the release saved %+v", cfg, ok, err, want.Config)
			}

			ro, err := flash.OpenFileReadOnly(img, flash.WithEraseSize(upgradeErase))
			if err != nil {
				t.Fatal(err)
			}
			st, err := nodeagent.ReadStatus(ro, upgradeSlotSize, upgradeJournal)
			ro.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(st, want.Status) {
				got, _ := json.MarshalIndent(st, "", "  ")
				was, _ := json.MarshalIndent(want.Status, "", "  ")
				t.Fatalf("boot state reads:\n%s\nthe release read:\n%s", got, was)
			}

			a, f := upgradeAgent(t, img)
			defer f.Close()
			if err := a.Boot(context.Background()); err != nil {
				t.Fatal(err)
			}
			r := a.Device().Running()
			if r == nil || r.Slot != protocol.SlotB || r.Manifest.Seq != 2 || r.Trial {
				t.Fatalf("booted %+v, want slot B, seq 2, confirmed", r)
			}
			if got := a.Device().BootCount(); got != want.Status.BootCount+1 {
				t.Errorf("boot count %d, want %d: one more than recorded", got, want.Status.BootCount+1)
			}
			install(t, a, 3)
			r = a.Device().Running()
			if r == nil || r.Slot != protocol.SlotA || r.Manifest.Seq != 3 || r.Trial {
				t.Fatalf("after an update: %+v, want slot A, seq 3, confirmed", r)
			}
		})
	}
}

// copyTestFile copies a recorded file to a test's own.
func copyTestFile(tb testing.TB, from, to string, mode os.FileMode) {
	tb.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		tb.Fatal(err)
	}
}
