package rollout

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// StatusView is a rollout's status for operators: the admin API, `edgeota
// rollout status` and the retained JSON on the rollout topic. Its size
// does not grow with the rollout's: per-node detail is paged by
// [Engine.Nodes].
type StatusView struct {
	ID        string         `json:"id"`
	Seq       uint64         `json:"seq"`
	Phase     Phase          `json:"phase"`
	Component string         `json:"component"`
	Version   string         `json:"version"`
	ManSeq    uint64         `json:"manifest_seq"`
	Digest    string         `json:"digest"`
	Cohort    string         `json:"cohort"`
	Wave      int            `json:"wave"` // 1-based current wave
	Waves     []WaveView     `json:"waves"`
	Gates     []GateView     `json:"gates"`
	Decisions []Decision     `json:"decisions"`
	Started   time.Time      `json:"started"`
	Updated   time.Time      `json:"updated"`
	Totals    map[string]int `json:"totals"`
	// Ineligible counts the nodes of the cohort that do not meet the
	// manifest's requires (agent version, runtime): never assigned, never
	// failed, outside the waves and gates.
	Ineligible int `json:"ineligible"`
	// Transfers counts how the nodes fetched this manifest, as their
	// status events said (status key 64, docs/protocol.md "Delta updates
	// (v1.4)").
	Transfers TransfersView `json:"transfers"`
}

// TransfersView counts the transfers of a rollout's nodes.
type TransfersView struct {
	// Delta and Full count the nodes whose latest transfer was a delta or
	// the full image; Fallback those of them that abandoned a delta for
	// the full image.
	Delta    int `json:"delta"`
	Full     int `json:"full"`
	Fallback int `json:"fallback"`
	// FetchedBytes sums the bytes the nodes fetched for this manifest.
	FetchedBytes uint64 `json:"fetched_bytes"`
}

// WaveView counts the nodes of one wave by state.
type WaveView struct {
	Wave        int    `json:"wave"`
	Percent     string `json:"percent"`
	BakeSeconds uint64 `json:"bake_seconds"`
	Targeted    int    `json:"targeted"`
	Waiting     int    `json:"waiting"`
	Downloading int    `json:"downloading"`
	Trial       int    `json:"trial"`
	Confirmed   int    `json:"confirmed"`
	Succeeded   int    `json:"succeeded"`
	Reverted    int    `json:"reverted"`
	Failed      int    `json:"failed"`
	TimedOut    int    `json:"timed_out"`
	Offline     int    `json:"offline"`
	RolledBack  int    `json:"rolled_back"`
}

// GateView is one gate's value against its bound.
type GateView struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Bound string `json:"bound"`
	OK    bool   `json:"ok"`
}

