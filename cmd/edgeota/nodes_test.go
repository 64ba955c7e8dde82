package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"edgeota/gateway/admin"
	"edgeota/test/golden"
)

// fakeAdmin is an admin API of five nodes and one rollout, "kws-1.4",
// that answers pages of at most two nodes whatever the limit asked (a
// gateway may answer fewer than asked), and records the query of each
// request.
type fakeAdmin struct {
	mu      sync.Mutex
	queries []string
}

var fakeSeen = time.Date(2026, 12, 7, 10, 30, 0, 0, time.UTC)

func fakeNodes() []admin.Node {
	var ns []admin.Node
	for i := range 5 {
		n := admin.Node{ID: fmt.Sprintf("node-%d", i), Labels: map[string]string{"site": []string{"north", "south"}[i%2]},
			RunningSeq: uint64(41 + i%2), ActiveSlot: "B", ActiveState: "confirmed", EpochFloor: 1, LastState: "confirmed",
			LastSeen: fakeSeen.Add(time.Duration(i) * time.Minute), RunningDigest: strings.Repeat("ab", 32)}
		if i == 3 {
			n.ActiveState, n.LastState, n.Assigned, n.AssignedSeq = "trial", "trial", strings.Repeat("cd", 32), 42
		}
		switch i {
		case 1:
			n.DeltaFormats = []uint64{1}
			n.Transfer = &admin.Transfer{Seq: 42, Digest: strings.Repeat("cd", 32), State: "verified", Kind: "delta",
				Delta: strings.Repeat("de", 32), FetchedBytes: 6144}
		case 3:
			n.DeltaFormats = []uint64{1}
			n.Transfer = &admin.Transfer{Seq: 42, Digest: strings.Repeat("cd", 32), State: "downloading", Kind: "full",
				FetchedBytes: 70656, Fallback: "patch refused: base digest differs"}
		case 4:
			n.Transfer = &admin.Transfer{Seq: 41, Digest: strings.Repeat("ab", 32), State: "verified", Kind: "full", FetchedBytes: 65536}
		}
		ns = append(ns, n)
	}
	return ns
}

func fakeRolloutNodes() []admin.RolloutNode {
	states := []admin.NodeState{admin.NodeSucceeded, admin.NodeFailed, admin.NodeAssigned, admin.NodeWaiting, admin.NodeSucceeded}
	var ns []admin.RolloutNode
	for i, st := range states {
		n := admin.RolloutNode{ID: fmt.Sprintf("node-%d", i), Wave: 1 + i/2, State: st, Since: fakeSeen.Add(time.Duration(i) * time.Second)}
		switch st {
		case admin.NodeFailed:
			n.Reason = "reverted: probation errors 31 per mille over 20"
		case admin.NodeWaiting:
			n.Wave, n.Since = 0, time.Time{}
		}
		switch i {
		case 0:
			n.Transfer, n.FetchedBytes = "delta", 6144
		case 1:
			n.Transfer, n.FetchedBytes, n.Fallback = "full", 70656, "patch refused: base digest differs"
		case 4:
			n.Transfer, n.FetchedBytes = "full", 65536
		}
		ns = append(ns, n)
	}
	return ns
}

func fakeRollout() admin.Rollout {
	return admin.Rollout{ID: "kws-1.4", Seq: 3, Phase: admin.PhaseRunning, Component: "kws-model", Version: "1.4.0", ManifestSeq: 42,
		Digest: strings.Repeat("cd", 32), Cohort: "site:north OR site:south", Wave: 2,
		Waves: []admin.Wave{{Wave: 1, Percent: "40", BakeSeconds: 600, Targeted: 2, Succeeded: 1, Failed: 1},
			{Wave: 2, Percent: "100", BakeSeconds: 0, Targeted: 2, Downloading: 1, Succeeded: 1}},
		Gates:     []admin.Gate{{Name: "max_failed", Value: "1", Bound: "2", OK: true}},
		Decisions: []admin.Decision{{At: fakeSeen, Node: "node-1", What: "failed: reverted"}, {At: fakeSeen.Add(time.Minute), What: "wave 2 started"}},
		Started:   fakeSeen, Updated: fakeSeen.Add(time.Minute), Totals: map[string]int{"succeeded": 2, "failed": 1, "assigned": 1, "waiting": 1},
		Transfers: admin.Transfers{Delta: 1, Full: 2, Fallback: 1, FetchedBytes: 6144 + 70656 + 65536}}
}

