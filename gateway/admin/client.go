package admin

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
)

// maxAnswer bounds the JSON answers the client reads.
const maxAnswer = 64 << 20

// Client is a client of a gateway's admin API. It is safe for concurrent
// use.
type Client struct {
	base  string
	hc    *http.Client
	token string
}

// Option configures a [Client].
type Option func(*options)

type options struct {
	token string
	hc    *http.Client
	tls   *tls.Config
}

// WithToken sends token as the bearer token of every request.
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithHTTPClient sends the requests with hc (default: a client without a
// timeout; each call is bounded by its context).
func WithHTTPClient(hc *http.Client) Option { return func(o *options) { o.hc = hc } }

// WithTLSConfig speaks TLS with tc to an https:// base URL. The HTTP
// client's transport is copied, never changed; it must be an
// *http.Transport (or nil, for the default transport).
func WithTLSConfig(tc *tls.Config) Option { return func(o *options) { o.tls = tc } }

// WithRootCAs trusts the certificates in pool, and only those, for an
// https:// base URL: the gateway's own certificate when self-signed, or
// its CA.
func WithRootCAs(pool *x509.CertPool) Option {
	return WithTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool})
}

// NewClient is a client of the admin API at baseURL, such as
// "http://127.0.0.1:8080" or "https://gw.example:8443".
func NewClient(baseURL string, opts ...Option) (*Client, error) {
	if !strings.HasPrefix(baseURL, "http://") && !strings.HasPrefix(baseURL, "https://") {
		return nil, fmt.Errorf("admin: base URL %q is no http:// or https:// URL", baseURL)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	hc := o.hc
	if hc == nil {
		hc = &http.Client{}
	}
	if o.tls != nil {
		var tr *http.Transport
		switch t := hc.Transport.(type) {
		case nil:
			tr = http.DefaultTransport.(*http.Transport).Clone()
		case *http.Transport:
			tr = t.Clone()
		default:
			return nil, fmt.Errorf("admin: a TLS configuration needs an *http.Transport, the HTTP client has a %T", t)
		}
		tr.TLSClientConfig = o.tls.Clone()
		copied := *hc
		copied.Transport = tr
		hc = &copied
	}
	return &Client{base: strings.TrimSuffix(baseURL, "/"), hc: hc, token: o.token}, nil
}

// BaseURL is the URL the client's paths are relative to.
func (c *Client) BaseURL() string { return c.base }

// Health is the gateway's liveness answer.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	return h, c.getJSON(ctx, PathHealth, &h)
}

// Metrics is the gateway's Prometheus metrics, in the text exposition
// format.
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	resp, err := c.send(ctx, http.MethodGet, PathMetrics, "", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("admin API %s: %w", c.base, err)
	}
	return b, nil
}

// Models lists the models the gateway caches.
func (c *Client) Models(ctx context.Context) ([]Model, error) {
	var ms []Model
	return ms, c.getJSON(ctx, PathModels, &ms)
}

// PutModel uploads a model: its signed manifest, then its image, streamed.
// The gateway stores it only when the manifest verifies against its trust
// keys and the image's size and digest match.
func (c *Client) PutModel(ctx context.Context, signedManifest []byte, image io.Reader) (Model, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		pw.CloseWithError(writeModelForm(mw, signedManifest, image))
	}()
	var m Model
	err := c.call(ctx, http.MethodPut, PathModels, mw.FormDataContentType(), pr, &m)
	pr.Close() // ends the writer when the request ended before the body did
	return m, err
}

func writeModelForm(mw *multipart.Writer, signed []byte, image io.Reader) error {
	part, err := mw.CreateFormFile("manifest", "manifest.cose")
	if err != nil {
		return err
	}
	if _, err := part.Write(signed); err != nil {
		return err
	}
	if part, err = mw.CreateFormFile("image", "image.bin"); err != nil {
		return err
	}
	if _, err := io.Copy(part, image); err != nil {
		return err
	}
	return mw.Close()
}

