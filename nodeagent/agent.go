package nodeagent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"edgeota/nodeagent/internal/latency"
	"edgeota/nodeagent/internal/probation"
	"edgeota/protocol"
	"edgeota/protocol/sign"
	"edgeota/protocol/trust"
)

// AgentVersion is the version of this node agent, sent in Hello and
// compared with a manifest's requires key.
const AgentVersion = "0.1.0"

// Runtime loads model images into something that runs inferences. A board
// port gives its inference engine; edgeota/nodeagent/simmodel is a
// simulated one (simmodel.Runtime.ForAgent), which the node command and the
// fleet simulator use.
type Runtime interface {
	Load(image io.ReaderAt, size int64) (Model, error)
}

// Model runs inferences.
type Model interface {
	// Infer runs one inference and returns its latency.
	Infer() (time.Duration, error)
	// RAMBytes is the RAM the model uses.
	RAMBytes() uint64
	// CPUPermille is the CPU the model uses, per-mille of one core.
	CPUPermille() uint64
}

// Measurer is a Model that measures its own quality: the agent puts its
// metrics in every health report (docs/protocol.md section 4, key 64), for
// a deployment's metric gates. The simulated runtime's models are
// Measurers.
type Measurer interface {
	Metrics() map[string]int64
}

// Clock is the agent's time source; tests and the simulator use a virtual
// one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Reporter receives what a node tells its gateway (docs/protocol.md section 4).
type Reporter interface {
	Hello(ctx context.Context, h *protocol.Hello) error
	Status(ctx context.Context, e *protocol.StatusEvent) error
	Health(ctx context.Context, r *protocol.HealthReport) error
}

// Config configures an Agent. NodeID, Class, Flash, Trust and Models are
// required.
type Config struct {
	NodeID    string
	Class     protocol.Class
	Labels    map[string]string
	Component string // empty: taken from the first manifest installed
	Runtime   string // the inference runtime name offered to manifests' requires and sent in Hello (key 64); empty: none

	Flash         Flash
	SlotSize      int64 // default DefaultSlotSize
	JournalBlocks int   // default DefaultJournalBlocks
	Checkpoint    int64 // download bytes between progress records, default 64 KiB

	Trust *sign.TrustStore // manifest keys, until a trust update replaces them

	// Roots are the root keys the node takes its first trust update from
	// (docs/protocol.md "Trust update", v1.3), RootThreshold how many of
	// them must sign it (0: 1). Without roots the node refuses every
	// trust update. Once it applied one, that update's roots count.
	Roots         []trust.Key
	RootThreshold uint64

	Models         Runtime       // required: loads the model images the node runs
	InferenceRate  float64       // inferences per second, default 10
	HealthInterval time.Duration // default 60s
	Clock          Clock         // default: the real clock
	Reporter       Reporter      // default: log only
	Logger         *slog.Logger  // default: discard

	// Provisioned, when set, says the node's configuration was just
	// (re)provisioned: Boot reports it to the gateway as a status event of
	// state 9 (provisioned, docs/protocol.md section 4) after its Hello, with
	// the operator's key id as the actor.
	Provisioned *Provisioning
	// PSK is the node's DTLS pre-shared key, required by a coaps://
	// Gateway; the PSK identity is NodeID.
	PSK []byte
	// Gateway is the gateway's CoAP URL, coaps://HOST[:5684] (DTLS with
	// PSK) or coap://HOST[:5683] (plain, development): the agent says
	// Hello, sends its status events and health reports there, and installs
	// the manifest the gateway assigns it (observed, with polling).
	Gateway string
	// AckTimeout is the CoAP ACK_TIMEOUT of the link (default 2s, RFC
	// 7252); lower it on fast simulated links.
	AckTimeout time.Duration
	// QBlockMaxPayloads is RFC 9177's MAX_PAYLOADS, the blocks of a
	// Q-Block2 set: 1 to 32, 0 for the RFC's 10. It must be the gateway's
	// (its --qblock-max-payloads); a link whose bandwidth-delay product is
	// more than a few blocks is faster with larger sets.
	QBlockMaxPayloads int
	// LockStep reads images one Block2 per round trip (RFC 7959), never in
	// RFC 9177 Q-Block2 bursts; by default the agent asks for Q-Block2 and
	// falls back to lock-step when the gateway does not have it.
	LockStep bool
	// OnDelivered, when set, is told each Hello, status event and health
	// report the gateway accepted (answered 2.04), from the link's
	// goroutine: delivery accounting for simulators and tests.
	OnDelivered func(doc any)
	// OnStatus, when set, is told each status event as its transition
	// happens, before it is queued for the gateway, from the goroutine
	// that made the transition: timing for simulators and tests.
	OnStatus func(e *protocol.StatusEvent)
	// PollInterval is how often the node polls its manifest besides
	// observing it (default 60s): after a gateway restart, the gateway has
	// forgotten its observers until the node registers again.
	PollInterval time.Duration

	// Offers carries what the node should run when there is no Gateway
	// (tests, other transports); Run installs each new one.
	Offers <-chan Offer
	// TrustUpdates carries signed trust updates when there is no Gateway;
	// Run applies each new one before it takes the next offer. With a
	// Gateway the node follows the trust update it serves.
	TrustUpdates <-chan []byte
	// RetryInterval is how long a download that failed on its link waits
	// before it is tried again (default 10s).
	RetryInterval time.Duration
	// DisableDeltas makes the node take full images only: its Hello lists
	// no delta format (key 65) and it ignores the delta offers that come
	// with manifests (docs/deltas.md). By default it applies format 1.
	DisableDeltas bool
}

