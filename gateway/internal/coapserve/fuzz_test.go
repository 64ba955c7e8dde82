package coapserve

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"edgeota/gateway/internal/activity"
	"edgeota/gateway/internal/audit"
	"edgeota/gateway/internal/coapd"
	"edgeota/gateway/internal/deploy"
	"edgeota/gateway/internal/images"
	"edgeota/gateway/internal/metrics"
	"edgeota/gateway/internal/observe"
	"edgeota/gateway/internal/origin"
	"edgeota/gateway/internal/qblock"
	"edgeota/gateway/internal/ratelimit"
	"edgeota/gateway/internal/rollout"
	"edgeota/gateway/internal/store"
	"edgeota/gateway/internal/transfer"
	"edgeota/protocol"
	"edgeota/protocol/sign"
)

// nopSender drops notifications.
type nopSender struct{}

func (nopSender) Notify(netip.AddrPort, string, []byte, bool, func(*coapd.Response), func()) error {
	return nil
}

func (nopSender) Send(netip.AddrPort, string, []byte, bool, int, func(int, *coapd.Response), func(), func()) error {
	return nil
}

// nopNotifier notifies no one.
type nopNotifier struct{}

func (nopNotifier) Notify([]string) {}

// newTestHandler is a Handler over a database in a temporary directory
// opened with opts, with the gateway's own parts behind it, no uplink and
// no rate limits.
func newTestHandler(tb testing.TB, opts ...store.Option) *Handler {
	tb.Helper()
	db, err := store.Open(filepath.Join(tb.TempDir(), "gateway.db"), opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)).Public().(ed25519.PublicKey)
	trust, err := sign.NewTrustStore(sign.RoleManifest, pub)
	if err != nil {
		tb.Fatal(err)
	}
	imgs := images.New(db, 1<<20, nil)
	fetcher := origin.New(origin.Config{Dir: tb.TempDir(), Trust: trust, Store: db, Images: imgs})
	engine := rollout.NewEngine(db, nopNotifier{})
	m := metrics.New(metrics.Gauges{TransfersActive: func() float64 { return 0 }, Sessions: func() float64 { return 0 },
		SessionsRefused: func() float64 { return 0 }, Nodes: func() float64 { return 0 }}, nil)
	return New(Config{Store: db, Images: imgs, Origin: fetcher, Transfers: transfer.New(512, 2, 30*time.Second),
		Limiter: ratelimit.New(ratelimit.Config{SourceRate: -1, NodeRate: -1}), Observers: observe.NewRegistry(),
		Activity: activity.New(db, nil, nil), Audit: audit.New(db, nil), Sender: nopSender{}, Metrics: m, MaxBody: 1024,
		Rollouts: deploy.New(deploy.Config{Trust: trust, Store: db, Engine: engine, Images: imgs, Fetcher: fetcher, Now: time.Now}),
		Now:      time.Now})
}

