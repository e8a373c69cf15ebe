package runtime

import (
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weft-mesh/weft/proxy/filter"
	_ "github.com/weft-mesh/weft/proxy/filter/all" // register the HTTP filters
	"github.com/weft-mesh/weft/proxy/filter/rbac"
	"github.com/weft-mesh/weft/proxy/lb"
	"github.com/weft-mesh/weft/proxy/route"
	"github.com/weft-mesh/weft/proxy/trace"
)

// Response flags, as in Envoy's access log %RESPONSE_FLAGS%. Result.Flags
// holds one or several of them, comma separated, in Envoy's order.
const (
	FlagNoRoute               = "NR"   // no virtual host or route matched
	FlagNoCluster             = "NC"   // the route's cluster does not exist
	FlagNoHealthy             = "UH"   // the cluster has no healthy endpoint
	FlagConnectFailure        = "UF"   // connecting to the endpoint failed
	FlagUpstreamTimeout       = "UT"   // the route timeout or per-try timeout expired
	FlagUpstreamReset         = "UR"   // the upstream reset the stream (HTTP/2)
	FlagConnectionTermination = "UC"   // the upstream connection closed mid-exchange
	FlagOverflow              = "UO"   // circuit breaker overflow
	FlagRetryLimitExceeded    = "URX"  // retries exhausted, the last attempt retriable
	FlagDelayInjected         = "DI"   // fault filter delay
	FlagFaultInjected         = "FI"   // fault filter abort
	FlagDownstreamClosed      = "DC"   // the client went away
	FlagRateLimited           = "RL"   // local rate limit: 429
	FlagRBACDenied            = "RBAC" // denied by an RBAC filter: 403, or a closed TCP connection
)

// Local reply bodies, as Envoy words them.
const (
	bodyNoHealthy      = "no healthy upstream"
	bodyTimeout        = "upstream request timeout"
	bodyConnectFailure = "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
	bodyReset          = "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
	bodyRemoteReset    = "upstream connect error or disconnect/reset before headers. reset reason: remote reset"
	bodyRefused        = "upstream connect error or disconnect/reset before headers. reset reason: remote refused stream reset"
	bodyOverflow       = "upstream connect error or disconnect/reset before headers. reset reason: overflow"
)

// Result describes one request for access logs and telemetry. It is built
// only when the proxy has a Tap or an OnRequest hook.
type Result struct {
	Route    string // matched route's name, or its virtual host's when unnamed
	Cluster  string
	Upstream string // endpoint address of the last attempt
	Code     int    // status sent downstream (499 when the client left first)
	Flags    string // response flags, "" when none
	Duration time.Duration

	// Listener is the name of the listener the request arrived on;
	// Inbound is its direction (traffic for the local workload).
	Listener string
	Inbound  bool
	// Start is when the request arrived.
	Start time.Time
	// Request line and headers as received.
	Method       string
	Path         string // path and query
	Authority    string
	Protocol     string // "HTTP/1.1", "HTTP/2.0"
	UserAgent    string
	ForwardedFor string // x-forwarded-for as received
	// RequestID is x-request-id as sent upstream (generated when absent),
	// or as received for requests answered locally.
	RequestID string
	// Downstream is the client's address, host:port.
	Downstream string
	// GRPC is true for gRPC requests; GRPCStatus is the grpc-status sent
	// downstream (trailer or trailers-only header), "" when none.
	GRPC       bool
	GRPCStatus string
	// RequestBytes and ResponseBytes count body bytes received from the
	// downstream and sent to it.
	RequestBytes  int64
	ResponseBytes int64
	// Endpoint is the endpoint of the last attempt, nil when none.
	Endpoint *lb.Endpoint
	// Trace is this hop's span context, set by the Tap.
	Trace trace.Context
	// Peer is scratch space for the Tap: the caller's identity it read.
	Peer string
	// MutualTLS is true when the downstream connection was TLS with a
	// verified client certificate; PeerPrincipal is that certificate's URI
	// SAN (spiffe://cluster.local/ns/NS/sa/SA), "" otherwise.
	MutualTLS     bool
	PeerPrincipal string

	reqBody *countingBody
	// Audit is true when an AUDIT AuthorizationPolicy matched the request
	// (RBAC action LOG: Envoy's envoy.common access_log_hint).
	Audit bool
	// RBACPolicy names the DENY policy that refused the request, "" when
	// none did (an ALLOW filter matching nothing names no policy).
	RBACPolicy string
}

// handler serves one listener (or destination-port group): it reads the
// current Config once per request.
type handler struct {
	p       *Proxy
	key     lkey
	retired atomic.Pointer[Config]
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cfg := h.p.cur.Load()
	l := cfg.lookup(h.key)
	if l == nil {
		if cfg = h.retired.Load(); cfg != nil {
			l = cfg.lookup(h.key)
		}
	}
	if l != nil && !l.Selector.Admits(r.TLS != nil) {
		// A keep-alive connection from before a change of mTLS mode that
		// the listener no longer accepts: close it without an answer.
		panic(http.ErrAbortHandler)
	}
	if l == nil || l.Routes == nil {
		var res *Result
		if h.p.observed {
			res = h.p.begin(r, h.key.name, l != nil && l.Inbound, requestAuthority(r))
		}
		filter.WriteReply(w, http.StatusNotFound, "")
		h.p.report(res, w, nil, "", nil, http.StatusNotFound, filter.NoRoute, 0)
		return
	}
	h.p.serve(w, r, cfg, l)
}

func requestAuthority(r *http.Request) string {
	if r.URL.Host != "" {
		return r.URL.Host
	}
	return r.Host
}

// serve routes r through t and cfg's clusters: it runs the route's filters,
// answers direct responses and redirects, and forwards the rest.
func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, cfg *Config, l *Listener) {
	authority := requestAuthority(r)
	var res *Result
	if p.observed {
		res = p.begin(r, l.Name, l.Inbound, authority)
	}
	rt := l.Routes.Route(r, authority)
	var x *filter.Exchange
	if len(l.HTTPFilters) > 0 {
		// The listener's filters (jwt_authn, rbac, local_ratelimit) run
		// after routing, so a route's own rate limit can replace the
		// listener's, and before the route's filters; as in Envoy they
		// run even when no route matches.
		x = filter.NewExchange(w, r)
		if rt != nil {
			x.RouteFilters = rt.Filters
		}
		ok := x.Run(l.HTTPFilters)
		if res != nil && x.Metadata != nil {
			res.Audit = x.Metadata[rbac.LogNamespace][rbac.LogHintKey] == true
			res.RBACPolicy, _ = x.Metadata[rbac.PolicyNamespace][rbac.PolicyKey].(string)
		}
		if !ok {
			p.report(res, w, rt, "", nil, x.Code, x.Flags, 0)
			return
		}
	}
	if rt == nil {
		var flags filter.Flag
		if x != nil {
			x.Response(http.StatusNotFound, w.Header())
			flags = x.Flags
		}
		filter.WriteReply(w, http.StatusNotFound, "")
		p.report(res, w, nil, "", nil, http.StatusNotFound, flags|filter.NoRoute, 0)
		return
	}
	var flags filter.Flag
	if len(rt.Filters) > 0 {
		if x == nil {
			x = filter.NewExchange(w, r)
		}
		if !x.Run(rt.Filters) {
			p.report(res, w, rt, "", nil, x.Code, x.Flags, 0)
			return
		}
	}
	if x != nil {
		flags = x.Flags
	}
	switch {
	case rt.Direct != nil:
		reply(w, rt, nil, x, rt.Direct.Status, rt.Direct.Body)
		p.report(res, w, rt, "", nil, rt.Direct.Status, flags, int64(len(rt.Direct.Body)))
		return
	case rt.Redirect != nil:
		w.Header()["Location"] = []string{rt.RedirectURL(r, authority)}
		reply(w, rt, nil, x, rt.Redirect.Code, "")
		p.report(res, w, rt, "", nil, rt.Redirect.Code, flags, 0)
		return
	}
	tgt := rt.Target()
	c := cfg.clusters[tgt.Name]
	if c == nil {
		reply(w, rt, tgt, x, http.StatusServiceUnavailable, "")
		p.report(res, w, rt, tgt.Name, nil, http.StatusServiceUnavailable, flags|filter.NoCluster, 0)
		return
	}
	f := forwarder{p: p, cfg: cfg, w: w, r: r, x: x, rt: rt, tgt: tgt, c: c, authority: authority, flags: flags, res: res}
	f.run()
	p.report(res, w, rt, tgt.Name, f.ep, f.code, f.flags, f.sent)
	if f.abort {
		// Tell the client the response is incomplete: reset the stream
		// (HTTP/2) or close the connection (HTTP/1.1).
		panic(http.ErrAbortHandler)
	}
}

// report completes res (nil when nothing observes requests) with the
// request's outcome; sent is the body bytes sent downstream.
func (p *Proxy) report(res *Result, w http.ResponseWriter, rt *route.Route, clusterName string, ep *lb.Endpoint, code int, flags filter.Flag, sent int64) {
	if res == nil {
		return
	}
	res.Cluster, res.Code, res.Flags, res.ResponseBytes = clusterName, code, flags.String(), sent
	res.Duration = time.Since(res.Start)
	if rt != nil {
		res.Route = rt.Name
		if res.Route == "" {
			res.Route = rt.VirtualHost
		}
	}
	if ep != nil {
		res.Upstream, res.Endpoint = ep.Address, ep
	}
	p.finish(res, w)
}

// reply sends a local reply for route rt (target tgt, nil when none): the
// route's response header edits and the filters' response hooks apply.
func reply(w http.ResponseWriter, rt *route.Route, tgt *route.WeightedCluster, x *filter.Exchange, code int, body string) {
	if rt.HasResponseHeaders(tgt) {
		rt.ResponseHeaders(w.Header(), tgt)
	}
	if x != nil {
		x.Response(code, w.Header())
	}
	filter.WriteReply(w, code, body)
}

// startTime is time.Now, a variable for tests.
var startTime = time.Now

// Shared, read-only header values.
var protoHTTP = []string{"http"}

var (
	bufPool    = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
	headerPool = sync.Pool{New: func() any { return make(http.Header, 16) }}
)

// upstreamHeaders fills dst with r's headers minus hop-by-hop ones, and sets
// x-forwarded-for, x-forwarded-proto and x-request-id. Values are shared
// with r.Header, not copied.
func upstreamHeaders(dst http.Header, r *http.Request) {
	src := r.Header
	for k, vv := range src {
		if hopByHop(k) {
			if k == "Te" && len(vv) == 1 && vv[0] == "trailers" {
				dst[k] = vv // gRPC needs it; the only TE value HTTP/2 allows
			}
			continue
		}
		dst[k] = vv
	}
	dropListed(dst, src["Connection"])
	ip := clientIP(r.RemoteAddr)
	if prior := src["X-Forwarded-For"]; len(prior) > 0 {
		dst["X-Forwarded-For"] = []string{strings.Join(prior, ", ") + ", " + ip}
	} else if ip != "" {
		dst["X-Forwarded-For"] = []string{ip}
	}
	if _, ok := src["X-Forwarded-Proto"]; !ok {
		dst["X-Forwarded-Proto"] = protoHTTP
	}
	if id := src["X-Request-Id"]; len(id) == 0 || id[0] == "" {
		dst["X-Request-Id"] = []string{NewRequestID()}
	}
}

// dropListed deletes from h the headers named by Connection header values.
func dropListed(h http.Header, connection []string) {
	for _, c := range connection {
		for tok := range strings.SplitSeq(c, ",") {
			if tok = strings.TrimSpace(tok); tok != "" {
				delete(h, http.CanonicalHeaderKey(tok))
			}
		}
	}
}

// hopByHop reports whether canonical header key k applies to one connection
// only and must not be forwarded.
func hopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// clientIP returns the host part of a "host:port" remote address without
// allocating.
func clientIP(remote string) string {
	i := strings.LastIndexByte(remote, ':')
	if i < 0 {
		return remote
	}
	return strings.TrimSuffix(strings.TrimPrefix(remote[:i], "["), "]")
}

// NewRequestID returns a random UUIDv4-formatted request id.
func NewRequestID() string {
	const hex = "0123456789abcdef"
	var raw [16]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		raw[i] = byte(hi >> (8 * i))
		raw[8+i] = byte(lo >> (8 * i))
	}
	raw[6] = raw[6]&0x0f | 0x40 // version 4
	raw[8] = raw[8]&0x3f | 0x80 // RFC 4122 variant
	var b [36]byte
	j := 0
	for i, c := range raw {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = hex[c>>4], hex[c&0x0f]
		j += 2
	}
	return string(b[:])
}

// newTransports returns the HTTP/1.1 and the h2c upstream transports. Neither
// consults proxy environment variables: the sidecar is itself the app's proxy.
func newTransports(o Options) (h1, h2 *http.Transport) {
	d := &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
	p1 := new(http.Protocols)
	p1.SetHTTP1(true)
	h1 = &http.Transport{
		Proxy:               nil,
		DialContext:         d.DialContext,
		Protocols:           p1,
		MaxIdleConns:        0, // no global cap; MaxIdleConnsPerHost bounds it
		MaxIdleConnsPerHost: o.MaxIdleConnsPerHost,
		IdleConnTimeout:     o.IdleConnTimeout,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		WriteBufferSize:     32 << 10,
		ReadBufferSize:      32 << 10,
	}
	p2 := new(http.Protocols)
	p2.SetUnencryptedHTTP2(true)
	h2 = &http.Transport{
		Proxy:              nil,
		DialContext:        d.DialContext,
		Protocols:          p2,
		IdleConnTimeout:    o.IdleConnTimeout,
		DisableCompression: true,
	}
	return h1, h2
}
