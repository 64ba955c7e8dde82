// Package admin is a gateway's admin API: its routes, the JSON documents
// it takes and answers, its error body, and a [Client] for it.
//
// The API is JSON over HTTP (HTTPS when the gateway has a certificate),
// on loopback by default. With a token configured every request, /healthz
// and /metrics included, carries it as "Authorization: Bearer <token>";
// without it the gateway answers 401 ([ErrUnauthorized]).
//
// # Routes
//
//	PUT    /v1/models                    multipart form: "manifest" (COSE) then "image"; 201 with the [Model]
//	GET    /v1/models                    cached models ([]Model)
//	POST   /v1/models/fetch              [FetchRequest]: fetch an image from an origin; 202 with a [FetchResult]
//	DELETE /v1/models/{digest}           drop a model no node is assigned; 204
//	GET    /v1/nodes                     a page of the node registry ([NodePage]); filters and paging: [NodeQuery]
//	GET    /v1/nodes/{id}                one [Node]
//	POST   /v1/assignments               [AssignmentRequest]; [AssignmentResult]
//	GET    /v1/backup                    a consistent copy of the database, while running
//	POST   /v1/deployments               body: a signed deployment (COSE); 201 with its [Rollout]
//	GET    /v1/rollouts                  every rollout ([]Rollout)
//	GET    /v1/rollouts/{id}             one [Rollout]: waves, totals, gates, latest decisions (no nodes)
//	GET    /v1/rollouts/{id}/nodes       a page of its nodes ([RolloutNodePage]); filters and paging: [RolloutNodeQuery]
//	POST   /v1/rollouts/{id}/{action}    [Pause], [Resume] or [Abort]; the [Rollout] after it
//	PUT    /v1/keys                      import nodes' DTLS keys ([]Key); [KeysResult]
//	GET    /v1/keys                      node ids that have a key, never the keys ([KeyList])
//	DELETE /v1/keys/{node}               forget a node's key, close its session; 204
//	GET    /v1/audit[?node=ID]           provisioning audit log ([]AuditEntry), oldest first
//	PUT    /v1/trust                     body: a signed trust update (COSE); the applied [Trust], 422 when refused
//	GET    /v1/trust                     the trust update applied last ([Trust]); 404 before any
//	GET    /metrics                      Prometheus metrics
//	GET    /healthz                      liveness ([Health])
//
// Every route is named once, as a [Route] (its method and net/http
// pattern) and, for a path with ids, a builder such as [RolloutPath] and
// [RolloutActionPath]. An error answer carries an [Error] body.
//
// # Paging
//
// The node lists come in pages, in node id order, at most [MaxPageLimit]
// nodes each ([DefaultPageLimit] unless the query's limit says). A page
// answers {"nodes": [...], "next": ID, "total": N}: next is the "after"
// of the following page ("" on the last), total counts every node the
// filters match. [Client.AllNodes] and [Client.AllRolloutNodes] walk
// every page. A node added during a walk appears when its id sorts after
// the page being read; none appears twice. A query parameter the gateway
// cannot read is answered 400 with reason "query" ([ErrBadRequest]).
//
// # Client
//
// [NewClient] makes a client of the API at a base URL; its options give
// the bearer token, the TLS configuration or CA of an https:// URL, or
// the http.Client to use. Each method takes a context first, and an
// error answer is returned as an [*Error] that matches [ErrNotFound],
// [ErrUnauthorized], [ErrBadRequest], [ErrConflict] or [ErrNeedsHTTPS] with errors.Is.
package admin
