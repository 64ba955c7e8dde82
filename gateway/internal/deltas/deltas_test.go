package deltas

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"edgeota/gateway/internal/images"
	"edgeota/gateway/internal/metrics"
	"edgeota/gateway/internal/store"
	"edgeota/protocol"
	"edgeota/protocol/delta"
	"edgeota/protocol/sign"
)

var testClass = protocol.Class{0x6b, 0x77, 0x73}

// fixture is a store holding images, a Manager over it and what the
// Manager told.
type fixture struct {
	t      *testing.T
	db     *store.DB
	imgs   *images.Cache
	m      *Manager
	met    *metrics.Metrics
	signer *sign.Signer
	trust  *sign.TrustStore
	signed map[protocol.Digest][]byte
	ready  [][]string
	seq    uint64
}

func zero() float64 { return 0 }

func newFixture(t *testing.T, maxBytes int64) *fixture {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "gateway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	s, _ := sign.NewSigner(priv)
	ts, _ := sign.NewTrustStore(sign.RoleManifest, priv.Public().(ed25519.PublicKey))
	f := &fixture{t: t, db: db, imgs: images.New(db, 0, nil), signer: s, trust: ts,
		signed: map[protocol.Digest][]byte{}, met: metrics.New(metrics.Gauges{TransfersActive: zero, Sessions: zero, SessionsRefused: zero, Nodes: zero}, nil)}
	f.m, err = New(Config{Store: db, Images: f.imgs, Format: delta.Format1, MaxBytes: maxBytes,
		Diff:    func(base, target []byte) ([]byte, error) { return delta.Diff(base, target) },
		Ready:   func(nodes []string) { f.ready = append(f.ready, nodes) },
		Metrics: f.met})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// put caches image as component's next version and returns its digest.
func (f *fixture) put(component string, image []byte) protocol.Digest {
	f.t.Helper()
	f.seq++
	m := &protocol.Manifest{Format: 1, Seq: f.seq, Component: component, Version: fmt.Sprintf("1.%d", f.seq),
		Digest: sha256.Sum256(image), Size: uint64(len(image)), Class: testClass, Epoch: 1}
	signed, err := f.signer.SignManifest(m)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.db.PutModel(signed, bytes.NewReader(image), f.trust); err != nil {
		f.t.Fatal(err)
	}
	f.imgs.Add(m.Digest, int64(len(image)))
	f.signed[m.Digest] = signed
	return m.Digest
}

// drain runs the worker on every queued pair, and returns how many.
func (f *fixture) drain() int {
	n := 0
	for {
		select {
		case p := <-f.m.queue:
			f.m.compute(p)
			n++
		default:
			return n
		}
	}
}

// offerIn returns the offer signed carries, nil when none, after checking
// that it still verifies with the key that signed it.
func (f *fixture) offerIn(signed []byte) *protocol.DeltaOffer {
	f.t.Helper()
	if _, err := f.trust.VerifyManifest(signed); err != nil {
		f.t.Fatalf("answered manifest does not verify: %v", err)
	}
	e, _ := sign.Parse(signed)
	raw, ok := e.Unprotected(protocol.DeltaOfferLabel)
	if !ok {
		return nil
	}
	o, err := protocol.DecodeDeltaOffer(raw)
	if err != nil {
		f.t.Fatalf("offer does not decode: %v", err)
	}
	return o
}

// value returns the metric name (with label value label, "" for none).
func (f *fixture) value(name, label string) float64 {
	f.t.Helper()
	mfs, err := f.met.Registry.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != label) {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	f.t.Fatalf("no metric %s %s", name, label)
	return 0
}

func node(id string, running protocol.Digest, formats ...uint64) *store.Node {
	return &store.Node{ID: id, RunningSeq: 1, RunningDigest: running, DeltaFormats: formats}
}

func images2(seed uint64) (base, retrained, unrelated []byte) {
	rng := rand.New(rand.NewPCG(seed, 1))
	base = make([]byte, 64<<10)
	for i := range base {
		base[i] = byte(rng.Uint32())
	}
	retrained = bytes.Clone(base)
	for i := len(retrained) - 4096; i < len(retrained); i++ { // the last layer
		retrained[i] = byte(rng.Uint32())
	}
	unrelated = make([]byte, 64<<10)
	for i := range unrelated {
		unrelated[i] = byte(rng.Uint32())
	}
	return base, retrained, unrelated
}

// TestOfferConditions: an offer is attached only for a node that lists
// the format and runs the base, once the delta is computed and at least
// 20% smaller than the image (docs/protocol.md "Delta updates (v1.4)").
func TestOfferConditions(t *testing.T) {
	base, retrained, unrelated := images2(1)
	other := bytes.Clone(base)
	other[0] ^= 1
	tests := []struct {
		name      string
		node      func(f *fixture, d map[string]protocol.Digest) *store.Node
		target    string
		wantOffer bool
		computed  string // the result counted, "" for none
	}{
		{"v1.3 node, no formats", func(f *fixture, d map[string]protocol.Digest) *store.Node { return node("n", d["base"]) }, "retrained", false, ""},
		{"another format only", func(f *fixture, d map[string]protocol.Digest) *store.Node { return node("n", d["base"], 2) }, "retrained", false, ""},
		{"runs nothing", func(f *fixture, d map[string]protocol.Digest) *store.Node {
			return &store.Node{ID: "n", DeltaFormats: []uint64{1}}
		}, "retrained", false, ""},
		{"runs the target already", func(f *fixture, d map[string]protocol.Digest) *store.Node { return node("n", d["retrained"], 1) }, "retrained", false, ""},
		{"base not cached", func(f *fixture, d map[string]protocol.Digest) *store.Node {
			return node("n", protocol.Digest{9}, 1)
		}, "retrained", false, ""},
		{"base of another component", func(f *fixture, d map[string]protocol.Digest) *store.Node { return node("n", d["other"], 1) }, "retrained", false, ""},
		{"delta not 20% smaller", func(f *fixture, d map[string]protocol.Digest) *store.Node { return node("n", d["base"], 1) }, "unrelated", false, "too_large"},
		{"retrained last layer", func(f *fixture, d map[string]protocol.Digest) *store.Node { return node("n", d["base"], 2, 1) }, "retrained", true, "offered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 0)
			d := map[string]protocol.Digest{
				"base": f.put("kws", base), "retrained": f.put("kws", retrained), "unrelated": f.put("kws", unrelated),
				"other": f.put("vad", other),
			}
			n := tt.node(f, d)
			signed := f.signed[d[tt.target]]
			if got := f.m.Offer(n, signed); !bytes.Equal(got, signed) {
				t.Fatal("an offer before the delta was computed")
			}
			f.drain()
			got := f.m.Offer(n, signed)
			o := f.offerIn(got)
			if (o != nil) != tt.wantOffer {
				t.Fatalf("offer = %+v, want one: %v", o, tt.wantOffer)
			}
			for _, r := range []string{"offered", "too_large", "failed"} {
				want := 0.0
				if r == tt.computed {
					want = 1
				}
				if c := f.value("edgeota_deltas_computed_total", r); c != want {
					t.Errorf("deltas computed %s = %v, want %v", r, c, want)
				}
			}
			if !tt.wantOffer {
				if !bytes.Equal(got, signed) {
					t.Fatal("answer changed without an offer")
				}
				return
			}
			// The offer names the node's base and a delta the cache
			// serves, whose bytes rebuild the target.
			if o.Base != n.RunningDigest || o.Format != delta.Format1 {
				t.Fatalf("offer %+v", o)
			}
			size, ok := f.m.Blobs().Size(o.Delta)
			if !ok || size != int64(o.Size) {
				t.Fatalf("delta %s served with size %d, %v; offer says %d", o.Delta, size, ok, o.Size)
			}
			if o.Size*5 > uint64(len(retrained))*4 {
				t.Fatalf("offered a delta of %d bytes for an image of %d", o.Size, len(retrained))
			}
			patch := readBlob(t, f.m.Blobs(), o.Delta, size)
			if sha256.Sum256(patch) != o.Delta {
				t.Fatal("served bytes are not the offered delta")
			}
			out, err := delta.Apply(base, patch)
			if err != nil || !bytes.Equal(out, retrained) {
				t.Fatalf("the delta does not rebuild the target: %v", err)
			}
			if c := f.value("edgeota_delta_offers_total", ""); c != 1 {
				t.Fatalf("offers counted %v, want 1", c)
			}
		})
	}
}

