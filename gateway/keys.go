package gateway

import (
	"bytes"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"edgeota/gateway/admin"
	"edgeota/gateway/internal/store"
)

// ErrGatewayRunning is returned by [ImportKeys], [Backup] and [Restore]
// when a running gateway holds its database: import and back up through
// its admin API instead, stop it to restore.
var ErrGatewayRunning = errors.New("the gateway is running and holds its database")

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
// an array of {"node_id": ..., "psk": ...} (admin.Key, as PUT /v1/keys takes) (chosen by a .json name or a
// leading '['). Every line is checked before anything is returned; a node
// named twice is an error.
func ParseKeys(name string, data []byte) (map[string][]byte, error) {
	var entries []admin.Key
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
			entries = append(entries, admin.Key{NodeID: strings.TrimSpace(rec[0]), PSK: rec[1]})
		}
	}
	return keysOf(name, entries)
}

func keysOf(name string, entries []admin.Key) (map[string][]byte, error) {
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
	db, err := store.Open(filepath.Join(dataDir, DatabaseFile), store.WithLockTimeout(time.Second))
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("gateway: %w: import through its admin API", ErrGatewayRunning)
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
