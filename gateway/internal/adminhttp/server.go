// Package adminhttp serves a gateway's admin API (package
// edgeota/gateway/admin): its handlers, on admin's routes and in admin's
// JSON types, and its bearer-token check. It reaches the gateway through
// the interfaces it declares: [Gateway] for what acts beyond the
// database, [Store] for what it reads there, [Rollouts] for the rollout
// engine.
package adminhttp

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"edgeota/gateway/admin"
	"edgeota/gateway/internal/rollout"
	"edgeota/gateway/internal/store"
	"edgeota/protocol"
	"edgeota/protocol/sign"
	"edgeota/protocol/trust"
)

// ErrRefused is wrapped by the errors of [Gateway.ApplyDeployment] for a
// deployment it refuses (answered 422 "refused"), as opposed to one it
// failed to apply.
var ErrRefused = errors.New("deployment refused")

// Gateway is what the admin API does to a gateway beyond reading its
// database: each call keeps the gateway's caches, sessions and observers
// in step with what it changes.
type Gateway interface {
	// PutModel verifies a signed manifest, stores its image read from
	// image when its size and digest match, and serves it.
	PutModel(signed []byte, image io.Reader) (*store.Model, error)
	// FetchModel verifies a signed manifest and starts fetching its image
	// from origin in the background.
	FetchModel(signed []byte, origin string) (*protocol.Manifest, error)
	// Cached and Fetching say whether an image is stored, or being
	// fetched.
	Cached(d protocol.Digest) bool
	Fetching(d protocol.Digest) bool
	// DeleteModel drops a model no node is assigned (store.ErrAssigned
	// otherwise, store.ErrNotFound without it).
	DeleteModel(d protocol.Digest) error
	// VerifyManifest verifies a signed manifest against the trust keys.
	VerifyManifest(signed []byte) (*protocol.Manifest, error)
	// Assign assigns a verified signed manifest to nodes, or to every
	// node as a standing rule with all, notifies their observers and
	// returns the nodes assigned.
	Assign(signed []byte, nodes []string, all bool) ([]string, error)
	// ApplyDeployment verifies a signed deployment and starts its
	// rollout, returning its id; a refusal wraps [ErrRefused].
	ApplyDeployment(signed []byte) (string, error)
	// KeysOf validates imported keys ("node_id", "psk" pairs).
	KeysOf(keys []admin.Key) (map[string][]byte, error)
	// PutKeys stores nodes' keys, all or nothing, closes the sessions of
	// the nodes whose key changed and returns them.
	PutKeys(keys map[string][]byte) ([]string, error)
	// DeleteKey forgets a node's key (store.ErrNotFound without one) and
	// closes its session.
	DeleteKey(node string) error
	// FlushActivity writes the node activity the gateway batches, so the
	// registry reads as of now.
	FlushActivity()
	// ApplyTrust checks a signed trust update against the gateway's roots
	// and version, saves it, takes its keys and notifies the nodes that
	// observe it; a refusal wraps [ErrRefused].
	ApplyTrust(signed []byte) (*trust.Update, []sign.KeyID, error)
	// TrustUpdate returns the trust update applied last, nil when none.
	TrustUpdate() *trust.Update
}

// Store is the part of the gateway's database the admin API reads.
type Store interface {
	Models() ([]*store.Model, error)
	NodePage(q store.NodeQuery) (store.NodePage, error)
	Node(id string) (*store.Node, error)
	Assignment(node string) ([]byte, error)
	Backup(w io.Writer) (int64, error)
	PSKNodes() ([]string, error)
	Audit(node string) ([]store.AuditEntry, error)
}

// Rollouts is the gateway's rollout engine.
type Rollouts interface {
	List(now time.Time) []rollout.StatusView
	Get(id string, now time.Time) (rollout.StatusView, error)
	Nodes(id string, q rollout.NodeQuery, now time.Time) (rollout.NodePage, error)
	Pause(id string, now time.Time) error
	Resume(id string, now time.Time) error
	Abort(id string, now time.Time) error
}

// Config is what the admin API serves.
type Config struct {
	Gateway  Gateway
	Store    Store
	Rollouts Rollouts
	// Clock is the gateway's time for the rollout engine.
	Clock func() time.Time
	// Token returns the bearer token every request must carry, asked
	// for on each request; "" (or a nil Token) requires none.
	Token func() string
	// Refused counts requests refused for their token, by reason
	// ("missing" or "invalid"); nil counts nothing.
	Refused *prometheus.CounterVec
	// Metrics serves /metrics.
	Metrics http.Handler
	// Health is the answer of /healthz.
	Health admin.Health
	// Logger receives the handlers' logs (default: discard).
	Logger *slog.Logger
}

type server struct {
	Config
	log *slog.Logger
}

// Handler serves the admin API of cfg: every route of package admin.
func Handler(cfg Config) http.Handler {
	s := &server{Config: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	handle := func(r admin.Route, h http.HandlerFunc) { mux.HandleFunc(r.String(), h) }
	handle(admin.RoutePutModel, s.putModel)
	handle(admin.RouteModels, s.getModels)
	handle(admin.RouteFetchModel, s.postFetch)
	handle(admin.RouteDeleteModel, s.deleteModel)
	handle(admin.RouteNodes, s.getNodes)
	handle(admin.RouteNode, s.getNode)
	handle(admin.RouteAssign, s.postAssignment)
	handle(admin.RouteBackup, s.getBackup)
	handle(admin.RoutePostDeployment, s.postDeployment)
	handle(admin.RouteRollouts, s.getRollouts)
	handle(admin.RouteRollout, s.getRollout)
	handle(admin.RouteRolloutAction, s.postRolloutAction)
	handle(admin.RouteRolloutNodes, s.getRolloutNodes)
	handle(admin.RoutePutKeys, s.putKeys)
	handle(admin.RouteKeys, s.getKeys)
	handle(admin.RouteDeleteKey, s.deleteKey)
	handle(admin.RouteAudit, s.getAudit)
	handle(admin.RoutePutTrust, s.putTrust)
	handle(admin.RouteTrust, s.getTrust)
	mux.Handle(admin.RouteMetrics.String(), cfg.Metrics)
	health := cfg.Health
	health.Status = "ok"
	handle(admin.RouteHealth, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, health) })
	return s.requireToken(mux)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeErr(w http.ResponseWriter, code int, reason string, err error) {
	writeJSON(w, code, admin.ErrorBody{Error: err.Error(), Reason: reason})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
