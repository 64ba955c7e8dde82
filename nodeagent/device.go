package nodeagent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"edgeota/nodeagent/internal/journal"
	"edgeota/protocol"
	"edgeota/protocol/sign"
	"edgeota/protocol/trust"
)

// MaxTrialBoots is how many times a node boots a pending slot without
// confirming it; the next boot reverts (docs/protocol.md section 3).
const MaxTrialBoots = 3

// Errors of the device.
var (
	// ErrNoRunnable: no slot holds an image that verifies. The node runs
	// nothing and goes on asking for a model.
	ErrNoRunnable = errors.New("no runnable model")
	// ErrBusy: an update cannot start while another is on trial.
	ErrBusy = errors.New("a trial is pending")
	// ErrNotOnTrial: confirm or revert without a trial boot.
	ErrNotOnTrial = errors.New("not booted on trial")
)

// UpdateError is a refused or failed update, with the reason code of its
// status event.
type UpdateError struct {
	Code protocol.Reason
	Err  error
}

func (e *UpdateError) Error() string { return e.Err.Error() }
func (e *UpdateError) Unwrap() error { return e.Err }

func updateErr(code protocol.Reason, format string, args ...any) error {
	return &UpdateError{Code: code, Err: fmt.Errorf(format, args...)}
}

// Transition is one step of the device's life, for status events.
type Transition struct {
	State  protocol.State
	Seq    uint64
	Digest protocol.Digest
	Code   protocol.Reason
	Text   string
	Bytes  uint64
	Actor  string // who did it (a trust update: the roots that signed it)
	// Transfer is how the update's image is fetched, a delta or the full
	// image (status event key 64, v1.4), on the states downloading,
	// downloaded and verified.
	Transfer *protocol.Transfer
}

// Identity is what a node is, for the anti-rollback rules.
type Identity struct {
	Class        protocol.Class
	Component    string // empty: taken from the first manifest installed
	AgentVersion string
	Runtime      string
}

// Device is a node's flash-resident state machine: the bootloader's choice of
// slot at boot, and the agent's steps of an update (begin, write, verify,
// activate, confirm or revert). Every step writes the new boot state to the
// journal before it acts, so a power cut at any flash operation leaves a
// state the next Boot recovers from. A Device is not safe for concurrent use.
type Device struct {
	flash      Flash
	layout     Layout
	trust      *sign.TrustStore // manifest keys: the journal's trust set, or the ones given to OpenDevice
	roots      trust.Anchor     // the roots given to OpenDevice, until the journal holds a trust set
	id         Identity
	journal    *journal.Journal
	st         bootState
	checkpoint int64
	chunk      int
	booted     atomic.Pointer[Running] // read by other goroutines (status, simulators)
	onStep     func(Transition)
	deltas     bool                       // takes delta offers (WithDeltas)
	abandoned  map[protocol.Digest]string // deltas given up since power-on, and why
	// fetched is the bytes fetched for the image of digest fetchedFor
	// since power-on: an update resumed without a power cut counts those
	// past its last progress record too.
	fetched    uint64
	fetchedFor protocol.Digest

	slotSize      int64
	journalBlocks int
}

// Running is the image a boot chose.
type Running struct {
	Slot     protocol.Slot
	Manifest *protocol.Manifest
	Trial    bool
}

// DeviceOption configures OpenDevice.
type DeviceOption func(*Device) error

// WithLayout sets the slot size and journal blocks (default
// DefaultSlotSize and DefaultJournalBlocks).
func WithLayout(slotSize int64, journalBlocks int) DeviceOption {
	return func(d *Device) error {
		d.slotSize, d.journalBlocks = slotSize, journalBlocks
		return nil
	}
}

// WithCheckpoint sets how many image bytes are written between download
// progress records (default 64 KiB, rounded up to erase blocks): a power cut
// loses at most that much of a download.
func WithCheckpoint(n int64) DeviceOption {
	return func(d *Device) error { d.checkpoint = n; return nil }
}

