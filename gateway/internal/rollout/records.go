package rollout

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"edgeota/gateway/internal/store"
	"edgeota/protocol"
)

// A rollout is saved as records in its own bucket of the gateway's
// database (format 2, [StateFormat]), so that a node's event writes that
// node's record and not the whole rollout:
//
//	s                       the summary: JSON of [Rollout] (deployment,
//	                        manifest, phase, wave), written when the phase
//	                        or the wave changes
//	n/<key><node id>        a node: CBOR of nodeRecord; <key> is its wave
//	                        key (8 bytes, big-endian), so that nodes that
//	                        change together sit in the same pages
//	d/<seq>                 a decision: JSON of [Decision]; seq (8 bytes,
//	                        big-endian) counts from 1, and only the latest
//	                        maxDecisions are kept
//	p/<sha-256>             a signed manifest nodes ran before, kept once
//	                        however many nodes ran it
const (
	keySummary     = "s"
	prefixNode     = "n/"
	prefixDecision = "d/"
	prefixPrev     = "p/"
)

// nodeRecord is a node's record: [Node] with times as Unix nanoseconds and
// its previous manifest by hash.
type nodeRecord struct {
	ID          string           `cbor:"1,keyasint"`
	Key         uint64           `cbor:"2,keyasint"`
	Wave        int              `cbor:"3,keyasint"`
	State       NodeState        `cbor:"4,keyasint"`
	Prev        []byte           `cbor:"5,keyasint,omitempty"` // SHA-256 of the signed manifest
	PrevSeq     uint64           `cbor:"6,keyasint,omitempty"`
	PrevDigest  []byte           `cbor:"7,keyasint,omitempty"`
	Since       int64            `cbor:"8,keyasint,omitempty"`
	AssignedAt  int64            `cbor:"9,keyasint,omitempty"`
	ActivatedAt int64            `cbor:"10,keyasint,omitempty"`
	ConfirmedAt int64            `cbor:"11,keyasint,omitempty"`
	Reports     uint64           `cbor:"12,keyasint,omitempty"`
	Inferences  uint64           `cbor:"13,keyasint,omitempty"`
	Errors      uint64           `cbor:"14,keyasint,omitempty"`
	MaxP99      uint64           `cbor:"15,keyasint,omitempty"`
	BaselineP99 uint64           `cbor:"16,keyasint,omitempty"`
	BaselineAt  int64            `cbor:"17,keyasint,omitempty"`
	Metrics     map[string]int64 `cbor:"18,keyasint,omitempty"`
	BootLoop    bool             `cbor:"19,keyasint,omitempty"`
	Returned    bool             `cbor:"20,keyasint,omitempty"`
	Failed      bool             `cbor:"21,keyasint,omitempty"`
	Reason      string           `cbor:"22,keyasint,omitempty"`
	// Transfer, Fetched and Fallback are absent from records saved before
	// delta updates (v1.4) and for nodes that reported no transfer.
	Transfer string `cbor:"23,keyasint,omitempty"`
	Fetched  uint64 `cbor:"24,keyasint,omitempty"`
	Fallback string `cbor:"25,keyasint,omitempty"`
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func nodeKey(n *Node) string {
	return prefixNode + string(binary.BigEndian.AppendUint64(nil, n.Key)) + n.ID
}

func decisionKey(seq uint64) string {
	return prefixDecision + string(binary.BigEndian.AppendUint64(nil, seq))
}

func (r *Rollout) encodeNode(n *Node) ([]byte, error) {
	rec := nodeRecord{ID: n.ID, Key: n.Key, Wave: n.Wave, State: n.State, PrevSeq: n.PrevSeq, Since: nanos(n.Since),
		AssignedAt: nanos(n.AssignedAt), ActivatedAt: nanos(n.ActivatedAt), ConfirmedAt: nanos(n.ConfirmedAt),
		Reports: n.Reports, Inferences: n.Inferences, Errors: n.Errors, MaxP99: n.MaxP99, BaselineP99: n.BaselineP99,
		BaselineAt: nanos(n.BaselineAt), Metrics: n.Metrics, BootLoop: n.BootLoop, Returned: n.Returned, Failed: n.Failed,
		Reason: n.Reason, Transfer: n.Transfer, Fetched: n.Fetched, Fallback: n.Fallback}
	if n.PrevDigest != (protocol.Digest{}) {
		rec.PrevDigest = n.PrevDigest[:]
	}
	if len(n.Prev) > 0 {
		h := sha256.Sum256(n.Prev)
		rec.Prev = h[:]
	}
	return protocol.EncMode().Marshal(rec)
}

func (r *Rollout) decodeNode(b []byte) (*Node, error) {
	var rec nodeRecord
	if err := protocol.DecMode().Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	n := &Node{ID: rec.ID, Key: rec.Key, Wave: rec.Wave, State: rec.State, PrevSeq: rec.PrevSeq, Since: fromNanos(rec.Since),
		AssignedAt: fromNanos(rec.AssignedAt), ActivatedAt: fromNanos(rec.ActivatedAt), ConfirmedAt: fromNanos(rec.ConfirmedAt),
		Reports: rec.Reports, Inferences: rec.Inferences, Errors: rec.Errors, MaxP99: rec.MaxP99, BaselineP99: rec.BaselineP99,
		BaselineAt: fromNanos(rec.BaselineAt), Metrics: rec.Metrics, BootLoop: rec.BootLoop, Returned: rec.Returned,
		Failed: rec.Failed, Reason: rec.Reason, Transfer: rec.Transfer, Fetched: rec.Fetched, Fallback: rec.Fallback}
	if len(rec.PrevDigest) > 0 {
		if len(rec.PrevDigest) != len(n.PrevDigest) {
			return nil, fmt.Errorf("node %s: previous digest of %d bytes", rec.ID, len(rec.PrevDigest))
		}
		copy(n.PrevDigest[:], rec.PrevDigest)
	}
	if len(rec.Prev) > 0 {
		var h [32]byte
		if copy(h[:], rec.Prev) != len(h) || r.prevs[h] == nil {
			return nil, fmt.Errorf("node %s: previous manifest %x not saved", rec.ID, rec.Prev)
		}
		n.Prev = r.prevs[h]
	}
	return n, nil
}

// setPrev sets the manifest n ran before, shared with the other nodes
// that ran the same.
func (r *Rollout) setPrev(n *Node, prev []byte) {
	if len(prev) == 0 {
		return
	}
	h := sha256.Sum256(prev)
	if p, ok := r.prevs[h]; ok {
		n.Prev = p
		return
	}
	p := slices.Clone(prev)
	r.prevs[h] = p
	r.newPrevs = append(r.newPrevs, h)
	n.Prev = p
}

// summaryKey is what rewrites the summary record when it changes.
type summaryKey struct {
	phase     Phase
	wave      int
	waveSince time.Time
}

func (r *Rollout) summaryKey() summaryKey { return summaryKey{r.Phase, r.Wave, r.WaveSince} }

// stage returns the records that changed since the last stage, and forgets
// the changes; nil when nothing changed.
func (r *Rollout) stage() (map[string][]byte, error) {
	if len(r.dirty) == 0 && r.decided == 0 && len(r.newPrevs) == 0 && r.summaryKey() == r.written && !r.rewriteAll {
		return nil, nil
	}
	out := map[string][]byte{}
	if r.rewriteAll {
		out[store.LegacyRolloutKey] = nil
		for _, n := range r.order {
			r.dirty[n] = struct{}{}
		}
		r.decided = len(r.Decisions)
		r.newPrevs = slices.Collect(maps.Keys(r.prevs))
	}
	if r.summaryKey() != r.written || r.rewriteAll {
		r.Format = StateFormat
		b, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		out[keySummary] = b
	}
	for _, h := range r.newPrevs {
		out[prefixPrev+string(h[:])] = r.prevs[h]
	}
	for n := range r.dirty {
		switch cur := r.Nodes[n.ID]; {
		case cur == n:
			b, err := r.encodeNode(n)
			if err != nil {
				return nil, fmt.Errorf("rollout %s: node %s: %w", r.ID, n.ID, err)
			}
			out[nodeKey(n)] = b
		case cur == nil:
			out[nodeKey(n)] = nil
		}
	}
	k := min(r.decided, len(r.Decisions))
	for i := 0; i < r.decided; i++ {
		seq := r.DecisionSeq - uint64(i)
		if seq > maxDecisions {
			out[decisionKey(seq-maxDecisions)] = nil
		}
	}
	for i, d := range r.Decisions[len(r.Decisions)-k:] {
		b, err := json.Marshal(d)
		if err != nil {
			return nil, err
		}
		out[decisionKey(r.DecisionSeq-uint64(k-1-i))] = b
	}
	clear(r.dirty)
	r.decided, r.newPrevs, r.written, r.rewriteAll = 0, nil, r.summaryKey(), false
	return out, nil
}

// legacyState is format 1: one JSON document of the whole rollout.
type legacyState struct {
	*Rollout
	Nodes     map[string]*Node `json:"nodes"`
	Decisions []Decision       `json:"decisions"`
}

// restore rebuilds a rollout from its records; the engine then verifies
// its deployment and indexes it.
func restore(rec store.RolloutRecords) (*Rollout, error) {
	r := &Rollout{Nodes: map[string]*Node{}, prevs: map[[32]byte][]byte{}}
	if rec.Legacy != nil {
		l := legacyState{Rollout: r}
		if err := json.Unmarshal(rec.Legacy, &l); err != nil {
			return nil, fmt.Errorf("rollout: saved state of %s: %w", rec.ID, err)
		}
		if err := r.checkFormat(); err != nil {
			return nil, err
		}
		for id, n := range l.Nodes {
			if n == nil {
				return nil, fmt.Errorf("rollout: saved state of %s: node %s is null", rec.ID, id)
			}
			n.ID = id
			prev := n.Prev
			n.Prev = nil
			r.setPrev(n, prev)
			r.Nodes[id] = n
		}
		r.Decisions = l.Decisions
		r.DecisionSeq = uint64(len(r.Decisions))
		r.rewriteAll = true
		return r, nil
	}
	s, ok := rec.Records[keySummary]
	if !ok {
		return nil, fmt.Errorf("rollout: saved state of %s has no summary", rec.ID)
	}
	if err := json.Unmarshal(s, r); err != nil {
		return nil, fmt.Errorf("rollout: saved state of %s: %w", rec.ID, err)
	}
	if err := r.checkFormat(); err != nil {
		return nil, err
	}
	for k, v := range rec.Records {
		if h, ok := strings.CutPrefix(k, prefixPrev); ok && len(h) == 32 {
			r.prevs[[32]byte([]byte(h))] = v
		}
	}
	for _, k := range slices.Sorted(maps.Keys(rec.Records)) {
		v := rec.Records[k]
		switch {
		case strings.HasPrefix(k, prefixNode):
			n, err := r.decodeNode(v)
			if err != nil {
				return nil, fmt.Errorf("rollout: saved state of %s: %w", rec.ID, err)
			}
			r.Nodes[n.ID] = n
		case strings.HasPrefix(k, prefixDecision) && len(k) == len(prefixDecision)+8:
			var d Decision
			if err := json.Unmarshal(v, &d); err != nil {
				return nil, fmt.Errorf("rollout: saved state of %s: decision: %w", rec.ID, err)
			}
			r.Decisions = append(r.Decisions, d)
			r.DecisionSeq = binary.BigEndian.Uint64([]byte(k[len(prefixDecision):]))
			if d.At.After(r.Updated) {
				r.Updated = d.At
			}
		}
	}
	return r, nil
}

func (r *Rollout) checkFormat() error {
	if r.Format > StateFormat {
		return fmt.Errorf("%w: rollout %s is saved in format %d, this edgeota reads formats up to %d: run the newer edgeota that saved it",
			ErrFormatTooNew, r.ID, r.Format, StateFormat)
	}
	return nil
}
