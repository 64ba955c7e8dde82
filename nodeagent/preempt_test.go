package nodeagent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"edgeota/firmware-sim/flash"
	"edgeota/protocol"
	"edgeota/protocol/delta"
	"edgeota/protocol/sign"
)

// okRuntime runs any image: a model that never fails.
type okRuntime struct{}

type okModel struct{}

func (okRuntime) Load(io.ReaderAt, int64) (Model, error) { return okModel{}, nil }
func (okModel) Infer() (time.Duration, error)            { return time.Millisecond, nil }
func (okModel) RAMBytes() uint64                         { return 0 }
func (okModel) CPUPermille() uint64                      { return 0 }

// stepClock runs time forward as fast as the agent waits.
type stepClock struct{ now time.Time }

func (c *stepClock) Now() time.Time { return c.now }
func (c *stepClock) After(d time.Duration) <-chan time.Time {
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

// announcingSource serves an image; once a read reaches at, it hands the
// agent a newer assignment (as the gateway link's watch does) and then
// fails every read as a link stopped by its context does.
type announcingSource struct {
	image    []byte
	at       int64
	announce func()
	read     int
	done     bool
}

func (s *announcingSource) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off >= s.at {
		if !s.done {
			s.done = true
			s.announce()
		}
		<-ctx.Done() // the install gives way
		return 0, ctx.Err()
	}
	n, err := bytes.NewReader(s.image).ReadAt(p, off)
	s.read += n
	return n, err
}

// deltaOnly serves a delta, and no image.
type deltaOnly struct{ delta []byte }

func (deltaOnly) ReadAt(context.Context, []byte, int64) (int, error) {
	panic("the full image was read")
}
func (s deltaOnly) Delta(*protocol.DeltaOffer) ImageSource {
	return ReaderAtSource{R: bytes.NewReader(s.delta)}
}

// TestInstallGivesWayToNewerAssignment: a node downloading the full image
// of v2 from its gateway gets v2 again with a delta offer (the gateway
// computed it meanwhile): the download stops at once, not reported failed,
// and the node takes the newer assignment: it rebuilds v2 from the delta,
// keeping the image bytes it had written.
func TestInstallGivesWayToNewerAssignment(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	signer, _ := sign.NewSigner(priv)
	ts, _ := sign.NewTrustStore(sign.RoleManifest, priv.Public().(ed25519.PublicKey))
	r := rand.New(rand.NewPCG(1, 2))
	v1 := make([]byte, 80000)
	for i := range v1 {
		v1[i] = byte(r.Uint32())
	}
	v2 := bytes.Clone(v1)
	for i := 72000; i < len(v2); i++ {
		v2[i] = byte(r.Uint32())
	}
	class := protocol.Class{1}
	signRel := func(seq uint64, img []byte) []byte {
		b, err := signer.SignManifest(&protocol.Manifest{Format: 1, Seq: seq, Component: "m", Version: "1", Digest: sha256.Sum256(img),
			Size: uint64(len(img)), Class: class, Epoch: 1})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	s1, s2 := signRel(1, v1), signRel(2, v2)
	d, err := delta.Diff(v1, v2)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := protocol.DeltaOffer{Format: delta.Format1, Base: sha256.Sum256(v1), Delta: sha256.Sum256(d), Size: uint64(len(d))}.MarshalCBOR()
	s2d, err := sign.WithUnprotected(s2, protocol.DeltaOfferLabel, raw)
	if err != nil {
		t.Fatal(err)
	}

	f, _ := flash.New(FlashSize(96<<10, 4096, 4))
	offers := make(chan Offer, 1)
	var events []protocol.StatusEvent
	a, err := New(Config{NodeID: "n", Class: class, Flash: f, Trust: ts, Models: okRuntime{}, SlotSize: 96 << 10, Checkpoint: 16 << 10,
		Clock: &stepClock{now: time.Unix(1795000000, 0)}, Offers: offers,
		OnStatus: func(e *protocol.StatusEvent) { events = append(events, *e) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := a.Install(ctx, s1, ReaderAtSource{R: bytes.NewReader(v1)}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.dev.Boot(); err != nil {
		t.Fatal(err)
	}
	if err := a.dev.Confirm(); err != nil {
		t.Fatal(err)
	}
	a.link = &link{changed: make(chan struct{}, 1)} // as the gateway link signals assignments

	full := &announcingSource{image: v2, at: 40 << 10}
	full.announce = func() {
		offers <- Offer{Signed: s2d, Source: func(*protocol.Manifest) ImageSource { return deltaOnly{d} }}
		a.link.changed <- struct{}{}
	}
	offers <- Offer{Signed: s2, Source: func(*protocol.Manifest) ImageSource { return full }}
	events = nil
	now := time.Unix(1795000100, 0)
	// The source waits for the install to give way; the deadline only
	// ends a run in which it never does.
	guard, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := a.takeOffers(guard, now); err != nil {
		t.Fatal(err)
	}
	if !full.done || a.offer == nil || !a.retryAt.IsZero() {
		t.Fatalf("the full download did not give way: announced %v, offer %v, retry at %v", full.done, a.offer != nil, a.retryAt)
	}
	for _, e := range events {
		if e.State == protocol.StateFailed {
			t.Fatalf("the download that gave way was reported failed: %s", e.Reason)
		}
	}
	written, fetched := a.dev.st.Slots[protocol.SlotB].Written, a.dev.st.Slots[protocol.SlotB].Fetched
	if written == 0 {
		t.Fatal("no progress recorded before the newer assignment")
	}
	if err := a.takeOffers(ctx, now); err != nil {
		t.Fatal(err)
	}
	run := a.dev.Running()
	if run == nil || run.Manifest.Seq != 2 || !run.Trial {
		t.Fatalf("runs %+v, want v2 on trial", run)
	}
	var last *protocol.Transfer
	for _, e := range events {
		if e.State == protocol.StateVerified {
			last = e.Transfer
		}
	}
	// Every byte fetched counts, those past the last progress record too
	// (the node did not lose power), then the whole delta.
	if last == nil || last.Kind != protocol.TransferDelta || last.Fetched != uint64(full.read+len(d)) {
		t.Fatalf("verified with transfer %+v, want a delta with %d+%d bytes fetched (%d recorded)", last, full.read, len(d), fetched)
	}
	t.Logf("gave way after %d image bytes (%d recorded), then a %d-byte delta", full.read, written, len(d))
}