// WithRoots sets the root keys the device accepts its first trust update
// from, and how many of them must sign it (0 counts as 1). Without roots
// it refuses every trust update. Once the journal holds a trust set, its
// roots replace these.
func WithRoots(roots []trust.Key, threshold uint64) DeviceOption {
	return func(d *Device) error {
		for _, k := range roots {
			if err := k.Validate(); err != nil {
				return fmt.Errorf("root key: %w", err)
			}
		}
		d.roots = trust.Anchor{Roots: roots, Threshold: threshold}
		return nil
	}
}

// WithDeltas sets whether the device takes the delta offers that come
// with manifests (default true) and lists the formats it applies in its
// Hello (key 65, docs/protocol.md "Delta updates (v1.4)").
func WithDeltas(on bool) DeviceOption {
	return func(d *Device) error { d.deltas = on; return nil }
}

// WithTransitions sets a function called after each persisted step.
func WithTransitions(f func(Transition)) DeviceOption {
	return func(d *Device) error { d.onStep = f; return nil }
}

// OpenDevice reads a device's boot state from its journal. A blank flash is
// a device that never ran an image. keys are the manifest keys the device
// was given; once its journal holds a trust set (ApplyTrust), that set's
// manifest keys are used instead.
func OpenDevice(f Flash, keys *sign.TrustStore, id Identity, opts ...DeviceOption) (*Device, error) {
	d := &Device{flash: f, trust: keys, id: id, checkpoint: 64 << 10, chunk: 1024, deltas: true,
		slotSize: DefaultSlotSize, journalBlocks: DefaultJournalBlocks}
	d.chunk -= d.chunk % f.WriteSize()
	if d.chunk == 0 {
		d.chunk = f.WriteSize()
	}
	for _, o := range opts {
		if err := o(d); err != nil {
			return nil, err
		}
	}
	var err error
	if d.layout, err = NewLayout(f, d.slotSize, d.journalBlocks); err != nil {
		return nil, err
	}
	d.checkpoint = roundUp(max(d.checkpoint, 1), int64(f.EraseSize()))
	j, err := journal.Open(f, d.layout.JournalOff, d.layout.JournalBlocks)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	d.journal = j
	if rec, _, ok := j.Latest(); ok {
		if d.st, err = unmarshalState(rec); err != nil {
			return nil, err
		}
	}
	if d.id.Component == "" {
		d.id.Component = d.st.Component
	}
	if t := d.st.Trust; t != nil {
		if d.trust, err = trust.Store(sign.RoleManifest, t.Manifest); err != nil {
			return nil, fmt.Errorf("boot state record: trust set: %w", err)
		}
	}
	if d.trust == nil {
		return nil, errors.New("no manifest keys: the device verifies every manifest")
	}
	return d, nil
}

// commit writes the state change to the journal, then adopts it.
func (d *Device) commit(change func(s *bootState)) error {
	next := d.st
	change(&next)
	b, err := next.marshal()
	if err != nil {
		return err
	}
	if err := d.journal.Append(b); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	d.st = next
	return nil
}

func (d *Device) step(t Transition) {
	if d.onStep != nil {
		d.onStep(t)
	}
}

// BootCount returns the persisted number of boots.
func (d *Device) BootCount() uint64 { return d.st.BootCount }

// Running returns what the last Boot runs, or nil. It is safe to call from
// any goroutine.
func (d *Device) Running() *Running { return d.booted.Load() }

