// Package audit records the provisioning commits nodes report (a status
// event in state provisioned, docs/protocol.md section 4) in the gateway's
// audit log: who provisioned which node, with what labels and component,
// and when. The status event itself goes upstream with the others.
package audit

import (
	"errors"
	"log/slog"
	"net/netip"
	"time"

	"edgeota/gateway/internal/store"
	"edgeota/protocol"
)

// Store holds the audit log and the node registry: the gateway's database.
type Store interface {
	Node(id string) (*store.Node, error)
	AddAudit(e store.AuditEntry) (store.AuditEntry, error)
}

// Log appends to the audit log.
type Log struct {
	st  Store
	log *slog.Logger
}

// New returns a Log appending to st; log receives its records (nil:
// discard).
func New(st Store, log *slog.Logger) *Log {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Log{st: st, log: log}
}

// Provisioned records the provisioning event e, which came from the
// endpoint from at now; authenticated tells whether its DTLS session
// proved the node's identity.
func (l *Log) Provisioned(e *protocol.StatusEvent, from netip.AddrPort, authenticated bool, now time.Time) {
	entry := store.AuditEntry{At: now.UTC(), Node: e.NodeID, Actor: e.Actor, Detail: e.Reason,
		From: from.String(), Authenticated: authenticated, BootCount: e.BootCount, Number: e.Number}
	if n, err := l.st.Node(e.NodeID); err == nil {
		entry.Labels, entry.Component = n.Labels, n.Component
	}
	entry, err := l.st.AddAudit(entry)
	if errors.Is(err, store.ErrAuditDuplicate) {
		l.log.Info("audit: provisioning event posted again; recorded once", "node", e.NodeID, "boot_count", e.BootCount, "number", e.Number)
		return
	}
	if err != nil {
		l.log.Error("audit: provisioning", "node", e.NodeID, "err", err)
		return
	}
	l.log.Info("audit: node provisioned", "node", e.NodeID, "actor", e.Actor, "detail", e.Reason,
		"labels", entry.Labels, "authenticated", entry.Authenticated, "audit_seq", entry.Seq)
}
