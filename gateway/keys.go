package gateway

import (
	"bytes"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"edgeota/gateway/internal/store"
)

// ErrGatewayRunning is returned by ImportKeys when the gateway holds its
// database: import through its admin API instead.
var ErrGatewayRunning = errors.New("the gateway is running and holds its database")

// KeyEntry is one node's DTLS pre-shared key, as imported.
type KeyEntry struct {
	NodeID string `json:"node_id"`
	// PSK is the key: its literal string, or "hex:" followed by hex.
	PSK string `json:"psk"`
}

// ParsePSK decodes a key as written in a key file or a --psk-file: the
// literal string, or "hex:" followed by hex digits. Surrounding
// whitespace is not part of the key.
func ParsePSK(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if h, ok := strings.CutPrefix(s, "hex:"); ok {
		k, err := hex.DecodeString(h)
		if err != nil {
			return nil, fmt.Errorf("key %q: bad hex: %w", "hex:…", err)
		}
		return k, nil
	}
	return []byte(s), nil
}

// ParseKeys reads a key file: CSV with the header `node_id,psk`, or JSON,
// an array of {"node_id": ..., "psk": ...} (chosen by a .json name or a
// leading '['). Every line is checked before anything is returned; a node
// named twice is an error.
func ParseKeys(name string, data []byte) (map[string][]byte, error) {
	var entries []KeyEntry
	trimmed := bytes.TrimSpace(data)
	if strings.EqualFold(filepath.Ext(name), ".json") || bytes.HasPrefix(trimmed, []byte("[")) {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&entries); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	} else {
		r := csv.NewReader(bytes.NewReader(data))
		r.FieldsPerRecord = 2
		r.TrimLeadingSpace = true
		r.Comment = '#'
		header, err := r.Read()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if strings.TrimSpace(header[0]) != "node_id" || strings.TrimSpace(header[1]) != "psk" {
			return nil, fmt.Errorf("%s: header %q: want node_id,psk", name, strings.Join(header, ","))
		}
		for {
			rec, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			entries = append(entries, KeyEntry{NodeID: strings.TrimSpace(rec[0]), PSK: rec[1]})
		}
	}
	return keysOf(name, entries)
}

func keysOf(name string, entries []KeyEntry) (map[string][]byte, error) {
	out := make(map[string][]byte, len(entries))
	for i, e := range entries {
		k, err := ParsePSK(e.PSK)
		if err != nil {
			return nil, fmt.Errorf("%s: entry %d (%s): %w", name, i+1, e.NodeID, err)
		}
		if err := store.ValidatePSK(e.NodeID, k); err != nil {
			return nil, fmt.Errorf("%s: entry %d: %w", name, i+1, err)
		}
		if _, dup := out[e.NodeID]; dup {
			return nil, fmt.Errorf("%s: node %s named twice", name, e.NodeID)
		}
		out[e.NodeID] = k
	}
	return out, nil
}

// ImportKeys stores nodes' DTLS keys in the database of a gateway that is
// not running (ErrGatewayRunning otherwise), all or nothing, and returns
// the ids whose key was new or changed.
func ImportKeys(dataDir string, keys map[string][]byte) ([]string, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	db, err := store.Open(filepath.Join(dataDir, "gateway.db"), store.WithLockTimeout(time.Second))
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("gateway: %w: import through its admin API (--admin)", ErrGatewayRunning)
	}
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	defer db.Close()
	changed, err := db.PutPSKs(keys)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return changed, nil
}

// putKeys answers PUT /v1/keys: a JSON array of {"node_id","psk"}; the
// sessions of nodes whose key changed are closed.
func (g *Gateway) putKeys(w http.ResponseWriter, r *http.Request) {
	var entries []KeyEntry
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&entries); err != nil {
		writeErr(w, http.StatusBadRequest, "malformed", err)
		return
	}
	keys, err := keysOf("request", entries)
	if err != nil {
		writeErr(w, http.StatusBadRequest, "invalid", err)
		return
	}
	changed, err := g.store.PutPSKs(keys)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "store", err)
		return
	}
	for _, n := range changed {
		g.coap.DropSession(n)
	}
	g.log.Info("node keys imported", "count", len(keys), "changed", len(changed))
	writeJSON(w, http.StatusOK, map[string]any{"imported": len(keys), "changed": nonNil(changed)})
}

// getKeys answers GET /v1/keys: the node ids that have a key, never the
// keys.
func (g *Gateway) getKeys(w http.ResponseWriter, _ *http.Request) {
	ids, err := g.store.PSKNodes()
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "store", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"nodes": nonNil(ids)})
}

// deleteKey answers DELETE /v1/keys/{node}: the node can no longer open a
// session, and its current one is closed.
func (g *Gateway) deleteKey(w http.ResponseWriter, r *http.Request) {
	node := r.PathValue("node")
	if err := g.store.DeletePSK(node); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, store.ErrNotFound) {
			code = http.StatusNotFound
		}
		writeErr(w, code, "not_found", err)
		return
	}
	g.coap.DropSession(node)
	g.log.Info("node key deleted", "node", node)
	w.WriteHeader(http.StatusNoContent)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
