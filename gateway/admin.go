package gateway

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"edgeota/gateway/internal/rollout"
	"edgeota/gateway/internal/store"
	"edgeota/protocol"
	"edgeota/protocol/sign"
)

// The admin API (JSON over HTTP, on localhost by default):
//
//	PUT    /v1/models           multipart form: "manifest" (COSE) then "image"; 201 with the model
//	GET    /v1/models           cached models
//	POST   /v1/models/fetch     {"manifest": base64 COSE, "origin": URL}: fetch the image from an origin
//	DELETE /v1/models/{digest}  drop a model no node is assigned
//	GET    /v1/nodes            the node registry
//	GET    /v1/nodes/{id}       one node
//	POST   /v1/assignments      {"manifest": base64 COSE, "nodes": [ids] | "all": true}
//	GET    /v1/backup           a consistent copy of the database, while running
//	POST   /v1/deployments      body: a signed deployment (COSE); starts its rollout
//	GET    /v1/rollouts         every rollout's status
//	GET    /v1/rollouts/{id}    one rollout's status: waves, gates, nodes, decisions
//	POST   /v1/rollouts/{id}/pause|resume|abort
//	PUT    /v1/keys             import nodes' DTLS keys (JSON [{node_id, psk}])
//	GET    /v1/audit[?node=ID]  provisioning audit log (who provisioned what, when)
//	GET    /v1/keys             node ids that have a key (never the keys)
//	DELETE /v1/keys/{node}      forget a node's key, close its session
//	GET    /metrics             Prometheus metrics
//	GET    /healthz             liveness
//
// With a token configured every request needs it (admin_auth.go).
func (g *Gateway) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/models", g.putModel)
	mux.HandleFunc("GET /v1/models", g.getModels)
	mux.HandleFunc("POST /v1/models/fetch", g.postFetch)
	mux.HandleFunc("DELETE /v1/models/{digest}", g.deleteModel)
	mux.HandleFunc("GET /v1/nodes", g.getNodes)
	mux.HandleFunc("GET /v1/nodes/{id}", g.getNode)
	mux.HandleFunc("PUT /v1/keys", g.putKeys)
	mux.HandleFunc("GET /v1/audit", g.getAudit)
	mux.HandleFunc("GET /v1/keys", g.getKeys)
	mux.HandleFunc("DELETE /v1/keys/{node}", g.deleteKey)
	mux.HandleFunc("POST /v1/assignments", g.postAssignment)
	mux.HandleFunc("GET /v1/backup", g.getBackup)
	mux.HandleFunc("POST /v1/deployments", g.postDeployment)
	mux.HandleFunc("GET /v1/rollouts", g.getRollouts)
	mux.HandleFunc("GET /v1/rollouts/{id}", g.getRollout)
	mux.HandleFunc("POST /v1/rollouts/{id}/{action}", g.postRolloutAction)
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "gateway_id": g.cfg.GatewayID, "time_scale": timeScale(g.cfg.Clock)})
	})
	return g.requireToken(mux)
}

