package gwlink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/net/blockwise/qblock"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// An image is read with RFC 9177 Q-Block2 when the gateway has it: one GET
// asks for a block and the rest of its set (the M bit), the gateway sends
// the set as NON responses, paced, and the node asks for the next set as
// soon as one is complete (a GET of the next set's first block with M
// set) as soon as the last block of a set arrives, whether or not the set
// is complete. A block that ends a set (or one of a later set) also tells
// the node that the blocks of the set it still misses were lost (blocks of
// a set come in order on a link that does not reorder): it asks for them
// at once (one Q-Block2 option per block, M unset, in increasing order, a
// new token, no ETag), once; a block asked for and still missing after
// NON_RECEIVE_TIMEOUT without a new block, or a set whose last block was
// lost, is asked for again then. Waits double with every request that
// brings nothing; after NON_MAX_RETRANSMIT of them the download gives up
// with ErrQBlockTimeout (and ReadAt starts again from the first block it
// does not hold, after a back-off, as it does for a lock-step failure).
//
// The first Q-Block2 request of a connection is sent again after
// NON_TIMEOUT, doubling, up to NON_MAX_RETRANSMIT times, before the node
// takes the gateway's silence for a gateway without Q-Block2 (go-coap's
// server drops a NON request with a critical option it does not know): one
// lost request or answer no longer makes the node read lock-step. A 4.02
// or a Block2 answer means no Q-Block2 at once.
//
// What the node holds of a transfer is bounded: a window of two sets
// (2 x MAX_PAYLOADS blocks, 20 KiB at the defaults), a 64-bit bitmap of the
// blocks held in it, and the last qTokens tokens. Blocks outside the window
// are dropped and asked for again when the window reaches them. ReadAt still
// returns bytes in order, so the flash is written exactly as before: the
// device writes whole erase blocks in order and its journal records how
// far it got; a download that resumes asks for the first block it lacks.

// ErrQBlockTimeout means a Q-Block2 download got no new block for
// NON_MAX_RETRANSMIT requests in a row (RFC 9177 section 7.2).
var ErrQBlockTimeout = errors.New("gwlink: Q-Block2 download: no block after the last retry")

// errNoQBlock means the gateway does not do Q-Block2 (it answered 4.02 Bad
// Option, or with a Block2 answer): the image is read lock-step.
var errNoQBlock = errors.New("gwlink: the gateway does not do Q-Block2")

// errFirstBlock is a 4.00 answer to a Q-Block2 request. RFC 9177 lets a
// request name any block, but go-coap's server (v3.8.1) refuses one that
// is not block 0 unless it holds the body from an earlier request for
// block 0 (it forgets it after NON_PARTIAL_TIMEOUT); the node then asks
// for block 0 and again for the block it wants, once.
var errFirstBlock = errors.New("gwlink: 4.00 to a first Q-Block2 request")

// Defaults of QBlockParams: RFC 9177 section 7.2.
const (
	DefaultMaxPayloads      = 10
	DefaultNonMaxRetransmit = 4
	// maxMaxPayloads keeps the window's bitmap (two sets) in a uint64.
	maxMaxPayloads = 32
	// qTokens is how many of its latest request tokens a transfer still
	// takes blocks from.
	qTokens = 8
)

// QBlockParams are RFC 9177 section 7.2's parameters of a Q-Block2
// download, as the node uses them. MAX_PAYLOADS must be the gateway's.
type QBlockParams struct {
	// MaxPayloads is MAX_PAYLOADS, the blocks of a set: 1 to 32 (default 10).
	MaxPayloads int
	// NonReceiveTimeout is NON_RECEIVE_TIMEOUT, how long the node waits for
	// the next block before it asks again (default twice the ACK timeout,
	// 4 s by default: RFC 9177's NON_TIMEOUT is ACK_TIMEOUT); it doubles
	// with every request in a row that brings no block.
	NonReceiveTimeout time.Duration
	// NonMaxRetransmit is NON_MAX_RETRANSMIT, the requests in a row that may
	// bring no block before the download gives up: 1 to 20 (default 4).
	NonMaxRetransmit int
	// NonTimeout is NON_TIMEOUT, the wait for an answer to the first
	// Q-Block2 request of a connection before it is sent again (default
	// the ACK timeout, as RFC 9177 section 7.2 says); it doubles with
	// every request in a row that brings nothing.
	NonTimeout time.Duration
}

