package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"edgeota/firmware-sim/flash"
	"edgeota/nodeagent"
	"edgeota/nodeagent/simmodel"
	"edgeota/protocol"
	"edgeota/protocol/sign"
)

// flashFlags are the flags that describe a node's file-backed flash.
type flashFlags struct {
	path          string
	slotSize      int64
	journalBlocks int
	eraseSize     int
	writeSize     int
}

func (f *flashFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.path, "flash", "", "file holding the node's simulated flash (created on first use)")
	fl.Int64Var(&f.slotSize, "slot-size", nodeagent.DefaultSlotSize, "bytes of image per slot")
	fl.IntVar(&f.journalBlocks, "journal-blocks", nodeagent.DefaultJournalBlocks, "erase blocks of the boot-state journal")
	fl.IntVar(&f.eraseSize, "erase-size", 4096, "flash erase-block size in bytes")
	fl.IntVar(&f.writeSize, "write-size", 8, "flash program granularity in bytes")
}

func (f *flashFlags) open(readOnly bool) (*flash.File, error) {
	if f.path == "" {
		return nil, usagef("--flash FILE is required")
	}
	opts := []flash.Option{flash.WithEraseSize(f.eraseSize), flash.WithWriteSize(f.writeSize)}
	if readOnly {
		return flash.OpenFileReadOnly(f.path, opts...)
	}
	return flash.OpenFile(f.path, nodeagent.FlashSize(f.slotSize, f.eraseSize, f.journalBlocks), opts...)
}

// lockFlash takes an exclusive lock beside the flash file so that two
// agents never write one flash; node status reads without it.
func lockFlash(path string) (func(), error) {
	lf, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lf.Close()
		return nil, fmt.Errorf("flash %s is in use by another edgeota node process", path)
	}
	return func() { lf.Close() }, nil
}

// nodeFlags are the identity and runtime flags of a node agent.
type nodeFlags struct {
	flashFlags
	id, class, component, labels string
	runtime                      string
	trust, trustRoots            []string
	trustThreshold               uint64
	gateway, pskFile             string
	poll, ackTimeout             time.Duration
	qblock                       bool
	rate                         float64
	health                       time.Duration
	seed                         int64
	delta                        bool
}

func (n *nodeFlags) register(cmd *cobra.Command) {
	n.flashFlags.register(cmd)
	n.delta = true // commands without --delta take a delta when one comes
	fl := cmd.Flags()
	fl.StringVar(&n.id, "id", "", "node id")
	fl.StringVar(&n.class, "class", "", "device class UUID of this node")
	fl.StringVar(&n.component, "component", "", "component this node runs (default: that of the first model installed)")
	fl.StringVar(&n.labels, "labels", "", "labels for cohorts, k=v,k=v")
	fl.StringVar(&n.runtime, "runtime", "", "inference runtime this node offers to a manifest's requires (--requires-runtime), named in its Hello")
	fl.StringArrayVar(&n.trust, "trust", nil, "trusted manifest key (PKIX PEM); repeat for several")
	fl.StringArrayVar(&n.trustRoots, "trust-root", nil, "root key (PKIX PEM) that may sign the node's first trust update; repeat for several (none: trust updates are refused)")
	fl.Uint64Var(&n.trustThreshold, "trust-threshold", 1, "how many --trust-root keys must sign the first trust update")
	if cmd.Name() == "node" {
		fl.StringVar(&n.gateway, "gateway", "", "the gateway's CoAP URL: coaps://HOST[:5684] (DTLS, needs --psk-file), or coap://HOST[:5683] (plain UDP: development only)")
		fl.StringVar(&n.pskFile, "psk-file", "", "file holding this node's DTLS pre-shared key: its literal string, or hex: followed by hex")
		fl.DurationVar(&n.poll, "poll-interval", time.Minute, "how often to poll the assigned manifest besides observing it")
		fl.BoolVar(&n.qblock, "qblock", true, "download images in RFC 9177 Q-Block2 bursts when the gateway has them (false: lock-step Block2, one round trip per block)")
		fl.DurationVar(&n.ackTimeout, "ack-timeout", 2*time.Second, "CoAP ACK_TIMEOUT: the wait before a lost request is sent again (RFC 7252 default 2s)")
		fl.BoolVar(&n.delta, "delta", true, "apply the deltas the gateway offers with manifests (docs/deltas.md); --delta=false downloads full images only")
	}
	fl.Float64Var(&n.rate, "inference-rate", 10, "simulated inferences per second")
	fl.DurationVar(&n.health, "health-interval", time.Minute, "time between health reports")
	fl.Int64Var(&n.seed, "model-seed", 1, "seed of the simulated model runtime")
}

