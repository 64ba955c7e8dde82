package coapserve

import (
	"crypto/sha256"
	"errors"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"edgeota/gateway/internal/coapd"
	"edgeota/gateway/internal/qblock"
	"edgeota/protocol"
)

// Kinds of body a Q-Block2 transfer streams (qblock.Key.Kind).
const (
	bodyImage uint8 = iota + 1 // Key.Body is the image's digest
	bodyCore                   // Key.Body is zero: /.well-known/core
	bodyDelta                  // Key.Body is the delta's digest (v1.4)
)

// body is a representation served block by block: what a Q-Block2
// transfer needs of it, rebuilt from its qblock.Key for every set.
type body struct {
	kind uint8
	id   [32]byte
	size int64
	etag []byte // at most 8 bytes
	cf   message.MediaType
	// data is the whole body when it is small and built per request
	// (link-format); nil for an image, read from the cache.
	data []byte
}

// readAt fills p from offset off of the body.
func (h *Handler) readAt(b *body, p []byte, off int64) error {
	switch b.kind {
	case bodyImage:
		return h.cfg.Images.ReadAt(protocol.Digest(b.id), b.size, p, off)
	case bodyDelta:
		return h.cfg.Deltas.ReadAt(protocol.Digest(b.id), b.size, p, off)
	}
	copy(p, b.data[off:])
	return nil
}

// bodyOf rebuilds the body a transfer streams; ok is false when it is
// gone (an image evicted from the cache).
func (h *Handler) bodyOf(k qblock.Key) (body, bool) {
	switch k.Kind {
	case bodyImage:
		size, ok := h.cfg.Images.Size(protocol.Digest(k.Body))
		if !ok {
			return body{}, false
		}
		return imageBody(protocol.Digest(k.Body), size), true
	case bodyDelta:
		if h.cfg.Deltas == nil {
			return body{}, false
		}
		size, ok := h.cfg.Deltas.Size(protocol.Digest(k.Body))
		if !ok {
			return body{}, false
		}
		return deltaBody(protocol.Digest(k.Body), size), true
	case bodyCore:
		return h.coreBody(), true
	}
	return body{}, false
}

func imageBody(d protocol.Digest, size int64) body {
	return body{kind: bodyImage, id: d, size: size, etag: d[:8], cf: cfOctetStream}
}

// deltaBody is a delta, served as an image is (docs/protocol.md section
// 5, /d/{hex}).
func deltaBody(d protocol.Digest, size int64) body {
	return body{kind: bodyDelta, id: d, size: size, etag: d[:8], cf: cfOctetStream}
}

// coreBody is /.well-known/core, its ETag the start of its SHA-256.
func (h *Handler) coreBody() body {
	data := h.coreLinks()
	sum := sha256.Sum256(data)
	return body{kind: bodyCore, size: int64(len(data)), etag: sum[:8], cf: cfLinkFormat, data: data}
}

// qblockParams are the gateway's RFC 9177 parameters, the defaults of
// its section 7.2 unless Config.QBlock sets them.
func (h *Handler) newQBlockTable(p qblock.Params) *qblock.Table {
	return qblock.New(p, h.sendSet, h.endTransfer)
}

// endTransfer is told of a Q-Block2 transfer that left the table: an
// image or delta transfer ends for the transfer bounds too, unless a new
// one of the same endpoint and body replaced it.
func (h *Handler) endTransfer(k qblock.Key, why qblock.Reason) {
	if (k.Kind == bodyImage || k.Kind == bodyDelta) && why != qblock.Replaced {
		h.cfg.Transfers.Done(k.From, protocol.Digest(k.Body))
	}
}

// sendSet sends a set the table paces (no request to answer): separate
// responses to the transfer's endpoint.
func (h *Handler) sendSet(tg qblock.Target, nums []uint32) {
	b, ok := h.bodyOf(tg.Key)
	if !ok {
		h.qblocks.Fail(tg.Key)
		return
	}
	k := tg.Key
	err := h.cfg.Sender.Send(tg.From, tg.Identity, tg.TokenBytes(), tg.Confirmable, len(nums), func(i int, w *coapd.Response) {
		h.fillBlock(w, &b, qblock.Block{Num: nums[i], SZX: tg.SZX}, tg.Count)
	}, h.ackFunc(k, tg.Confirmable), h.failFunc(k, tg.Confirmable))
	if err != nil {
		h.log.Debug("send Q-Block2 set", "to", tg.From.String(), "err", err)
		if errors.Is(err, coapd.ErrNoSession) {
			h.qblocks.Fail(k)
		}
	}
}

func (h *Handler) ackFunc(k qblock.Key, confirmable bool) func() {
	if !confirmable {
		return nil
	}
	return func() { h.qblocks.Ack(k) }
}

func (h *Handler) failFunc(k qblock.Key, confirmable bool) func() {
	if !confirmable {
		return nil
	}
	return func() { h.qblocks.Fail(k) }
}

// fillBlock makes w the response carrying block blk of b (count blocks
// of blk.Size() bytes): 2.05 with Q-Block2, and the ETag and Size2 every
// payload of a Q-Block2 body carries (RFC 9177 sections 4.4 and 4.6).
func (h *Handler) fillBlock(w *coapd.Response, b *body, blk qblock.Block, count uint32) {
	off := int64(blk.Num) * int64(blk.Size())
	n := min(int64(blk.Size()), b.size-off)
	if n < 0 {
		n = 0
	}
	buf := w.Buffer(int(n))
	if err := h.readAt(b, buf, off); err != nil {
		h.log.Error("read block", "kind", b.kind, "offset", off, "err", err)
		w.Code = codes.InternalServerError
		return
	}
	blk.More = blk.Num+1 < count
	w.Code = codes.Content
	w.SetContentFormat(b.cf)
	w.SetBytes(message.ETag, b.etag)
	w.SetUint32(message.QBlock2, blk.Value())
	w.SetUint32(message.Size2, uint32(b.size))
	w.Payload = buf
	switch b.kind {
	case bodyImage:
		h.cfg.Metrics.Blocks.Inc()
		h.cfg.Metrics.Bytes.WithLabelValues("full").Add(float64(n))
	case bodyDelta:
		h.cfg.Metrics.Blocks.Inc()
		h.cfg.Metrics.Bytes.WithLabelValues("delta").Add(float64(n))
	}
}