func (p *QBlockParams) fill(ackTimeout time.Duration) error {
	if p.MaxPayloads == 0 {
		p.MaxPayloads = DefaultMaxPayloads
	}
	if p.NonMaxRetransmit == 0 {
		p.NonMaxRetransmit = DefaultNonMaxRetransmit
	}
	if p.NonTimeout == 0 {
		p.NonTimeout = ackTimeout
	}
	if p.NonReceiveTimeout == 0 {
		p.NonReceiveTimeout = 2 * ackTimeout // RFC 9177: 2 x NON_TIMEOUT, which is ACK_TIMEOUT
	}
	if p.MaxPayloads < 1 || p.MaxPayloads > maxMaxPayloads {
		return fmt.Errorf("gwlink: MAX_PAYLOADS %d is not from 1 to %d", p.MaxPayloads, maxMaxPayloads)
	}
	if p.NonReceiveTimeout < 0 || p.NonTimeout < 0 || p.NonMaxRetransmit < 1 || p.NonMaxRetransmit > 20 {
		return fmt.Errorf("gwlink: NON_RECEIVE_TIMEOUT must be positive and NON_MAX_RETRANSMIT from 1 to 20")
	}
	return nil
}

// qanswer is what the node reads from a response on a Q-Block2 transfer,
// copied out of go-coap's pooled message.
type qanswer struct {
	code      codes.Code
	etag      []byte
	q2        uint32
	hasQ2     bool
	hasBlock2 bool
	size2     int64 // -1 when absent
	maxAge    uint32
	hasMaxAge bool
	body      []byte
}

func readQAnswer(m *pool.Message) (qanswer, error) {
	a := qanswer{code: m.Code(), size2: -1}
	body, err := m.ReadBody()
	if err != nil {
		return a, err
	}
	a.body = body
	if et, err := m.ETag(); err == nil {
		a.etag = bytes.Clone(et)
	}
	opts := m.Options()
	if v, err := opts.GetUint32(message.QBlock2); err == nil {
		a.q2, a.hasQ2 = v, true
	}
	a.hasBlock2 = opts.HasOption(message.Block2)
	if v, err := opts.GetUint32(message.Size2); err == nil {
		a.size2 = int64(v)
	}
	if v, err := opts.GetUint32(message.MaxAge); err == nil {
		a.maxAge, a.hasMaxAge = v, true
	}
	return a, nil
}

// qrouter hands the responses carrying a Q-Block2 transfer's tokens to
// that transfer; it is the connections' handler for answers go-coap does
// not match to a request of its own (the NON blocks of a burst).
type qrouter struct {
	mu     sync.Mutex
	routes map[string]chan<- qanswer
}

func (r *qrouter) add(token []byte, ch chan<- qanswer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.routes == nil {
		r.routes = make(map[string]chan<- qanswer)
	}
	r.routes[string(token)] = ch
}

func (r *qrouter) remove(token []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.routes, string(token))
}

// handle is the connection's handler: answers on a transfer's token go to
// it (dropped when it is behind: a lost datagram), requests get go-coap's
// default 4.04.
func (r *qrouter) handle(w *responsewriter.ResponseWriter[*udpclient.Conn], m *pool.Message) {
	if m.Code() >= codes.Created {
		r.mu.Lock()
		ch, ok := r.routes[string(m.Token())]
		r.mu.Unlock()
		if !ok {
			return
		}
		a, err := readQAnswer(m)
		if err != nil {
			return
		}
		select {
		case ch <- a:
		default:
		}
		return
	}
	switch m.Code() {
	case codes.GET, codes.POST, codes.PUT, codes.DELETE, codes.FETCH, codes.PATCH, codes.IPATCH:
		_ = w.SetResponse(codes.NotFound, message.TextPlain, nil)
	}
}

// qwindow is the state of one Q-Block2 transfer of an image: the blocks of
// two sets, from base (a multiple of MAX_PAYLOADS).
type qwindow struct {
	szx    blockwise.SZX
	bs     int64 // block size
	w      int64 // MAX_PAYLOADS
	count  int64 // blocks in the image
	base   int64
	buf    []byte // 2w blocks
	have   uint64 // bit i: block base+i is in buf
	asked  uint64 // bit i: block base+i was asked for once it was known lost
	hi     int64  // the highest block held, -1 before the first
	from   int64  // the first block the transfer wants (set by reset)
	ch     chan qanswer
	tokens [qTokens][]byte
	next   int // tokens[next] is replaced by the next token

	active    bool      // a request is out; deadline is when to ask again
	deadline  time.Time // of the current wait
	retries   int       // requests in a row that brought no block
	continued int64     // the last set asked for with M set
	answered  bool      // the gateway answered with Q-Block2
	primed    bool      // block 0 was asked for after a 4.00 (errFirstBlock)
	reask     bool      // ask again for the block awaited once block 0 came
}

