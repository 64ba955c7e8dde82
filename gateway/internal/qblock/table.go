package qblock

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Params are the congestion-control parameters of RFC 9177 section 7.2
// and the bound of the transfer table. The zero value of a field takes
// its default.
type Params struct {
	// MaxPayloads is MAX_PAYLOADS: blocks sent in one burst (default 10).
	MaxPayloads int
	// NonTimeout is NON_TIMEOUT (default 2 s, ACK_TIMEOUT); the pause
	// between two sets to a peer that sends no 'Continue' is
	// NON_TIMEOUT_RANDOM, between NON_TIMEOUT and 1.5 times it.
	NonTimeout time.Duration
	// NonReceiveTimeout is NON_RECEIVE_TIMEOUT (default twice
	// NonTimeout), the client's wait before asking for missing blocks;
	// the server keeps a finished transfer NonReceiveTimeout <<
	// NonMaxRetransmit (64 s by default) for its recovery requests.
	NonReceiveTimeout time.Duration
	// NonMaxRetransmit is NON_MAX_RETRANSMIT (default 4): sets sent
	// while the peer says nothing before the transfer is dropped.
	NonMaxRetransmit int
	// MaxLatency is MAX_LATENCY of RFC 7252 (default 100 s), in
	// NON_PROBING_WAIT.
	MaxLatency time.Duration
	// MaxTransfers bounds the transfers in flight (default 1024).
	MaxTransfers int
}

// WithDefaults returns p with its zero fields set to their defaults.
func (p Params) WithDefaults() Params {
	if p.MaxPayloads <= 0 {
		p.MaxPayloads = 10
	}
	if p.NonTimeout <= 0 {
		p.NonTimeout = 2 * time.Second
	}
	if p.NonReceiveTimeout <= 0 {
		p.NonReceiveTimeout = 2 * p.NonTimeout
	}
	if p.NonMaxRetransmit <= 0 {
		p.NonMaxRetransmit = 4
	}
	if p.MaxLatency <= 0 {
		p.MaxLatency = 100 * time.Second
	}
	if p.MaxTransfers <= 0 {
		p.MaxTransfers = 1024
	}
	return p
}

// nonTimeoutRandom draws NON_TIMEOUT_RANDOM.
func (p Params) nonTimeoutRandom() time.Duration {
	return p.NonTimeout + rand.N(p.NonTimeout/2+1)
}

// NonProbingWait is NON_PROBING_WAIT for a transfer whose
// NON_TIMEOUT_RANDOM is random: the longest pause between two sets.
func (p Params) NonProbingWait(random time.Duration) time.Duration {
	span := p.NonTimeout * time.Duration(1<<p.NonMaxRetransmit-1)
	return span + span/2 + 2*p.MaxLatency + random
}

// linger is how long a transfer whose last set was sent is kept for the
// peer's recovery requests: its waits NON_RECEIVE_TIMEOUT, doubled at
// each of NON_MAX_RETRANSMIT requests, add up to less.
func (p Params) linger() time.Duration { return p.NonReceiveTimeout << p.NonMaxRetransmit }

// ErrFull is a new transfer refused because the table is full.
var ErrFull = errors.New("qblock: too many Q-Block2 transfers in flight")

// Key names a transfer: one endpoint fetching one body.
type Key struct {
	From netip.AddrPort
	// Body names the body (an image's digest); Kind tells what names it.
	Body [32]byte
	Kind uint8
}

// Target is where a transfer's blocks go, and how.
type Target struct {
	Key
	// Identity is the PSK identity of the endpoint's DTLS session, "" on
	// plain UDP.
	Identity string
	// Token is the token of the request the blocks answer (at most 8
	// bytes, RFC 7252 section 3).
	Token    [8]byte
	TokenLen uint8
	SZX      uint8
	// Confirmable blocks are retransmitted until acknowledged; else they
	// are non-confirmable.
	Confirmable bool
	// Count is the body's number of blocks.
	Count uint32
}

// TokenBytes returns the token.
func (t *Target) TokenBytes() []byte { return t.Token[:t.TokenLen] }

