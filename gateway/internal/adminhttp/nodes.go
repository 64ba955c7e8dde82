package adminhttp

import (
	"errors"
	"net/http"

	"edgeota/gateway/admin"
	"edgeota/gateway/internal/store"
)

func (s *server) getNodes(w http.ResponseWriter, _ *http.Request) {
	s.Gateway.FlushActivity() // the registry as of now, not as of the last second
	ns, err := s.Store.Nodes()
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "store", err)
		return
	}
	out := make([]admin.Node, 0, len(ns))
	for _, n := range ns {
		out = append(out, s.nodeOf(n))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) getNode(w http.ResponseWriter, r *http.Request) {
	s.Gateway.FlushActivity()
	n, err := s.Store.Node(r.PathValue("id"))
	if errors.Is(err, store.ErrUnknownNode) || errors.Is(err, store.ErrNotFound) {
		writeErr(w, http.StatusNotFound, "not found", err)
		return
	}
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "store", err)
		return
	}
	writeJSON(w, http.StatusOK, s.nodeOf(n))
}

// nodeOf is a registry node with the manifest assigned to it.
func (s *server) nodeOf(n *store.Node) admin.Node {
	v := nodeOf(n)
	if a, err := s.Store.Assignment(n.ID); err == nil && a != nil {
		if m, err := s.Gateway.VerifyManifest(a); err == nil {
			v.Assigned, v.AssignedSeq = m.Digest.String(), m.Seq
		}
	}
	return v
}

// getAudit answers GET /v1/audit[?node=ID]: the provisioning audit log,
// oldest first.
func (s *server) getAudit(w http.ResponseWriter, r *http.Request) {
	entries, err := s.Store.Audit(r.URL.Query().Get("node"))
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "store", err)
		return
	}
	out := make([]admin.AuditEntry, 0, len(entries))
	for _, e := range entries {
		out = append(out, auditEntryOf(e))
	}
	writeJSON(w, http.StatusOK, out)
}