// parseLabels reads --labels.
func parseLabels(s string) (map[string]string, error) {
	labels, err := protocol.ParseLabels(s)
	if err != nil {
		return nil, usagef("--labels: %v", err)
	}
	return labels, nil
}

// agent opens the flash and builds the node agent the flags describe;
// overlay, when given, changes the configuration before the agent is built
// (a provisioned configuration).
func (n *nodeFlags) agent(log *slog.Logger, rep nodeagent.Reporter, overlay ...func(*nodeagent.Config) error) (*nodeagent.Agent, func(), error) {
	if n.id == "" {
		n.id = "local-node"
	}
	if n.class == "" {
		return nil, nil, usagef("--class UUID is required")
	}
	cls, err := protocol.ParseClass(n.class)
	if err != nil {
		return nil, nil, usagef("--class: %v", err)
	}
	if len(n.trust) == 0 && len(overlay) == 0 {
		return nil, nil, usagef("at least one --trust KEY.pub is required: a node runs only what its operator signed")
	}
	labels, err := parseLabels(n.labels)
	if err != nil {
		return nil, nil, err
	}
	if n.runtime != "" && !protocol.ValidID(n.runtime) {
		return nil, nil, usagef("--runtime %q: want 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-'", n.runtime)
	}
	keys, err := readPublicKeys(n.trust)
	if err != nil {
		return nil, nil, err
	}
	trust, err := sign.NewTrustStore(sign.RoleManifest, keys...)
	if err != nil {
		return nil, nil, err
	}
	roots, err := trustKeys(n.trustRoots)
	if err != nil {
		return nil, nil, err
	}
	if n.path == "" {
		return nil, nil, usagef("--flash FILE is required")
	}
	unlock, err := lockFlash(n.path)
	if err != nil {
		return nil, nil, err
	}
	f, err := n.open(false)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	var psk []byte
	if n.pskFile != "" {
		if psk, err = readSecretFile("--psk-file", n.pskFile); err != nil {
			unlock()
			f.Close()
			return nil, nil, err
		}
	}
	cfg := nodeagent.Config{NodeID: n.id, Class: cls, Labels: labels, Component: n.component, Runtime: n.runtime, PSK: psk,
		Flash: f, SlotSize: n.slotSize, JournalBlocks: n.journalBlocks, Trust: trust, Roots: roots, RootThreshold: n.trustThreshold, Models: simmodel.Runtime{Seed: n.seed}.ForAgent(),
		InferenceRate: n.rate, HealthInterval: n.health, Reporter: rep, Logger: log, Gateway: n.gateway, PollInterval: n.poll, AckTimeout: n.ackTimeout, LockStep: !n.qblock,
		DisableDeltas: !n.delta}
	for _, o := range overlay {
		if err := o(&cfg); err != nil {
			f.Close()
			unlock()
			return nil, nil, err
		}
	}
	a, err := nodeagent.New(cfg)
	if err != nil {
		f.Close()
		unlock()
		return nil, nil, err
	}
	return a, func() { f.Close(); unlock() }, nil
}

// logReporter logs what a node would send its gateway.
type logReporter struct{ log *slog.Logger }

func (r logReporter) Hello(_ context.Context, h *protocol.Hello) error {
	r.log.Info("hello", "node", h.NodeID, "running_seq", h.RunningSeq, "active_slot", h.ActiveSlot.String(),
		"state", h.ActiveState.String(), "epoch_floor", h.EpochFloor)
	return nil
}

func (r logReporter) Status(context.Context, *protocol.StatusEvent) error { return nil }

func (r logReporter) Health(_ context.Context, h *protocol.HealthReport) error {
	r.log.Info("health", "report", h.Number, "inferences", h.Inferences, "errors", h.Errors,
		"p50_us", h.LatencyP50Micros, "p99_us", h.LatencyP99Micros, "ram_bytes", h.RAMBytes, "boot", h.BootCount)
	return nil
}