// FuzzServeCoAP feeds arbitrary datagrams, decoded as the CoAP endpoint
// decodes them, to the resource handlers, as a node on plain UDP and as a
// DTLS session's identity: they must never panic and must always answer
// with a code.
func FuzzServeCoAP(f *testing.F) {
	h := newTestHandler(f)
	img := memImage(25*1024 - 100) // 25 blocks of 1024: bursts 0-9, 10-19, 20-24
	h.cfg.Images = img
	class := protocol.Class{1, 2, 3}
	hello, _ := protocol.Marshal(&protocol.Hello{NodeID: "n1", Class: class, AgentVersion: "1", Component: "kws"})
	health, _ := protocol.Marshal(&protocol.HealthReport{NodeID: "n1", BootCount: 1, Number: 1})
	status, _ := protocol.Marshal(&protocol.StatusEvent{NodeID: "n1", State: protocol.StateIdle, BootCount: 1, Number: 1})
	req := func(code codes.Code, path string, payload []byte, opts ...message.Option) []byte {
		m := message.Message{Code: code, Type: message.Confirmable, MessageID: 7, Token: []byte{1, 2}, Payload: payload}
		buf := make([]byte, 64)
		m.Options, _, _ = m.Options.SetPath(buf, path)
		if payload != nil {
			m.Options = m.Options.Add(message.Option{ID: message.ContentFormat, Value: []byte{60}})
		}
		m.Options = append(m.Options, opts...)
		out := make([]byte, 2048)
		n, err := coder.DefaultCoder.Encode(m, out)
		if err != nil {
			f.Fatal(err)
		}
		return out[:n]
	}
	for _, s := range [][]byte{
		req(codes.POST, protocol.NodePath("n1", protocol.ResHello), hello),
		req(codes.POST, protocol.NodePath("n1", protocol.ResHealth), health),
		req(codes.POST, protocol.NodePath("n1", protocol.ResStatus), status),
		req(codes.GET, protocol.NodePath("n1", protocol.ResManifest), nil, message.Option{ID: message.Observe, Value: nil}),
		req(codes.GET, protocol.ImagePath(protocol.Digest{}), nil, message.Option{ID: message.Block2, Value: []byte{0x16}}),
		req(codes.GET, protocol.PathCore, nil),
		// RFC 9177: the whole body, a Continue, missing blocks, bad orders,
		// a probe of discovery, and Q-Block1 with a node's document.
		req(codes.GET, protocol.ImagePath(img.d), nil, qopt(0, true)),
		req(codes.GET, protocol.ImagePath(img.d), nil, qopt(10, true)),
		req(codes.GET, protocol.ImagePath(img.d), nil, qopt(3, false), qopt(7, false), qopt(22, true)),
		req(codes.GET, protocol.ImagePath(img.d), nil, qopt(7, false), qopt(3, false)),
		req(codes.GET, protocol.ImagePath(img.d), nil, message.Option{ID: message.Block2, Value: []byte{0x16}}, qopt(1, false)),
		req(codes.GET, protocol.PathCore, nil, message.Option{ID: message.QBlock2, Value: nil}),
		req(codes.POST, protocol.NodePath("n1", protocol.ResHello), hello, message.Option{ID: message.QBlock1, Value: []byte{6}},
			message.Option{ID: message.Size1, Value: []byte{byte(len(hello))}}, message.Option{ID: message.RequestTag, Value: []byte{1}}),
		req(codes.DELETE, protocol.NodePath("n2", protocol.ResHello), nil),
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	from := netip.MustParseAddrPort("127.0.0.1:9")
	f.Fuzz(func(t *testing.T, b []byte, secure bool) {
		r := coapd.Request{Msg: message.Message{Options: make(message.Options, 0, 16)}, From: from}
		if _, err := coder.DefaultCoder.Decode(b, &r.Msg); err != nil {
			return
		}
		if r.Msg.Code < codes.GET || r.Msg.Code > codes.DELETE {
			return // the endpoint never hands these to a handler
		}
		p, err := r.Msg.Options.Path()
		if err != nil {
			return
		}
		r.Path = "/" + p
		if secure {
			r.Identity = "n1"
		}
		var w coapd.Response
		h.ServeCoAP(&w, &r)
		if d := w.Deferred(); d != nil {
			w = *d.Answer()
		}
		if w.Code == codes.Empty && !w.NoAnswer() {
			t.Fatalf("%s %s: no answer", r.Msg.Code, r.Path)
		}
		// A burst's followers are blocks of the body, at most
		// MAX_PAYLOADS with the answer.
		n := w.Followers(func(w *coapd.Response) {
			if w.Code != codes.Content || !w.Options.HasOption(message.QBlock2) {
				t.Fatalf("%s %s: follower %v", r.Msg.Code, r.Path, w.Code)
			}
		})
		if n >= h.QBlock().Params().MaxPayloads {
			t.Fatalf("%s %s: %d followers", r.Msg.Code, r.Path, n)
		}
		if st := h.QBlock().Stats(); st.Transfers > h.QBlock().Params().MaxTransfers {
			t.Fatalf("%d transfers in flight", st.Transfers)
		}
	})
}

// qopt is a Q-Block2 option of block num, M bit more, 1024 bytes.
func qopt(num uint32, more bool) message.Option {
	v := qblock.Block{Num: num, More: more, SZX: 6}.Value()
	b := []byte{byte(v >> 16), byte(v >> 8), byte(v)}
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	return message.Option{ID: message.QBlock2, Value: b}
}

// memImages is one image in memory, as the cache would serve it.
type memImages struct {
	d    protocol.Digest
	data []byte
}

func memImage(size int) *memImages {
	m := &memImages{data: make([]byte, size)}
	for i := range m.data {
		m.data[i] = byte(i * 7)
	}
	m.d = sha256.Sum256(m.data)
	return m
}

func (m *memImages) Size(d protocol.Digest) (int64, bool) { return int64(len(m.data)), d == m.d }
func (m *memImages) List() []images.Image {
	return []images.Image{{Digest: m.d, Size: int64(len(m.data))}}
}
func (m *memImages) MarkUsed(protocol.Digest) {}
func (m *memImages) ReadAt(_ protocol.Digest, _ int64, p []byte, off int64) error {
	copy(p, m.data[off:])
	return nil
}