// page answers the page after after of ids, two at most.
func page(ids []string, after string) (from, to int, next string) {
	from = 0
	for from < len(ids) && after != "" && ids[from] <= after {
		from++
	}
	to = min(len(ids), from+2)
	if to < len(ids) {
		next = ids[to-1]
	}
	return from, to, next
}

func (f *fakeAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.queries = append(f.queries, r.URL.Path+"?"+r.URL.RawQuery)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	switch r.URL.Path {
	case admin.PathNodes:
		q, err := admin.ParseNodeQuery(r.URL.Query())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ns := fakeNodes()
		ids := make([]string, len(ns))
		for i, n := range ns {
			ids[i] = n.ID
		}
		from, to, next := page(ids, q.After)
		enc.Encode(admin.NodePage{Nodes: ns[from:to], Next: next, Total: len(ns)})
	case admin.RolloutPath("kws-1.4"):
		enc.Encode(fakeRollout())
	case admin.RolloutPath("kws-1.4") + "/nodes":
		q, err := admin.ParseRolloutNodeQuery(r.URL.Query())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ns := fakeRolloutNodes()
		ids := make([]string, len(ns))
		for i, n := range ns {
			ids[i] = n.ID
		}
		from, to, next := page(ids, q.After)
		enc.Encode(admin.RolloutNodePage{Nodes: ns[from:to], Next: next, Total: len(ns)})
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeAdmin) asked() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.queries
	f.queries = nil
	return q
}

// TestNodesAndRolloutStatusOutput: 'nodes' and 'rollout status' against
// a gateway that answers two nodes a page: every page is walked unless
// --limit asks for one, the flags become the query's filters, and the
// tables and JSON read as the golden files under testdata/cli.
func TestNodesAndRolloutStatusOutput(t *testing.T) {
	fa := &fakeAdmin{}
	srv := httptest.NewServer(fa)
	defer srv.Close()
	tests := []struct {
		name   string
		args   []string
		golden string
		asked  []string // the requests, in order
	}{
		{"nodes", []string{"nodes"}, "nodes.txt",
			[]string{"/v1/nodes?limit=1000", "/v1/nodes?after=node-1&limit=1000", "/v1/nodes?after=node-3&limit=1000"}},
		{"nodes json", []string{"nodes", "--json"}, "nodes.json", nil},
		{"nodes filtered", []string{"nodes", "--label", "site=north", "--label", "hw=rev2", "--cohort", "hw:rev2 AND NOT site:lab",
			"--model", "1.4.0", "--state", "failed"}, "",
			[]string{"/v1/nodes?cohort=hw%3Arev2+AND+NOT+site%3Alab&label=hw%3Drev2&label=site%3Dnorth&limit=1000&model=1.4.0&state=failed",
				"/v1/nodes?after=node-1&cohort=hw%3Arev2+AND+NOT+site%3Alab&label=hw%3Drev2&label=site%3Dnorth&limit=1000&model=1.4.0&state=failed",
				"/v1/nodes?after=node-3&cohort=hw%3Arev2+AND+NOT+site%3Alab&label=hw%3Drev2&label=site%3Dnorth&limit=1000&model=1.4.0&state=failed"}},
		{"nodes one page", []string{"nodes", "--limit", "2"}, "nodes-page.txt", []string{"/v1/nodes?limit=2"}},
		{"nodes one page json", []string{"nodes", "--limit", "2", "--after", "node-1", "--json"}, "nodes-page.json", []string{"/v1/nodes?after=node-1&limit=2"}},
		{"nodes last page", []string{"nodes", "--limit", "2", "--after", "node-3"}, "nodes-last-page.txt", nil},
		{"rollout summary", []string{"rollout", "status", "kws-1.4"}, "rollout-status.txt", []string{"/v1/rollouts/kws-1.4?"}},
		{"rollout nodes", []string{"rollout", "status", "kws-1.4", "--nodes"}, "rollout-nodes.txt",
			[]string{"/v1/rollouts/kws-1.4/nodes?limit=1000", "/v1/rollouts/kws-1.4/nodes?after=node-1&limit=1000",
				"/v1/rollouts/kws-1.4/nodes?after=node-3&limit=1000"}},
		{"rollout nodes json", []string{"rollout", "status", "kws-1.4", "--nodes", "--json"}, "rollout-nodes.json", nil},
		{"rollout nodes filtered", []string{"rollout", "status", "kws-1.4", "--nodes", "--state", "failed", "--wave", "2"}, "",
			[]string{"/v1/rollouts/kws-1.4/nodes?limit=1000&state=failed&wave=2", "/v1/rollouts/kws-1.4/nodes?after=node-1&limit=1000&state=failed&wave=2",
				"/v1/rollouts/kws-1.4/nodes?after=node-3&limit=1000&state=failed&wave=2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := mustCLI(t, append(tt.args, "--admin", srv.URL)...)
			if tt.golden != "" {
				golden.Check(t, filepath.Join("testdata", "cli", tt.golden), []byte(out))
			}
			if asked := fa.asked(); tt.asked != nil && !slices.Equal(asked, tt.asked) {
				t.Errorf("requests\n%s\nwant\n%s", strings.Join(asked, "\n"), strings.Join(tt.asked, "\n"))
			}
		})
	}
}