// Boot is the bootloader: it counts the boot, gives a pending slot its
// trial boot (reverting it after MaxTrialBoots), and otherwise runs the
// active slot, falling back to the other slot when the active one does not
// verify. It never runs an image whose bytes do not match its signed
// manifest; with no such image it returns ErrNoRunnable.
func (d *Device) Boot() (*Running, error) {
	d.booted.Store(nil)
	looped, loopSlot := false, protocol.SlotA
	if err := d.commit(func(s *bootState) {
		s.BootCount++
		if p, ok := s.pendingSlot(); ok {
			if s.TrialBoots >= MaxTrialBoots {
				looped, loopSlot = true, p
				revertState(s, p, protocol.ReasonBootLoop, fmt.Sprintf("slot %s booted %d times without confirming", p, s.TrialBoots))
			} else {
				s.TrialBoots++
				s.LastState, s.LastReason, s.LastText = protocol.StateTrial, 0, ""
			}
		}
	}); err != nil {
		return nil, err
	}
	if looped {
		d.step(d.transition(protocol.StateReverted, loopSlot))
	}
	if p, ok := d.st.pendingSlot(); ok {
		m, err := d.verifySlot(p)
		if err == nil {
			d.booted.Store(&Running{Slot: p, Manifest: m, Trial: true})
			d.step(Transition{State: protocol.StateTrial, Seq: m.Seq, Digest: m.Digest, Bytes: m.Size})
			return d.booted.Load(), nil
		}
		if err := d.commit(func(s *bootState) {
			revertState(s, p, protocol.ReasonDigest, "trial slot does not verify: "+err.Error())
		}); err != nil {
			return nil, err
		}
		d.step(d.transition(protocol.StateReverted, p))
	}
	for _, slot := range []protocol.Slot{d.st.Active, d.st.Active.Other()} {
		rec := d.st.Slots[slot]
		if rec.State != slotConfirmed || rec.Epoch < d.st.EpochFloor {
			continue
		}
		m, verr := d.verifySlot(slot)
		if verr != nil {
			if err := d.commit(func(s *bootState) {
				s.Slots[slot].State = slotInvalid
				s.LastState, s.LastReason, s.LastText = protocol.StateFailed, protocol.ReasonDigest, "slot "+slot.String()+" does not verify: "+verr.Error()
			}); err != nil {
				return nil, err
			}
			d.step(d.transition(protocol.StateFailed, slot))
			continue
		}
		if slot != d.st.Active {
			if err := d.commit(func(s *bootState) { s.Active = slot }); err != nil {
				return nil, err
			}
		}
		d.booted.Store(&Running{Slot: slot, Manifest: m})
		return d.booted.Load(), nil
	}
	return nil, ErrNoRunnable
}

func (d *Device) transition(state protocol.State, slot protocol.Slot) Transition {
	r := d.st.Slots[slot]
	return Transition{State: state, Seq: r.Seq, Digest: r.Digest, Code: d.st.LastReason, Text: d.st.LastText, Bytes: r.Written}
}

func revertState(s *bootState, p protocol.Slot, code protocol.Reason, text string) {
	s.Pending, s.TrialBoots = 0, 0
	s.Slots[p].State = slotInvalid
	s.LastState, s.LastReason, s.LastText = protocol.StateReverted, code, text
}

// readManifest returns the signed manifest in a slot's header, verified.
func (d *Device) readManifest(slot protocol.Slot) (*protocol.Manifest, []byte, error) {
	r := d.layout.Slots[slot]
	hdr := make([]byte, r.HeaderSize)
	if _, err := d.flash.ReadAt(hdr, r.HeaderOff); err != nil {
		return nil, nil, err
	}
	signed, ok := decodeHeader(hdr)
	if !ok {
		return nil, nil, errors.New("no manifest in the slot header")
	}
	m, err := d.trust.VerifyManifest(signed)
	if errors.Is(err, sign.ErrUnknownKey) {
		if km, ok := d.kept(slot, signed); ok {
			return km, signed, nil
		}
	}
	if err != nil {
		return nil, nil, err
	}
	return m, signed, nil
}

// kept returns the manifest of a slot header signed by a key a trust
// update removed, when the image was already in that slot then: the
// journal recorded it among the kept images, with its digest, when the
// manifest still verified. Installed images keep running after a
// rotation; new ones need the new keys.
func (d *Device) kept(slot protocol.Slot, signed []byte) (*protocol.Manifest, bool) {
	t := d.st.Trust
	if t == nil {
		return nil, false
	}
	e, err := sign.Parse(signed)
	if err != nil || e.ContentType != protocol.ContentTypeManifest {
		return nil, false
	}
	m, err := protocol.DecodeManifest(e.Payload)
	if err != nil {
		return nil, false
	}
	rec := d.st.Slots[slot]
	for _, k := range t.Kept {
		if k == m.Digest && rec.Digest == m.Digest && rec.Seq == m.Seq {
			return m, true
		}
	}
	return nil, false
}

