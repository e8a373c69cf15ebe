// Package client is the CLI's client for the control plane's HTTP API.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/weft-mesh/weft/analyze"
	"github.com/weft-mesh/weft/api"
	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/internal/version"
)

// Wire types, re-exported so callers need only this package.
type (
	// Source is one input file.
	Source = api.Source
	// ObjectResult is what a write did to one object.
	ObjectResult = api.ObjectResult
	// ApplyResponse is the answer to a successful apply.
	ApplyResponse = api.ApplyResponse
	// FieldError is one decoding or validation problem.
	FieldError = api.FieldError
	// ProxyInfo describes one proxy.
	ProxyInfo = api.ProxyInfo
)

// Client talks to one control plane. It is safe for concurrent use.
type Client struct {
	base string
	// HTTP is the client requests go through; replace it to change timeouts
	// or transport.
	HTTP *http.Client

	token       string // sent as "Authorization: Bearer" when set
	tokenOrigin string // where the token came from or was looked for
	origin      string // where the API address came from, for UnreachableError
}

// Option configures a Client.
type Option func(*Client)

// WithToken sends token as "Authorization: Bearer TOKEN" on every request
// (the API requires it for writes). An empty token sends nothing.
func WithToken(token string) Option {
	return func(c *Client) { c.token = token }
}

// WithTokenOrigin names where the token came from, or was looked for when
// there is none (".weft/api-token", "$WEFT_TOKEN"), so a refused request
// says where to look.
func WithTokenOrigin(origin string) Option {
	return func(c *Client) { c.tokenOrigin = origin }
}

// WithOrigin says where the API address came from ("--server",
// ".weft/endpoints.json"), so an UnreachableError tells the user where the
// control plane was looked for.
func WithOrigin(origin string) Option {
	return func(c *Client) { c.origin = origin }
}

