package adminhttp

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"edgeota/gateway/admin"
	"edgeota/gateway/internal/rollout"
	"edgeota/protocol"
)

func (s *server) postDeployment(w http.ResponseWriter, r *http.Request) {
	signed, err := io.ReadAll(io.LimitReader(r.Body, protocol.MaxDocSize+1))
	if err != nil || len(signed) > protocol.MaxDocSize {
		writeErr(w, http.StatusRequestEntityTooLarge, "size", fmt.Errorf("deployment over %d bytes", protocol.MaxDocSize))
		return
	}
	id, err := s.Gateway.ApplyDeployment(signed)
	if errors.Is(err, ErrRefused) {
		writeErr(w, http.StatusUnprocessableEntity, "refused", err)
		return
	}
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "rollout", err)
		return
	}
	st, _ := s.Rollouts.Get(id, s.Clock())
	writeJSON(w, http.StatusCreated, Rollout(st))
}

func (s *server) getRollouts(w http.ResponseWriter, _ *http.Request) {
	sts := s.Rollouts.List(s.Clock())
	out := make([]admin.Rollout, 0, len(sts))
	for _, st := range sts {
		out = append(out, Rollout(st))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) getRollout(w http.ResponseWriter, r *http.Request) {
	st, err := s.Rollouts.Get(r.PathValue("id"), s.Clock())
	if err != nil {
		writeErr(w, http.StatusNotFound, "not found", err)
		return
	}
	writeJSON(w, http.StatusOK, Rollout(st))
}

// getRolloutNodes answers GET /v1/rollouts/{id}/nodes: a page of the
// rollout's nodes.
func (s *server) getRolloutNodes(w http.ResponseWriter, r *http.Request) {
	q, err := admin.ParseRolloutNodeQuery(r.URL.Query())
	if err != nil {
		writeErr(w, http.StatusBadRequest, "query", err)
		return
	}
	p, err := s.Rollouts.Nodes(r.PathValue("id"), rollout.NodeQuery{State: rollout.NodeState(q.State), Wave: q.Wave,
		After: q.After, Limit: admin.PageLimit(q.Limit)}, s.Clock())
	if errors.Is(err, rollout.ErrUnknown) {
		writeErr(w, http.StatusNotFound, "not found", err)
		return
	}
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "rollout", err)
		return
	}
	out := admin.RolloutNodePage{Nodes: make([]admin.RolloutNode, len(p.Nodes)), Next: p.Next, Total: p.Total}
	for i, n := range p.Nodes {
		out.Nodes[i] = rolloutNodeOf(n)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) postRolloutAction(w http.ResponseWriter, r *http.Request) {
	id, now := r.PathValue("id"), s.Clock()
	var err error
	switch admin.Action(r.PathValue("action")) {
	case admin.Pause:
		err = s.Rollouts.Pause(id, now)
	case admin.Resume:
		err = s.Rollouts.Resume(id, now)
	case admin.Abort:
		err = s.Rollouts.Abort(id, now)
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
		st, _ := s.Rollouts.Get(id, now)
		writeJSON(w, http.StatusOK, Rollout(st))
	}
}