// verifySlot checks a slot against the journal and its signed manifest:
// the header verifies, names the journal's seq and digest, and the image
// bytes hash to the digest.
func (d *Device) verifySlot(slot protocol.Slot) (*protocol.Manifest, error) {
	m, _, err := d.readManifest(slot)
	if err != nil {
		return nil, err
	}
	rec := d.st.Slots[slot]
	if m.Seq != rec.Seq || m.Digest != rec.Digest {
		return nil, fmt.Errorf("slot header names seq %d, the journal %d", m.Seq, rec.Seq)
	}
	if int64(m.Size) > d.layout.Slots[slot].DataSize {
		return nil, errors.New("image larger than the slot")
	}
	sum, err := d.hashSlot(slot, int64(m.Size))
	if err != nil {
		return nil, err
	}
	if sum != m.Digest {
		return nil, fmt.Errorf("image sha256 %s, manifest %s", sum, m.Digest)
	}
	return m, nil
}

func (d *Device) hashSlot(slot protocol.Slot, size int64) (protocol.Digest, error) {
	var out protocol.Digest
	h := sha256.New()
	sr := io.NewSectionReader(d.flash, d.layout.Slots[slot].DataOff, size)
	if _, err := io.CopyBuffer(h, sr, make([]byte, 16<<10)); err != nil {
		return out, err
	}
	copy(out[:], h.Sum(nil))
	return out, nil
}

// nodeState is the anti-rollback view of the device.
func (d *Device) nodeState() protocol.NodeState {
	ns := protocol.NodeState{Class: d.id.Class, Component: d.id.Component, AgentVersion: d.id.AgentVersion,
		Runtime: d.id.Runtime, EpochFloor: d.st.EpochFloor, HighestSeq: d.st.HighestSeq}
	if ns.Component == "" {
		ns.Component = "\x00unset"
	}
	if run := d.booted.Load(); run != nil {
		o := run.Slot.Other()
		if d.st.Slots[o].State == slotConfirmed {
			if m, _, err := d.readManifest(o); err == nil {
				ns.Other = m
			}
		}
	}
	return ns
}

// Update is an update in progress, from Begin to Activate.
type Update struct {
	// Manifest is the verified manifest.
	Manifest *protocol.Manifest
	// Target is the slot the image goes to.
	Target protocol.Slot
	// Revert is set when the image is already in Target (the revert
	// exception of section 3): there is nothing to write.
	Revert bool
	// Resumed is the byte offset the download resumes from (0 for a fresh
	// download).
	Resumed int64
	// Delta is the delta offer the image is rebuilt from (WriteDelta),
	// nil when the full image is downloaded (Write).
	Delta *protocol.DeltaOffer
	// Fallback, when not empty, is why the update does not take the delta
	// it was offered (or took and abandoned): it downloads the full image.
	Fallback string
	signed   []byte // the signed manifest without its unprotected header
	fetched  uint64 // bytes fetched from the gateway for this image
	cp       deltaRec
}

// transfer is the update's transfer, for its status events.
func (u *Update) transfer() *protocol.Transfer {
	t := &protocol.Transfer{Kind: protocol.TransferFull, Fetched: u.fetched, Fallback: protocol.Truncate(u.Fallback, protocol.MaxReasonLen)}
	if u.Delta != nil {
		t.Kind, t.Delta, t.Fallback = protocol.TransferDelta, u.Delta.Delta, ""
	}
	return t
}

