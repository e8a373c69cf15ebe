// Package observe is the proxy's telemetry: a runtime.Tap that derives
// Istio's standard metric labels for every request and TCP connection
// (proxy/stats), propagates and samples traces (proxy/trace), writes the
// access log (proxy/accesslog), and carries the caller's identity to the
// called proxy in the x-weft-peer header. Reporter sends it all to the
// control plane.
package observe

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/weft-mesh/weft/ca"
	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/proxy/accesslog"
	"github.com/weft-mesh/weft/proxy/lb"
	"github.com/weft-mesh/weft/proxy/runtime"
	"github.com/weft-mesh/weft/proxy/stats"
	"github.com/weft-mesh/weft/proxy/tcpproxy"
	"github.com/weft-mesh/weft/proxy/trace"
	"github.com/weft-mesh/weft/telemetry"
	"github.com/weft-mesh/weft/xds/node"
)

// maxCached bounds each label cache keyed by request data (peer header,
// authority); past it, misses share one "unknown" label set so that
// arbitrary Host headers cannot grow memory or cardinality.
const maxCached = 1024

// Options configures a Tap.
type Options struct {
	// Meta is the proxy's own identity.
	Meta *node.Meta
	// Stats receives the metrics (required).
	Stats *stats.Registry
	// Sampling is the percent of requests without an incoming sampling
	// decision that start a trace (0..100).
	Sampling float64
	// Spans receives sampled spans; nil records none.
	Spans *trace.Buffer
	// AccessLog receives a line per request and connection; nil for none.
	AccessLog *accesslog.Logger
	// TrustDomain is the mesh's SPIFFE trust domain, for this proxy's own
	// principal (destination_principal); empty means "cluster.local".
	TrustDomain string
}

// Values of connection_security_policy, as Istio spells them.
const (
	PolicyMutualTLS = "mutual_tls"
	PolicyNone      = "none"
)

// Tap implements runtime.Tap.
type Tap struct {
	o       Options
	sampler trace.Sampler
	nodeID  string
	self    identity
	router  bool

	// Copy-on-write caches: lock-free reads, inserts under mu.
	mu          sync.Mutex
	peerHdr     atomic.Pointer[map[string][]string]          // cluster name -> x-weft-peer value
	byCluster   atomic.Pointer[map[string]*stats.Static]     // outbound, no endpoint
	byAuthority atomic.Pointer[map[string]*stats.Static]     // outbound NR/NC
	inbound     atomic.Pointer[map[inboundKey]*stats.Static] // inbound, by caller
	overflow    *stats.Static
}

// inboundKey is what an inbound request's fixed labels depend on: the raw
// peer header (else the authority) and the connection's mTLS identity. A
// struct key: looking it up allocates nothing.
type inboundKey struct {
	peer, authority string
	principal       string // the client certificate's URI SAN, "" without mTLS
	mtls            bool
}

// identity is a workload's label values.
type identity struct {
	workload, namespace, app, version string
	service                           string // FQDN of the weft run service, "" when unknown
	principal                         string // spiffe://TD/ns/NS/sa/SA
}

var _ runtime.Tap = (*Tap)(nil)

// New returns a Tap for the proxy described by o.Meta.
func New(o Options) *Tap {
	m := o.Meta
	t := &Tap{o: o, sampler: trace.NewSampler(o.Sampling), nodeID: m.ID(), router: m.Type == node.Router}
	t.self = identity{workload: m.WorkloadName, namespace: m.Namespace, app: m.Labels["app"], version: m.Labels["version"]}
	if t.self.app == "" {
		t.self.app = m.WorkloadName
	}
	if svc := m.Labels[config.LabelService]; svc != "" && m.Namespace != "" {
		t.self.service = svc + "." + m.Namespace + "." + model.DomainSuffix
	}
	t.self.principal = ca.SPIFFEID(o.TrustDomain, m.Namespace, m.ServiceAccount)
	for _, p := range []*atomic.Pointer[map[string]*stats.Static]{&t.byCluster, &t.byAuthority} {
		p.Store(&map[string]*stats.Static{})
	}
	t.inbound.Store(&map[inboundKey]*stats.Static{})
	t.peerHdr.Store(&map[string][]string{})
	t.overflow = o.Stats.Intern(stats.Identity{Reporter: stats.ReporterDestination, SecurityPolicy: PolicyNone})
	return t
}