func (im *Image) newWindow(szx blockwise.SZX) *qwindow {
	p := im.c.cfg.qparams
	bs := szx.Size()
	w := int64(p.MaxPayloads)
	return &qwindow{szx: szx, bs: bs, w: w, count: (im.size + bs - 1) / bs, base: -1,
		buf: make([]byte, 2*w*bs), ch: make(chan qanswer, 4*w), continued: -1, hi: -1}
}

// reset makes the window start at the set holding num and forgets the
// transfer's requests.
func (q *qwindow) reset(num int64) {
	q.base, q.from = num-num%q.w, num
	q.have, q.asked, q.hi = 0, 0, -1
	q.active = false
	q.retries = 0
	q.continued = -1
	q.answered, q.primed, q.reask = false, false, false
}

// slide drops the window's first set.
func (q *qwindow) slide() {
	copy(q.buf, q.buf[q.w*q.bs:])
	q.have >>= uint(q.w)
	q.asked >>= uint(q.w)
	q.base += q.w
}

func (q *qwindow) held(num int64) bool {
	return num >= q.base && num < q.base+2*q.w && q.have&(1<<uint(num-q.base)) != 0
}

// blockLen is the length of block num of the image.
func (q *qwindow) blockLen(num int64, size int64) int64 {
	return min(q.bs, size-num*q.bs)
}

// setComplete reports whether every block of the set starting at start
// (within the image) is held.
func (q *qwindow) setComplete(start int64) bool {
	for n := start; n < min(start+q.w, q.count); n++ {
		if !q.held(n) {
			return false
		}
	}
	return true
}

// readQ reads want at off with Q-Block2, as ReadAt does; errNoQBlock
// when the gateway does not do it.
func (im *Image) readQ(ctx context.Context, want []byte, off int64) (int, error) {
	im.qmu.Lock()
	defer im.qmu.Unlock()
	szx := blockwise.SZX(im.szx.Load())
	if im.q == nil || im.q.szx != szx {
		im.closeQ()
		im.q = im.newWindow(szx)
	}
	q := im.q
	n := 0
	for n < len(want) {
		pos := off + int64(n)
		num := pos / q.bs
		if num < q.base || num >= q.base+2*q.w {
			q.reset(num)
		}
		for num >= q.base+q.w {
			q.slide()
		}
		if q.held(num) {
			i := num - q.base
			end := i*q.bs + q.blockLen(num, im.size)
			n += copy(want[n:], q.buf[i*q.bs+pos%q.bs:end])
			continue
		}
		if err := im.awaitQ(ctx, q, num); err != nil {
			q.active, q.retries = false, 0
			return n, err
		}
	}
	if off+int64(n) >= im.size {
		im.closeQ() // the whole image read: the transfer's tokens go
	}
	return n, nil
}

// closeQ forgets the transfer; qmu is held.
func (im *Image) closeQ() {
	if im.q == nil {
		return
	}
	for _, t := range im.q.tokens {
		if t != nil {
			im.c.qr.remove(t)
		}
	}
	im.q = nil
}

