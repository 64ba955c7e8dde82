package admin_test

import (
	"net/http"
	"strings"
	"testing"

	"edgeota/gateway/admin"
)

// TestPathBuilders pins every path of the admin API: they are public, and
// a client of an older gateway must still find them. Ids are escaped as
// one path segment.
func TestPathBuilders(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"models", admin.PathModels, "/v1/models"},
		{"fetch", admin.PathModelsFetch, "/v1/models/fetch"},
		{"model", admin.ModelPath("ab12"), "/v1/models/ab12"},
		{"nodes", admin.PathNodes, "/v1/nodes"},
		{"node", admin.NodePath("node-1"), "/v1/nodes/node-1"},
		{"node with a slash", admin.NodePath("a/b"), "/v1/nodes/a%2Fb"},
		{"assignments", admin.PathAssignments, "/v1/assignments"},
		{"backup", admin.PathBackup, "/v1/backup"},
		{"deployments", admin.PathDeployments, "/v1/deployments"},
		{"rollouts", admin.PathRollouts, "/v1/rollouts"},
		{"rollout", admin.RolloutPath("kws-1"), "/v1/rollouts/kws-1"},
		{"rollout with a space", admin.RolloutPath("a b"), "/v1/rollouts/a%20b"},
		{"pause", admin.RolloutActionPath("kws-1", admin.Pause), "/v1/rollouts/kws-1/pause"},
		{"resume", admin.RolloutActionPath("kws-1", admin.Resume), "/v1/rollouts/kws-1/resume"},
		{"abort", admin.RolloutActionPath("kws-1", admin.Abort), "/v1/rollouts/kws-1/abort"},
		{"rollout nodes", admin.RolloutNodesPath("kws-1", admin.RolloutNodeQuery{}), "/v1/rollouts/kws-1/nodes"},
		{"rollout nodes, filtered", admin.RolloutNodesPath("kws 1", admin.RolloutNodeQuery{State: admin.NodeFailed, Wave: 2, After: "n&7", Limit: 50}),
			"/v1/rollouts/kws%201/nodes?after=n%267&limit=50&state=failed&wave=2"},
		{"nodes, filtered", admin.NodesPath(admin.NodeQuery{Labels: map[string]string{"site": "north", "hw": "rev2"}, Cohort: "hw:rev2 AND NOT site:lab",
			Model: "1.4.0", State: "failed", After: "n-9", Limit: 1000}),
			"/v1/nodes?after=n-9&cohort=hw%3Arev2+AND+NOT+site%3Alab&label=hw%3Drev2&label=site%3Dnorth&limit=1000&model=1.4.0&state=failed"},
		{"nodes, unfiltered", admin.NodesPath(admin.NodeQuery{}), "/v1/nodes"},
		{"keys", admin.PathKeys, "/v1/keys"},
		{"key", admin.KeyPath("node-1"), "/v1/keys/node-1"},
		{"audit", admin.AuditPath(""), "/v1/audit"},
		{"audit of a node", admin.AuditPath("node-1"), "/v1/audit?node=node-1"},
		{"audit of an odd id", admin.AuditPath("a&b"), "/v1/audit?node=a%26b"},
		{"metrics", admin.PathMetrics, "/metrics"},
		{"health", admin.PathHealth, "/healthz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

// TestRoutesMatchTheirBuilders: each route's ServeMux pattern matches the
// path its builder makes, and hands back the id the builder was given
// (the server reads ids by these wildcard names).
func TestRoutesMatchTheirBuilders(t *testing.T) {
	tests := []struct {
		route  admin.Route
		path   string
		values map[string]string
	}{
		{admin.RouteDeleteModel, admin.ModelPath("ab12"), map[string]string{"digest": "ab12"}},
		{admin.RouteNode, admin.NodePath("node.1"), map[string]string{"id": "node.1"}},
		{admin.RouteNode, admin.NodePath("a/b"), map[string]string{"id": "a/b"}},
		{admin.RouteRollout, admin.RolloutPath("kws 1"), map[string]string{"id": "kws 1"}},
		{admin.RouteRolloutAction, admin.RolloutActionPath("kws-1", admin.Abort), map[string]string{"id": "kws-1", "action": "abort"}},
		{admin.RouteRolloutNodes, admin.RolloutNodesPath("kws/1", admin.RolloutNodeQuery{Wave: 1}), map[string]string{"id": "kws/1"}},
		{admin.RouteDeleteKey, admin.KeyPath("node-1"), map[string]string{"node": "node-1"}},
		{admin.RouteAudit, admin.AuditPath("node-1"), nil},
		{admin.RouteFetchModel, admin.PathModelsFetch, nil},
	}
	for _, tt := range tests {
		t.Run(tt.route.String()+" "+tt.path, func(t *testing.T) {
			mux := http.NewServeMux()
			var got *http.Request
			mux.HandleFunc(tt.route.String(), func(_ http.ResponseWriter, r *http.Request) { got = r })
			req, err := http.NewRequest(tt.route.Method, "http://gw"+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			mux.ServeHTTP(discard{}, req)
			if got == nil {
				t.Fatalf("%s does not match %s %s", tt.route, tt.route.Method, tt.path)
			}
			for k, v := range tt.values {
				if got.PathValue(k) != v {
					t.Errorf("{%s} = %q, want %q", k, got.PathValue(k), v)
				}
			}
		})
	}
}

// TestRoutesAreDistinct: Routes names every route once, and each is a
// valid ServeMux pattern that conflicts with no other.
func TestRoutesAreDistinct(t *testing.T) {
	mux := http.NewServeMux()
	seen := map[string]bool{}
	for _, r := range admin.Routes() {
		if seen[r.String()] {
			t.Errorf("%s twice", r)
		}
		seen[r.String()] = true
		if !strings.HasPrefix(r.Pattern, "/") {
			t.Errorf("%s: pattern not absolute", r)
		}
		mux.HandleFunc(r.String(), func(http.ResponseWriter, *http.Request) {}) // panics on a conflict
	}
	if len(seen) != 21 {
		t.Errorf("%d routes, want 21", len(seen))
	}
}

type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}
