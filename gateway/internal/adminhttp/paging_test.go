package adminhttp_test

import (
	"context"
	"encoding/json"
	"errors"
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
	"edgeota/gateway/internal/adminhttp"
	"edgeota/gateway/internal/rollout"
	"edgeota/gateway/internal/store"
	"edgeota/protocol"
)

// fakeGateway is the part of adminhttp.Gateway the node routes use.
type fakeGateway struct {
	adminhttp.Gateway // nil: the other methods are not called
}

func (fakeGateway) FlushActivity() {}

func (fakeGateway) VerifyManifest([]byte) (*protocol.Manifest, error) {
	return nil, errors.New("no manifests here")
}

// fakeStore is a real store whose cached models are given.
type fakeStore struct {
	*store.DB
	models []*store.Model
}

func (s fakeStore) Models() ([]*store.Model, error) { return s.models, nil }

// fakeRollouts has one rollout, "r1", of the given nodes, and records the
// queries of its node pages.
type fakeRollouts struct {
	adminhttp.Rollouts // nil: only Nodes is called
	nodes              []rollout.NodeView
	mu                 sync.Mutex
	queries            []rollout.NodeQuery
}

func (f *fakeRollouts) Nodes(id string, q rollout.NodeQuery, _ time.Time) (rollout.NodePage, error) {
	f.mu.Lock()
	f.queries = append(f.queries, q)
	f.mu.Unlock()
	if id != "r1" {
		return rollout.NodePage{}, rollout.ErrUnknown
	}
	var match []rollout.NodeView
	for _, n := range f.nodes {
		if (q.State == "" || n.State == q.State) && (q.Wave == 0 || n.Wave == q.Wave) {
			match = append(match, n)
		}
	}
	p := rollout.NodePage{Total: len(match)}
	i := 0
	for i < len(match) && q.After != "" && match[i].ID <= q.After {
		i++
	}
	for ; i < len(match) && len(p.Nodes) < q.Limit; i++ {
		p.Nodes = append(p.Nodes, match[i])
	}
	if i < len(match) {
		p.Next = p.Nodes[len(p.Nodes)-1].ID
	}
	return p, nil
}

// asked returns the queries asked so far and forgets them.
func (f *fakeRollouts) asked() []rollout.NodeQuery {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.queries
	f.queries = nil
	return q
}

// digestOf is the running digest of node i: one of three models.
func digestOf(i int) protocol.Digest { return protocol.Digest{0xab, 0xcd, 0xef, 0x01, byte(i % 3)} }

