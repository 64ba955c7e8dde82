package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/fxamacker/cbor/v2"

	"edgeota/protocol"
	"edgeota/protocol/delta"
	"edgeota/protocol/sign"
)

// DeltaError is a delta the device abandoned (docs/protocol.md "Delta
// updates (v1.4)"): its base changed, the patch was refused, the image it
// rebuilt does not match the signed digest, or the link failed on it too
// often. The update goes on with the full image from its first byte; Why
// is the status event's fallback reason. The running slot was not
// touched.
type DeltaError struct {
	// Why is the reason, as the status event's transfer says it (key 64,
	// key 4).
	Why string
}

func (e *DeltaError) Error() string { return "delta abandoned: " + e.Why }

// DeltaSource is an ImageSource that also serves the deltas offered with
// its manifests: the gateway link's source is one. An ImageSource that is
// not one gets the full image whatever is offered.
type DeltaSource interface {
	ImageSource
	// Delta returns the source of an offered delta's bytes.
	Delta(o *protocol.DeltaOffer) ImageSource
}

// deltaReadSize is how many delta bytes the node reads at once: the
// patcher takes them as they come, so this bounds the node's buffer
// beyond the link's block buffer.
const deltaReadSize = 256

// splitOffer returns a signed manifest without its unprotected header,
// and the delta offer that header held (nil when none). why says why an
// offer that is there cannot be read. A manifest that does not parse is
// returned as is, for Begin to refuse.
func splitOffer(signed []byte) (bare []byte, offer *protocol.DeltaOffer, why string) {
	env, err := sign.Parse(signed)
	if err != nil {
		return signed, nil, ""
	}
	if raw, ok := env.Unprotected(protocol.DeltaOfferLabel); ok {
		if offer, err = protocol.DecodeDeltaOffer(raw); err != nil {
			why = "delta offer does not decode: " + err.Error()
		}
	}
	return withoutUnprotected(signed), offer, why
}

// withoutUnprotected returns a tagged COSE_Sign1 with an empty unprotected
// header (a0), the rest copied byte for byte: what the operator signed,
// whatever a gateway attached. Input that is not a COSE_Sign1 is returned
// as is.
func withoutUnprotected(signed []byte) []byte {
	const head = 2 // tag 18, array of 4 (sign.Parse checked both)
	if len(signed) < head {
		return signed
	}
	var skip cbor.RawMessage
	afterProtected, err := cbor.UnmarshalFirst(signed[head:], &skip)
	if err != nil {
		return signed
	}
	tail, err := cbor.UnmarshalFirst(afterProtected, &skip)
	if err != nil || len(afterProtected)-len(tail) == 1 {
		return signed // already a0
	}
	out := make([]byte, 0, len(signed))
	out = append(out, signed[:len(signed)-len(afterProtected)]...)
	out = append(out, 0xa0)
	return append(out, tail...)
}

// takeOffer decides whether an update takes the delta offered: nil and
// the reason when not (empty when nothing usable was offered, or the
// device applies no deltas).
func (d *Device) takeOffer(o *protocol.DeltaOffer, m *protocol.Manifest, target protocol.Slot) (*protocol.DeltaOffer, string) {
	if o == nil || !d.deltas {
		return nil, ""
	}
	run := d.booted.Load()
	if why, ok := d.abandoned[o.Delta]; ok {
		return nil, "abandoned before: " + why
	}
	switch {
	case o.Format != delta.Format1:
		return nil, fmt.Sprintf("delta format %d is not one this node applies", o.Format)
	case run == nil || run.Trial || run.Slot != target.Other():
		return nil, "base changed: the node runs no confirmed image to apply the delta to"
	case o.Base != run.Manifest.Digest:
		return nil, fmt.Sprintf("base changed: the node runs %s, the delta applies to %s", short(run.Manifest.Digest), short(o.Base))
	case o.Size >= m.Size:
		return nil, fmt.Sprintf("delta of %d bytes is not smaller than the %d-byte image", o.Size, m.Size)
	}
	return o, ""
}