// Provisioning describes a provisioning commit, for its status event.
type Provisioning struct {
	// Actor is who provisioned: the operator key id (hex) that signed the
	// bundle.
	Actor string
	// Serial is the bundle's serial.
	Serial uint64
}

// Offer is a signed manifest the node is told to run, and where its image
// comes from.
type Offer struct {
	// Signed is the COSE_Sign1 manifest; empty means nothing is assigned.
	Signed []byte
	// Source returns the image source for the verified manifest; a
	// DeltaSource also serves the delta offered with it.
	Source func(m *protocol.Manifest) ImageSource
}

// Agent is a node agent: it boots the device, runs the model, judges a
// trial against its probation policy, confirms or reverts, and reports.
type Agent struct {
	cfg      Config
	dev      *Device
	log      *slog.Logger
	model    Model
	judge    *probation.Judge
	trialAt  time.Time
	window   latency.Histogram
	winInf   uint64
	winErr   uint64
	bootAt   time.Time
	statusN  uint64 // status events numbered this boot
	reports  uint64
	pendingS []protocol.StatusEvent

	provisionedSent bool
	offer           *Offer    // an offer not yet installed
	lastTrust       []byte    // the last trust update taken (applied or refused)
	retryAt         time.Time // when to try it again
	link            *link
	deltaFails      int             // link failures in a row on the delta deltaFailsOf
	deltaFailsOf    protocol.Digest // the delta they are counted for
}

// maxDeltaLinkFailures is how many times in a row the link may fail on a
// delta before the node gives it up for the full image.
const maxDeltaLinkFailures = 3

// New opens the device on cfg.Flash. It does not boot: see Boot.
func New(cfg Config) (*Agent, error) {
	if cfg.Flash == nil || cfg.Trust == nil {
		return nil, errors.New("nodeagent: Flash and Trust are required")
	}
	if cfg.Models == nil {
		return nil, errors.New("nodeagent: Models is required: the Runtime that loads model images (edgeota/nodeagent/simmodel simulates one)")
	}
	if !protocol.ValidID(cfg.NodeID) {
		return nil, fmt.Errorf("nodeagent: node id %q does not match [A-Za-z0-9._-]{1,64}", cfg.NodeID)
	}
	if err := protocol.ValidateLabels(cfg.Labels); err != nil {
		return nil, fmt.Errorf("nodeagent: %w", err)
	}
	if cfg.Runtime != "" && !protocol.ValidID(cfg.Runtime) {
		return nil, fmt.Errorf("nodeagent: runtime %q does not match [A-Za-z0-9._-]{1,64}", cfg.Runtime)
	}
	if cfg.SlotSize == 0 {
		cfg.SlotSize = DefaultSlotSize
	}
	if cfg.JournalBlocks == 0 {
		cfg.JournalBlocks = DefaultJournalBlocks
	}
	if cfg.Checkpoint == 0 {
		cfg.Checkpoint = 64 << 10
	}
	if cfg.InferenceRate <= 0 {
		cfg.InferenceRate = 10
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = time.Minute
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 10 * time.Second
	}
	a := &Agent{cfg: cfg, log: cfg.Logger}
	dev, err := OpenDevice(cfg.Flash, cfg.Trust,
		Identity{Class: cfg.Class, Component: cfg.Component, AgentVersion: AgentVersion, Runtime: cfg.Runtime},
		WithLayout(cfg.SlotSize, cfg.JournalBlocks), WithCheckpoint(cfg.Checkpoint), WithTransitions(a.onTransition),
		WithRoots(cfg.Roots, cfg.RootThreshold), WithDeltas(!cfg.DisableDeltas))
	if err != nil {
		return nil, fmt.Errorf("nodeagent: %w", err)
	}
	if cfg.Gateway != "" {
		if _, _, err := checkGateway(cfg); err != nil {
			return nil, fmt.Errorf("nodeagent: %w", err)
		}
	}
	if cfg.Component != "" && dev.st.Component != "" && dev.st.Component != cfg.Component {
		return nil, fmt.Errorf("nodeagent: flash holds component %q, configured %q", dev.st.Component, cfg.Component)
	}
	a.dev = dev
	return a, nil
}

