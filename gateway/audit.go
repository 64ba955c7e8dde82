package gateway

import (
	"net/http"

	"edgeota/gateway/internal/coapd"
	"edgeota/gateway/internal/store"
	"edgeota/protocol"
)

// AuditEntry is one provisioning commit a node reported: who provisioned
// which node, with what labels and component, and when.
type AuditEntry = store.AuditEntry

// audit records a provisioning event (status event state 9, docs/protocol.md
// section 4) in the audit log; the event itself goes upstream with the
// other status events.
func (g *Gateway) audit(e *protocol.StatusEvent, r *coapd.Request) {
	entry := store.AuditEntry{At: g.clock().UTC(), Node: e.NodeID, Actor: e.Actor, Detail: e.Reason,
		From: r.From.String(), Authenticated: r.Identity == e.NodeID}
	if n, err := g.store.Node(e.NodeID); err == nil {
		entry.Labels, entry.Component = n.Labels, n.Component
	}
	entry, err := g.store.AddAudit(entry)
	if err != nil {
		g.log.Error("audit: provisioning", "node", e.NodeID, "err", err)
		return
	}
	g.log.Info("audit: node provisioned", "node", e.NodeID, "actor", e.Actor, "detail", e.Reason,
		"labels", entry.Labels, "authenticated", entry.Authenticated, "audit_seq", entry.Seq)
}

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
