package gateway_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"edgeota/gateway/admin"
	"edgeota/protocol"
	"edgeota/protocol/sign"
	"edgeota/protocol/trust"
	"edgeota/test/testutil"
)

func seedKey(b byte) ed25519.PrivateKey { return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, 32)) }

func trustKey(t *testing.T, priv ed25519.PrivateKey) trust.Key {
	t.Helper()
	k, err := trust.KeyOf(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestTrustUpdateRotatesGatewayKeys: a trust update pushed through the
// admin API replaces the gateway's manifest keys at once (a model signed
// by the removed key A is refused, one by the new key B cached), is served
// on /n/{node}/trust, refuses a replay and an update by a key that is not
// a root with nothing changed, and survives a restart.
func TestTrustUpdateRotatesGatewayKeys(t *testing.T) {
	root, keyB, other := seedKey(9), seedKey(4), seedKey(10)
	dir := t.TempDir()
	e := newEnv(t, opts{dir: dir, roots: []crypto.PublicKey{root.Public()}})
	ctx := context.Background()
	if _, err := e.api.Trust(ctx); !isStatus(err, http.StatusNotFound) {
		t.Fatalf("GET /v1/trust before any update: %v, want 404", err)
	}
	signB, _ := sign.NewSigner(keyB)
	update := func(signer ed25519.PrivateKey, version uint64) []byte {
		s, _ := sign.NewSigner(signer)
		b, err := trust.Sign(&trust.Update{Format: trust.Format, Version: version, Issued: 1795000000,
			ManifestKeys: []trust.Key{trustKey(t, keyB)}, RootKeys: []trust.Key{trustKey(t, root)}, Threshold: 1}, s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	c := e.dial()
	hello(t, c, "n1")
	if r := get(t, c, protocol.NodePath("n1", protocol.ResTrust)); r.Code() != codes.Content || bodyOf(t, r) != "" {
		t.Fatalf("trust before any update: %v %q, want 2.05 empty", r.Code(), bodyOf(t, r))
	}

	if _, err := e.api.PutTrust(ctx, update(other, 1)); !isStatus(err, http.StatusUnprocessableEntity) {
		t.Fatalf("an update by a key that is no root: %v, want 422", err)
	}
	if m := e.model(2, 100); e.push(m.signed, m.image) != nil {
		t.Fatal("key A no longer trusted after a refused update")
	}
	signed := update(root, 1)
	got, err := e.api.PutTrust(ctx, signed)
	if err != nil || got.Version != 1 || len(got.SignedBy) != 1 || got.ManifestKeys[0].KID != sign.KeyIDOf(keyB.Public()).String() {
		t.Fatalf("PUT /v1/trust: %+v %v", got, err)
	}
	checkKeys := func(e *env) {
		t.Helper()
		if m := e.model(3, 100); e.push(m.signed, m.image) == nil {
			t.Fatal("a model signed by the removed key A was cached")
		}
		e.signer = signB
		defer func() { e.signer, _ = sign.NewSigner(seedKey(3)) }()
		if m := e.model(4, 100); e.push(m.signed, m.image) != nil {
			t.Fatal("a model signed by the new key B was refused")
		}
	}
	checkKeys(e)
	if r := get(t, c, protocol.NodePath("n1", protocol.ResTrust)); r.Code() != codes.Content || bodyOf(t, r) != string(signed) {
		t.Fatalf("trust after the update: %v, want 2.05 with the update", r.Code())
	}
	if _, err := e.api.PutTrust(ctx, signed); !isStatus(err, http.StatusUnprocessableEntity) {
		t.Fatalf("a replay: %v, want 422", err)
	}

	e.stop()
	e = newEnv(t, opts{dir: dir, roots: []crypto.PublicKey{root.Public()}})
	if got, err := e.api.Trust(ctx); err != nil || got.Version != 1 {
		t.Fatalf("after a restart: %+v %v", got, err)
	}
	checkKeys(e)
}

func isStatus(err error, code int) bool {
	var ae *admin.Error
	return errors.As(err, &ae) && ae.StatusCode == code
}

func get(t *testing.T, c *udpClient.Conn, path string) *pool.Message {
	t.Helper()
	resp, err := c.Get(ctxT(t), path)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func bodyOf(t *testing.T, m *pool.Message) string {
	t.Helper()
	b, err := m.ReadBody()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestTrustObserve: a node that observes both its manifest and its trust
// update from one endpoint gets each notification on its own observation:
// a trust update pushed through the admin API reaches every trust
// observer at once, an assignment reaches the manifest observer, and a
// later trust update still reaches the trust observation.
func TestTrustObserve(t *testing.T) {
	root, keyB := seedKey(9), seedKey(4)
	e := newEnv(t, opts{roots: []crypto.PublicKey{root.Public()}})
	rs, _ := sign.NewSigner(root)
	update := func(version uint64) []byte {
		b, err := trust.Sign(&trust.Update{Format: trust.Format, Version: version,
			ManifestKeys: []trust.Key{trustKey(t, seedKey(3)), trustKey(t, keyB)}, RootKeys: []trust.Key{trustKey(t, root)}, Threshold: 1}, rs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	observe := func(c *udpClient.Conn, node string, res protocol.NodeResource) chan []byte {
		notes := make(chan []byte, 8)
		obs, err := c.Observe(ctxT(t), protocol.NodePath(node, res), func(m *pool.Message) {
			b, _ := m.ReadBody()
			notes <- append([]byte{}, b...)
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { obs.Cancel(context.Background()) })
		if first := <-notes; len(first) != 0 {
			t.Fatalf("%s of %s before anything: %d bytes", res, node, len(first))
		}
		return notes
	}
	next := func(notes chan []byte, what string) []byte {
		t.Helper()
		select {
		case b := <-notes:
			return b
		case <-time.After(testutil.DefaultCeiling):
			t.Fatalf("no notification: %s", what)
		}
		return nil
	}
	c1, c2 := e.dial(), e.dial()
	hello(t, c1, "n1")
	hello(t, c2, "n2")
	man1 := observe(c1, "n1", protocol.ResManifest)
	trust1 := observe(c1, "n1", protocol.ResTrust)
	trust2 := observe(c2, "n2", protocol.ResTrust)

	v1 := update(1)
	if _, err := e.api.PutTrust(context.Background(), v1); err != nil {
		t.Fatal(err)
	}
	for i, notes := range []chan []byte{trust1, trust2} {
		if got := next(notes, "trust update 1"); !bytes.Equal(got, v1) {
			t.Fatalf("trust observer %d got %d bytes, not the update", i+1, len(got))
		}
	}
	md := e.model(7, 2000)
	if err := e.push(md.signed, md.image); err != nil {
		t.Fatal(err)
	}
	e.assign(md.signed, []string{"n1"}, false)
	if got := next(man1, "the assignment"); !bytes.Equal(got, md.signed) {
		t.Fatal("the manifest observer did not get the assignment")
	}
	v2 := update(2)
	if _, err := e.api.PutTrust(context.Background(), v2); err != nil {
		t.Fatal(err)
	}
	if got := next(trust1, "trust update 2"); !bytes.Equal(got, v2) {
		t.Fatal("the trust observation of n1 did not get update 2")
	}
}