// SetPrincipal replaces this proxy's own principal (destination_principal)
// with the identity its certificate carries, which names the mesh's real
// trust domain. Call it before the proxy serves: it is not synchronized
// with requests, and series already labelled keep the old value.
func (t *Tap) SetPrincipal(id string) {
	if id != "" {
		t.self.principal = id
	}
}

// Begin implements runtime.Tap: it starts this hop's span and, inbound,
// takes note of the caller's identity.
func (t *Tap) Begin(res *runtime.Result, r *http.Request) {
	res.Trace = trace.Start(trace.Extract(r.Header), t.sampler)
	if res.Inbound {
		if v := r.Header[stats.PeerHeader]; len(v) > 0 {
			res.Peer = v[0]
		}
	}
}

// Upstream implements runtime.Tap: inbound, the peer header is stripped
// before the app sees it; outbound, it is set to this proxy's identity and
// the service routed to. Trace headers are written for the next hop.
func (t *Tap) Upstream(res *runtime.Result, hdr http.Header) {
	if res.Inbound {
		delete(hdr, stats.PeerHeader)
	} else {
		hdr[stats.PeerHeader] = t.peerValue(res.Cluster)
	}
	trace.Inject(hdr, res.Trace)
}

// End implements runtime.Tap.
func (t *Tap) End(res *runtime.Result) {
	proto := stats.ProtoHTTP
	grpc := ""
	if res.GRPC {
		proto, grpc = stats.ProtoGRPC, res.GRPCStatus
	}
	t.static(res).RecordHTTP(proto, res.Code, res.Flags, grpc, res.Duration, res.RequestBytes, res.ResponseBytes)
	if res.Trace.Valid && res.Trace.Sampled && t.o.Spans != nil {
		t.o.Spans.Add(t.span(res))
	}
	if t.o.AccessLog != nil {
		e := accesslog.Entry{
			Start: res.Start, Method: res.Method, Path: res.Path, Protocol: res.Protocol, Code: res.Code,
			Flags: res.Flags, BytesReceived: res.RequestBytes, BytesSent: res.ResponseBytes, Duration: res.Duration,
			UpstreamServiceTime: -1, ForwardedFor: res.ForwardedFor, UserAgent: res.UserAgent,
			RequestID: res.RequestID, Authority: res.Authority, UpstreamHost: res.Upstream,
			UpstreamCluster: res.Cluster, DownstreamRemote: res.Downstream, Route: res.Route,
			Audit: res.Audit, RBACPolicy: res.RBACPolicy,
		}
		if res.Trace.Valid {
			e.TraceID = res.Trace.TraceID.String()
		}
		t.o.AccessLog.Log(&e)
	}
}

// TCPOpened implements runtime.Tap.
func (t *Tap) TCPOpened(res *tcpproxy.Result, inbound bool) {
	t.tcpStatic(res, inbound).TCP("").Opened()
}

// TCPClosed implements runtime.Tap. A connection that never reached its
// upstream is counted as opened and closed at once.
func (t *Tap) TCPClosed(res *tcpproxy.Result, inbound bool) {
	s := t.tcpStatic(res, inbound).TCP(res.Flags)
	if res.Flags != "" {
		s.Opened()
	}
	s.Closed(res.BytesSent, res.BytesReceived)
	if t.o.AccessLog != nil {
		t.o.AccessLog.Log(&accesslog.Entry{
			Start: res.Start, Flags: res.Flags, BytesReceived: res.BytesReceived, BytesSent: res.BytesSent,
			Duration: res.Duration, UpstreamServiceTime: -1, UpstreamHost: res.Upstream, UpstreamCluster: res.Cluster,
		})
	}
}