// Device returns the agent's device.
func (a *Agent) Device() *Device { return a.dev }

func (a *Agent) onTransition(t Transition) {
	a.statusN++
	e := protocol.StatusEvent{NodeID: a.cfg.NodeID, State: t.State, Seq: t.Seq, Digest: t.Digest, Reason: t.Text,
		BytesReceived: t.Bytes, Code: t.Code, BootCount: a.dev.BootCount(), Number: a.statusN, Actor: t.Actor, Transfer: t.Transfer}
	args := []any{"state", t.State.String(), "seq", t.Seq, "reason_code", t.Code.String(), "reason", t.Text, "bytes", t.Bytes}
	if tr := t.Transfer; tr != nil {
		args = append(args, "transfer", tr.Kind.String(), "fetched", tr.Fetched)
		if tr.Fallback != "" {
			args = append(args, "fallback", tr.Fallback)
		}
	}
	a.log.Info("status", args...)
	a.pendingS = append(a.pendingS, e)
	if a.cfg.OnStatus != nil {
		a.cfg.OnStatus(&e)
	}
}

// flushStatus sends the status events queued by transitions.
func (a *Agent) flushStatus(ctx context.Context) {
	if a.cfg.Reporter == nil {
		a.pendingS = a.pendingS[:0]
		return
	}
	for i := range a.pendingS {
		if err := a.cfg.Reporter.Status(ctx, &a.pendingS[i]); err != nil {
			a.log.Warn("status event not delivered", "err", err)
		}
	}
	a.pendingS = a.pendingS[:0]
}

// Boot runs the bootloader, loads the model it chose and says Hello. With
// no runnable model it returns nil: the node runs nothing and waits for an
// update. A model that crashes on boot makes the device boot again, so a
// trial model that never starts is reverted after MaxTrialBoots.
func (a *Agent) Boot(ctx context.Context) (err error) {
	opened := a.link == nil
	if err := a.connect(ctx); err != nil {
		return err
	}
	defer func() {
		// Run will not be called: close the link this Boot opened (not
		// one Run opened and reboots through).
		if err != nil && opened && a.link != nil {
			a.link.client.Close()
			a.link = nil
		}
	}()
	a.statusN, a.reports = 0, 0
	a.model, a.judge = nil, nil
	for {
		run, err := a.dev.Boot()
		a.bootAt = a.cfg.Clock.Now()
		if errors.Is(err, ErrNoRunnable) {
			a.log.Warn("no runnable model; waiting for one", "state", a.dev.String())
			break
		}
		if err != nil {
			return err
		}
		m, lerr := a.cfg.Models.Load(io.NewSectionReader(a.cfg.Flash, a.dev.layout.Slots[run.Slot].DataOff, int64(run.Manifest.Size)), int64(run.Manifest.Size))
		if lerr != nil {
			a.log.Error("model failed to start; rebooting", "slot", run.Slot.String(), "version", run.Manifest.Version, "err", lerr)
			if !run.Trial {
				break // a confirmed model that no longer starts: run nothing
			}
			a.flushStatus(ctx)
			continue
		}
		a.model = m
		if run.Trial {
			a.judge = probation.New(run.Manifest.Probation)
			a.trialAt = a.bootAt
		}
		a.log.Info("booted", "slot", run.Slot.String(), "version", run.Manifest.Version, "seq", run.Manifest.Seq, "trial", run.Trial)
		break
	}
	a.flushStatus(ctx)
	a.window.Reset()
	a.winInf, a.winErr = 0, 0
	if err := a.hello(ctx); err != nil {
		return err
	}
	if p := a.cfg.Provisioned; p != nil && !a.provisionedSent {
		a.provisionedSent = true
		a.statusN++
		e := protocol.StatusEvent{NodeID: a.cfg.NodeID, State: protocol.StateProvisioned, BootCount: a.dev.BootCount(),
			Number: a.statusN, Actor: p.Actor, Reason: fmt.Sprintf("provisioned, serial %d", p.Serial)}
		if r := a.dev.Running(); r != nil {
			e.Seq, e.Digest = r.Manifest.Seq, r.Manifest.Digest
		}
		a.log.Info("status", "state", e.State.String(), "actor", p.Actor, "serial", p.Serial)
		a.pendingS = append(a.pendingS, e)
		a.flushStatus(ctx)
	}
	return nil
}

