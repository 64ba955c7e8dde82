package qblock

import (
	"errors"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"edgeota/test/testutil"
)

// fakeClock runs a table's timers by hand: a test fires them in order and
// reads the pauses the table asked for.
type fakeClock struct {
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c     *fakeClock
	at    time.Time
	d     time.Duration
	f     func()
	armed bool
}

func (ft *fakeTimer) Stop() bool { was := ft.armed; ft.armed = false; return was }

func (ft *fakeTimer) Reset(d time.Duration) bool {
	was := ft.armed
	ft.d, ft.at, ft.armed = d, ft.c.now.Add(d), true
	return was
}

func (c *fakeClock) afterFunc(d time.Duration, f func()) timer {
	ft := &fakeTimer{c: c, f: f}
	ft.Reset(d)
	c.timers = append(c.timers, ft)
	return ft
}

// next returns the armed timer due first, nil without one.
func (c *fakeClock) next() *fakeTimer {
	var first *fakeTimer
	for _, ft := range c.timers {
		if ft.armed && (first == nil || ft.at.Before(first.at)) {
			first = ft
		}
	}
	return first
}

// fire advances the clock to the first armed timer and runs it; it
// returns the pause that timer had been armed with.
func (c *fakeClock) fire(t *testing.T) time.Duration {
	t.Helper()
	ft := c.next()
	if ft == nil {
		t.Fatal("no timer armed")
	}
	c.now, ft.armed = ft.at, false
	d := ft.d
	ft.f()
	return d
}

type sent struct {
	tok  string
	nums []uint32
}

// harness is a table on a fake clock that records what it sends and
// which transfers end.
type harness struct {
	*Table
	clock *fakeClock
	mu    sync.Mutex
	sent  []sent
	ended chan Reason
}

func newHarness(p Params) *harness {
	h := &harness{clock: &fakeClock{now: time.Unix(1_800_000_000, 0)}, ended: make(chan Reason, 64)}
	h.Table = New(p, func(tg Target, nums []uint32) {
		h.mu.Lock()
		h.sent = append(h.sent, sent{string(tg.TokenBytes()), slices.Clone(nums)})
		h.mu.Unlock()
	}, func(_ Key, why Reason) { h.ended <- why })
	h.afterFunc, h.now = h.clock.afterFunc, func() time.Time { return h.clock.now }
	return h
}

// endedWhy waits for the end function to be told of a transfer's end.
func (h *harness) endedWhy(t *testing.T) Reason {
	t.Helper()
	return testutil.Receive(t, "a transfer's end", h.ended)
}

func (h *harness) takeSent() []sent {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sent
	h.sent = nil
	return s
}

func span(from, to uint32) []uint32 {
	var s []uint32
	for n := from; n <= to; n++ {
		s = append(s, n)
	}
	return s
}

var testParams = Params{MaxPayloads: 10, NonTimeout: 2 * time.Second, MaxTransfers: 4}

func target(port uint16, tok string, count uint32, confirmable bool) Target {
	tg := Target{Key: Key{From: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), port), Body: [32]byte{1}, Kind: 1},
		SZX: 6, Count: count, Confirmable: confirmable}
	tg.SetToken([]byte(tok))
	return tg
}