func newNodeCmd() *cobra.Command {
	var n nodeFlags
	var b bleFlags
	var cfgFile string
	cmd := &cobra.Command{
		Use:   "node --id ID --flash FILE --class UUID --trust KEY.pub [--labels k=v,...] [--runtime NAME]",
		Short: "Run a node agent on a Linux-class device with a file-backed flash",
		Long: `Run a node agent: boot the image the flash journal chooses (a pending
image gets its trial boot, a broken one falls back to the other slot), run
the model's inferences, judge a trial against the manifest's probation
policy and confirm or revert it, and report health.

The flash is a file (created on first run, 2 slots of --slot-size bytes
plus a journal); its boot state lives only there, so the agent survives a
kill -9 at any moment. The default inference runtime is simulated: an image
whose first line is
  edgeota-sim-model error_permille=N p50_us=N p99_us=N ram_bytes=N crash_on_boot=0|1
behaves that way (docs/simulator.md); any other image is a healthy model.
--runtime NAME names the inference runtime the node offers: it refuses a
manifest whose requires names another (edgeota sign --requires-runtime),
and says NAME in its Hello so that its gateway does not assign it one.

With --gateway coaps://HOST[:5684] --psk-file F the node speaks CoAP over
DTLS 1.2 with its own pre-shared key (PSK identity = --id; the gateway must
hold the same key: 'edgeota gateway keys import'); coap://HOST:PORT is plain
UDP, for gateways run with --insecure-udp (development). The node says Hello to its gateway (on
start and after every activation or revert), observes its assigned
manifest (polling as a fallback) and installs each new one, downloading the
image block by block into the inactive slot and resuming after a dropped
link, a gateway restart or a power cut; status events and health reports go
to the gateway, queued while it is unreachable. Without --gateway, install
models with 'edgeota node apply'.

With --ble the node also serves the BLE provisioning service on --hci
(docs/provisioning.md): a technician's 'edgeota provision apply' gives it
its labels, component, gateway URI, trust anchors and DTLS key; the node
stores them in --provisioning-file (mode 0600) and restarts its agent with
them, which says Hello to that gateway and reports the provisioning (a
status event of state 9 naming the operator key). A provisioned
configuration wins over --labels, --component, --gateway and --trust; a node
never provisioned runs with those flags, or waits for a bundle without
--gateway.

Every flag can also come from a YAML file (--config), as for the gateway:
its keys are the flag names, and flags given on the command line win
(the packaged edgeota-node@.service reads /etc/edgeota/node-NAME.yaml).`,
		Example: `  edgeota node --id node-1 --flash node-1.flash --class 6ba7b810-9dad-11d1-80b4-00c04fd430c8 \
      --trust operator.pub --labels region=us-east,hw=rev2 --gateway coaps://127.0.0.1:5684 --psk-file node-1.psk`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgFile != "" {
				if err := applyConfigFile(cmd, cfgFile); err != nil {
					return usagef("--config: %v", err)
				}
			}
			log := loggerFrom(cmd)
			if b.enabled {
				return runNodeBLE(cmd.Context(), log, &n, &b)
			}
			a, closeFn, err := n.agent(log, logReporter{log})
			if err != nil {
				return err
			}
			defer closeFn()
			if err := a.Boot(cmd.Context()); err != nil {
				return err
			}
			err = a.Run(cmd.Context())
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	cmd.Flags().StringVar(&cfgFile, "config", "", "YAML file with any of these flags (keys are the flag names; the command line wins)")
	n.register(cmd)
	b.register(cmd)
	cmd.AddCommand(newNodeApplyCmd(), newNodeStatusCmd())
	return cmd
}

// throttled limits an image source to a byte rate, to watch (or interrupt)
// a download.
type throttled struct {
	src  nodeagent.ImageSource
	rate float64
}

func (t throttled) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(time.Duration(float64(len(p)) / t.rate * float64(time.Second))):
	}
	return t.src.ReadAt(ctx, p, off)
}

