package gateway

import (
	"net/http"

	"edgeota/gateway/internal/store"
)

// AuditEntry is one provisioning commit a node reported: who provisioned
// which node, with what labels and component, and when.
type AuditEntry = store.AuditEntry

// getAudit answers GET /v1/audit[?node=ID]: the provisioning audit log,
// oldest first.
func (g *Gateway) getAudit(w http.ResponseWriter, r *http.Request) {
	node := r.URL.Query().Get("node")
	entries, err := g.store.Audit(node)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "store", err)
		return
	}
	if entries == nil {
		entries = []AuditEntry{}
	}
	writeJSON(w, http.StatusOK, entries)
}
