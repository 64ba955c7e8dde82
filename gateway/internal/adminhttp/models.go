package adminhttp

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

	"edgeota/gateway/admin"
	"edgeota/gateway/internal/store"
	"edgeota/protocol"
	"edgeota/protocol/sign"
)

const maxManifestBytes = 64 << 10

// putModel stores a model from a multipart form whose first part is the
// signed manifest and second the image, streamed into the store; nothing
// is stored unless the signature, size and digest all match.
func (s *server) putModel(w http.ResponseWriter, r *http.Request) {
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
	m, err := s.Gateway.PutModel(signed, part)
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
		s.log.Warn("model refused", "reason", reason, "err", err)
		writeErr(w, code, reason, err)
		return
	}
	s.log.Info("model stored", "digest", m.Digest.String(), "component", m.Manifest.Component, "version", m.Manifest.Version, "bytes", m.Size)
	writeJSON(w, http.StatusCreated, modelOf(m))
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

func (s *server) postFetch(w http.ResponseWriter, r *http.Request) {
	var req admin.FetchRequest
	signed, ok := decodeManifestRequest(w, r, &req, func() string { return req.Manifest })
	if !ok {
		return
	}
	u, err := url.Parse(req.Origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		writeErr(w, http.StatusBadRequest, "origin", fmt.Errorf("origin %q is not an http(s) URL", req.Origin))
		return
	}
	m, err := s.Gateway.FetchModel(signed, req.Origin)
	if err != nil {
		writeErr(w, http.StatusUnprocessableEntity, "manifest", err)
		return
	}
	writeJSON(w, http.StatusAccepted, admin.FetchResult{Digest: m.Digest.String(), Cached: s.Gateway.Cached(m.Digest), Fetching: s.Gateway.Fetching(m.Digest)})
}

func (s *server) getModels(w http.ResponseWriter, _ *http.Request) {
	ms, err := s.Store.Models()
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "store", err)
		return
	}
	out := make([]admin.Model, 0, len(ms))
	for _, m := range ms {
		out = append(out, modelOf(m))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) deleteModel(w http.ResponseWriter, r *http.Request) {
	d, err := protocol.ParseDigest(r.PathValue("digest"))
	if err != nil {
		writeErr(w, http.StatusBadRequest, "digest", err)
		return
	}
	switch err := s.Gateway.DeleteModel(d); {
	case errors.Is(err, store.ErrNotFound):
		writeErr(w, http.StatusNotFound, "not found", err)
	case errors.Is(err, store.ErrAssigned):
		writeErr(w, http.StatusConflict, "assigned", err)
	case err != nil:
		writeErr(w, http.StatusInternalServerError, "store", err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *server) postAssignment(w http.ResponseWriter, r *http.Request) {
	var req admin.AssignmentRequest
	signed, ok := decodeManifestRequest(w, r, &req, func() string { return req.Manifest })
	if !ok {
		return
	}
	m, err := s.Gateway.VerifyManifest(signed)
	if err != nil {
		writeErr(w, http.StatusUnprocessableEntity, "manifest", err)
		return
	}
	if !req.All && len(req.Nodes) == 0 {
		writeErr(w, http.StatusBadRequest, "nodes", errors.New("give nodes or all"))
		return
	}
	for _, id := range req.Nodes {
		if !protocol.ValidID(id) {
			writeErr(w, http.StatusBadRequest, "nodes", fmt.Errorf("node id %q is not valid", id))
			return
		}
	}
	nodes, err := s.Gateway.Assign(signed, req.Nodes, req.All)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "store", err)
		return
	}
	s.log.Info("assigned", "digest", m.Digest.String(), "version", m.Version, "nodes", len(nodes), "standing_rule", req.All)
	writeJSON(w, http.StatusOK, admin.AssignmentResult{Digest: m.Digest.String(), Nodes: nodes, StandingRule: req.All, Cached: s.Gateway.Cached(m.Digest)})
}

func (s *server) getBackup(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="gateway.db"`)
	if _, err := s.Store.Backup(w); err != nil {
		s.log.Error("backup", "err", err)
	}
}