// readBlob reads a served delta block by block, as CoAP serves it.
func readBlob(t *testing.T, c *images.Cache, d protocol.Digest, size int64) []byte {
	t.Helper()
	out := make([]byte, size)
	for off := int64(0); off < size; off += 1024 {
		if err := c.ReadAt(d, size, out[off:min(off+1024, size)], off); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestComputedOnce: many nodes asking for one pair queue one computation,
// and every one of them is told when it is ready.
func TestComputedOnce(t *testing.T) {
	base, retrained, _ := images2(2)
	f := newFixture(t, 0)
	b, r := f.put("kws", base), f.put("kws", retrained)
	const nodes = 50
	for i := range nodes {
		f.m.Offer(node(fmt.Sprintf("n%02d", i), b, 1), f.signed[r])
	}
	f.m.Assigned(nil)
	if n := f.drain(); n != 1 {
		t.Fatalf("%d computations queued for one pair, want 1", n)
	}
	if c := f.value("edgeota_deltas_computed_total", "offered"); c != 1 {
		t.Fatalf("computed %v times", c)
	}
	if len(f.ready) != 1 || len(f.ready[0]) != nodes {
		t.Fatalf("ready told %v, want the %d nodes once", f.ready, nodes)
	}
	// Later askers get the stored delta: nothing is computed again, not
	// even by a new Manager over the same database.
	for i := range nodes {
		if f.offerIn(f.m.Offer(node(fmt.Sprintf("n%02d", i), b, 1), f.signed[r])) == nil {
			t.Fatal("no offer once ready")
		}
	}
	m2, err := New(Config{Store: f.db, Images: f.imgs, Format: delta.Format1, Diff: func([]byte, []byte) ([]byte, error) {
		t.Fatal("computed again after a restart")
		return nil, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if f.offerIn(m2.Offer(node("n00", b, 1), f.signed[r])) == nil {
		t.Fatal("no offer from the stored delta after a restart")
	}
}

// TestEvictedWithImages: a delta goes when its base or target image is
// deleted, and the least recently used go beyond the bound.
func TestEvictedWithImages(t *testing.T) {
	base, retrained, _ := images2(3)
	retrained2 := bytes.Clone(retrained)
	retrained2[100] ^= 0xff
	for _, which := range []string{"base", "target"} {
		t.Run(which, func(t *testing.T) {
			f := newFixture(t, 0)
			b, r := f.put("kws", base), f.put("kws", retrained)
			f.m.Offer(node("n", b, 1), f.signed[r])
			f.drain()
			o := f.offerIn(f.m.Offer(node("n", b, 1), f.signed[r]))
			if o == nil {
				t.Fatal("no offer")
			}
			gone := b
			if which == "target" {
				gone = r
			}
			if err := f.db.DeleteModel(gone); err != nil {
				t.Fatal(err)
			}
			f.imgs.Remove(gone)
			f.m.ForgetImage(gone)
			if _, ok := f.m.Blobs().Size(o.Delta); ok {
				t.Fatal("delta still served")
			}
			if ds, _ := f.db.Deltas(); len(ds) != 0 {
				t.Fatalf("deltas left in the store: %+v", ds)
			}
			if _, err := f.db.ReadDeltaAt(o.Delta, make([]byte, 1), 0); err == nil {
				t.Fatal("delta bytes left in the store")
			}
			if which == "target" {
				return
			}
			if f.offerIn(f.m.Offer(node("n", b, 1), f.signed[r])) != nil {
				t.Fatal("offer of an evicted delta")
			}
		})
	}
	t.Run("over the bound", func(t *testing.T) {
		// A delta larger than the whole bound is not kept: kept, it would
		// be evicted at once and computed again at every request.
		f := newFixture(t, 1)
		b, r := f.put("kws", base), f.put("kws", retrained)
		for round := range 3 {
			if f.offerIn(f.m.Offer(node("n", b, 1), f.signed[r])) != nil {
				t.Fatalf("round %d: offer of a delta over the bound", round)
			}
			f.drain()
			f.m.Enforce()
		}
		if c := f.value("edgeota_deltas_computed_total", "too_large"); c != 1 {
			t.Fatalf("computed %v times as too_large, want once", c)
		}
		if c := f.value("edgeota_deltas_computed_total", "offered"); c != 0 {
			t.Fatalf("offered %v times", c)
		}
	})
	t.Run("least recently used", func(t *testing.T) {
		// A bound that holds one of two deltas: Enforce evicts one.
		d1, _ := delta.Diff(base, retrained)
		d2, _ := delta.Diff(base, retrained2)
		f := newFixture(t, int64(max(len(d1), len(d2))))
		b, r1, r2 := f.put("kws", base), f.put("kws", retrained), f.put("kws", retrained2)
		var offers []*protocol.DeltaOffer
		for _, r := range []protocol.Digest{r1, r2} {
			f.m.Offer(node("n", b, 1), f.signed[r])
			f.drain()
			o := f.offerIn(f.m.Offer(node("n", b, 1), f.signed[r]))
			if o == nil {
				t.Fatal("no offer")
			}
			offers = append(offers, o)
		}
		f.m.Enforce()
		var kept []*protocol.DeltaOffer
		for _, o := range offers {
			if _, ok := f.m.Blobs().Size(o.Delta); ok {
				kept = append(kept, o)
			}
		}
		if len(kept) != 1 {
			t.Fatalf("%d deltas served after eviction, want 1", len(kept))
		}
		if g := f.value("edgeota_delta_cache_bytes", ""); g != float64(kept[0].Size) {
			t.Fatalf("delta cache gauge %v, want %d", g, kept[0].Size)
		}
		if _, err := f.db.Model(b); err != nil {
			t.Fatal("evicting a delta took its image")
		}
	})
}

// TestAssignedWaits: nodes just assigned a manifest whose delta is being
// computed wait for it, and are named to Ready once it is computed,
// offered or not; nodes that can take no delta do not wait.
func TestAssignedWaits(t *testing.T) {
	base, retrained, unrelated := images2(4)
	for _, tt := range []struct {
		target string
		result string
	}{{"retrained", "offered"}, {"unrelated", "too_large"}} {
		t.Run(tt.result, func(t *testing.T) {
			f := newFixture(t, 0)
			d := map[string]protocol.Digest{"base": f.put("kws", base), "retrained": f.put("kws", retrained), "unrelated": f.put("kws", unrelated)}
			hello := func(id string, formats ...uint64) {
				h := &protocol.Hello{NodeID: id, Class: testClass, Component: "kws", AgentVersion: "1.0", RunningSeq: 1,
					RunningDigest: d["base"], ActiveState: protocol.SlotConfirmed, DeltaFormats: formats}
				if _, _, err := f.db.PutHello(h, "addr"); err != nil {
					t.Fatal(err)
				}
			}
			hello("takes", 1)
			hello("v13")
			if err := f.db.Assign([]string{"takes", "v13"}, f.signed[d[tt.target]]); err != nil {
				t.Fatal(err)
			}
			if w := f.m.Assigned([]string{"takes", "v13"}); len(w) != 1 || w[0] != "takes" {
				t.Fatalf("waiting %v, want [takes]", w)
			}
			f.drain()
			if len(f.ready) != 1 || len(f.ready[0]) != 1 || f.ready[0][0] != "takes" {
				t.Fatalf("ready told %v, want [[takes]]", f.ready)
			}
			if c := f.value("edgeota_deltas_computed_total", tt.result); c != 1 {
				t.Fatalf("%s counted %v", tt.result, c)
			}
			// Once computed, nobody waits any more.
			if w := f.m.Assigned([]string{"takes", "v13"}); len(w) != 0 {
				t.Fatalf("waiting %v after the computation", w)
			}
		})
	}
}
