package adminhttp

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"edgeota/gateway/admin"
	"edgeota/gateway/internal/store"
	"edgeota/protocol/cohort"
)

// getNodes answers GET /v1/nodes: a page of the registry, filtered on the
// gateway's side.
func (s *server) getNodes(w http.ResponseWriter, r *http.Request) {
	q, err := admin.ParseNodeQuery(r.URL.Query())
	if err != nil {
		writeErr(w, http.StatusBadRequest, "query", err)
		return
	}
	match, err := s.nodeFilter(q)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "store", err)
		return
	}
	s.Gateway.FlushActivity() // the registry as of now, not as of the last second
	p, err := s.Store.NodePage(store.NodeQuery{Match: match, After: q.After, Limit: admin.PageLimit(q.Limit)})
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "store", err)
		return
	}
	out := admin.NodePage{Nodes: make([]admin.Node, 0, len(p.Nodes)), Next: p.Next, Total: p.Total}
	for _, n := range p.Nodes {
		out.Nodes = append(out.Nodes, s.nodeOf(n))
	}
	writeJSON(w, http.StatusOK, out)
}

// nodeFilter is the predicate of q's filters; nil when q has none.
func (s *server) nodeFilter(q admin.NodeQuery) (func(*store.Node) bool, error) {
	var keep []func(*store.Node) bool
	if len(q.Labels) > 0 {
		keep = append(keep, func(n *store.Node) bool {
			for k, v := range q.Labels {
				if got, ok := n.Labels[k]; !ok || got != v {
					return false
				}
			}
			return true
		})
	}
	if q.Cohort != "" {
		e, err := cohort.Parse(q.Cohort) // ParseNodeQuery parsed it once already
		if err != nil {
			return nil, err
		}
		keep = append(keep, func(n *store.Node) bool { return e.Match(n.Labels) })
	}
	if q.Model != "" {
		m, err := s.modelMatch(q.Model)
		if err != nil {
			return nil, err
		}
		keep = append(keep, m)
	}
	if q.State != "" {
		keep = append(keep, func(n *store.Node) bool { return n.LastState.String() == q.State })
	}
	if len(keep) == 0 {
		return nil, nil
	}
	return func(n *store.Node) bool {
		for _, k := range keep {
			if !k(n) {
				return false
			}
		}
		return true
	}, nil
}

// modelMatch keeps the nodes whose running image's digest starts with
// model (8 to 64 hex digits, any case), or whose running image is a
// cached model of version model.
func (s *server) modelMatch(model string) (func(*store.Node) bool, error) {
	ms, err := s.Store.Models()
	if err != nil {
		return nil, fmt.Errorf("models: %w", err)
	}
	versions := map[string]string{} // digest hex -> version
	for _, m := range ms {
		versions[m.Digest.String()] = m.Manifest.Version
	}
	prefix := strings.ToLower(model)
	if len(prefix) < 8 || len(prefix) > 64 || strings.Trim(prefix, "0123456789abcdef") != "" {
		prefix = ""
	}
	return func(n *store.Node) bool {
		d := n.RunningDigest.String()
		return (prefix != "" && strings.HasPrefix(d, prefix)) || (versions[d] == model)
	}, nil
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