// Begin verifies a signed manifest (signature, class, component,
// requirements, anti-rollback) and prepares its slot. The running slot is
// never the target. A download interrupted by a power cut resumes where its
// last progress record left it.
//
// A delta offer in the manifest's unprotected header (docs/protocol.md
// "Delta updates (v1.4)") is taken when the device applies deltas, its
// format is one it applies, its base is the running image and it is
// smaller than the image: Update.Delta is then set and WriteDelta
// rebuilds the image. Otherwise Update.Fallback says why the full image
// is downloaded instead. The offer is not signed: the slot keeps the
// manifest without it, and the image is verified against the signed
// digest however it was fetched.
func (d *Device) Begin(signed []byte) (*Update, error) {
	if _, ok := d.st.pendingSlot(); ok {
		return nil, ErrBusy
	}
	signed, offer, offerWhy := splitOffer(signed)
	m, err := d.trust.VerifyManifest(signed)
	if err != nil {
		return nil, d.refuse(updateErr(protocol.ReasonSignature, "manifest does not verify: %w", err), protocol.Digest{}, 0)
	}
	if d.id.Component == "" {
		d.id.Component = m.Component
	}
	adm, err := protocol.Admit(d.nodeState(), m)
	if err != nil {
		var re *protocol.RejectError
		code := protocol.ReasonOther
		if errors.As(err, &re) {
			code = re.Code
		}
		return nil, d.refuse(&UpdateError{Code: code, Err: err}, m.Digest, m.Seq)
	}
	running := d.st.Active
	if b := d.booted.Load(); b != nil {
		running = b.Slot
	}
	if adm == protocol.AdmitRevert {
		return &Update{Manifest: m, Target: running.Other(), Revert: true, signed: signed}, nil
	}
	target := running.Other()
	if d.booted.Load() == nil && d.st.Slots[running].State != slotConfirmed {
		target = running // nothing runs: the first image goes to the active slot
	}
	region := d.layout.Slots[target]
	if int64(m.Size) > region.DataSize {
		return nil, d.refuse(updateErr(protocol.ReasonNoSpace, "image of %d bytes does not fit a %d-byte slot", m.Size, region.DataSize), m.Digest, m.Seq)
	}
	u := &Update{Manifest: m, Target: target, signed: signed}
	u.Delta, u.Fallback = d.takeOffer(offer, m, target)
	if offerWhy != "" && d.deltas {
		u.Fallback = offerWhy
	}
	rec := d.st.Slots[target]
	resumable := (rec.State == slotWriting || rec.State == slotReady) && rec.Seq == m.Seq && rec.Digest == m.Digest
	restart := false
	if resumable {
		u.Resumed, u.fetched = int64(rec.Written), rec.Fetched
		if d.fetchedFor == m.Digest {
			u.fetched = max(u.fetched, d.fetched)
		}
		if rec.State == slotReady {
			u.Resumed = int64(m.Size)
		}
		if rec.Written > 0 {
			if d.resumes(u, rec) {
				return u, nil
			}
			// The bytes written came from another transfer than this one
			// (a delta no longer offered, or another delta): start again
			// rather than trust them.
			restart, u.Resumed = true, 0
		}
	}
	if !resumable || restart {
		if err := d.commit(func(s *bootState) {
			s.Slots[target] = slotRec{State: slotWriting, Seq: m.Seq, Digest: m.Digest, Epoch: m.Epoch, Size: m.Size, Fetched: u.fetched}
			s.Component = d.id.Component
			s.LastState, s.LastReason, s.LastText = protocol.StateDownloading, 0, ""
		}); err != nil {
			return nil, err
		}
	}
	d.step(Transition{State: protocol.StateDownloading, Seq: m.Seq, Digest: m.Digest, Transfer: u.transfer()})
	// The header goes first; it is rewritten until the first progress record.
	if err := d.flash.Erase(region.HeaderOff, region.HeaderSize); err != nil {
		return nil, err
	}
	if err := d.flash.Program(region.HeaderOff, encodeHeader(signed, d.flash.WriteSize())); err != nil {
		return nil, err
	}
	return u, nil
}

// refuse records a refused update as the last state and returns err.
func (d *Device) refuse(err error, digest protocol.Digest, seq uint64) error {
	var ue *UpdateError
	errors.As(err, &ue)
	if cerr := d.commit(func(s *bootState) {
		s.LastState, s.LastReason, s.LastText = protocol.StateFailed, ue.Code, protocol.Truncate(err.Error(), protocol.MaxReasonLen)
	}); cerr != nil {
		return cerr
	}
	d.step(Transition{State: protocol.StateFailed, Seq: seq, Digest: digest, Code: ue.Code, Text: protocol.Truncate(err.Error(), protocol.MaxReasonLen)})
	return err
}

// ImageSource is where an image comes from: a gateway over CoAP, a file.
type ImageSource interface {
	// ReadAt reads len(p) bytes at off, or fewer with an error.
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
}

// ReaderAtSource adapts an io.ReaderAt (a file) to an ImageSource.
type ReaderAtSource struct{ R io.ReaderAt }