// FetchModel has the gateway fetch the image of signedManifest from the
// HTTP(S) URL origin, in the background.
func (c *Client) FetchModel(ctx context.Context, signedManifest []byte, origin string) (FetchResult, error) {
	var r FetchResult
	req := FetchRequest{Manifest: base64.StdEncoding.EncodeToString(signedManifest), Origin: origin}
	return r, c.sendJSON(ctx, http.MethodPost, PathModelsFetch, req, &r)
}

// DeleteModel drops the cached model with digest (hex); [ErrConflict]
// while a node is assigned it.
func (c *Client) DeleteModel(ctx context.Context, digest string) error {
	return c.call(ctx, http.MethodDelete, ModelPath(digest), "", nil, nil)
}

// Nodes is the page of the gateway's node registry that q selects, in
// node id order; [Client.AllNodes] walks every page. A query the gateway cannot
// read is an [*Error] matching [ErrBadRequest].
func (c *Client) Nodes(ctx context.Context, q NodeQuery) (NodePage, error) {
	var p NodePage
	return p, c.getJSON(ctx, NodesPath(q), &p)
}

// Node is one node of the registry; [ErrNotFound] when the gateway does
// not know it.
func (c *Client) Node(ctx context.Context, id string) (Node, error) {
	var n Node
	return n, c.getJSON(ctx, NodePath(id), &n)
}

// Assign assigns signedManifest to nodes; those observing their manifest
// are notified at once.
func (c *Client) Assign(ctx context.Context, signedManifest []byte, nodes []string) (AssignmentResult, error) {
	return c.assign(ctx, AssignmentRequest{Manifest: base64.StdEncoding.EncodeToString(signedManifest), Nodes: nodes})
}

// AssignAll assigns signedManifest to every node, including nodes that
// say Hello later: a standing rule, until another assignment or a
// rollout replaces it.
func (c *Client) AssignAll(ctx context.Context, signedManifest []byte) (AssignmentResult, error) {
	return c.assign(ctx, AssignmentRequest{Manifest: base64.StdEncoding.EncodeToString(signedManifest), All: true})
}

func (c *Client) assign(ctx context.Context, req AssignmentRequest) (AssignmentResult, error) {
	var r AssignmentResult
	return r, c.sendJSON(ctx, http.MethodPost, PathAssignments, req, &r)
}

// Backup writes a consistent copy of the gateway's database to w and
// returns its size.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	resp, err := c.send(ctx, http.MethodGet, PathBackup, "", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("admin API %s: backup: %w", c.base, err)
	}
	return n, nil
}

// PostDeployment hands a signed deployment to the gateway, which starts
// its rollout; a refused deployment is an [*Error] with reason "refused".
func (c *Client) PostDeployment(ctx context.Context, signedDeployment []byte) (Rollout, error) {
	var r Rollout
	return r, c.call(ctx, http.MethodPost, PathDeployments, "application/cose", bytes.NewReader(signedDeployment), &r)
}

// Rollouts lists every rollout of the gateway.
func (c *Client) Rollouts(ctx context.Context) ([]Rollout, error) {
	var rs []Rollout
	return rs, c.getJSON(ctx, PathRollouts, &rs)
}

// Rollout is the status of rollout id; [ErrNotFound] when there is none.
func (c *Client) Rollout(ctx context.Context, id string) (Rollout, error) {
	var r Rollout
	return r, c.getJSON(ctx, RolloutPath(id), &r)
}

// RolloutNodes is the page of rollout id's nodes that q selects, in node
// id order; [ErrNotFound] when there is no such rollout.
// [Client.AllRolloutNodes] walks every page.
func (c *Client) RolloutNodes(ctx context.Context, id string, q RolloutNodeQuery) (RolloutNodePage, error) {
	var p RolloutNodePage
	return p, c.getJSON(ctx, RolloutNodesPath(id, q), &p)
}

// RolloutAction does action to rollout id and returns its status after;
// [ErrConflict] when its phase does not allow the action.
func (c *Client) RolloutAction(ctx context.Context, id string, action Action) (Rollout, error) {
	var r Rollout
	return r, c.sendJSON(ctx, http.MethodPost, RolloutActionPath(id, action), struct{}{}, &r)
}