// New returns a client for the API at baseURL, either a URL
// ("http://127.0.0.1:15080") or a bare host:port as endpoints.json holds it.
func New(baseURL string, opts ...Option) *Client {
	if !strings.Contains(baseURL, "://") {
		baseURL = "http://" + baseURL
	}
	c := &Client{base: strings.TrimRight(baseURL, "/"), HTTP: &http.Client{Timeout: 30 * time.Second}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// APIError is a non-2xx answer. A refused apply (400 for bad input, 422 for
// strict-mode findings) carries the details in Errors or Messages.
type APIError struct {
	Status   int
	Message  string // the server's "error": one problem per line
	Errors   []FieldError
	Messages []analyze.Message
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("control plane answered %d %s", e.Status, http.StatusText(e.Status))
	}
	return e.Message
}

// UnreachableError says that no control plane answered at the API
// address: nothing listens there, or the address does not resolve.
type UnreachableError struct {
	URL    string // the API base URL tried
	Origin string // where that URL came from (WithOrigin), if known
	Err    error  // the dial error
}

func (e *UnreachableError) Error() string {
	where := e.URL
	if e.Origin != "" {
		where += " (" + e.Origin + ")"
	}
	return fmt.Sprintf("no control plane answers at %s: is `weft up` running? (%v)", where, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// IsUnreachable reports whether err says that no control plane answered.
func IsUnreachable(err error) bool {
	var e *UnreachableError
	return errors.As(err, &e)
}

// unreachable reports whether err, from sending a request, means nothing
// answers at the address (as opposed to a request that failed midway).
func unreachable(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// IsNotFound reports whether err is an APIError with status 404.
func IsNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// ApplyOptions tune an apply.
type ApplyOptions struct {
	Namespace         string // for objects that name none; "" means "default"
	NamespaceExplicit bool   // the user passed -n: objects naming another namespace are refused
	Strict            bool   // refuse the whole apply on any analyzer warning or error
	DryRun            bool   // report what would happen without storing
}

// Apply applies every object in sources in one transaction.
func (c *Client) Apply(ctx context.Context, sources []Source, opts ApplyOptions) (*ApplyResponse, error) {
	q := nsQuery(opts.Namespace, opts.NamespaceExplicit)
	setBool(q, "strict", opts.Strict)
	setBool(q, "dryRun", opts.DryRun)
	var resp ApplyResponse
	if err := c.doJSON(ctx, http.MethodPost, "/api/v1/apply", q, api.SourcesRequest{Sources: sources}, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// ObjectList is the answer to List.
type ObjectList struct {
	// Revision is the store revision the list was read at.
	Revision int64
	// Items holds the objects when List was called without a format.
	Items []*config.Object
	// Raw holds the server's encoding when a format ("yaml" or "json") was
	// asked for, ready to print; Items is then nil.
	Raw []byte
}

// List returns the objects of kind (any spelling config.LookupKind
// accepts; "" or "all" for every kind) in namespace ns ("" for all).
func (c *Client) List(ctx context.Context, kind, ns, format string) (*ObjectList, error) {
	q := url.Values{}
	if kind != "" {
		q.Set("kind", kind)
	}
	if ns != "" {
		q.Set("namespace", ns)
	}
	if format != "" {
		q.Set("format", format)
	}
	data, hdr, err := c.do(ctx, http.MethodGet, "/api/v1/objects", q, nil)
	if err != nil {
		return nil, err
	}
	out := &ObjectList{}
	if format != "" {
		out.Raw = data
		out.Revision, _ = strconv.ParseInt(hdr.Get("X-Weft-Revision"), 10, 64)
		return out, nil
	}
	var list api.ObjectList
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("decode object list: %w", err)
	}
	out.Revision, _ = strconv.ParseInt(list.Metadata.ResourceVersion, 10, 64)
	for i, item := range list.Items {
		o, err := decodeObject(fmt.Sprintf("%s/api/v1/objects item %d", c.base, i+1), item)
		if err != nil {
			return nil, err
		}
		out.Items = append(out.Items, o)
	}
	return out, nil
}

// Get returns one object, and its encoding in format ("" means JSON).
func (c *Client) Get(ctx context.Context, kind, ns, name, format string) (*config.Object, []byte, error) {
	q := url.Values{}
	if format != "" {
		q.Set("format", format)
	}
	data, _, err := c.do(ctx, http.MethodGet, objectPath(kind, ns, name), q, nil)
	if err != nil {
		return nil, nil, err
	}
	o, err := decodeObject(c.base+objectPath(kind, ns, name), data)
	if err != nil {
		return nil, nil, err
	}
	return o, data, nil
}

// decodeObject decodes the server's encoding of one object, keeping the
// server-set metadata config.Decode leaves out.
func decodeObject(source string, data []byte) (*config.Object, error) {
	objs, err := config.Decode(source, bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decode object from server: %w", err)
	}
	if len(objs) != 1 {
		return nil, fmt.Errorf("decode object from server: %s holds %d objects, want 1", source, len(objs))
	}
	o := objs[0]
	var m struct {
		Metadata struct {
			ResourceVersion   string    `json:"resourceVersion"`
			Generation        int64     `json:"generation"`
			CreationTimestamp time.Time `json:"creationTimestamp"`
		} `json:"metadata"`
	}
	// YAMLToJSON passes JSON through, so one path reads both formats.
	if js, err := yaml.YAMLToJSON(data); err == nil && json.Unmarshal(js, &m) == nil {
		o.Meta.ResourceVersion = m.Metadata.ResourceVersion
		o.Meta.Generation = m.Metadata.Generation
		o.Meta.CreationTimestamp = m.Metadata.CreationTimestamp
	}
	if err := config.DecodeStatus(o, data); err != nil {
		return nil, fmt.Errorf("decode object from server: %w", err)
	}
	return o, nil
}

// Delete deletes one object.
func (c *Client) Delete(ctx context.Context, kind, ns, name string) ([]ObjectResult, error) {
	var resp api.DeleteResponse
	if err := c.doJSON(ctx, http.MethodDelete, objectPath(kind, ns, name), nil, nil, &resp); err != nil {
		return nil, err
	}
	return resp.Results, nil
}

// DeleteOptions tune DeleteSources.
type DeleteOptions struct {
	Namespace         string
	NamespaceExplicit bool
	IgnoreNotFound    bool // skip objects already gone instead of failing
}

// DeleteSources deletes every object the sources name, all or none.
func (c *Client) DeleteSources(ctx context.Context, sources []Source, opts DeleteOptions) ([]ObjectResult, error) {
	q := nsQuery(opts.Namespace, opts.NamespaceExplicit)
	setBool(q, "ignoreNotFound", opts.IgnoreNotFound)
	var resp api.DeleteResponse
	if err := c.doJSON(ctx, http.MethodPost, "/api/v1/delete", q, api.SourcesRequest{Sources: sources}, &resp); err != nil {
		return nil, err
	}
	return resp.Results, nil
}

// Analyze returns the analyzer's messages. Without sources it analyzes the
// store (only namespace ns, if set); with sources, the store as it would be
// with them applied (ns then fills in objects' missing namespaces).
func (c *Client) Analyze(ctx context.Context, ns string, sources []Source) ([]analyze.Message, error) {
	var resp api.AnalyzeResponse
	var err error
	if len(sources) == 0 {
		q := url.Values{}
		if ns != "" {
			q.Set("namespace", ns)
		}
		err = c.doJSON(ctx, http.MethodGet, "/api/v1/analyze", q, nil, &resp)
	} else {
		err = c.doJSON(ctx, http.MethodPost, "/api/v1/analyze", nsQuery(ns, false), api.SourcesRequest{Sources: sources}, &resp)
	}
	if err != nil {
		return nil, err
	}
	return resp.Messages, nil
}

// Proxies lists every proxy the control plane knows.
func (c *Client) Proxies(ctx context.Context) ([]ProxyInfo, error) {
	return c.FindProxies(ctx, "")
}

// FindProxies lists the proxies whose ID, name or workload is workload
// (all of them if it is "").
func (c *Client) FindProxies(ctx context.Context, workload string) ([]ProxyInfo, error) {
	q := url.Values{}
	if workload != "" {
		q.Set("workload", workload)
	}
	var resp api.ProxiesResponse
	if err := c.doJSON(ctx, http.MethodGet, "/api/v1/proxies", q, nil, &resp); err != nil {
		return nil, err
	}
	return resp.Proxies, nil
}

// ProxyConfig returns the JSON of one kind of xDS resources (listeners,
// routes, clusters, endpoints or secrets, private keys redacted) sent to a
// proxy, named by ID, name or workload.
func (c *Client) ProxyConfig(ctx context.Context, id, kind string) ([]byte, error) {
	data, _, err := c.do(ctx, http.MethodGet, "/api/v1/proxies/"+url.PathEscape(id)+"/config/"+url.PathEscape(kind), nil, nil)
	return data, err
}

// Health checks that the control plane answers, and returns what it says
// about itself: its store revision and weft version.
func (c *Client) Health(ctx context.Context) (*api.HealthResponse, error) {
	var h api.HealthResponse
	if err := c.doJSON(ctx, http.MethodGet, "/healthz", nil, nil, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// SyncResponse is the answer to Sync.
type SyncResponse = api.SyncResponse

// Sync says whether every connected proxy has ACKed the configuration of
// store revision rev (an apply's or delete's Revision), and which have
// not; rev 0 means the store's current revision.
func (c *Client) Sync(ctx context.Context, rev int64) (*SyncResponse, error) {
	q := url.Values{}
	if rev > 0 {
		q.Set("revision", strconv.FormatInt(rev, 10))
	}
	var resp SyncResponse
	if err := c.doJSON(ctx, http.MethodGet, "/api/v1/sync", q, nil, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

func objectPath(kind, ns, name string) string {
	return "/api/v1/objects/" + url.PathEscape(kind) + "/" + url.PathEscape(ns) + "/" + url.PathEscape(name)
}

func nsQuery(ns string, explicit bool) url.Values {
	q := url.Values{}
	if ns != "" {
		q.Set("namespace", ns)
		setBool(q, "namespaceExplicit", explicit)
	}
	return q
}

func setBool(q url.Values, name string, v bool) {
	if v {
		q.Set(name, "true")
	}
}

// doJSON sends body as JSON (if not nil) and decodes a 2xx answer into out.
func (c *Client) doJSON(ctx context.Context, method, path string, q url.Values, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
	}
	data, _, err := c.do(ctx, method, path, q, payload)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// do sends one request and returns a 2xx body, or an *APIError.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, payload []byte) ([]byte, http.Header, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, nil, fmt.Errorf("build request: %w", err)
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("User-Agent", version.UserAgent())
	resp, err := c.HTTP.Do(req)
	if err != nil {
		if unreachable(err) && ctx.Err() == nil {
			cause := err
			var ue *url.Error
			if errors.As(err, &ue) {
				cause = ue.Err // the dial error, without the request's method and URL
			}
			return nil, nil, &UnreachableError{URL: c.base, Origin: c.origin, Err: cause}
		}
		where := c.base
		if c.origin != "" {
			where += " (" + c.origin + ")"
		}
		return nil, nil, fmt.Errorf("control plane at %s: %w", where, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 == 2 {
		return data, resp.Header, nil
	}
	apiErr := &APIError{Status: resp.StatusCode}
	var er api.ErrorResponse
	if resp.StatusCode == http.StatusUnauthorized {
		apiErr.Message = c.refused(method)
	} else if json.Unmarshal(data, &er) == nil && er.Error != "" {
		apiErr.Message, apiErr.Errors, apiErr.Messages = er.Error, er.Errors, er.Messages
	} else {
		// Not our API answering (a proxy, another program on the port).
		apiErr.Message = fmt.Sprintf("%s %s: %d %s: %s", method, path, resp.StatusCode, http.StatusText(resp.StatusCode), strings.TrimSpace(string(data)))
	}
	return nil, nil, apiErr
}

// IsUnauthorized reports whether err is an APIError with status 401: the
// API token was missing or wrong.
func IsUnauthorized(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusUnauthorized
}

// refused explains a 401: which token was missing or wrong and where it
// was looked for. It never shows the token.
func (c *Client) refused(method string) string {
	what := "request"
	if method != http.MethodGet && method != http.MethodHead {
		what = "write"
	}
	origin := c.tokenOrigin
	if origin == "" {
		origin = "STATE_DIR/" + TokenFile
	}
	if c.token == "" {
		return fmt.Sprintf("weft: the control plane refused the %s: missing API token (%s)", what, origin)
	}
	return fmt.Sprintf("weft: the control plane refused the %s: wrong API token (%s)", what, origin)
}

// Certificate is a workload certificate the control plane issued.
type Certificate = api.Certificate

// IssueCertificate asks the control plane for a certificate of the
// workload identity namespace/serviceAccount (needs the API token).
func (c *Client) IssueCertificate(ctx context.Context, namespace, serviceAccount string) (*Certificate, error) {
	var cert Certificate
	if err := c.doJSON(ctx, http.MethodPost, "/api/v1/certificates", nil, api.CertificateRequest{Namespace: namespace, ServiceAccount: serviceAccount}, &cert); err != nil {
		return nil, err
	}
	return &cert, nil
}