// awaitQ waits until block num arrives, asking the gateway as RFC 9177
// says: the set from num if nothing is out, the next set once one is
// complete, the missing blocks after NON_RECEIVE_TIMEOUT.
func (im *Image) awaitQ(ctx context.Context, q *qwindow, num int64) error {
	p := im.c.cfg.qparams
	if !q.active {
		if err := im.sendQ(ctx, q, []int64{num}, true); err != nil {
			return err
		}
		q.continued = num - num%q.w
	}
	timer := time.NewTimer(time.Until(q.deadline))
	defer timer.Stop()
	for !q.held(num) {
		if err := im.continueQ(ctx, q, num); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case a := <-q.ch:
			err := im.takeQ(q, a)
			if errors.Is(err, errFirstBlock) {
				if q.primed {
					return im.c.answerError("GET "+im.path, response{code: a.code, body: a.body})
				}
				// go-coap's server: ask for block 0, then again for num.
				q.primed, q.reask = true, true
				err = im.sendQ(ctx, q, []int64{0}, false)
			}
			if err != nil {
				return err
			}
			if err := im.continueQ(ctx, q, num); err != nil {
				return err
			}
			if err := im.recoverQ(ctx, q); err != nil {
				return err
			}
			if q.reask && q.answered {
				q.reask, q.primed = false, false
				if err := im.sendQ(ctx, q, []int64{num}, true); err != nil {
					return err
				}
			}
		case <-timer.C:
			q.retries++
			if !q.answered && !im.c.qblockKnown() {
				// A gateway that drops a NON request with an option it
				// does not know (RFC 7252 section 5.4.1) says nothing;
				// so does a lossy link that lost the request or its
				// answer: ask again, NON_MAX_RETRANSMIT times.
				if q.retries > p.NonMaxRetransmit {
					return errNoQBlock
				}
				if err := im.sendQ(ctx, q, []int64{num}, true); err != nil {
					return err
				}
				break
			}
			if q.retries > p.NonMaxRetransmit {
				return &transientError{fmt.Errorf("%w: block %d of %s after %d requests", ErrQBlockTimeout, num, im.path, q.retries)}
			}
			nums, more := q.missing(num)
			if err := im.sendQ(ctx, q, nums, more); err != nil {
				return err
			}
		}
		timer.Reset(time.Until(q.deadline))
	}
	return nil
}

// continueQ asks for the set holding num when it was not asked for, and
// for the set after it once that one is complete, rather than let the
// gateway wait NON_TIMEOUT before it sends it (RFC 9177 section 4.4).
func (im *Image) continueQ(ctx context.Context, q *qwindow, num int64) error {
	cur := num - num%q.w
	next := cur
	if q.continued >= cur {
		// num's set was asked for: the one after it, once num's set is
		// complete or its last block (or a later one) came.
		next = cur + q.w
		if next >= q.count || q.continued >= next || next >= q.base+2*q.w || (!q.setComplete(cur) && q.hi < next-1) {
			return nil
		}
	}
	q.continued = next
	return im.sendQ(ctx, q, []int64{next}, true)
}

// recoverQ asks at once for the blocks known lost: those of a set whose
// last block, or a block after it, is held (RFC 9177 section 4.4 lets
// the client ask for missing blocks before NON_RECEIVE_TIMEOUT once it
// knows they are missing). Each is asked for so once; one still missing
// after that waits for NON_RECEIVE_TIMEOUT as a set's lost last block
// does.
func (im *Image) recoverQ(ctx context.Context, q *qwindow) error {
	for _, nums := range q.lost() {
		if err := im.sendQ(ctx, q, nums, false); err != nil {
			return err
		}
	}
	return nil
}

// lost returns the blocks known lost and not yet asked for, marked asked
// now, in requests of at most MAX_PAYLOADS blocks each: blocks of two
// sets may be known lost at once, and a gateway refuses a request that
// names more (4.02, as go-coap's does).
func (q *qwindow) lost() [][]int64 {
	var nums []int64
	for n := max(q.base, q.from); n < min(q.base+2*q.w, q.count); n++ {
		setEnd := min(n-n%q.w+q.w, q.count) - 1
		i := uint(n - q.base)
		if q.hi >= setEnd && q.have&(1<<i) == 0 && q.asked&(1<<i) == 0 {
			nums = append(nums, n)
			q.asked |= 1 << i
		}
	}
	var batches [][]int64
	for len(nums) > 0 {
		k := min(len(nums), int(q.w))
		batches = append(batches, nums[:k])
		nums = nums[k:]
	}
	return batches
}

// missing lists the blocks of num's set from num on that the window does
// not hold, to be asked for one by one (M unset): a set asked for again
// with M set is one a gateway may hold for sent already (go-coap's does).
func (q *qwindow) missing(num int64) (nums []int64, more bool) {
	end := min(num-num%q.w+q.w, q.count)
	var out []int64
	for n := num; n < end; n++ {
		if !q.held(n) {
			out = append(out, n)
		}
	}
	return out, false
}