// ReadAt reads from the underlying ReaderAt.
func (s ReaderAtSource) ReadAt(_ context.Context, p []byte, off int64) (int, error) {
	return s.R.ReadAt(p, off)
}

// Write downloads the image into the target slot, erase block by erase
// block, from where the update resumes; progress, when not nil, is told the
// bytes written so far. A source that ends early fails the update (reason
// size); any other source error leaves it resumable (reason link).
func (d *Device) Write(ctx context.Context, u *Update, src ImageSource, progress func(done, total int64)) error {
	if u.Revert {
		return nil
	}
	defer d.noteFetched(u)
	region := d.layout.Slots[u.Target]
	size := int64(u.Manifest.Size)
	eb := int64(d.flash.EraseSize())
	buf := make([]byte, eb)
	lastCheckpoint := u.Resumed
	for off := u.Resumed; off < size; off += eb {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(eb, size-off)
		got, err := src.ReadAt(ctx, buf[:n], off)
		u.fetched += uint64(got)
		if int64(got) < n {
			if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return d.fail(u, protocol.ReasonSize, fmt.Sprintf("image source ended at %d of %d bytes", off+int64(got), size), true)
			}
			if ctx.Err() != nil {
				return ctx.Err() // stopped, not failed: the download resumes
			}
			return d.fail(u, protocol.ReasonLink, "image source: "+err.Error(), false)
		}
		if err := d.flash.Erase(region.DataOff+off, eb); err != nil {
			return err
		}
		data := buf[:n]
		if rem := n % int64(d.flash.WriteSize()); rem != 0 {
			pad := int64(d.flash.WriteSize()) - rem
			data = buf[:n+pad]
			for i := n; i < n+pad; i++ {
				data[i] = 0xFF
			}
		}
		for c := int64(0); c < int64(len(data)); c += int64(d.chunk) {
			if err := d.flash.Program(region.DataOff+off+c, data[c:min(c+int64(d.chunk), int64(len(data)))]); err != nil {
				return err
			}
		}
		done := off + n
		if progress != nil {
			progress(done, size)
		}
		if done < size && done-lastCheckpoint >= d.checkpoint {
			fetched := u.fetched
			if err := d.commit(func(s *bootState) { s.Slots[u.Target].Written, s.Slots[u.Target].Fetched = uint64(done), fetched }); err != nil {
				return err
			}
			lastCheckpoint = done
		}
	}
	d.step(Transition{State: protocol.StateDownloaded, Seq: u.Manifest.Seq, Digest: u.Manifest.Digest, Bytes: uint64(size), Transfer: u.transfer()})
	return nil
}

// noteFetched keeps the bytes an update fetched, for its resumption
// before the next power cut.
func (d *Device) noteFetched(u *Update) {
	d.fetched, d.fetchedFor = u.fetched, u.Manifest.Digest
}

// fail ends an update that cannot go on; clear empties the slot, otherwise
// the download stays resumable.
func (d *Device) fail(u *Update, code protocol.Reason, text string, clear bool) error {
	if err := d.commit(func(s *bootState) {
		if clear {
			s.Slots[u.Target] = slotRec{State: slotEmpty}
		}
		s.LastState, s.LastReason, s.LastText = protocol.StateFailed, code, protocol.Truncate(text, protocol.MaxReasonLen)
	}); err != nil {
		return err
	}
	d.step(Transition{State: protocol.StateFailed, Seq: u.Manifest.Seq, Digest: u.Manifest.Digest, Code: code, Text: text})
	return &UpdateError{Code: code, Err: errors.New(text)}
}

// Verify hashes the written slot and checks it against the manifest; a
// mismatch fails the update (reason digest) and empties the slot. An image
// rebuilt from a delta that does not match abandons the delta instead
// (a *DeltaError: download the full image with Write).
func (d *Device) Verify(u *Update) error {
	if u.Revert {
		return nil
	}
	m, err := d.verifyWritten(u)
	if err != nil && u.Delta != nil {
		return d.AbandonDelta(u, "digest mismatch after applying the delta: "+err.Error())
	}
	if err != nil {
		return d.fail(u, protocol.ReasonDigest, err.Error(), true)
	}
	if err := d.commit(func(s *bootState) {
		s.Slots[u.Target].State = slotReady
		s.Slots[u.Target].Written = m.Size
		s.LastState, s.LastReason, s.LastText = protocol.StateVerified, 0, ""
	}); err != nil {
		return err
	}
	d.step(Transition{State: protocol.StateVerified, Seq: m.Seq, Digest: m.Digest, Bytes: m.Size, Transfer: u.transfer()})
	return nil
}