// span builds the finished span of a sampled request.
func (t *Tap) span(res *runtime.Result) telemetry.Span {
	kind := "SERVER"
	if !res.Inbound && !t.router {
		kind = "CLIENT"
	}
	flags := res.Flags
	if flags == "" {
		flags = stats.NoFlags
	}
	peer, _, err := net.SplitHostPort(res.Downstream)
	if err != nil {
		peer = res.Downstream
	}
	attrs := map[string]string{
		"http.method":             res.Method,
		"http.url":                accesslog.RedactPath(res.Path),
		"http.protocol":           res.Protocol,
		"http.status_code":        strconv.Itoa(res.Code),
		"upstream_cluster":        res.Cluster,
		"upstream_host":           res.Upstream,
		"node_id":                 t.nodeID,
		"istio.canonical_service": t.self.app,
		"istio.namespace":         t.self.namespace,
		"response_flags":          flags,
		"component":               "proxy",
		"peer.address":            peer,
		"guid:x-request-id":       res.RequestID,
		"user_agent":              res.UserAgent,
		"request_size":            strconv.FormatInt(res.RequestBytes, 10),
		"response_size":           strconv.FormatInt(res.ResponseBytes, 10),
	}
	if res.GRPC {
		attrs["grpc.status_code"] = res.GRPCStatus
	}
	return telemetry.Span{
		TraceID:      res.Trace.TraceID.String(),
		SpanID:       res.Trace.SpanID.String(),
		ParentSpanID: res.Trace.ParentID.String(),
		Name:         spanName(res.Authority),
		Kind:         kind,
		Start:        res.Start,
		End:          res.Start.Add(res.Duration),
		Attributes:   attrs,
		Error:        res.Code >= 500 || res.Code == 0 || (res.GRPC && res.GRPCStatus != "" && res.GRPCStatus != "0"),
	}
}

// spanName is Envoy's default operation name: "<authority>:<port>/*".
func spanName(authority string) string {
	if authority == "" {
		return "-"
	}
	if _, _, err := net.SplitHostPort(authority); err != nil {
		authority += ":80"
	}
	return authority + "/*"
}

// peerValue returns the x-weft-peer header for requests routed to cluster,
// computed once per cluster name.
func (t *Tap) peerValue(cluster string) []string {
	if v, ok := (*t.peerHdr.Load())[cluster]; ok {
		return v
	}
	p := stats.Peer{Workload: t.self.workload, Namespace: t.self.namespace, App: t.self.app, Version: t.self.version,
		Dst: stats.ServiceFromCluster(cluster)}
	v := []string{p.Encode()}
	t.mu.Lock()
	defer t.mu.Unlock()
	m := *t.peerHdr.Load()
	if len(m) < maxCached {
		next := make(map[string][]string, len(m)+1)
		for k, x := range m {
			next[k] = x
		}
		next[cluster] = v
		t.peerHdr.Store(&next)
	}
	return v
}

// static returns the interned fixed labels of a finished request.
func (t *Tap) static(res *runtime.Result) *stats.Static {
	if res.Inbound {
		return t.inboundStatic(inboundKey{peer: res.Peer, authority: res.Authority, principal: res.PeerPrincipal, mtls: res.MutualTLS})
	}
	return t.outboundStatic(res.Endpoint, res.Cluster, res.Authority, res.Flags)
}

func (t *Tap) tcpStatic(res *tcpproxy.Result, inbound bool) *stats.Static {
	if inbound {
		return t.inboundStatic(inboundKey{principal: res.PeerPrincipal, mtls: res.MutualTLS})
	}
	return t.outboundStatic(res.Endpoint, res.Cluster, "", res.Flags)
}

// outboundStatic: reporter "source", this proxy as the source, the
// destination from the cluster name and the endpoint's metadata. The
// result is cached on the endpoint.
func (t *Tap) outboundStatic(ep *lb.Endpoint, cluster, authority, flags string) *stats.Static {
	if ep != nil {
		if s, ok := ep.Tag.Load().(*stats.Static); ok {
			return s
		}
		s := t.o.Stats.Intern(t.outboundIdentity(stats.ServiceFromCluster(cluster), ep.Meta))
		ep.Tag.Store(s)
		return s
	}
	if cluster == "" || flags == runtime.FlagNoCluster {
		// No route or no cluster: no service to name. A sidecar names the
		// Host header as Istio's sidecars do; a gateway, like Istio's,
		// does not fall back to it, so Host headers from outside the
		// mesh neither name services nor become series: "unknown".
		if t.router {
			authority = ""
		}
		return cached(t, &t.byAuthority, authority, func() stats.Identity {
			return t.outboundIdentity(authority, nil)
		})
	}
	return cached(t, &t.byCluster, cluster, func() stats.Identity {
		return t.outboundIdentity(stats.ServiceFromCluster(cluster), nil)
	})
}

func (t *Tap) outboundIdentity(service string, md *lb.Metadata) stats.Identity {
	svc, name, ns := stats.ServiceParts(service)
	if ns == "" && md != nil {
		// A host that does not say its namespace: Istio's source side
		// reports the namespace of the workload that answered.
		ns = md.Namespace
	}
	id := stats.Identity{
		Reporter:       stats.ReporterSource,
		SourceWorkload: t.self.workload, SourceNamespace: t.self.namespace, SourceApp: t.self.app, SourceVersion: t.self.version,
		DestinationService: svc, DestinationServiceName: name, DestinationServiceNamespace: ns,
		SecurityPolicy: stats.Unknown,
	}
	if md != nil {
		id.DestinationWorkload, id.DestinationNamespace = md.Workload, md.Namespace
		id.DestinationApp, id.DestinationVersion = md.App, md.Version
		if id.DestinationApp == "" {
			id.DestinationApp = md.Workload
		}
	}
	return id
}

// inboundStatic: reporter "destination", this proxy as the destination,
// the source from the caller's peer header ("unknown" without one) and,
// over mutual TLS, the principals of both ends.
func (t *Tap) inboundStatic(k inboundKey) *stats.Static {
	if !k.mtls {
		k.principal = "" // only a verified certificate names anyone
	}
	if k.peer != "" || t.self.service != "" {
		// The peer header or this workload's own service names the
		// service called; the authority adds nothing but cardinality.
		k.authority = ""
	}
	return cached(t, &t.inbound, k, func() stats.Identity {
		p, err := stats.DecodePeer(k.peer)
		if k.peer == "" || err != nil {
			p = stats.Peer{}
		}
		id := t.inboundIdentity(p, k.authority)
		if k.mtls {
			id.SecurityPolicy = PolicyMutualTLS
			id.SourcePrincipal, id.DestinationPrincipal = k.principal, t.self.principal
		}
		return id
	})
}

// inboundIdentity names the destination service as the caller routed to it
// (the peer header), else this workload's own service, else the request's
// authority when it is a host name (an address names no service). As in
// Istio, the destination is in this workload's namespace unless a mesh
// host says otherwise.
func (t *Tap) inboundIdentity(p stats.Peer, authority string) stats.Identity {
	dst := p.Dst
	if dst == "" {
		dst = t.self.service
	}
	if dst == "" && !isAddress(authority) {
		dst = authority
	}
	svc, name, ns := stats.ServiceParts(dst)
	if ns == "" {
		ns = t.self.namespace
	}
	return stats.Identity{
		Reporter:       stats.ReporterDestination,
		SourceWorkload: p.Workload, SourceNamespace: p.Namespace, SourceApp: p.App, SourceVersion: p.Version,
		DestinationService: svc, DestinationServiceName: name, DestinationServiceNamespace: ns,
		DestinationWorkload: t.self.workload, DestinationNamespace: t.self.namespace,
		DestinationApp: t.self.app, DestinationVersion: t.self.version,
		SecurityPolicy: PolicyNone,
	}
}

// isAddress reports whether an authority is an IP address, with or
// without a port.
func isAddress(authority string) bool {
	host := authority
	if h, _, err := net.SplitHostPort(authority); err == nil {
		host = h
	}
	return net.ParseIP(strings.Trim(host, "[]")) != nil
}

// cached looks key up in the copy-on-write map at p, interning id() on a
// miss; past maxCached entries misses share the overflow label set.
func cached[K comparable](t *Tap, p *atomic.Pointer[map[K]*stats.Static], key K, id func() stats.Identity) *stats.Static {
	if s, ok := (*p.Load())[key]; ok {
		return s
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	m := *p.Load()
	if s, ok := m[key]; ok {
		return s
	}
	if len(m) >= maxCached {
		return t.overflow
	}
	s := t.o.Stats.Intern(id())
	next := make(map[K]*stats.Static, len(m)+1)
	for k, v := range m {
		next[k] = v
	}
	next[key] = s
	p.Store(&next)
	return s
}