// apiError is the JSON body of every error answer.
type apiError struct {
	Error  string `json:"error"`
	Reason string `json:"reason,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeErr(w http.ResponseWriter, code int, reason string, err error) {
	writeJSON(w, code, apiError{Error: err.Error(), Reason: reason})
}

// ModelView is a cached model in the admin API.
type ModelView struct {
	Digest    string    `json:"digest"`
	Component string    `json:"component"`
	Version   string    `json:"version"`
	Seq       uint64    `json:"seq"`
	Epoch     uint64    `json:"epoch"`
	SizeBytes int64     `json:"size_bytes"`
	Added     time.Time `json:"added"`
	LastUsed  time.Time `json:"last_used"`
}

func modelView(m *store.Model) ModelView {
	return ModelView{Digest: m.Digest.String(), Component: m.Manifest.Component, Version: m.Manifest.Version,
		Seq: m.Manifest.Seq, Epoch: m.Manifest.Epoch, SizeBytes: m.Size, Added: m.Added, LastUsed: m.LastUsed}
}

const maxManifestBytes = 64 << 10

// putModel stores a model from a multipart form whose first part is the
// signed manifest and second the image, streamed into the store; nothing
// is stored unless the signature, size and digest all match.
func (g *Gateway) putModel(w http.ResponseWriter, r *http.Request) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		writeErr(w, http.StatusUnsupportedMediaType, "content type", errors.New("want multipart/form-data with parts manifest and image"))
		return
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	part, err := mr.NextPart()
	if err != nil || part.FormName() != "manifest" {
		writeErr(w, http.StatusBadRequest, "form", errors.New("the first part must be \"manifest\""))
		return
	}
	signed, err := io.ReadAll(io.LimitReader(part, maxManifestBytes+1))
	if err != nil || len(signed) > maxManifestBytes {
		writeErr(w, http.StatusRequestEntityTooLarge, "manifest", fmt.Errorf("manifest over %d bytes", maxManifestBytes))
		return
	}
	part, err = mr.NextPart()
	if err != nil || part.FormName() != "image" {
		writeErr(w, http.StatusBadRequest, "form", errors.New("the second part must be \"image\""))
		return
	}
	m, err := g.store.PutModel(signed, part, g.trust)
	if err != nil {
		code, reason := http.StatusUnprocessableEntity, "invalid"
		switch {
		case errors.Is(err, store.ErrDigest):
			reason = "digest mismatch"
		case errors.Is(err, store.ErrSize):
			reason = "size mismatch"
		case errors.Is(err, sign.ErrSignature):
			reason = "bad signature"
		case errors.Is(err, sign.ErrUnknownKey):
			reason = "unknown kid"
		case errors.Is(err, sign.ErrNotTagged), errors.Is(err, sign.ErrMalformed), errors.Is(err, protocol.ErrMalformed):
			reason = "malformed manifest"
		case errors.Is(err, sign.ErrContentType), errors.Is(err, sign.ErrAlgorithm):
			reason = "not a manifest"
		default:
			code, reason = http.StatusInternalServerError, "store"
		}
		g.log.Warn("model refused", "reason", reason, "err", err)
		writeErr(w, code, reason, err)
		return
	}
	g.images.Add(m.Digest, m.Size)
	g.log.Info("model stored", "digest", m.Digest.String(), "component", m.Manifest.Component, "version", m.Manifest.Version, "bytes", m.Size)
	writeJSON(w, http.StatusCreated, modelView(m))
}

// decodeManifestRequest decodes a JSON request body (at most 1 MiB, no
// unknown fields) into req and the base64 signed manifest it carries;
// on failure it answers 400 and returns false.
func decodeManifestRequest(w http.ResponseWriter, r *http.Request, req any, manifest func() string) ([]byte, bool) {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(req); err != nil {
		writeErr(w, http.StatusBadRequest, "json", err)
		return nil, false
	}
	signed, err := base64.StdEncoding.DecodeString(manifest())
	if err != nil {
		writeErr(w, http.StatusBadRequest, "manifest", fmt.Errorf("manifest is not base64: %w", err))
		return nil, false
	}
	return signed, true
}

// FetchRequest is the body of POST /v1/models/fetch.
type FetchRequest struct {
	// Manifest is the signed manifest, base64 (standard encoding).
	Manifest string `json:"manifest"`
	// Origin is the HTTP(S) URL of the image.
	Origin string `json:"origin"`
}

func (g *Gateway) postFetch(w http.ResponseWriter, r *http.Request) {
	var req FetchRequest
	signed, ok := decodeManifestRequest(w, r, &req, func() string { return req.Manifest })
	if !ok {
		return
	}
	u, err := url.Parse(req.Origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		writeErr(w, http.StatusBadRequest, "origin", fmt.Errorf("origin %q is not an http(s) URL", req.Origin))
		return
	}
	m, err := g.origin.Fetch(signed, req.Origin)
	if err != nil {
		writeErr(w, http.StatusUnprocessableEntity, "manifest", err)
		return
	}
	_, cached := g.images.Size(m.Digest)
	writeJSON(w, http.StatusAccepted, map[string]any{"digest": m.Digest.String(), "cached": cached, "fetching": g.origin.Fetching(m.Digest)})
}

func (g *Gateway) getModels(w http.ResponseWriter, _ *http.Request) {
	ms, err := g.store.Models()
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "store", err)
		return
	}
	out := make([]ModelView, 0, len(ms))
	for _, m := range ms {
		out = append(out, modelView(m))
	}
	writeJSON(w, http.StatusOK, out)
}

func (g *Gateway) deleteModel(w http.ResponseWriter, r *http.Request) {
	d, err := protocol.ParseDigest(r.PathValue("digest"))
	if err != nil {
		writeErr(w, http.StatusBadRequest, "digest", err)
		return
	}
	switch err := g.store.DeleteModel(d); {
	case errors.Is(err, store.ErrNotFound):
		writeErr(w, http.StatusNotFound, "not found", err)
	case errors.Is(err, store.ErrAssigned):
		writeErr(w, http.StatusConflict, "assigned", err)
	case err != nil:
		writeErr(w, http.StatusInternalServerError, "store", err)
	default:
		g.images.Remove(d)
		w.WriteHeader(http.StatusNoContent)
	}
}

// NodeView is a node in the admin API.
type NodeView struct {
	ID            string            `json:"id"`
	Class         string            `json:"class"`
	Labels        map[string]string `json:"labels"`
	Component     string            `json:"component"`
	AgentVersion  string            `json:"agent_version"`
	Runtime       string            `json:"runtime,omitempty"`
	RunningSeq    uint64            `json:"running_seq"`
	RunningDigest string            `json:"running_digest"`
	ActiveSlot    string            `json:"active_slot"`
	ActiveState   string            `json:"active_state"`
	EpochFloor    uint64            `json:"epoch_floor"`
	LastState     string            `json:"last_state"`
	LastReason    string            `json:"last_reason,omitempty"`
	LastCode      string            `json:"last_reason_code,omitempty"`
	LastSeen      time.Time         `json:"last_seen"`
	Addr          string            `json:"addr"`
	HealthReports uint64            `json:"health_reports"`
	StatusEvents  uint64            `json:"status_events"`
	Assigned      string            `json:"assigned_digest,omitempty"`
	AssignedSeq   uint64            `json:"assigned_seq,omitempty"`
}

func (g *Gateway) nodeView(n *store.Node) NodeView {
	v := NodeView{ID: n.ID, Class: n.Class.String(), Labels: n.Labels, Component: n.Component, AgentVersion: n.AgentVersion, Runtime: n.Runtime,
		RunningSeq: n.RunningSeq, RunningDigest: n.RunningDigest.String(), ActiveSlot: n.ActiveSlot.String(),
		ActiveState: n.ActiveState.String(), EpochFloor: n.EpochFloor, LastState: n.LastState.String(), LastReason: n.LastReason,
		LastCode: reasonCode(n.LastCode),
		LastSeen: n.LastSeen, Addr: n.Addr, HealthReports: n.HealthReports, StatusEvents: n.StatusEvents}
	if a, err := g.store.Assignment(n.ID); err == nil && a != nil {
		if m, err := g.trust.VerifyManifest(a); err == nil {
			v.Assigned, v.AssignedSeq = m.Digest.String(), m.Seq
		}
	}
	return v
}

func (g *Gateway) getNodes(w http.ResponseWriter, _ *http.Request) {
	g.act.Flush() // the registry as of now, not as of the last second
	ns, err := g.store.Nodes()
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "store", err)
		return
	}
	out := make([]NodeView, 0, len(ns))
	for _, n := range ns {
		out = append(out, g.nodeView(n))
	}
	writeJSON(w, http.StatusOK, out)
}

func (g *Gateway) getNode(w http.ResponseWriter, r *http.Request) {
	g.act.Flush()
	n, err := g.store.Node(r.PathValue("id"))
	if errors.Is(err, store.ErrUnknownNode) || errors.Is(err, store.ErrNotFound) {
		writeErr(w, http.StatusNotFound, "not found", err)
		return
	}
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "store", err)
		return
	}
	writeJSON(w, http.StatusOK, g.nodeView(n))
}

// AssignmentRequest is the body of POST /v1/assignments.
type AssignmentRequest struct {
	// Manifest is the signed manifest, base64 (standard encoding).
	Manifest string `json:"manifest"`
	// Nodes are the nodes to assign it to.
	Nodes []string `json:"nodes,omitempty"`
	// All assigns it to every node, including nodes that say Hello later
	// (a standing rule, until replaced).
	All bool `json:"all,omitempty"`
}

func (g *Gateway) postAssignment(w http.ResponseWriter, r *http.Request) {
	var req AssignmentRequest
	signed, ok := decodeManifestRequest(w, r, &req, func() string { return req.Manifest })
	if !ok {
		return
	}
	m, err := g.trust.VerifyManifest(signed)
	if err != nil {
		writeErr(w, http.StatusUnprocessableEntity, "manifest", err)
		return
	}
	if !req.All && len(req.Nodes) == 0 {
		writeErr(w, http.StatusBadRequest, "nodes", errors.New("give nodes or all"))
		return
	}
	nodes := req.Nodes
	for _, id := range nodes {
		if !protocol.ValidID(id) {
			writeErr(w, http.StatusBadRequest, "nodes", fmt.Errorf("node id %q is not valid", id))
			return
		}
	}
	if req.All {
		if nodes, err = g.store.SetStandingRule(signed); err != nil {
			writeErr(w, http.StatusInternalServerError, "store", err)
			return
		}
	} else if err := g.store.Assign(nodes, signed); err != nil {
		writeErr(w, http.StatusInternalServerError, "store", err)
		return
	}
	for _, id := range nodes {
		g.serve.Notify(id)
	}
	g.log.Info("assigned", "digest", m.Digest.String(), "version", m.Version, "nodes", len(nodes), "standing_rule", req.All)
	_, cached := g.images.Size(m.Digest)
	writeJSON(w, http.StatusOK, map[string]any{"digest": m.Digest.String(), "nodes": nodes, "standing_rule": req.All, "cached": cached})
}

func (g *Gateway) getBackup(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="gateway.db"`)
	if _, err := g.store.Backup(w); err != nil {
		g.log.Error("backup", "err", err)
	}
}