func (d *Device) verifyWritten(u *Update) (*protocol.Manifest, error) {
	m, signed, err := d.readManifest(u.Target)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(signed, u.signed) {
		return nil, errors.New("slot header does not hold the update's manifest")
	}
	sum, err := d.hashSlot(u.Target, int64(m.Size))
	if err != nil {
		return nil, err
	}
	if sum != m.Digest {
		return nil, fmt.Errorf("written image has sha256 %s, the manifest says %s", sum, m.Digest)
	}
	return m, nil
}

// Activate marks the target slot pending: the next Boot runs it on trial.
// For a revert, the slot's bytes are verified first.
func (d *Device) Activate(u *Update) error {
	if u.Revert {
		if _, err := d.verifySlot(u.Target); err != nil {
			return d.fail(u, protocol.ReasonDigest, "slot to revert to does not verify: "+err.Error(), false)
		}
	} else if d.st.Slots[u.Target].State != slotReady {
		return fmt.Errorf("slot %s is %s, not verified", u.Target, d.st.Slots[u.Target].State)
	}
	if err := d.commit(func(s *bootState) {
		s.Pending, s.TrialBoots = uint8(u.Target)+1, 0
		s.Slots[u.Target].State = slotTrial
		s.HighestSeq = max(s.HighestSeq, u.Manifest.Seq)
		s.LastState, s.LastReason, s.LastText = protocol.StatePending, 0, ""
	}); err != nil {
		return err
	}
	d.step(Transition{State: protocol.StatePending, Seq: u.Manifest.Seq, Digest: u.Manifest.Digest, Bytes: u.Manifest.Size})
	return nil
}

// Confirm ends a successful trial: the trial slot becomes the active,
// confirmed slot, the epoch floor rises to its epoch and an image in the
// other slot below the new floor is marked invalid.
func (d *Device) Confirm() error {
	run := d.booted.Load()
	if run == nil || !run.Trial {
		return ErrNotOnTrial
	}
	p := run.Slot
	if err := d.commit(func(s *bootState) {
		s.Active, s.Pending, s.TrialBoots = p, 0, 0
		s.Slots[p].State = slotConfirmed
		s.EpochFloor = max(s.EpochFloor, s.Slots[p].Epoch)
		if o := &s.Slots[p.Other()]; o.State != slotEmpty && o.State != slotInvalid && o.Epoch < s.EpochFloor {
			o.State = slotInvalid
		}
		s.HighestSeq = max(s.HighestSeq, s.Slots[p].Seq)
		s.LastState, s.LastReason, s.LastText = protocol.StateConfirmed, 0, ""
	}); err != nil {
		return err
	}
	d.booted.Store(&Running{Slot: p, Manifest: run.Manifest})
	d.step(Transition{State: protocol.StateConfirmed, Seq: run.Manifest.Seq, Digest: run.Manifest.Digest, Bytes: run.Manifest.Size})
	return nil
}

// Revert ends a failed trial: the trial slot is marked invalid and never runs
// again; the caller reboots (Boot) into the active slot.
func (d *Device) Revert(code protocol.Reason, text string) error {
	run := d.booted.Load()
	if run == nil || !run.Trial {
		return ErrNotOnTrial
	}
	if err := d.commit(func(s *bootState) { revertState(s, run.Slot, code, protocol.Truncate(text, protocol.MaxReasonLen)) }); err != nil {
		return err
	}
	d.booted.Store(nil)
	d.step(Transition{State: protocol.StateReverted, Seq: run.Manifest.Seq, Digest: run.Manifest.Digest, Code: code, Text: protocol.Truncate(text, protocol.MaxReasonLen), Bytes: run.Manifest.Size})
	return nil
}