// TestStreamContinue: a body of 25 blocks streamed by 'Continue's; a late
// or duplicated Continue sends nothing new, a retransmitted request its
// first block only; the transfer lingers after its last set, then ends.
func TestStreamContinue(t *testing.T) {
	h := newHarness(testParams)
	steps := []struct {
		name  string
		tok   string
		start uint32
		want  []uint32
	}{
		{"the whole body", "a", 0, span(0, 9)},
		{"retransmitted", "a", 0, []uint32{0}},
		{"continue at 10", "b", 10, span(10, 19)},
		{"late continue at 10", "c", 10, nil},
		{"continue at 20: the last set", "d", 20, span(20, 24)},
	}
	for _, s := range steps {
		got, err := h.Stream(target(1, s.tok, 25, false), s.start, nil)
		if err != nil || !slices.Equal(got, s.want) {
			t.Fatalf("%s: %v %v, want %v", s.name, got, err, s.want)
		}
	}
	st := h.Stats()
	if st.Started != 1 || st.Sets[ByRequest] != 1 || st.Sets[ByContinue] != 2 || st.Transfers != 1 {
		t.Fatalf("stats %+v", st)
	}
	if d := h.clock.fire(t); d != h.Params().linger() {
		t.Fatalf("lingered %v", d)
	}
	if why := h.endedWhy(t); why != Done {
		t.Fatalf("ended %v", why)
	}
	if st := h.Stats(); st.Transfers != 0 || st.Ended[Done] != 1 || len(h.takeSent()) != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestPaceSlowsAndVanishes: a peer that never answers gets a set per
// pause, each pause twice the last (a lost burst slows the sender, never
// the reverse), NON_MAX_RETRANSMIT sets in all; then the transfer ends.
func TestPaceSlowsAndVanishes(t *testing.T) {
	h := newHarness(testParams)
	if got, _ := h.Stream(target(1, "a", 100, false), 0, nil); !slices.Equal(got, span(0, 9)) {
		t.Fatalf("first set %v", got)
	}
	var pauses []time.Duration
	for i := 0; i <= h.Params().NonMaxRetransmit; i++ {
		pauses = append(pauses, h.clock.fire(t))
	}
	if st := h.Stats(); st.Transfers != 0 {
		t.Fatalf("the transfer is still in flight after %d unanswered sets", h.Params().NonMaxRetransmit)
	}
	if why := h.endedWhy(t); why != Vanished {
		t.Fatalf("ended %v", why)
	}
	base := pauses[0]
	if base < 2*time.Second || base > 3*time.Second {
		t.Fatalf("NON_TIMEOUT_RANDOM %v", base)
	}
	for i, d := range pauses {
		if d != base<<i {
			t.Fatalf("pauses %v: not doubling", pauses)
		}
	}
	var nums [][]uint32
	for _, s := range h.takeSent() {
		nums = append(nums, s.nums)
	}
	if want := [][]uint32{span(10, 19), span(20, 29), span(30, 39), span(40, 49)}; !slices.EqualFunc(nums, want, slices.Equal) {
		t.Fatalf("paced sets %v", nums)
	}
	if st := h.Stats(); st.Transfers != 0 || st.Sets[ByPace] != 4 || st.Ended[Vanished] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestRecovery: a recovery request resets the silence, doubles the pause,
// and gets a set of blocks at most once per NON_TIMEOUT_RANDOM; one for a
// body not in flight enters it as finished, to linger.
func TestRecovery(t *testing.T) {
	h := newHarness(testParams)
	tg := target(1, "a", 100, false)
	h.Stream(tg, 0, nil)
	base := h.clock.next().d
	if n := h.Heard(target(1, "r1", 100, false)); n != 10 {
		t.Fatalf("first recovery may send %d", n)
	}
	if d := h.clock.next().d; d != 2*base {
		t.Fatalf("pause after a recovery %v, want %v", d, 2*base)
	}
	if n := h.Heard(target(1, "r2", 100, false)); n != 1 {
		t.Fatalf("recovery at once again may send %d", n)
	}
	h.clock.now = h.clock.now.Add(base)
	if n := h.Heard(target(1, "r3", 100, false)); n != 10 {
		t.Fatalf("recovery a pause later may send %d", n)
	}
	// The paced set goes with the latest request's token.
	h.clock.fire(t)
	if s := h.takeSent(); len(s) != 1 || s[0].tok != "r3" || !slices.Equal(s[0].nums, span(10, 19)) {
		t.Fatalf("sent %v", s)
	}
	// A body not in flight: entered to linger, ended Done.
	if n := h.Heard(target(2, "x", 100, false)); n != 10 {
		t.Fatalf("recovery of a body not in flight may send %d", n)
	}
	if st := h.Stats(); st.Transfers != 2 || st.Heard != 3 {
		t.Fatalf("stats %+v", st)
	}
}

// TestResumeAndSkipAhead: a 'Continue' with no transfer in flight resumes
// there (a node back from a power cut); one past the next set restarts
// the transfer there, one for block 0 with a new token restarts it too.
func TestResumeAndSkipAhead(t *testing.T) {
	h := newHarness(testParams)
	if got, _ := h.Stream(target(1, "a", 100, false), 30, nil); !slices.Equal(got, span(30, 39)) {
		t.Fatalf("resume %v", got)
	}
	if got, _ := h.Stream(target(1, "b", 100, false), 60, nil); !slices.Equal(got, span(60, 69)) {
		t.Fatalf("skip ahead %v", got)
	}
	if why := h.endedWhy(t); why != Replaced {
		t.Fatalf("ended %v", why)
	}
	if got, _ := h.Stream(target(1, "c", 100, false), 0, nil); !slices.Equal(got, span(0, 9)) {
		t.Fatalf("restart %v", got)
	}
	// A 'Continue' at another block size numbers other blocks: a new
	// transfer from there, not the next set of this one.
	small := target(1, "d", 400, false)
	small.SZX = 4
	if got, _ := h.Stream(small, 10, nil); !slices.Equal(got, span(10, 19)) {
		t.Fatalf("another size %v", got)
	}
	if st := h.Stats(); st.Started != 4 || st.Ended[Replaced] != 3 || st.Sets[ByContinue] != 0 || st.Transfers != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestConfirmableAckClock: confirmable blocks drive the next set once all
// are acknowledged; one never acknowledged ends the transfer.
func TestConfirmableAckClock(t *testing.T) {
	h := newHarness(testParams)
	tg := target(1, "a", 25, true)
	h.Stream(tg, 0, nil)
	for i := 0; i < 8; i++ {
		h.Ack(tg.Key)
	}
	if s := h.takeSent(); len(s) != 0 {
		t.Fatalf("sent before every block was acknowledged: %v", s)
	}
	h.Ack(tg.Key) // the ninth: blocks 1-9 (block 0 was the answer)
	if s := h.takeSent(); len(s) != 1 || !slices.Equal(s[0].nums, span(10, 19)) {
		t.Fatalf("sent %v", s)
	}
	for i := 0; i < 9; i++ {
		h.Ack(tg.Key)
	}
	if s := h.takeSent(); len(s) != 0 {
		t.Fatalf("sent %v", s)
	}
	h.Fail(tg.Key)
	if why := h.endedWhy(t); why != Failed {
		t.Fatalf("ended %v", why)
	}
	if st := h.Stats(); st.Sets[ByAck] != 1 || st.Transfers != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestTableBounded: the table holds at most MaxTransfers; past it a new
// transfer is refused (a recovery request is answered but not kept), and
// a transfer that ends frees its place.
func TestTableBounded(t *testing.T) {
	h := newHarness(testParams)
	for port := uint16(1); port <= 4; port++ {
		if _, err := h.Stream(target(port, "a", 100, false), 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.Stream(target(5, "a", 100, false), 0, nil); !errors.Is(err, ErrFull) {
		t.Fatalf("fifth: %v", err)
	}
	if n := h.Heard(target(6, "a", 100, false)); n != 10 {
		t.Fatalf("recovery with a full table may send %d", n)
	}
	if st := h.Stats(); st.Transfers != 4 || st.Refused != 1 {
		t.Fatalf("stats %+v", st)
	}
	h.Fail(target(1, "a", 100, false).Key)
	h.endedWhy(t)
	if _, err := h.Stream(target(5, "a", 100, false), 0, nil); err != nil {
		t.Fatal(err)
	}
	h.Close()
	for i := 0; i < 4; i++ {
		if why := h.endedWhy(t); why != Closed {
			t.Fatalf("ended %v", why)
		}
	}
	if _, err := h.Stream(target(7, "a", 100, false), 0, nil); !errors.Is(err, ErrFull) {
		t.Fatalf("after Close: %v", err)
	}
}

// TestMemoryPerTransfer: a transfer in flight costs a fixed few hundred
// bytes (its record, its timer, its map entry), whatever the body's size:
// 10,000 of them, each of a 1 GiB body, stay under 1 KiB each.
func TestMemoryPerTransfer(t *testing.T) {
	const n = 10_000
	tb := New(Params{NonTimeout: time.Hour, MaxTransfers: n}, func(Target, []uint32) {}, nil)
	defer tb.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	buf := make([]uint32, 0, 10)
	for i := 0; i < n; i++ {
		tg := target(uint16(i), "token678", 1<<20, false)
		tg.Key.Body[1] = byte(i >> 8)
		if _, err := tb.Stream(tg, 0, buf[:0]); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	t.Logf("%d bytes per transfer in flight", per)
	if st := tb.Stats(); st.Transfers != n {
		t.Fatalf("%d transfers", st.Transfers)
	}
	if per > 1024 {
		t.Fatalf("%d bytes per transfer", per)
	}
}