// PauseRollout pauses rollout id: no more nodes are assigned.
func (c *Client) PauseRollout(ctx context.Context, id string) (Rollout, error) {
	return c.RolloutAction(ctx, id, Pause)
}

// ResumeRollout resumes paused rollout id.
func (c *Client) ResumeRollout(ctx context.Context, id string) (Rollout, error) {
	return c.RolloutAction(ctx, id, Resume)
}

// AbortRollout ends rollout id; nodes keep what they run.
func (c *Client) AbortRollout(ctx context.Context, id string) (Rollout, error) {
	return c.RolloutAction(ctx, id, Abort)
}

// PutKeys imports nodes' DTLS keys, all or nothing; the gateway closes
// the sessions of nodes whose key changed.
func (c *Client) PutKeys(ctx context.Context, keys []Key) (KeysResult, error) {
	if keys == nil {
		keys = []Key{}
	}
	var r KeysResult
	return r, c.sendJSON(ctx, http.MethodPut, PathKeys, keys, &r)
}

// Keys lists the nodes that have a key (never the keys).
func (c *Client) Keys(ctx context.Context) ([]string, error) {
	var l KeyList
	return l.Nodes, c.getJSON(ctx, PathKeys, &l)
}

// DeleteKey forgets node's key: it can no longer open a DTLS session, and
// its session is closed. [ErrNotFound] when it has none.
func (c *Client) DeleteKey(ctx context.Context, node string) error {
	return c.call(ctx, http.MethodDelete, KeyPath(node), "", nil, nil)
}

// Audit is the provisioning audit log of node, or of every node when node
// is "", oldest first.
func (c *Client) Audit(ctx context.Context, node string) ([]AuditEntry, error) {
	var es []AuditEntry
	return es, c.getJSON(ctx, AuditPath(node), &es)
}

func (c *Client) getJSON(ctx context.Context, path string, out any) error {
	return c.call(ctx, http.MethodGet, path, "", nil, out)
}

func (c *Client) sendJSON(ctx context.Context, method, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	return c.call(ctx, method, path, "application/json", bytes.NewReader(b), out)
}

// call sends a request and decodes a successful JSON answer into out
// (when not nil); an error answer is an *Error.
func (c *Client) call(ctx context.Context, method, path, contentType string, body io.Reader, out any) error {
	resp, err := c.send(ctx, method, path, contentType, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("admin API %s: %w", c.base, err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("admin API %s %s: %w", method, path, err)
	}
	return nil
}

// send sends a request and returns a successful answer, whose body the
// caller closes; an error answer is an *Error.
func (c *Client) send(ctx context.Context, method, path, contentType string, body io.Reader) (*http.Response, error) {
	if body == nil {
		body = http.NoBody
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin API %s: %w", c.base, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, answerError(resp, strings.HasPrefix(c.base, "http://"))
	}
	return resp, nil
}

// answerError reads an error answer into an *Error.
func answerError(resp *http.Response, plainHTTP bool) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	e := &Error{StatusCode: resp.StatusCode, Status: resp.Status}
	if json.Unmarshal(b, &e.Body) != nil {
		e.Body = ErrorBody{}
	}
	// net/http's answer to plain HTTP on a TLS port.
	e.https = plainHTTP && resp.StatusCode == http.StatusBadRequest && bytes.Contains(b, []byte("HTTPS server"))
	return e
}

// PutTrust hands a signed trust update to the gateway, which checks it
// against its root keys and version, saves it, takes its keys and serves
// it to its nodes; a refusal is an *Error with status 422.
func (c *Client) PutTrust(ctx context.Context, signedUpdate []byte) (Trust, error) {
	var t Trust
	return t, c.call(ctx, http.MethodPut, PathTrust, "application/cose", bytes.NewReader(signedUpdate), &t)
}

// Trust returns the trust update the gateway applied last; an *Error with
// status 404 when it applied none.
func (c *Client) Trust(ctx context.Context) (Trust, error) {
	var t Trust
	return t, c.getJSON(ctx, PathTrust, &t)
}