func (g *Gateway) postDeployment(w http.ResponseWriter, r *http.Request) {
	signed, err := io.ReadAll(io.LimitReader(r.Body, protocol.MaxDocSize+1))
	if err != nil || len(signed) > protocol.MaxDocSize {
		writeErr(w, http.StatusRequestEntityTooLarge, "size", fmt.Errorf("deployment over %d bytes", protocol.MaxDocSize))
		return
	}
	d, err := g.deploy.Apply(signed)
	if errors.Is(err, ErrDeployment) {
		g.metrics.Refused.WithLabelValues("deployment").Inc()
		g.log.Info("deployment not applied", "reason", err, "via", "admin API")
		writeErr(w, http.StatusUnprocessableEntity, "refused", err)
		return
	}
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "rollout", err)
		return
	}
	st, _ := g.rollouts.Get(d.ID, g.clock())
	writeJSON(w, http.StatusCreated, st)
}

func (g *Gateway) getRollouts(w http.ResponseWriter, _ *http.Request) {
	out := g.rollouts.List(g.clock())
	if out == nil {
		out = []rollout.StatusView{}
	}
	writeJSON(w, http.StatusOK, out)
}

func (g *Gateway) getRollout(w http.ResponseWriter, r *http.Request) {
	st, err := g.rollouts.Get(r.PathValue("id"), g.clock())
	if err != nil {
		writeErr(w, http.StatusNotFound, "not found", err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (g *Gateway) postRolloutAction(w http.ResponseWriter, r *http.Request) {
	id, now := r.PathValue("id"), g.clock()
	var err error
	switch r.PathValue("action") {
	case "pause":
		err = g.rollouts.Pause(id, now)
	case "resume":
		err = g.rollouts.Resume(id, now)
	case "abort":
		err = g.rollouts.Abort(id, now)
	default:
		writeErr(w, http.StatusNotFound, "action", errors.New("want pause, resume or abort"))
		return
	}
	switch {
	case errors.Is(err, rollout.ErrUnknown):
		writeErr(w, http.StatusNotFound, "not found", err)
	case errors.Is(err, rollout.ErrState):
		writeErr(w, http.StatusConflict, "state", err)
	case err != nil:
		writeErr(w, http.StatusInternalServerError, "rollout", err)
	default:
		st, _ := g.rollouts.Get(id, now)
		writeJSON(w, http.StatusOK, st)
	}
}

// reasonCode names a status event's reason code, "" for none.
func reasonCode(r protocol.Reason) string {
	if r == protocol.ReasonNone {
		return ""
	}
	return r.String()
}