func (a *Agent) hello(ctx context.Context) error {
	if a.cfg.Reporter == nil {
		return nil
	}
	if err := a.cfg.Reporter.Hello(ctx, a.dev.Hello(a.cfg.NodeID, a.cfg.Labels)); err != nil {
		a.log.Warn("hello not delivered", "err", err)
	}
	return nil
}

// Install takes a signed manifest and its image through the update up to
// the trial: verify, download into the inactive slot (resuming an
// interrupted download), verify the bytes and mark the slot pending. The
// next Boot runs it on trial, judged by Run or Settle.
//
// When the manifest comes with a delta offer the device takes (see
// Device.Begin) and src is a DeltaSource, the image is rebuilt from the
// delta instead (Device.WriteDelta); a delta abandoned on the way (base
// changed, patch refused, digest mismatch after applying, the link
// failing on it maxDeltaLinkFailures times in a row) falls back to the
// full image from src, in the same call.
func (a *Agent) Install(ctx context.Context, signed []byte, src ImageSource, progress func(done, total int64)) error {
	defer a.flushStatus(ctx)
	u, err := a.dev.Begin(signed)
	if err != nil {
		return err
	}
	if u.Resumed > 0 && !u.Revert {
		a.log.Info("resuming download", "seq", u.Manifest.Seq, "from", u.Resumed, "size", u.Manifest.Size, "delta", u.Delta != nil)
	}
	if u.Delta != nil {
		done, err := a.applyDelta(ctx, u, src, progress)
		if done || err != nil {
			return err
		}
	}
	if u.Fallback != "" {
		a.log.Warn("downloading the full image instead of a delta", "seq", u.Manifest.Seq, "why", u.Fallback)
	}
	if err := a.dev.Write(ctx, u, src, progress); err != nil {
		return err
	}
	if err := a.dev.Verify(u); err != nil {
		return err
	}
	return a.dev.Activate(u)
}

// applyDelta rebuilds the update's image from its delta, verifies and
// activates it (done), or returns not done and no error when the delta
// was abandoned: the full image is to be downloaded. An error is a link
// failure to retry later, or the flash's.
func (a *Agent) applyDelta(ctx context.Context, u *Update, src ImageSource, progress func(done, total int64)) (done bool, err error) {
	ds, ok := src.(DeltaSource)
	if !ok {
		return false, abandoned(a.dev.AbandonDelta(u, "no source for the delta"))
	}
	a.log.Info("applying a delta", "seq", u.Manifest.Seq, "delta", u.Delta.Delta.String(), "delta_size", u.Delta.Size,
		"image_size", u.Manifest.Size, "from", u.Resumed)
	err = a.dev.WriteDelta(ctx, u, ds.Delta(u.Delta), progress)
	if err == nil {
		err = a.dev.Verify(u)
	}
	if err == nil {
		a.deltaFails = 0
		return true, a.dev.Activate(u)
	}
	var ue *UpdateError
	if !errors.As(err, &ue) || ue.Code != protocol.ReasonLink {
		return false, abandoned(err)
	}
	if a.deltaFailsOf != u.Delta.Delta {
		a.deltaFails, a.deltaFailsOf = 0, u.Delta.Delta
	}
	a.deltaFails++
	if a.deltaFails < maxDeltaLinkFailures && !finalLinkErr(err) {
		return false, err
	}
	a.deltaFails = 0
	return false, abandoned(a.dev.AbandonDelta(u, fmt.Sprintf("link: %v", ue.Err)))
}