func newNodeApplyCmd() *cobra.Command {
	var n nodeFlags
	var manifestFile, imageFile string
	var bandwidth float64
	var settle, asJSON bool
	cmd := &cobra.Command{
		Use:   "apply --flash FILE --class UUID --trust KEY.pub --manifest M.cose --image IMG",
		Short: "Install a signed model into a node's flash (until the gateway lands)",
		Long: `Install a signed model locally into a node's file-backed flash, the way the
agent does it for a gateway: verify the manifest (signature, class,
component, requirements, anti-rollback), write the image into the inactive
slot erase block by erase block with progress records, verify its digest,
and mark it pending. The running slot is never touched.

Interrupted (kill -9, power cut), the next apply of the same manifest
resumes the download where its last progress record left it.

The next boot ('edgeota node') runs the image on trial; with --settle,
apply boots it at once and runs its probation to the end (confirm or
revert). --bandwidth limits the copy to a byte rate, to watch it or
interrupt it.`,
		Example: `  edgeota node apply --flash node-1.flash --class 6ba7b810-9dad-11d1-80b4-00c04fd430c8 \
      --trust operator.pub --manifest kws-1.4.0.cose --image kws-1.4.0.bin --settle`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if manifestFile == "" || imageFile == "" {
				return usagef("--manifest M.cose and --image IMG are required")
			}
			signed, err := os.ReadFile(manifestFile)
			if err != nil {
				return err
			}
			img, err := os.Open(imageFile)
			if err != nil {
				return err
			}
			defer img.Close()
			log := loggerFrom(cmd)
			a, closeFn, err := n.agent(log, logReporter{log})
			if err != nil {
				return err
			}
			defer closeFn()
			ctx := cmd.Context()
			var src nodeagent.ImageSource = nodeagent.ReaderAtSource{R: img}
			if bandwidth > 0 {
				src = throttled{src, bandwidth}
			}
			var bar *progressbar.ProgressBar
			progress := func(done, total int64) {
				if asJSON {
					return
				}
				if bar == nil {
					bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(cmd.ErrOrStderr()),
						progressbar.OptionShowBytes(true), progressbar.OptionSetDescription("writing slot"),
						progressbar.OptionThrottle(100*time.Millisecond),
						progressbar.OptionOnCompletion(func() { fmt.Fprintln(cmd.ErrOrStderr()) }))
				}
				bar.Set64(done)
				if done == total {
					bar.Finish()
				}
			}
			if err := a.Install(ctx, signed, src, progress); err != nil {
				return err
			}
			if settle {
				if err := a.Boot(ctx); err != nil {
					return err
				}
				if a.OnTrial() {
					fmt.Fprintln(cmd.ErrOrStderr(), "on trial: running probation...")
				}
				if err := a.Settle(ctx); err != nil {
					return err
				}
			}
			return printStatus(cmd.OutOrStdout(), cmd, n.flashFlags, asJSON)
		},
	}
	n.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&manifestFile, "manifest", "", "signed manifest (from edgeota sign)")
	fl.StringVar(&imageFile, "image", "", "model image")
	fl.Float64Var(&bandwidth, "bandwidth", 0, "copy at most this many bytes per second (0: no limit)")
	fl.BoolVar(&settle, "settle", false, "boot the new image and run its probation to the end")
	fl.BoolVar(&asJSON, "json", false, "print the resulting status as JSON")
	return cmd
}

func newNodeStatusCmd() *cobra.Command {
	var f flashFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status --flash FILE [--json]",
		Short: "Show a node's slots and boot state, read from its flash",
		Long: `Show each slot (component, version, seq, digest, epoch, state: none,
trial, confirmed or invalid), the active slot, the epoch floor, the highest
installed seq, a download in progress and the last state with its reason.
It reads the flash file without writing, so it can run beside a node agent.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return printStatus(cmd.OutOrStdout(), cmd, f, asJSON)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func printStatus(w io.Writer, _ *cobra.Command, f flashFlags, asJSON bool) error {
	fl, err := f.open(true)
	if err != nil {
		return err
	}
	defer fl.Close()
	st, err := nodeagent.ReadStatus(fl, f.slotSize, f.journalBlocks)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, st)
	}
	fmt.Fprintf(w, "active slot %s", st.Active)
	if st.Pending != "" {
		fmt.Fprintf(w, ", pending %s (trial boots %d)", st.Pending, st.TrialBoots)
	}
	fmt.Fprintf(w, "; epoch floor %d; highest seq %d; boots %d", st.EpochFloor, st.HighestSeq, st.BootCount)
	if st.TrustVersion > 0 {
		fmt.Fprintf(w, "; trust version %d", st.TrustVersion)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-4s  %-10s  %-12s  %-14s  %5s  %5s  %s\n", "SLOT", "STATE", "COMPONENT", "VERSION", "SEQ", "EPOCH", "DIGEST")
	for _, s := range st.Slots {
		d := s.Digest
		if len(d) > 16 {
			d = d[:16] + "…"
		}
		fmt.Fprintf(w, "%-4s  %-10s  %-12s  %-14s  %5d  %5d  %s\n", s.Slot, s.State, s.Component, s.Version, s.Seq, s.Epoch, d)
	}
	if d := st.Download; d != nil {
		what := "downloading"
		if d.Verified {
			what = "downloaded and verified"
		}
		fmt.Fprintf(w, "slot %s: seq %d %s, %d of %d bytes durable\n", d.Slot, d.Seq, what, d.WrittenBytes, d.SizeBytes)
	}
	fmt.Fprintf(w, "last state: %s", st.LastState)
	switch {
	case st.LastReason != "" && strings.HasPrefix(st.LastReason, st.LastCode):
		fmt.Fprintf(w, " (%s)", st.LastReason)
	case st.LastReason != "":
		fmt.Fprintf(w, " (%s: %s)", st.LastCode, st.LastReason)
	}
	fmt.Fprintln(w)
	return nil
}
