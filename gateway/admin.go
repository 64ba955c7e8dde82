package gateway

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"edgeota/gateway/admin"
	"edgeota/gateway/internal/adminhttp"
	"edgeota/gateway/internal/store"
	"edgeota/protocol"
	"edgeota/protocol/sign"
	"edgeota/protocol/trust"
)

// adminHandler is the admin API (package admin, served by adminhttp);
// with a token configured every request needs it (admin_auth.go).
func (g *Gateway) adminHandler() http.Handler {
	return adminhttp.Handler(adminhttp.Config{
		Gateway:  adminBackend{g},
		Store:    g.store,
		Rollouts: g.rollouts,
		Clock:    g.clock,
		Token:    func() string { return *g.adminToken.Load() },
		Refused:  g.metrics.AdminRefused,
		Metrics:  promhttp.HandlerFor(g.metrics.Registry, promhttp.HandlerOpts{}),
		Health:   admin.Health{GatewayID: g.cfg.GatewayID, TimeScale: timeScale(g.cfg.Clock)},
		Logger:   g.log,
	})
}

// adminBackend is what the admin API does to the gateway
// (adminhttp.Gateway).
type adminBackend struct{ g *Gateway }

func (b adminBackend) PutModel(signed []byte, image io.Reader) (*store.Model, error) {
	m, err := b.g.store.PutModel(signed, image, b.g.keys)
	if err != nil {
		return nil, err
	}
	b.g.images.Add(m.Digest, m.Size)
	return m, nil
}

func (b adminBackend) FetchModel(signed []byte, origin string) (*protocol.Manifest, error) {
	return b.g.origin.Fetch(signed, origin)
}

func (b adminBackend) Cached(d protocol.Digest) bool {
	_, ok := b.g.images.Size(d)
	return ok
}

func (b adminBackend) Fetching(d protocol.Digest) bool { return b.g.origin.Fetching(d) }

func (b adminBackend) DeleteModel(d protocol.Digest) error {
	if err := b.g.store.DeleteModel(d); err != nil {
		return err
	}
	b.g.images.Remove(d)
	b.g.forgetDeltas(d)
	return nil
}

func (b adminBackend) VerifyManifest(signed []byte) (*protocol.Manifest, error) {
	return b.g.keys.VerifyManifest(signed)
}

func (b adminBackend) Assign(signed []byte, nodes []string, all bool) ([]string, error) {
	var err error
	if all {
		if nodes, err = b.g.store.SetStandingRule(signed); err != nil {
			return nil, err
		}
	} else if err := b.g.store.Assign(nodes, signed); err != nil {
		return nil, err
	}
	notifier(b).Notify(nodes)
	return nodes, nil
}

func (b adminBackend) ApplyDeployment(signed []byte) (string, error) {
	d, err := b.g.deploy.Apply(signed)
	if errors.Is(err, ErrDeployment) {
		b.g.metrics.Refused.WithLabelValues("deployment").Inc()
		b.g.log.Info("deployment not applied", "reason", err, "via", "admin API")
		return "", refusal{err}
	}
	if err != nil {
		return "", err
	}
	return d.ID, nil
}

// refusal is a refused deployment's error, as adminhttp tells it.
type refusal struct{ err error }

func (r refusal) Error() string   { return r.err.Error() }
func (r refusal) Unwrap() []error { return []error{r.err, adminhttp.ErrRefused} }

func (b adminBackend) KeysOf(keys []admin.Key) (map[string][]byte, error) {
	return keysOf("request", keys)
}

func (b adminBackend) PutKeys(keys map[string][]byte) ([]string, error) {
	changed, err := b.g.store.PutPSKs(keys)
	if err != nil {
		return nil, err
	}
	for _, n := range changed {
		b.g.coap.DropSession(n)
	}
	return changed, nil
}

func (b adminBackend) DeleteKey(node string) error {
	if err := b.g.store.DeletePSK(node); err != nil {
		return err
	}
	b.g.coap.DropSession(node)
	return nil
}

func (b adminBackend) FlushActivity() { b.g.act.Flush() }

// maxTrustDatagram bounds a trust update the gateway serves: it goes to
// nodes in one CoAP answer (docs/protocol.md section 5).
const maxTrustDatagram = 1024

func (b adminBackend) ApplyTrust(signed []byte) (*trust.Update, []sign.KeyID, error) {
	var u *trust.Update
	var kids []sign.KeyID
	var err error
	if len(signed) > maxTrustDatagram {
		err = fmt.Errorf("signed trust update of %d bytes does not fit one CoAP answer of %d bytes: fewer keys or signatures", len(signed), maxTrustDatagram)
	} else {
		u, kids, err = b.g.keys.Apply(signed)
	}
	var pe *os.PathError
	switch {
	case errors.As(err, &pe):
		return nil, nil, err
	case err != nil:
		b.g.metrics.Refused.WithLabelValues("trust").Inc()
		b.g.log.Info("trust update not applied", "reason", err, "via", "admin API")
		return nil, nil, refusal{err}
	}
	b.g.log.Info("trust update applied", "version", u.Version, "manifest_keys", len(u.ManifestKeys),
		"deployment_keys", len(u.DeploymentKeys), "roots", len(u.RootKeys), "threshold", u.Threshold)
	b.g.serve.NotifyTrust()
	return u, kids, nil
}

func (b adminBackend) TrustUpdate() *trust.Update { return b.g.keys.Update() }