// abandoned turns a *DeltaError into nil (the caller downloads the full
// image) and passes any other error.
func abandoned(err error) error {
	var de *DeltaError
	if errors.As(err, &de) {
		return nil
	}
	return err
}

// Run runs the model until ctx ends: inferences at the configured rate,
// health reports, the trial's probation, and (with a Gateway) the link:
// reports delivered in order and assignments installed as they come.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.connect(ctx); err != nil {
		return err
	}
	stop := a.runLink(ctx)
	defer stop()
	return a.loop(ctx, false)
}

// Settle runs like Run until no trial is pending: the trial was confirmed
// or reverted. It returns at once when nothing is on trial.
func (a *Agent) Settle(ctx context.Context) error { return a.loop(ctx, true) }

// OnTrial reports whether the running model is on trial.
func (a *Agent) OnTrial() bool { return a.judge != nil }

func (a *Agent) loop(ctx context.Context, settle bool) error {
	interval := time.Duration(float64(time.Second) / a.cfg.InferenceRate)
	nextHealth := a.cfg.Clock.Now().Add(a.cfg.HealthInterval)
	for n := uint64(0); ; n++ {
		if settle && a.judge == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-a.cfg.Clock.After(interval):
		}
		now := a.cfg.Clock.Now()
		if err := a.takeOffers(ctx, now); err != nil {
			return err
		}
		if a.model != nil {
			lat, err := a.model.Infer()
			a.window.Record(uint64(lat / time.Microsecond))
			a.winInf++
			if err != nil {
				a.winErr++
			}
			if a.judge != nil {
				a.judge.Observe(lat, err == nil)
				a.judge.Sample(a.model.RAMBytes(), a.model.CPUPermille())
				if err := a.decide(ctx, now); err != nil {
					return err
				}
			}
		}
		if !now.Before(nextHealth) {
			a.health(ctx, now)
			nextHealth = nextHealth.Add(a.cfg.HealthInterval)
		}
	}
}

// takeOffers installs the newest offer when there is one and no trial is
// pending. A download that fails on its link is retried later; any other
// refusal was reported in a status event and the offer is dropped (the
// gateway sees it in the node's state).
func (a *Agent) takeOffers(ctx context.Context, now time.Time) error {
	if err := a.takeTrust(ctx); err != nil {
		return err
	}
	for a.cfg.Offers != nil {
		select {
		case o := <-a.cfg.Offers:
			a.offer, a.retryAt = &o, time.Time{}
			continue
		default:
		}
		break
	}
	o := a.offer
	if o == nil || a.judge != nil || now.Before(a.retryAt) {
		return nil
	}
	if len(o.Signed) == 0 {
		a.offer = nil
		return nil
	}
	m, err := a.dev.Trust().VerifyManifest(o.Signed)
	if err == nil {
		if run := a.dev.Running(); run != nil && run.Manifest.Seq == m.Seq && run.Manifest.Digest == m.Digest {
			a.offer = nil // already running it
			return nil
		}
	}
	var src ImageSource
	if m != nil && o.Source != nil {
		src = o.Source(m)
	}
	if m != nil {
		// One that does not verify is refused by Install, and logged below
		// with its reason: it has no seq or version to show here.
		a.log.Info("installing offered manifest", "seq", m.Seq, "version", m.Version)
	}
	ictx, preempted := a.preemptible(ctx)
	err = a.Install(ictx, o.Signed, src, nil)
	newer := preempted()
	var ue *UpdateError
	switch {
	case err != nil && newer && ctx.Err() == nil:
		// A newer assignment came while this one downloaded (the same
		// manifest with a delta now ready, or another): take it at once.
		a.retryAt = time.Time{}
		a.log.Info("a newer assignment came while installing; taking it", "err", err)
		return nil
	case err == nil:
		a.offer = nil
		return a.Boot(ctx)
	case errors.As(err, &ue) && ue.Code == protocol.ReasonLink, errors.Is(err, ErrBusy):
		a.retryAt = now.Add(a.cfg.RetryInterval)
		a.log.Warn("update postponed", "err", err, "retry_in", a.cfg.RetryInterval)
		return nil
	case errors.As(err, &ue):
		a.offer = nil
		a.log.Warn("update refused", "err", err, "reason_code", ue.Code.String())
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	default:
		return err // flash failure: the device is gone
	}
}