// serveQBlock2 answers a request carrying Q-Block2 options q for body b
// (RFC 9177 section 4.4), already admitted: the first block it asks for
// is the answer, the rest of the burst follows it, and a request for the
// body (or a 'Continue') puts the transfer in the table, which paces the
// sets after it.
func (h *Handler) serveQBlock2(w *coapd.Response, r *coapd.Request, b body, q *qblock.Request) {
	szx := q.SZX()
	count := qblock.Count(b.size, 16<<szx)
	mp := h.qblocks.Params().MaxPayloads
	plan, err := q.Plan(count, mp, make([]uint32, 0, mp))
	if err != nil {
		w.Code = codes.BadOption // a block past the end (RFC 7959 section 2.2)
		return
	}
	tg := qblock.Target{Key: qblock.Key{From: r.From, Body: b.id, Kind: b.kind}, Identity: r.Identity, SZX: szx,
		Confirmable: r.Msg.Type == message.Confirmable, Count: count}
	tg.SetToken(r.Msg.Token)
	nums := plan.Nums
	switch {
	case b.kind == bodyCore:
		// Discovery is small and admitted by no transfer bound: served
		// without state, a set per request (a client asks for the next
		// with a 'Continue'), so that probes from many endpoints hold no
		// place in the table.
		if plan.Kind == qblock.Stream {
			for n := plan.Start; n <= qblock.SetLast(plan.Start, count, mp); n++ {
				nums = append(nums, n)
			}
		}
	case plan.Kind == qblock.Stream:
		nums, err = h.qblocks.Stream(tg, plan.Start, make([]uint32, 0, mp))
		if errors.Is(err, qblock.ErrFull) {
			h.cfg.Metrics.Refused.WithLabelValues("transfers").Inc()
			w.Code = codes.ServiceUnavailable
			w.SetUint32(message.MaxAge, busyMaxAge)
			return
		}
		if len(nums) == 0 { // a late 'Continue': its set went out already
			w.NoResponse()
			return
		}
	default:
		if allowed := h.qblocks.Heard(tg); len(nums) > allowed {
			nums = nums[:allowed]
		}
	}
	h.fillBlock(w, &b, qblock.Block{Num: nums[0], SZX: szx}, count)
	if len(nums) > 1 {
		rest := nums[1:]
		var onAck func() // the acknowledgements of a burst clock the next one
		if plan.Kind == qblock.Stream {
			onAck = h.ackFunc(tg.Key, tg.Confirmable)
		}
		w.Follow(len(rest), func(i int, w *coapd.Response) {
			h.fillBlock(w, &b, qblock.Block{Num: rest[i], SZX: szx}, count)
		}, onAck, h.failFunc(tg.Key, tg.Confirmable))
	}
}

// qblockOptions decodes the request's Q-Block2 options; ok is false
// without them, and a request with bad ones is answered (4.02 or 4.00).
func qblockOptions(w *coapd.Response, r *coapd.Request) (q qblock.Request, ok, answered bool) {
	q, ok, err := qblock.ParseRequest(r.Msg.Options)
	switch {
	case errors.Is(err, qblock.ErrOrder):
		w.Code = codes.BadRequest
		w.Payload = []byte("Q-Block2 options not increasing")
		return q, true, true
	case err != nil:
		w.Code = codes.BadOption
		return q, true, true
	}
	return q, ok, false
}

// qblock1 answers a request carrying Q-Block1 (RFC 9177 section 4.3)
// that cannot be served, and reports whether it did. A node's document
// always fits one payload, so the gateway takes Q-Block1 only as a whole
// body in one: a POST to a node resource with NUM 0, the M bit unset,
// and the Size1 and Request-Tag the RFC requires (else 4.00); a body of
// more payloads gets 4.13 with the largest accepted in Size1, Q-Block1
// anywhere else 4.02.
func (h *Handler) qblock1(w *coapd.Response, r *coapd.Request) bool {
	opts := r.Msg.Options
	v, _ := opts.GetBytes(message.QBlock1)
	b, err := qblock.DecodeBlock(v)
	switch {
	case err != nil || countOption(opts, message.QBlock1) > 1 || opts.HasOption(message.Block1) ||
		opts.HasOption(message.Block2) || r.Msg.Code != codes.POST || protocol.PathKindOf(r.Path) != protocol.PathNode:
		w.Code = codes.BadOption
	case !opts.HasOption(message.Size1) || !opts.HasOption(message.RequestTag):
		w.Code = codes.BadRequest
		w.Payload = []byte("Q-Block1 without Size1 or Request-Tag")
	case b.Num != 0 || b.More || tooLarge(opts, h.cfg.MaxBody):
		w.Code = codes.RequestEntityTooLarge
		w.SetUint32(message.Size1, uint32(h.cfg.MaxBody))
	default:
		return false
	}
	return true
}

func countOption(opts message.Options, id message.OptionID) int {
	n := 0
	for _, o := range opts {
		if o.ID == id {
			n++
		}
	}
	return n
}

func tooLarge(opts message.Options, max int) bool {
	size, err := opts.GetUint32(message.Size1)
	return err == nil && int64(size) > int64(max)
}