func short(d protocol.Digest) string { return d.String()[:16] }

// resumes tells whether an update may resume the bytes a slot's record
// says are written: those of a full download go on as one, or from a
// delta now offered (the bytes written are kept); those of a delta only
// with the same delta. It sets the update's delta state.
func (d *Device) resumes(u *Update, rec slotRec) bool {
	switch {
	case rec.State == slotReady:
		if rec.Delta == nil || u.Delta == nil || u.Delta.Delta != rec.Delta.Digest {
			u.Delta = nil
		}
		return true
	case rec.Delta == nil:
		// A full download in progress goes on, from the delta when one is
		// offered now: the image bytes written are kept (the apply skips
		// them) and the rest comes from the delta, applied from its start.
		return true
	case u.Delta != nil && u.Delta.Delta == rec.Delta.Digest:
		u.cp = *rec.Delta
		return true
	}
	if u.Delta == nil && u.Fallback == "" {
		u.Fallback = "the delta being applied is no longer offered"
	}
	return false
}

// WriteDelta rebuilds the update's image into the target slot from the
// delta it was offered (Update.Delta), read from src: the base is the
// running image, read from the running slot, which is never written; the
// image is written sequentially, each erase block erased once as its first
// byte comes and each write unit programmed once. A progress record (the
// bytes written and the patcher's last checkpoint at or below them) goes
// to the journal every checkpoint bytes, so that after a power cut the
// apply resumes from it: the delta is fetched again from the checkpoint's
// patch offset, and the image bytes the record covers are not written
// again.
//
// A *DeltaError means the delta was abandoned (its status event sent, the
// slot's record reset): download the full image with Write. An
// *UpdateError with reason link is a source failure; the apply resumes
// from its last progress record when WriteDelta is called again, or the
// caller abandons the delta (AbandonDelta). Any other error is the
// flash's.
func (d *Device) WriteDelta(ctx context.Context, u *Update, src ImageSource, progress func(done, total int64)) error {
	if u.Revert {
		return nil
	}
	if u.Delta == nil {
		return errors.New("nodeagent: the update takes no delta")
	}
	defer d.noteFetched(u)
	size := int64(u.Manifest.Size)
	if u.Resumed >= size {
		d.step(Transition{State: protocol.StateDownloaded, Seq: u.Manifest.Seq, Digest: u.Manifest.Digest, Bytes: uint64(size), Transfer: u.transfer()})
		return nil
	}
	run := d.booted.Load()
	if run == nil || run.Slot != u.Target.Other() || run.Manifest.Digest != u.Delta.Base {
		return d.AbandonDelta(u, "base changed: the node no longer runs the delta's base")
	}
	hb := make([]byte, delta.HeaderSize)
	n, err := src.ReadAt(ctx, hb[:min(int64(len(hb)), int64(u.Delta.Size))], 0)
	u.fetched += uint64(n)
	if err != nil && !errors.Is(err, io.EOF) && n < delta.HeaderSize {
		return d.deltaSourceErr(ctx, u, err)
	}
	h, err := delta.ParseHeader(hb[:n])
	if err != nil {
		return d.AbandonDelta(u, "patch refused: "+err.Error())
	}
	switch {
	case h.Format != delta.Format1:
		return d.AbandonDelta(u, fmt.Sprintf("patch refused: format %d, offered as %d", h.Format, u.Delta.Format))
	case h.Base != run.Manifest.Digest || h.BaseSize != int64(run.Manifest.Size):
		return d.AbandonDelta(u, fmt.Sprintf("patch refused: it applies to %s (%d bytes), the node runs %s (%d bytes)",
			short(h.Base), h.BaseSize, short(run.Manifest.Digest), run.Manifest.Size))
	case h.Target != u.Manifest.Digest || h.TargetSize != size:
		return d.AbandonDelta(u, fmt.Sprintf("patch refused: it builds %s (%d bytes), the manifest names %s (%d bytes)",
			short(h.Target), h.TargetSize, short(u.Manifest.Digest), size))
	}
	base := io.NewSectionReader(d.flash, d.layout.Slots[run.Slot].DataOff, int64(run.Manifest.Size))
	w := d.newSlotWriter(u, size)
	p, err := delta.NewPatcher(h, base, delta.Checkpoint{Patch: int64(u.cp.Patch), Out: int64(u.cp.Out)}, w.emit)
	if err != nil {
		return d.AbandonDelta(u, "patch refused: "+err.Error())
	}
	w.last = p.Last
	off, end := int64(u.cp.Patch), int64(u.Delta.Size)
	if off == 0 { // the header read above starts the patch
		if _, err := p.Write(hb[:delta.HeaderSize]); err != nil {
			return d.AbandonDelta(u, "patch refused: "+err.Error())
		}
		off = delta.HeaderSize
	}
	buf := make([]byte, deltaReadSize)
	for off < end {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := src.ReadAt(ctx, buf[:min(int64(len(buf)), end-off)], off)
		u.fetched += uint64(n)
		off += int64(n)
		if n > 0 {
			if _, err := p.Write(buf[:n]); err != nil {
				if w.err != nil {
					return w.err // the flash failed under the patcher
				}
				return d.AbandonDelta(u, "patch refused: "+err.Error())
			}
			if progress != nil {
				progress(w.pos, size)
			}
		}
		switch {
		case rerr == nil, errors.Is(rerr, io.EOF) && off == end:
		case errors.Is(rerr, io.EOF), errors.Is(rerr, io.ErrUnexpectedEOF):
			return d.AbandonDelta(u, fmt.Sprintf("patch refused: the delta ended at %d of %d bytes", off, end))
		default:
			return d.deltaSourceErr(ctx, u, rerr)
		}
	}
	if err := p.Close(); err != nil {
		if w.err != nil {
			return w.err
		}
		return d.AbandonDelta(u, "patch refused: "+err.Error())
	}
	if err := w.flush(); err != nil {
		return err
	}
	if w.pos != size {
		return d.AbandonDelta(u, fmt.Sprintf("patch refused: it built %d of %d bytes", w.pos, size))
	}
	d.step(Transition{State: protocol.StateDownloaded, Seq: u.Manifest.Seq, Digest: u.Manifest.Digest, Bytes: uint64(size), Transfer: u.transfer()})
	return nil
}

// deltaSourceErr is WriteDelta's answer to a failure of the delta's
// source: ctx's end, or a link error the caller may retry; nothing is
// reported to the gateway (the rollout counts a failed state as the
// node's failure), the progress record stays.
func (d *Device) deltaSourceErr(ctx context.Context, u *Update, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return &UpdateError{Code: protocol.ReasonLink, Err: fmt.Errorf("delta source: %w", err)}
}

// AbandonDelta gives up the update's delta for the full image: the slot's
// record starts the image again from its first byte (whatever the delta
// wrote is not trusted), a status event of state downloading says why
// (transfer key 64, fallback), and the *DeltaError returned says it to the
// caller, which downloads the full image with Write.
func (d *Device) AbandonDelta(u *Update, why string) error {
	why = protocol.Truncate(why, protocol.MaxReasonLen)
	if u.Delta != nil {
		if d.abandoned == nil {
			d.abandoned = map[protocol.Digest]string{}
		}
		d.abandoned[u.Delta.Delta] = why
	}
	m := u.Manifest
	if err := d.commit(func(s *bootState) {
		s.Slots[u.Target] = slotRec{State: slotWriting, Seq: m.Seq, Digest: m.Digest, Epoch: m.Epoch, Size: m.Size, Fetched: u.fetched}
		s.LastState, s.LastReason, s.LastText = protocol.StateDownloading, 0, ""
	}); err != nil {
		return err
	}
	u.Delta, u.Fallback, u.Resumed, u.cp = nil, why, 0, deltaRec{}
	d.step(Transition{State: protocol.StateDownloading, Seq: m.Seq, Digest: m.Digest, Transfer: u.transfer()})
	return &DeltaError{Why: why}
}