// errNewOffer cancels an install that a newer assignment replaces.
var errNewOffer = errors.New("a newer assignment came")

// preemptible returns a context for installing the current offer that
// ends when the gateway link brings a newer one, and a function telling,
// once the install returned, whether that is what ended it. Without a
// gateway link the context is ctx.
func (a *Agent) preemptible(ctx context.Context) (context.Context, func() bool) {
	if a.link == nil {
		return ctx, func() bool { return false }
	}
	select { // a signal of the offer being taken
	case <-a.link.changed:
	default:
	}
	ictx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		select {
		case <-a.link.changed:
			cancel(errNewOffer)
		case <-done:
		}
	}()
	return ictx, func() bool {
		close(done)
		preempted := context.Cause(ictx) == errNewOffer
		cancel(nil)
		return preempted
	}
}

// takeTrust applies the newest trust update offered, once: a refused one
// is reported in a status event and not tried again until another comes.
func (a *Agent) takeTrust(ctx context.Context) error {
	var signed []byte
	for a.cfg.TrustUpdates != nil {
		select {
		case b := <-a.cfg.TrustUpdates:
			signed = b
			continue
		default:
		}
		break
	}
	if len(signed) == 0 || bytes.Equal(signed, a.lastTrust) {
		return nil
	}
	a.lastTrust = signed
	return a.ApplyTrust(ctx, signed)
}

// ApplyTrust applies a signed trust update (Device.ApplyTrust) and sends
// its status event: trusted, or failed with reason trust. A refusal is
// logged, not returned; only a flash failure is.
func (a *Agent) ApplyTrust(ctx context.Context, signed []byte) error {
	defer a.flushStatus(ctx)
	u, err := a.dev.ApplyTrust(signed)
	switch {
	case err == nil:
		a.log.Info("trust update applied", "version", u.Version, "manifest_keys", len(u.ManifestKeys), "roots", len(u.RootKeys))
		return nil
	case IsTrustRefusal(err):
		a.log.Warn("trust update refused", "err", err)
		return nil
	}
	return err
}

func (a *Agent) decide(ctx context.Context, now time.Time) error {
	res := a.judge.Decide(now.Sub(a.trialAt))
	switch res.Verdict {
	case probation.Confirm:
		if err := a.dev.Confirm(); err != nil {
			return err
		}
		a.judge = nil
		a.flushStatus(ctx)
		return a.hello(ctx)
	case probation.Revert:
		if err := a.dev.Revert(res.Reason, res.Text); err != nil {
			return err
		}
		a.flushStatus(ctx)
		return a.Boot(ctx)
	}
	return nil
}

func (a *Agent) health(ctx context.Context, now time.Time) {
	a.reports++
	r := &protocol.HealthReport{NodeID: a.cfg.NodeID, UptimeSeconds: uint64(now.Sub(a.bootAt) / time.Second),
		Inferences: a.winInf, Errors: a.winErr, LatencyP50Micros: a.window.Quantile(0.5), LatencyP99Micros: a.window.Quantile(0.99),
		BootCount: a.dev.BootCount(), Number: a.reports}
	if t := now.Unix(); t > 0 {
		r.Time = uint64(t)
	}
	if run := a.dev.Running(); run != nil {
		r.RunningSeq, r.ActiveSlot = run.Manifest.Seq, run.Slot
	}
	if a.model != nil {
		r.RAMBytes, r.CPUPermille = a.model.RAMBytes(), a.model.CPUPermille()
		if m, ok := a.model.(Measurer); ok {
			r.Metrics = m.Metrics()
		}
	}
	a.window.Reset()
	a.winInf, a.winErr = 0, 0
	if a.cfg.Reporter != nil {
		if err := a.cfg.Reporter.Health(ctx, r); err != nil {
			a.log.Warn("health report not delivered", "err", err)
		}
	}
}