// NodeView is one node's state in a rollout.
type NodeView struct {
	ID     string    `json:"id"`
	Wave   int       `json:"wave"` // 1-based; 0 when not yet placed
	State  NodeState `json:"state"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
	// Transfer is "full" or "delta", as the node's status events about
	// this manifest said ("" before any said); Fetched the bytes it
	// fetched; Fallback why it abandoned a delta.
	Transfer string `json:"transfer,omitempty"`
	Fetched  uint64 `json:"fetched,omitempty"`
	Fallback string `json:"fallback,omitempty"`
}

func (r *Rollout) view(now time.Time, offlineAfter time.Duration) StatusView {
	v := StatusView{ID: r.ID, Seq: r.Seq, Phase: r.Phase, Component: r.Component, Version: r.Version, ManSeq: r.ManSeq,
		Digest: r.Digest.String(), Cohort: r.d.Cohort, Wave: r.Wave + 1, Started: r.Started, Updated: r.Updated,
		Totals: map[string]int{}}
	v.Waves = make([]WaveView, len(r.d.Waves))
	for i, w := range r.d.Waves {
		v.Waves[i] = WaveView{Wave: i + 1, Percent: percent(w.BasisPoints), BakeSeconds: w.BakeSeconds}
	}
	failed, loops := 0, 0
	var worstErr, worstP99 string
	var worstErrV float64
	var worstP99V uint64
	for _, n := range r.order {
		v.Totals[string(n.State)]++
		switch n.Transfer {
		case "delta":
			v.Transfers.Delta++
		case "full":
			v.Transfers.Full++
		}
		if n.Fallback != "" {
			v.Transfers.Fallback++
		}
		v.Transfers.FetchedBytes += n.Fetched
		if n.State == NodeIneligible {
			v.Ineligible++
		}
		if n.Failed {
			failed++
		}
		if n.BootLoop {
			loops++
		}
		if n.Inferences > 0 {
			if e := float64(n.Errors) / float64(n.Inferences); e >= worstErrV {
				worstErrV, worstErr = e, n.ID
			}
		}
		if n.MaxP99 >= worstP99V {
			worstP99V, worstP99 = n.MaxP99, n.ID
		}
		if n.Wave < 0 {
			continue
		}
		w := &v.Waves[n.Wave]
		w.Targeted++
		if !n.State.done() && now.Sub(n.LastSeen) > offlineAfter {
			w.Offline++
		}
		switch n.State {
		case NodeWaiting:
			w.Waiting++
		case NodeAssigned:
			w.Downloading++
		case NodeTrial:
			w.Trial++
		case NodeConfirmed:
			w.Confirmed++
		case NodeSucceeded:
			w.Succeeded++
		case NodeFailed:
			if len(n.Reason) >= 8 && (n.Reason[:8] == "reverted" || n.Reason[:8] == "fell bac") {
				w.Reverted++
			} else {
				w.Failed++
			}
		case NodeTimedOut:
			w.TimedOut++
		case NodeRolledBack:
			w.RolledBack++
			if n.Failed && strings.HasPrefix(n.Reason, "runs seq") {
				w.Reverted++ // it reverted first, then was put back
			}
		}
	}
	g := r.d.Gates
	add := func(name, value, bound string, ok bool) {
		v.Gates = append(v.Gates, GateView{Name: name, Value: value, Bound: bound, OK: ok})
	}
	if g.MaxFailed != nil {
		add("max_failed", fmt.Sprint(failed), fmt.Sprint(*g.MaxFailed), uint64(failed) <= *g.MaxFailed)
	}
	if g.MaxBootLoops != nil {
		add("max_boot_loops", fmt.Sprint(loops), fmt.Sprint(*g.MaxBootLoops), uint64(loops) <= *g.MaxBootLoops)
	}
	if g.MaxErrorPermille != nil {
		add("max_error_rate", fmt.Sprintf("%.3f (worst node %s)", worstErrV, worstErr), permille(*g.MaxErrorPermille), worstErrV*1000 <= float64(*g.MaxErrorPermille))
	}
	if g.MaxLatencyP99Micros != nil {
		add("max_latency_p99", fmt.Sprintf("%dus (worst node %s)", worstP99V, worstP99), fmt.Sprintf("%dus", *g.MaxLatencyP99Micros), worstP99V <= *g.MaxLatencyP99Micros)
	}
	if g.MaxLatencyRegressionPermille != nil {
		add("max_latency_regression", "per node", permille(*g.MaxLatencyRegressionPermille), true)
	}
	if g.MinReports != nil {
		add("min_reports", "per node", fmt.Sprint(*g.MinReports), true)
	}
	v.Decisions = slices.Clone(r.Decisions[max(0, len(r.Decisions)-30):])
	return v
}

// List returns the status of every rollout.
func (e *Engine) List(now time.Time) []StatusView {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []StatusView
	for _, r := range e.sorted() {
		out = append(out, r.view(now, e.offline))
	}
	return out
}

// Get returns the status of one rollout.
func (e *Engine) Get(id string, now time.Time) (StatusView, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.rollouts[id]
	if !ok {
		return StatusView{}, ErrUnknown
	}
	return r.view(now, e.offline), nil
}