// sendQ sends a NON GET of the image with one Q-Block2 option per block
// of nums (increasing), the M bit as more, on a new token; the window
// takes the answers on it. It starts the wait for the next block.
func (im *Image) sendQ(ctx context.Context, q *qwindow, nums []int64, more bool) error {
	conn, _, err := im.c.current(ctx)
	if err != nil {
		return err
	}
	token, err := message.GetToken()
	if err != nil {
		return fmt.Errorf("gwlink: token: %w", err)
	}
	m := conn.AcquireMessage(ctx)
	defer conn.ReleaseMessage(m)
	m.SetCode(codes.GET)
	m.SetType(message.NonConfirmable)
	m.SetMessageID(conn.GetMessageID())
	m.SetToken(token)
	if err := m.SetPath(im.path); err != nil {
		return fmt.Errorf("gwlink: path %s: %w", im.path, err)
	}
	for _, num := range nums {
		v, err := qblock.EncodeQBlockOption(q.szx, num, more && len(nums) == 1)
		if err != nil {
			return fmt.Errorf("gwlink: Q-Block2 of block %d: %w", num, err)
		}
		m.AddOptionUint32(message.QBlock2, v)
	}
	if old := q.tokens[q.next]; old != nil {
		im.c.qr.remove(old)
	}
	q.tokens[q.next] = token
	q.next = (q.next + 1) % qTokens
	im.c.qr.add(token, q.ch)
	if err := conn.Session().WriteMessage(m); err != nil {
		return &transientError{fmt.Errorf("gwlink: send GET %s: %w", im.path, err)}
	}
	im.c.log.Debug("Q-Block2 request", "path", im.path, "blocks", nums, "more", more, "retries", q.retries)
	q.active = true
	wait := im.c.cfg.qparams.NonReceiveTimeout
	if !q.answered && !im.c.qblockKnown() {
		wait = im.c.cfg.qparams.NonTimeout // the first request of a connection
	}
	q.deadline = time.Now().Add(wait << q.retries)
	return nil
}

// takeQ adds an answer to the window: a block, or the error it means.
func (im *Image) takeQ(q *qwindow, a qanswer) error {
	op := "GET " + im.path
	switch {
	case a.code == codes.Content:
	case a.code == codes.BadOption:
		// Before any block: the gateway has no Q-Block2. After blocks:
		// it refused one of this node's Q-Block2 requests; the read goes
		// on lock-step from where it stands rather than fail the update.
		return errNoQBlock
	case a.code == codes.BadRequest:
		return errFirstBlock
	case a.code == codes.NotFound:
		return fmt.Errorf("%w: %s", ErrNotCached, im.path)
	default:
		return im.c.answerError(op, response{code: a.code, body: a.body, maxAge: a.maxAge, hasMaxAge: a.hasMaxAge})
	}
	if !a.hasQ2 {
		if !q.answered {
			return errNoQBlock // a Block2 (RFC 7959) gateway
		}
		return nil
	}
	if !bytes.Equal(a.etag, im.etag) {
		return fmt.Errorf("%w: Q-Block2 answer for %s has ETag %x, want %x", ErrImageChanged, im.path, a.etag, im.etag)
	}
	szx, num, _, err := qblock.DecodeQBlockOption(a.q2)
	if err != nil {
		return nil // not a block: ignored, as a lost one
	}
	if !q.answered {
		q.answered = true
		im.c.qblockSeen()
	}
	if szx < q.szx {
		// The gateway sends smaller blocks than asked: read at its size.
		im.szx.CompareAndSwap(uint32(q.szx), uint32(szx))
		return &transientError{fmt.Errorf("gwlink: %s: gateway answers blocks of %d bytes", op, szx.Size())}
	}
	if a.size2 >= 0 && a.size2 < im.size {
		return fmt.Errorf("gwlink: %s: image of %d bytes, want %d: %w", op, a.size2, im.size, io.ErrUnexpectedEOF)
	}
	if szx != q.szx || num < q.base || num >= q.base+2*q.w || num >= q.count {
		return nil // outside the window: asked for again when it gets there
	}
	if want := q.blockLen(num, im.size); int64(len(a.body)) != want {
		return fmt.Errorf("gwlink: %s: block %d has %d bytes, want %d: %w", op, num, len(a.body), want, io.ErrUnexpectedEOF)
	}
	i := num - q.base
	slot := q.buf[i*q.bs : i*q.bs+int64(len(a.body))]
	if q.have&(1<<uint(i)) != 0 {
		if !bytes.Equal(slot, a.body) {
			return fmt.Errorf("%w: two different blocks %d of %s", ErrImageChanged, num, im.path)
		}
		return nil
	}
	copy(slot, a.body)
	q.have |= 1 << uint(i)
	q.hi = max(q.hi, num)
	q.retries = 0
	q.deadline = time.Now().Add(im.c.cfg.qparams.NonReceiveTimeout)
	return nil
}