// SetToken sets the token (its first 8 bytes).
func (t *Target) SetToken(tok []byte) { t.TokenLen = uint8(copy(t.Token[:], tok)) }

// Reason is why a transfer ended.
type Reason uint8

// Reasons a transfer ends.
const (
	// Done: every set was sent and the peer asked nothing more for the
	// linger time.
	Done Reason = iota
	// Vanished: NON_MAX_RETRANSMIT sets went out while the peer said
	// nothing.
	Vanished
	// Failed: a confirmable block was never acknowledged, or was reset.
	Failed
	// Replaced: the peer asked for the body anew.
	Replaced
	// Closed: the table was closed.
	Closed
	// NReasons is the number of reasons.
	NReasons
)

func (r Reason) String() string {
	return [...]string{"done", "vanished", "failed", "replaced", "closed"}[r]
}

// Trigger is what made a set go out.
type Trigger uint8

// Triggers of a set.
const (
	// ByRequest: the request that starts (or resumes) a body.
	ByRequest Trigger = iota
	// ByContinue: the peer's 'Continue' for the next set.
	ByContinue
	// ByAck: the acknowledgements of every confirmable block of the
	// previous set.
	ByAck
	// ByPace: NON_TIMEOUT_RANDOM (or the longer pause after losses)
	// passed without a 'Continue'.
	ByPace
	// NTriggers is the number of triggers.
	NTriggers
)

func (t Trigger) String() string { return [...]string{"request", "continue", "ack", "pace"}[t] }

// SendFunc sends blocks nums of a transfer as separate responses. The
// table calls it without holding its lock, from a timer's goroutine or
// from Ack's caller, never for the blocks Stream returns.
type SendFunc func(t Target, nums []uint32)

// EndFunc is told that a transfer left the table, and why.
type EndFunc func(k Key, why Reason)

// transfer is one body streaming to one endpoint: a fixed-size record.
type transfer struct {
	Target
	start   uint32        // first block of the set sent last
	next    uint32        // first block of the next set to send
	base    time.Duration // NON_TIMEOUT_RANDOM, drawn at the start
	delay   time.Duration // pause before an unsolicited set: base, doubled per loss
	silent  int           // sets sent since the peer last spoke
	unacked int           // confirmable blocks of the last set not yet acknowledged
	timer   timer
	// recovered is when a recovery request was last answered with a set.
	recovered time.Time
}

// timer is a *time.Timer, or a test's fake.
type timer interface {
	Stop() bool
	Reset(d time.Duration) bool
}

// Stats are a table's counters.
type Stats struct {
	// Transfers is the number in flight.
	Transfers int
	// Started counts transfers started, Refused those refused for a full
	// table.
	Started, Refused uint64
	// Sets counts the sets sent, by what sent them.
	Sets [NTriggers]uint64
	// Ended counts the transfers ended, by reason.
	Ended [NReasons]uint64
	// Heard counts recovery requests of transfers in flight.
	Heard uint64
}

// Table holds the Q-Block2 transfers in flight and paces their sets. It
// is safe for concurrent use.
type Table struct {
	p    Params
	send SendFunc
	end  EndFunc

	mu     sync.Mutex
	m      map[Key]*transfer
	closed bool

	// afterFunc and now are time.AfterFunc and time.Now but in tests.
	afterFunc func(d time.Duration, f func()) timer
	now       func() time.Time

	started, refused, heard atomic.Uint64
	sets                    [NTriggers]atomic.Uint64
	ended                   [NReasons]atomic.Uint64
}

// New returns a table with parameters p (defaults for its zero fields)
// that sends unsolicited sets with send and tells end (may be nil) of
// every transfer that leaves it.
func New(p Params, send SendFunc, end EndFunc) *Table {
	return &Table{p: p.WithDefaults(), send: send, end: end, m: make(map[Key]*transfer),
		afterFunc: func(d time.Duration, f func()) timer { return time.AfterFunc(d, f) }, now: time.Now}
}

// Params returns the table's parameters, defaults applied.
func (t *Table) Params() Params { return t.p }

// Stats returns the counters.
func (t *Table) Stats() Stats {
	t.mu.Lock()
	s := Stats{Transfers: len(t.m)}
	t.mu.Unlock()
	s.Started, s.Refused, s.Heard = t.started.Load(), t.refused.Load(), t.heard.Load()
	for i := range s.Sets {
		s.Sets[i] = t.sets[i].Load()
	}
	for i := range s.Ended {
		s.Ended[i] = t.ended[i].Load()
	}
	return s
}

// InFlight reports whether k's transfer is in the table (streaming, or
// lingering for recovery requests).
func (t *Table) InFlight(k Key) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[k] != nil
}

// appendSet appends the blocks of the set that starts at from.
func (t *Table) appendSet(buf []uint32, from, count uint32) []uint32 {
	for n := from; n <= SetLast(from, count, t.p.MaxPayloads); n++ {
		buf = append(buf, n)
	}
	return buf
}

// Stream answers a Stream request (the whole body from start, or a
// 'Continue'): it returns the blocks to send now, appended to buf; the
// caller sends the first as the answer and the others after it. It
// returns none for a 'Continue' of a set already sent (a late or
// duplicated one). A retransmitted request (same token, same start) gets
// its first block only.
func (t *Table) Stream(tg Target, start uint32, buf []uint32) ([]uint32, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrFull
	}
	tr := t.m[tg.Key]
	if tr != nil && (tr.SZX != tg.SZX || tr.Count != tg.Count) {
		// Another block size (or body) numbers other blocks: a new
		// transfer, never a continuation of this one.
		t.endLocked(tr, Replaced)
		tr = nil
	}
	trigger := ByRequest
	switch {
	case tr != nil && tr.Token == tg.Token && tr.TokenLen == tg.TokenLen && start == tr.start:
		return append(buf, start), nil // a duplicate
	case tr != nil && start > 0 && start < tr.next:
		return buf, nil // a late 'Continue'
	case tr != nil && start > 0 && start == tr.next:
		trigger = ByContinue
		tr.Target = tg
		tr.silent = 0
		tr.delay = max(tr.base, tr.delay/2)
	default: // a new transfer, the whole body again, or a resume
		if tr != nil {
			tr.timer.Stop()
			t.endLocked(tr, Replaced)
		} else if len(t.m) >= t.p.MaxTransfers {
			t.refused.Add(1)
			return nil, ErrFull
		}
		tr = &transfer{Target: tg, base: t.p.nonTimeoutRandom()}
		tr.delay = tr.base
		t.m[tg.Key] = tr
		t.started.Add(1)
	}
	buf = t.sentLocked(tr, start, trigger, buf)
	return buf, nil
}

// sentLocked records that the set from start goes out now and arms the
// transfer's timer.
func (t *Table) sentLocked(tr *transfer, start uint32, trigger Trigger, buf []uint32) []uint32 {
	n0 := len(buf)
	buf = t.appendSet(buf, start, tr.Count)
	tr.start, tr.next = start, buf[len(buf)-1]+1
	if tr.Confirmable {
		tr.unacked = len(buf) - n0
		if trigger == ByRequest || trigger == ByContinue {
			tr.unacked-- // the first is the request's answer, acknowledged with it
		}
	}
	if trigger == ByPace {
		tr.silent++
	}
	t.sets[trigger].Add(1)
	t.armLocked(tr)
	return buf
}

// armLocked sets the transfer's timer: the pause before the next set, or
// the linger after the last.
func (t *Table) armLocked(tr *transfer) {
	d := tr.delay
	if tr.next >= tr.Count {
		d = t.p.linger()
	} else if tr.Confirmable {
		d = t.p.NonProbingWait(tr.base) // acknowledgements drive it; this only bounds a silent peer
	}
	if tr.timer == nil {
		tr.timer = t.afterFunc(d, func() { t.fire(tr) })
		return
	}
	tr.timer.Reset(d)
}

// fire sends the next set of a peer that did not ask for it, or ends the
// transfer.
func (t *Table) fire(tr *transfer) {
	t.mu.Lock()
	if t.m[tr.Key] != tr {
		t.mu.Unlock()
		return
	}
	switch {
	case tr.next >= tr.Count:
		t.endLocked(tr, Done)
		t.mu.Unlock()
		return
	case tr.Confirmable || tr.silent >= t.p.NonMaxRetransmit:
		t.endLocked(tr, Vanished)
		t.mu.Unlock()
		return
	}
	// No 'Continue' came: a lost set, or a lost request; either way the
	// next pause is longer (RFC 9177 section 7.2: a lost burst slows the
	// sender), up to NON_PROBING_WAIT.
	tr.delay = min(2*tr.delay, t.p.NonProbingWait(tr.base))
	nums := t.sentLocked(tr, tr.next, ByPace, make([]uint32, 0, t.p.MaxPayloads))
	tg := tr.Target
	t.mu.Unlock()
	t.send(tg, nums)
}

// endLocked removes a transfer and tells the end function (outside the
// lock: it runs on its own goroutine to keep lock order simple).
func (t *Table) endLocked(tr *transfer, why Reason) {
	delete(t.m, tr.Key)
	if tr.timer != nil {
		tr.timer.Stop()
	}
	t.ended[why].Add(1)
	if t.end != nil {
		end, k := t.end, tr.Key
		go end(k, why)
	}
}

// Heard tells the table of a recovery request of tg's transfer (one that
// names blocks) and returns how many blocks its answer may carry: at
// most MAX_PAYLOADS, and one only when the previous recovery set went
// out less than NON_TIMEOUT_RANDOM ago (RFC 9177 section 7.2: a
// NON_TIMEOUT_RANDOM delay is still observed between each
// MAX_PAYLOADS_SET, so repeated requests never make the sender resend
// faster). The peer is alive but lost blocks, so the next set waits the
// transfer's pause doubled. A transfer not in flight is entered as
// finished, kept the linger time for further recovery requests (a full
// table keeps none: the request is answered all the same).
func (t *Table) Heard(tg Target) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	tr := t.m[tg.Key]
	if tr == nil {
		if t.closed || len(t.m) >= t.p.MaxTransfers {
			return t.p.MaxPayloads
		}
		tr = &transfer{Target: tg, base: t.p.nonTimeoutRandom(), start: tg.Count, next: tg.Count, recovered: now}
		tr.delay = tr.base
		t.m[tg.Key] = tr
		t.started.Add(1)
		t.armLocked(tr)
		return t.p.MaxPayloads
	}
	t.heard.Add(1)
	tr.Token, tr.TokenLen = tg.Token, tg.TokenLen
	tr.silent = 0
	allowed := t.p.MaxPayloads
	if !tr.recovered.IsZero() && now.Sub(tr.recovered) < tr.base {
		allowed = 1
	} else {
		tr.recovered = now
	}
	tr.delay = min(2*tr.delay, t.p.NonProbingWait(tr.base))
	t.armLocked(tr)
	return allowed
}

// Ack tells the table that a confirmable block of k's last set was
// acknowledged; once all are, the next set goes out.
func (t *Table) Ack(k Key) {
	t.mu.Lock()
	tr := t.m[k]
	if tr == nil || !tr.Confirmable || tr.unacked <= 0 {
		t.mu.Unlock()
		return
	}
	tr.silent = 0
	if tr.unacked--; tr.unacked > 0 || tr.next >= tr.Count {
		t.mu.Unlock()
		return
	}
	nums := t.sentLocked(tr, tr.next, ByAck, make([]uint32, 0, t.p.MaxPayloads))
	tg := tr.Target
	t.mu.Unlock()
	t.send(tg, nums)
}

// Fail ends k's transfer: a confirmable block was not acknowledged, or
// the peer reset one.
func (t *Table) Fail(k Key) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tr := t.m[k]; tr != nil {
		t.endLocked(tr, Failed)
	}
}

// Close ends every transfer; later Streams are refused.
func (t *Table) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for _, tr := range t.m {
		t.endLocked(tr, Closed)
	}
}