// slotWriter programs an image into a slot as a patcher emits it,
// sequentially: an erase block is erased when its first byte comes, and
// the bytes go to flash a program chunk at a time, each write unit once.
// Bytes below skip are on flash already (a resumed apply): they are
// counted, not written. At each erase block boundary a checkpoint's worth
// of bytes past the last progress record, it records the progress.
type slotWriter struct {
	d      *Device
	u      *Update
	region SlotRegion
	size   int64
	pos    int64 // image bytes emitted so far
	skip   int64 // bytes below it are on flash already
	buf    []byte
	n      int   // bytes in buf, which start at pos-n
	saved  int64 // bytes covered by the last progress record
	last   func() delta.Checkpoint
	cp     deltaRec // the newest checkpoint at or below the bytes programmed
	err    error    // the first flash error: it ends the apply
}

func (d *Device) newSlotWriter(u *Update, size int64) *slotWriter {
	chunk := d.chunk
	if d.flash.EraseSize()%chunk != 0 {
		chunk = d.flash.WriteSize()
	}
	return &slotWriter{d: d, u: u, region: d.layout.Slots[u.Target], size: size, pos: int64(u.cp.Out),
		skip: u.Resumed, saved: u.Resumed, buf: make([]byte, chunk), cp: u.cp}
}

// emit takes the image's next bytes from the patcher.
func (w *slotWriter) emit(p []byte) error {
	if w.err != nil {
		return w.err
	}
	if int64(len(p)) > w.size-w.pos {
		return fmt.Errorf("%w: the patch builds more than the %d-byte image", delta.ErrMalformed, w.size)
	}
	if w.pos < w.skip {
		k := min(int64(len(p)), w.skip-w.pos)
		p, w.pos = p[k:], w.pos+k
	}
	for len(p) > 0 {
		if w.n == 0 && w.pos%int64(w.d.flash.EraseSize()) == 0 {
			if err := w.d.flash.Erase(w.region.DataOff+w.pos, int64(w.d.flash.EraseSize())); err != nil {
				w.err = err
				return err
			}
		}
		k := copy(w.buf[w.n:], p)
		w.n += k
		w.pos += int64(k)
		p = p[k:]
		if w.n == len(w.buf) {
			if err := w.program(); err != nil {
				return err
			}
		}
	}
	return nil
}

// program writes the buffer (padded to the write unit) at its place, and
// records the progress at an erase block boundary a checkpoint past the
// last record.
func (w *slotWriter) program() error {
	if w.n == 0 {
		return nil
	}
	data := w.buf[:w.n]
	if rem := w.n % w.d.flash.WriteSize(); rem != 0 {
		data = w.buf[:w.n+w.d.flash.WriteSize()-rem]
		for i := w.n; i < len(data); i++ {
			data[i] = 0xFF
		}
	}
	off := w.pos - int64(w.n)
	if err := w.d.flash.Program(w.region.DataOff+off, data); err != nil {
		w.err = err
		return err
	}
	w.n = 0
	if c := w.last(); c.Out <= w.pos {
		w.cp = deltaRec{Digest: w.u.Delta.Delta, Patch: uint64(c.Patch), Out: uint64(c.Out)}
	}
	if w.pos < w.size && w.pos%int64(w.d.flash.EraseSize()) == 0 && w.pos-w.saved >= w.d.checkpoint {
		done, cp, fetched := w.pos, w.cp, w.u.fetched
		cp.Digest = w.u.Delta.Delta
		if err := w.d.commit(func(s *bootState) {
			r := &s.Slots[w.u.Target]
			r.Written, r.Fetched, r.Delta = uint64(done), fetched, &cp
		}); err != nil {
			w.err = err
			return err
		}
		w.saved = done
	}
	return nil
}

// flush writes the last, partial program chunk.
func (w *slotWriter) flush() error { return w.program() }
