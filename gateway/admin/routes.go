package admin

import (
	"net/url"
)

// Paths of the admin API without ids.
const (
	PathModels      = "/v1/models"
	PathModelsFetch = PathModels + "/fetch"
	PathNodes       = "/v1/nodes"
	PathAssignments = "/v1/assignments"
	PathBackup      = "/v1/backup"
	PathDeployments = "/v1/deployments"
	PathRollouts    = "/v1/rollouts"
	PathKeys        = "/v1/keys"
	PathAudit       = "/v1/audit"
	PathTrust       = "/v1/trust"
	PathMetrics     = "/metrics"
	PathHealth      = "/healthz"
)

// Route is one endpoint of the admin API: its HTTP method and its path
// pattern, with {name} wildcards as net/http's ServeMux reads them.
type Route struct {
	Method  string
	Pattern string
}

// String is the route as a ServeMux pattern, "METHOD /path".
func (r Route) String() string { return r.Method + " " + r.Pattern }

// The routes of the admin API. Wildcards are {digest}, {id}, {node} and
// {action}, the names the server reads them by.
var (
	RoutePutModel       = Route{"PUT", PathModels}
	RouteModels         = Route{"GET", PathModels}
	RouteFetchModel     = Route{"POST", PathModelsFetch}
	RouteDeleteModel    = Route{"DELETE", PathModels + "/{digest}"}
	RouteNodes          = Route{"GET", PathNodes}
	RouteNode           = Route{"GET", PathNodes + "/{id}"}
	RouteAssign         = Route{"POST", PathAssignments}
	RouteBackup         = Route{"GET", PathBackup}
	RoutePostDeployment = Route{"POST", PathDeployments}
	RouteRollouts       = Route{"GET", PathRollouts}
	RouteRollout        = Route{"GET", PathRollouts + "/{id}"}
	RouteRolloutAction  = Route{"POST", PathRollouts + "/{id}/{action}"}
	RouteRolloutNodes   = Route{"GET", PathRollouts + "/{id}/nodes"}
	RoutePutKeys        = Route{"PUT", PathKeys}
	RouteKeys           = Route{"GET", PathKeys}
	RouteDeleteKey      = Route{"DELETE", PathKeys + "/{node}"}
	RouteAudit          = Route{"GET", PathAudit}
	RoutePutTrust       = Route{"PUT", PathTrust}
	RouteTrust          = Route{"GET", PathTrust}
	RouteMetrics        = Route{"GET", PathMetrics}
	RouteHealth         = Route{"GET", PathHealth}
)

// Routes lists every route of the admin API.
func Routes() []Route {
	return []Route{RoutePutModel, RouteModels, RouteFetchModel, RouteDeleteModel, RouteNodes, RouteNode,
		RouteAssign, RouteBackup, RoutePostDeployment, RouteRollouts, RouteRollout, RouteRolloutAction,
		RouteRolloutNodes, RoutePutKeys, RouteKeys, RouteDeleteKey, RouteAudit, RoutePutTrust, RouteTrust, RouteMetrics, RouteHealth}
}

// Action is what POST /v1/rollouts/{id}/{action} does to a rollout.
type Action string

// The rollout actions.
const (
	// Pause stops assigning nodes; those assigned carry on.
	Pause Action = "pause"
	// Resume continues a paused rollout.
	Resume Action = "resume"
	// Abort ends a rollout; nodes keep what they run.
	Abort Action = "abort"
)

// ModelPath is the path of the cached model with digest (hex).
func ModelPath(digest string) string { return PathModels + "/" + url.PathEscape(digest) }

// NodePath is the path of node id in the registry.
func NodePath(id string) string { return PathNodes + "/" + url.PathEscape(id) }

// RolloutPath is the path of rollout id.
func RolloutPath(id string) string { return PathRollouts + "/" + url.PathEscape(id) }

// RolloutActionPath is the path that does action to rollout id.
func RolloutActionPath(id string, action Action) string {
	return RolloutPath(id) + "/" + url.PathEscape(string(action))
}

// RolloutNodesPath is the path of the page of rollout id's nodes that q
// selects.
func RolloutNodesPath(id string, q RolloutNodeQuery) string {
	return withQuery(RolloutPath(id)+"/nodes", q.Values())
}

// NodesPath is the path of the page of the node registry that q selects.
func NodesPath(q NodeQuery) string { return withQuery(PathNodes, q.Values()) }

func withQuery(path string, v url.Values) string {
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// KeyPath is the path of node's DTLS key.
func KeyPath(node string) string { return PathKeys + "/" + url.PathEscape(node) }

// AuditPath is the path of the audit log of node, or of every node when
// node is "".
func AuditPath(node string) string {
	if node == "" {
		return PathAudit
	}
	return PathAudit + "?" + url.Values{"node": {node}}.Encode()
}
