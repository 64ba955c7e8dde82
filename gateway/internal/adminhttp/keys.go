package adminhttp

import (
	"encoding/json"
	"errors"
	"net/http"

	"edgeota/gateway/admin"
	"edgeota/gateway/internal/store"
)

// putKeys answers PUT /v1/keys: a JSON array of {"node_id","psk"}; the
// sessions of nodes whose key changed are closed.
func (s *server) putKeys(w http.ResponseWriter, r *http.Request) {
	var entries []admin.Key
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&entries); err != nil {
		writeErr(w, http.StatusBadRequest, "malformed", err)
		return
	}
	keys, err := s.Gateway.KeysOf(entries)
	if err != nil {
		writeErr(w, http.StatusBadRequest, "invalid", err)
		return
	}
	changed, err := s.Gateway.PutKeys(keys)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "store", err)
		return
	}
	s.log.Info("node keys imported", "count", len(keys), "changed", len(changed))
	writeJSON(w, http.StatusOK, admin.KeysResult{Imported: len(keys), Changed: nonNil(changed)})
}

// getKeys answers GET /v1/keys: the node ids that have a key, never the
// keys.
func (s *server) getKeys(w http.ResponseWriter, _ *http.Request) {
	ids, err := s.Store.PSKNodes()
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "store", err)
		return
	}
	writeJSON(w, http.StatusOK, admin.KeyList{Nodes: nonNil(ids)})
}

// deleteKey answers DELETE /v1/keys/{node}: the node can no longer open a
// session, and its current one is closed.
func (s *server) deleteKey(w http.ResponseWriter, r *http.Request) {
	node := r.PathValue("node")
	if err := s.Gateway.DeleteKey(node); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, store.ErrNotFound) {
			code = http.StatusNotFound
		}
		writeErr(w, code, "not_found", err)
		return
	}
	s.log.Info("node key deleted", "node", node)
	w.WriteHeader(http.StatusNoContent)
}