// serve starts the admin API over a store of n nodes: node-<i> (3
// digits) has label site=north when i is even (south otherwise), hw=rev2
// when i%5 == 0, runs model digestOf(i) (version 1.<i%3>.0), and its last
// status event announced failed when i%4 == 0 (idle otherwise).
func serve(t *testing.T, n int) (*admin.Client, *fakeRollouts) {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "gateway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("node-%03d", i)
			labels := map[string]string{"site": "south"}
			if i%2 == 0 {
				labels["site"] = "north"
			}
			if i%5 == 0 {
				labels["hw"] = "rev2"
			}
			h := &protocol.Hello{NodeID: id, Class: protocol.Class{1}, Labels: labels, Component: "kws", AgentVersion: "1.0.0",
				RunningSeq: uint64(i%3 + 1), RunningDigest: digestOf(i), ActiveSlot: protocol.SlotA, ActiveState: protocol.SlotConfirmed}
			if _, _, err := db.PutHello(h, "10.0.0.1:5683"); err != nil {
				errs <- err
				return
			}
			if i%4 == 0 {
				errs <- db.PutStatus(&protocol.StatusEvent{NodeID: id, State: protocol.StateFailed, Seq: 2, BootCount: 1, Number: 1}, "x")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var models []*store.Model
	for v := range 3 {
		models = append(models, &store.Model{Digest: digestOf(v), Manifest: &protocol.Manifest{Version: fmt.Sprintf("1.%d.0", v)}})
	}
	ro := &fakeRollouts{}
	for i := range n {
		ro.nodes = append(ro.nodes, rollout.NodeView{ID: fmt.Sprintf("node-%03d", i), Wave: i%2 + 1,
			State: []rollout.NodeState{rollout.NodeWaiting, rollout.NodeSucceeded, rollout.NodeFailed}[i%3]})
	}
	srv := httptest.NewServer(adminhttp.Handler(adminhttp.Config{Gateway: fakeGateway{}, Store: fakeStore{db, models},
		Rollouts: ro, Clock: time.Now, Metrics: http.NotFoundHandler()}))
	t.Cleanup(srv.Close)
	c, err := admin.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return c, ro
}

// TestNodesPagedAndFiltered: GET /v1/nodes walked page by page yields
// every node its filters keep once, in id order, with the filtered total
// on every page; the default and the largest page sizes are applied.
func TestNodesPagedAndFiltered(t *testing.T) {
	const n = 120
	c, _ := serve(t, n)
	ctx := context.Background()
	want := func(keep func(i int) bool) []string {
		var ids []string
		for i := range n {
			if keep(i) {
				ids = append(ids, fmt.Sprintf("node-%03d", i))
			}
		}
		return ids
	}
	tests := []struct {
		name string
		q    admin.NodeQuery
		want []string
	}{
		{"every node", admin.NodeQuery{}, want(func(int) bool { return true })},
		{"label", admin.NodeQuery{Labels: map[string]string{"site": "north"}}, want(func(i int) bool { return i%2 == 0 })},
		{"two labels", admin.NodeQuery{Labels: map[string]string{"site": "north", "hw": "rev2"}}, want(func(i int) bool { return i%10 == 0 })},
		{"label absent", admin.NodeQuery{Labels: map[string]string{"hw": ""}}, nil},
		{"cohort", admin.NodeQuery{Cohort: "hw:rev2 AND NOT site:north"}, want(func(i int) bool { return i%5 == 0 && i%2 == 1 })},
		{"model version", admin.NodeQuery{Model: "1.2.0"}, want(func(i int) bool { return i%3 == 2 })},
		{"model digest prefix", admin.NodeQuery{Model: digestOf(1).String()[:10]}, want(func(i int) bool { return i%3 == 1 })},
		{"model full digest, upper case", admin.NodeQuery{Model: strings.ToUpper(digestOf(0).String())}, want(func(i int) bool { return i%3 == 0 })},
		{"model too short a prefix", admin.NodeQuery{Model: "abcdef0"}, nil},
		{"model unknown version", admin.NodeQuery{Model: "9.9.9"}, nil},
		{"state", admin.NodeQuery{State: "failed"}, want(func(i int) bool { return i%4 == 0 })},
		{"state idle", admin.NodeQuery{State: "idle"}, want(func(i int) bool { return i%4 != 0 })},
		{"every filter", admin.NodeQuery{Labels: map[string]string{"site": "north"}, Cohort: "hw:rev2", Model: "1.0.0", State: "failed"},
			want(func(i int) bool { return i%2 == 0 && i%5 == 0 && i%3 == 0 && i%4 == 0 })},
	}
	for _, tt := range tests {
		for _, limit := range []int{0, 7, 1000} {
			t.Run(fmt.Sprintf("%s/limit %d", tt.name, limit), func(t *testing.T) {
				q := tt.q
				q.Limit = limit
				var got []string
				for pages := 0; ; pages++ {
					p, err := c.Nodes(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					if p.Total != len(tt.want) || len(p.Nodes) > admin.PageLimit(limit) || (p.Next != "" && len(p.Nodes) != admin.PageLimit(limit)) {
						t.Fatalf("page after %q: %d nodes, total %d, next %q; want total %d, pages of %d",
							q.After, len(p.Nodes), p.Total, p.Next, len(tt.want), admin.PageLimit(limit))
					}
					for _, n := range p.Nodes {
						got = append(got, n.ID)
					}
					if p.Next == "" || pages > n {
						break
					}
					q.After = p.Next
				}
				if !slices.Equal(got, tt.want) {
					t.Fatalf("walked %v\nwant %v", got, tt.want)
				}
			})
		}
	}
	t.Run("default page size", func(t *testing.T) {
		p, err := c.Nodes(ctx, admin.NodeQuery{})
		if err != nil || len(p.Nodes) != admin.DefaultPageLimit || p.Next != "node-099" || p.Total != n {
			t.Fatalf("%d nodes, next %q, total %d, %v; want %d, node-099, %d", len(p.Nodes), p.Next, p.Total, err, admin.DefaultPageLimit, n)
		}
		if got := p.Nodes[3]; got.ID != "node-003" || got.Labels["site"] != "south" || got.RunningSeq != 1 || got.LastState != "idle" {
			t.Fatalf("node-003 reads %+v", got)
		}
	})
}

// TestRolloutNodesPaged: GET /v1/rollouts/{id}/nodes hands the engine
// the query's filters, cursor and page size (the default when none), and
// answers its page; an unknown rollout is 404.
func TestRolloutNodesPaged(t *testing.T) {
	const n = 250
	c, ro := serve(t, 0)
	for i := range n {
		ro.nodes = append(ro.nodes, rollout.NodeView{ID: fmt.Sprintf("node-%03d", i), Wave: i%2 + 1,
			State: []rollout.NodeState{rollout.NodeWaiting, rollout.NodeSucceeded, rollout.NodeFailed}[i%3], Reason: "r"})
	}
	ctx := context.Background()
	tests := []struct {
		name string
		q    admin.RolloutNodeQuery
		keep func(i int) bool
	}{
		{"every node", admin.RolloutNodeQuery{}, func(int) bool { return true }},
		{"state", admin.RolloutNodeQuery{State: admin.NodeFailed, Limit: 9}, func(i int) bool { return i%3 == 2 }},
		{"wave", admin.RolloutNodeQuery{Wave: 2, Limit: 1000}, func(i int) bool { return i%2 == 1 }},
		{"state and wave", admin.RolloutNodeQuery{State: admin.NodeSucceeded, Wave: 1, Limit: 1}, func(i int) bool { return i%3 == 1 && i%2 == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []string
			for i := range n {
				if tt.keep(i) {
					want = append(want, fmt.Sprintf("node-%03d", i))
				}
			}
			ro.asked()
			var got []string
			q := tt.q
			for pages := 0; pages <= n; pages++ {
				p, err := c.RolloutNodes(ctx, "r1", q)
				if err != nil {
					t.Fatal(err)
				}
				if p.Total != len(want) {
					t.Fatalf("total %d, want %d", p.Total, len(want))
				}
				for _, n := range p.Nodes {
					if n.Reason != "r" || n.Wave == 0 {
						t.Fatalf("node %+v lost its fields", n)
					}
					got = append(got, n.ID)
				}
				if p.Next == "" {
					break
				}
				q.After = p.Next
			}
			if !slices.Equal(got, want) {
				t.Fatalf("walked %v\nwant %v", got, want)
			}
			first := ro.asked()[0]
			if first.State != rollout.NodeState(tt.q.State) || first.Wave != tt.q.Wave || first.Limit != admin.PageLimit(tt.q.Limit) || first.After != "" {
				t.Fatalf("the engine was asked %+v for %+v", first, tt.q)
			}
		})
	}
	if _, err := c.RolloutNodes(ctx, "r2", admin.RolloutNodeQuery{}); !errors.Is(err, admin.ErrNotFound) {
		t.Fatalf("unknown rollout: %v, want ErrNotFound", err)
	}
}

// TestPagedRoutesRefuseBadQueries: a query the gateway cannot read is
// answered 400 with reason "query" and a message naming what is wrong,
// and never reaches the engine.
func TestPagedRoutesRefuseBadQueries(t *testing.T) {
	c, ro := serve(t, 3)
	tests := []struct {
		path string
		want string
	}{
		{admin.PathNodes + "?state=bogus", `state "bogus": want one of idle,`},
		{admin.PathNodes + "?limit=1001", `limit "1001": want a page size from 1 to 1000`},
		{admin.PathNodes + "?limit=-3", `limit "-3"`},
		{admin.PathNodes + "?limit=many", `limit "many"`},
		{admin.PathNodes + "?label=nokey", `label "nokey": want KEY=VALUE`},
		{admin.PathNodes + "?cohort=hw%3A", "cohort: "},
		{admin.PathNodes + "?model=", `model ""`},
		{admin.PathNodes + "?colour=red", `unknown parameter "colour"`},
		{admin.RolloutPath("r1") + "/nodes?state=downloading", `state "downloading": want one of waiting,`},
		{admin.RolloutPath("r1") + "/nodes?wave=-1", `wave "-1": want a wave number from 1`},
		{admin.RolloutPath("r1") + "/nodes?wave=first", `wave "first"`},
		{admin.RolloutPath("r1") + "/nodes?limit=1001", `limit "1001"`},
		{admin.RolloutPath("r1") + "/nodes?limit=-1", `limit "-1"`},
		{admin.RolloutPath("nope") + "/nodes?limit=x", `limit "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := http.Get(c.BaseURL() + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body admin.ErrorBody
			if err := jsonDecode(resp, &body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusBadRequest || body.Reason != "query" || !strings.Contains(body.Error, tt.want) {
				t.Fatalf("%s: %+v; want 400, reason query, saying %q", resp.Status, body, tt.want)
			}
		})
	}
	if q := ro.asked(); len(q) != 0 {
		t.Fatalf("the engine was asked %+v", q)
	}
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }
