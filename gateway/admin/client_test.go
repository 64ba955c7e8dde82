package admin_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"edgeota/gateway"
	"edgeota/gateway/admin"
	"edgeota/gateway/gatewaytest"
	"edgeota/protocol"
	"edgeota/protocol/sign"
	"edgeota/test/testutil"
)

const testToken = "0123456789abcdef0123456789abcdef"

var testClass = protocol.Class{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}

// fixture is a real gateway with an admin token, and what signs for it.
type fixture struct {
	base   string
	signer *sign.Signer
}

func start(t *testing.T, cfg gateway.Config) fixture {
	t.Helper()
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	signer, err := sign.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	cfg.DataDir, cfg.CoAPSAddr, cfg.AdminAddr = t.TempDir(), "127.0.0.1:0", "127.0.0.1:0"
	cfg.Trust, cfg.DeployTrust = []ed25519.PublicKey{pub}, []ed25519.PublicKey{pub}
	g := gatewaytest.Start(t, cfg)
	scheme := "http://"
	if cfg.AdminTLS != nil {
		scheme = "https://"
	}
	return fixture{base: scheme + g.AdminAddr().String(), signer: signer}
}

func (f fixture) client(t *testing.T, opts ...admin.Option) *admin.Client {
	t.Helper()
	c, err := admin.NewClient(f.base, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// model is a signed manifest of seq and its image.
func (f fixture) model(t *testing.T, seq uint64) ([]byte, []byte, protocol.Digest) {
	t.Helper()
	image := bytes.Repeat([]byte{byte(seq)}, 3000)
	d := sha256.Sum256(image)
	signed, err := f.signer.SignManifest(&protocol.Manifest{Format: protocol.ManifestFormat, Seq: seq, Component: "kws",
		Version: "1.0." + string(rune('0'+seq)), Digest: d, Size: uint64(len(image)), Class: testClass, Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	return signed, image, d
}

// deployment is a signed deployment of manifest to a cohort no node is in:
// its rollout runs until an operator ends it.
func (f fixture) deployment(t *testing.T, id string, seq uint64, manifest []byte) []byte {
	t.Helper()
	now := uint64(time.Now().Unix())
	b, err := f.signer.SignDeployment(&protocol.Deployment{ID: id, Seq: seq, Manifest: manifest, Cohort: "hw:none",
		Waves: []protocol.Wave{{BasisPoints: 10000}}, OnFailure: protocol.FailurePause, NodeTimeoutSeconds: 60,
		MaxConcurrent: 1, Issued: now, Expires: now + 3600})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// status is the HTTP status of an *admin.Error, 0 for any other error.
func status(err error) int {
	var e *admin.Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// TestClientAuth: without the token, or with another, every call is
// refused as ErrUnauthorized, health and metrics included; the right
// token is let through.
func TestClientAuth(t *testing.T) {
	f := start(t, gateway.Config{AdminToken: testToken})
	for _, tt := range []struct {
		name string
		opts []admin.Option
	}{
		{"no token", nil},
		{"wrong token", []admin.Option{admin.WithToken(strings.Repeat("x", len(testToken)))}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := f.client(t, tt.opts...)
			calls := map[string]error{}
			_, calls["Health"] = c.Health(ctxT(t))
			_, calls["Metrics"] = c.Metrics(ctxT(t))
			_, calls["Nodes"] = c.Nodes(ctxT(t), admin.NodeQuery{})
			_, calls["Keys"] = c.Keys(ctxT(t))
			_, calls["Rollouts"] = c.Rollouts(ctxT(t))
			calls["DeleteKey"] = c.DeleteKey(ctxT(t), "node-1")
			for name, err := range calls {
				var e *admin.Error
				if !errors.Is(err, admin.ErrUnauthorized) || errors.Is(err, admin.ErrNotFound) || !errors.As(err, &e) ||
					e.Body.Reason != "unauthorized" {
					t.Errorf("%s: %v, want ErrUnauthorized with reason unauthorized", name, err)
				}
			}
		})
	}
	if h, err := f.client(t, admin.WithToken(testToken)).Health(ctxT(t)); err != nil || h.Status != "ok" {
		t.Fatalf("with the token: %+v, %v", h, err)
	}
}

// TestClientNotFound: what the gateway does not hold is ErrNotFound.
func TestClientNotFound(t *testing.T) {
	f := start(t, gateway.Config{})
	c := f.client(t)
	_, _, d := f.model(t, 1)
	calls := map[string]error{}
	_, calls["Node"] = c.Node(ctxT(t), "node-1")
	_, calls["Rollout"] = c.Rollout(ctxT(t), "nope")
	_, calls["PauseRollout"] = c.PauseRollout(ctxT(t), "nope")
	calls["DeleteKey"] = c.DeleteKey(ctxT(t), "node-1")
	calls["DeleteModel"] = c.DeleteModel(ctxT(t), d.String())
	for name, err := range calls {
		if !errors.Is(err, admin.ErrNotFound) || errors.Is(err, admin.ErrUnauthorized) || status(err) != http.StatusNotFound {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
}

// TestClientMethods drives every method against a real gateway and checks
// what each answer says.
func TestClientMethods(t *testing.T) {
	f := start(t, gateway.Config{AdminToken: testToken, GatewayID: "gw-7"})
	c := f.client(t, admin.WithToken(testToken))
	ctx := ctxT(t)

	h, err := c.Health(ctx)
	if err != nil || h != (admin.Health{GatewayID: "gw-7", Status: "ok", TimeScale: 1}) {
		t.Fatalf("Health: %+v, %v", h, err)
	}
	if m, err := c.Metrics(ctx); err != nil || !bytes.Contains(m, []byte("edgeota_admin_refused_total")) {
		t.Fatalf("Metrics: %d bytes, %v", len(m), err)
	}

	// Models.
	signed, image, d := f.model(t, 1)
	m, err := c.PutModel(ctx, signed, bytes.NewReader(image))
	if err != nil || m.Digest != d.String() || m.Seq != 1 || m.Component != "kws" || m.SizeBytes != int64(len(image)) {
		t.Fatalf("PutModel: %+v, %v", m, err)
	}
	_, err = c.PutModel(ctx, signed, bytes.NewReader(image[1:]))
	if e := (*admin.Error)(nil); !errors.As(err, &e) || e.StatusCode != http.StatusUnprocessableEntity || e.Body.Reason != "size mismatch" {
		t.Fatalf("PutModel of a short image: %v", err)
	}
	if ms, err := c.Models(ctx); err != nil || len(ms) != 1 || ms[0] != m {
		t.Fatalf("Models: %+v, %v", ms, err)
	}
	other, otherImage, od := f.model(t, 2)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(otherImage) }))
	defer origin.Close()
	fr, err := c.FetchModel(ctx, other, origin.URL)
	if err != nil || fr.Digest != od.String() || !(fr.Cached || fr.Fetching) {
		t.Fatalf("FetchModel: %+v, %v", fr, err)
	}
	if _, err := c.FetchModel(ctx, other, "ftp://origin"); status(err) != http.StatusBadRequest {
		t.Fatalf("FetchModel from ftp: %v", err)
	}

	// Assignments: a model assigned cannot be deleted.
	ar, err := c.Assign(ctx, signed, []string{"node-1", "node-2"})
	if err != nil || ar.Digest != d.String() || !slices.Equal(ar.Nodes, []string{"node-1", "node-2"}) || ar.StandingRule || !ar.Cached {
		t.Fatalf("Assign: %+v, %v", ar, err)
	}
	if ar, err = c.AssignAll(ctx, signed); err != nil || !ar.StandingRule {
		t.Fatalf("AssignAll: %+v, %v", ar, err)
	}
	if err := c.DeleteModel(ctx, d.String()); !errors.Is(err, admin.ErrConflict) {
		t.Fatalf("DeleteModel of an assigned model: %v", err)
	}
	if ns, err := c.Nodes(ctx, admin.NodeQuery{}); err != nil || len(ns.Nodes) != 0 || ns.Total != 0 || ns.Next != "" {
		t.Fatalf("Nodes: %+v, %v", ns, err)
	}

	// Keys.
	kr, err := c.PutKeys(ctx, []admin.Key{{NodeID: "node-1", PSK: "hex:000102030405060708090a0b0c0d0e0f"}, {NodeID: "node-2", PSK: "0123456789abcdef"}})
	if err != nil || kr.Imported != 2 || !slices.Equal(kr.Changed, []string{"node-1", "node-2"}) {
		t.Fatalf("PutKeys: %+v, %v", kr, err)
	}
	if _, err := c.PutKeys(ctx, []admin.Key{{NodeID: "node-3", PSK: "short"}}); status(err) != http.StatusBadRequest {
		t.Fatalf("PutKeys of a short key: %v", err)
	}
	if err := c.DeleteKey(ctx, "node-2"); err != nil {
		t.Fatalf("DeleteKey: %v", err)
	}
	if ks, err := c.Keys(ctx); err != nil || !slices.Equal(ks, []string{"node-1"}) {
		t.Fatalf("Keys: %v, %v", ks, err)
	}
	if es, err := c.Audit(ctx, "node-1"); err != nil || len(es) != 0 {
		t.Fatalf("Audit: %+v, %v", es, err)
	}

	// Rollouts: pause, resume, abort, and what each phase refuses.
	r, err := c.PostDeployment(ctx, f.deployment(t, "dep-1", 1, signed))
	if err != nil || r.ID != "dep-1" || r.Phase != admin.PhaseRunning || r.ManifestSeq != 1 || r.Digest != d.String() || len(r.Waves) != 1 {
		t.Fatalf("PostDeployment: %+v, %v", r, err)
	}
	_, err = c.PostDeployment(ctx, f.deployment(t, "dep-1", 1, signed))
	if e := (*admin.Error)(nil); !errors.As(err, &e) || e.StatusCode != http.StatusUnprocessableEntity || e.Body.Reason != "refused" ||
		!strings.HasPrefix(err.Error(), "gateway refused (refused): deployment refused: ") {
		t.Fatalf("PostDeployment of an applied seq: %v", err)
	}
	steps := []struct {
		name string
		do   func(context.Context, string) (admin.Rollout, error)
		want admin.Phase
	}{
		{"pause", c.PauseRollout, admin.PhasePaused},
		{"resume", c.ResumeRollout, admin.PhaseRunning},
		{"pause again", c.PauseRollout, admin.PhasePaused},
		{"abort", c.AbortRollout, admin.PhaseAborted},
	}
	for _, s := range steps {
		if r, err := s.do(ctx, "dep-1"); err != nil || r.Phase != s.want {
			t.Fatalf("%s: %s, %v; want %s", s.name, r.Phase, err, s.want)
		}
	}
	if _, err := c.ResumeRollout(ctx, "dep-1"); !errors.Is(err, admin.ErrConflict) {
		t.Fatalf("resume an aborted rollout: %v", err)
	}
	if r, err := c.Rollout(ctx, "dep-1"); err != nil || r.Phase != admin.PhaseAborted || len(r.Decisions) == 0 {
		t.Fatalf("Rollout: %+v, %v", r, err)
	}
	if rs, err := c.Rollouts(ctx); err != nil || len(rs) != 1 || rs[0].ID != "dep-1" {
		t.Fatalf("Rollouts: %+v, %v", rs, err)
	}

	var backup bytes.Buffer
	if n, err := c.Backup(ctx, &backup); err != nil || n != int64(backup.Len()) || n < 3000 {
		t.Fatalf("Backup: %d bytes, %v", n, err)
	}
}

// TestClientTLS: WithRootCAs trusts a gateway's self-signed certificate;
// without it the certificate is unknown; plain HTTP to the HTTPS port is
// ErrNeedsHTTPS.
func TestClientTLS(t *testing.T) {
	cert, pool := testutil.SelfSigned(t)
	f := start(t, gateway.Config{AdminToken: testToken, AdminTLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	if _, err := f.client(t, admin.WithToken(testToken), admin.WithRootCAs(pool)).Health(ctxT(t)); err != nil {
		t.Fatalf("with the CA: %v", err)
	}
	var unknown x509.UnknownAuthorityError
	if _, err := f.client(t, admin.WithToken(testToken)).Health(ctxT(t)); !errors.As(err, &unknown) {
		t.Fatalf("without the CA: %v", err)
	}
	plain, err := admin.NewClient("http://"+strings.TrimPrefix(f.base, "https://"), admin.WithToken(testToken))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Health(ctxT(t)); !errors.Is(err, admin.ErrNeedsHTTPS) {
		t.Fatalf("plain HTTP: %v", err)
	}
}

// TestNewClient: a base URL must be http(s); a TLS configuration needs an
// *http.Transport, and the caller's client is not changed.
func TestNewClient(t *testing.T) {
	if _, err := admin.NewClient("127.0.0.1:8080"); err == nil {
		t.Error("a base URL without a scheme was taken")
	}
	hc := &http.Client{Transport: roundTripper(func(*http.Request) (*http.Response, error) { return nil, errors.New("no") })}
	if _, err := admin.NewClient("https://gw", admin.WithHTTPClient(hc), admin.WithRootCAs(x509.NewCertPool())); err == nil {
		t.Error("a TLS configuration was taken with a transport that cannot use it")
	}
	tr := &http.Transport{}
	hc = &http.Client{Transport: tr}
	if _, err := admin.NewClient("https://gw", admin.WithHTTPClient(hc), admin.WithRootCAs(x509.NewCertPool())); err != nil {
		t.Fatal(err)
	}
	if hc.Transport != tr || (tr.TLSClientConfig != nil && tr.TLSClientConfig.RootCAs != nil) {
		t.Error("NewClient changed the caller's http.Client")
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