// TestNodesUsageErrors: flags the gateway would refuse are refused before
// any request, as usage errors (exit 2) in the flags' own words.
func TestNodesUsageErrors(t *testing.T) {
	fa := &fakeAdmin{}
	srv := httptest.NewServer(fa)
	defer srv.Close()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown state", []string{"nodes", "--state", "downloadin"}, `--state "downloadin": want one of idle, downloading`},
		{"label without =", []string{"nodes", "--label", "site"}, `--label "site": want KEY=VALUE`},
		{"label twice", []string{"nodes", "--label", "a=1", "--label", "a=2"}, `--label "a" given twice`},
		{"bad cohort", []string{"nodes", "--cohort", "hw:rev2 AND"}, "--cohort: "},
		{"empty model", []string{"nodes", "--model", ""}, `--model "": want a version or 8 to 64 hex digits`},
		{"limit over max", []string{"nodes", "--limit", "1001"}, `--limit "1001": want a page size from 1 to 1000`},
		{"limit zero", []string{"nodes", "--limit", "0"}, "--limit 0: want a page size from 1 to 1000"},
		{"limit not a number", []string{"nodes", "--limit", "ten"}, `invalid argument "ten" for "--limit"`},
		{"after without limit", []string{"nodes", "--after", "node-1"}, "--after needs --limit"},
		{"state without nodes", []string{"rollout", "status", "kws-1.4", "--state", "failed"}, "--state selects nodes: it needs --nodes"},
		{"wave without nodes", []string{"rollout", "status", "kws-1.4", "--wave", "1"}, "--wave selects nodes: it needs --nodes"},
		{"follow with nodes", []string{"rollout", "status", "kws-1.4", "--nodes", "--follow"}, "--follow redraws the summary"},
		{"unknown rollout state", []string{"rollout", "status", "kws-1.4", "--nodes", "--state", "downloading"}, `--state "downloading": want one of waiting, assigned`},
		{"wave zero", []string{"rollout", "status", "kws-1.4", "--nodes", "--wave", "0"}, "--wave 0: want a wave number from 1"},
		{"wave negative", []string{"rollout", "status", "kws-1.4", "--nodes", "--wave", "-2"}, "--wave -2: want a wave number from 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs, code := cli(t, append(tt.args, "--admin", srv.URL)...)
			if code != 2 || !strings.Contains(errs, tt.want) {
				t.Fatalf("exit %d, stderr %q; want 2 saying %q", code, errs, tt.want)
			}
			if asked := fa.asked(); len(asked) != 0 {
				t.Fatalf("asked the gateway %v", asked)
			}
		})
	}
}
