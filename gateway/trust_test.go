package gateway_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"net/http"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"edgeota/gateway/admin"
	"edgeota/protocol"
	"edgeota/protocol/sign"
	"edgeota/protocol/trust"
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
