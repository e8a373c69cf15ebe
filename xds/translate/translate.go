// Package translate turns a model.Snapshot into the Envoy v3 resources one
// proxy needs, following the xDS contract in docs/ARCHITECTURE.md and
// Istio's semantics for traffic management (VirtualService,
// DestinationRule, Gateway) and security (PeerAuthentication mutual TLS,
// AuthorizationPolicy, RequestAuthentication, and weft's RateLimit). Output is deterministic: the same
// snapshot and node always produce byte-identical resources, so the ADS
// server can hash them into versions.
package translate

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/xds/node"
)

// Resource type URLs, as carried in DiscoveryRequest.type_url.
const (
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
)

// Well-known names from the xDS contract.
const (
	OutboundListener = "virtualOutbound"
	InboundListener  = "virtualInbound"
	OutboundRoute    = "outbound"

	hcmFilterName      = "envoy.filters.network.http_connection_manager"
	tcpProxyFilterName = "envoy.filters.network.tcp_proxy"
	faultFilterName    = "envoy.filters.http.fault"
	corsFilterName     = "envoy.filters.http.cors"
	routerFilterName   = "envoy.filters.http.router"

	// The security filters of the contract, in the order an HCM runs them.
	jwtFilterName       = "envoy.filters.http.jwt_authn"
	rbacFilterName      = "envoy.filters.http.rbac"
	rateLimitFilterName = "envoy.filters.http.local_ratelimit"
	netRBACFilterName   = "envoy.filters.network.rbac"
)

// Options tune Generate for one control plane.
type Options struct {
	// TrustDomain is the SPIFFE trust domain of the mesh's identities
	// (spiffe://TD/ns/NS/sa/SA); empty means ca.DefaultTrustDomain.
	TrustDomain string
	// MaxRequestHeadersKB and MaxHeadersCount bound the request headers of
	// every HTTP listener (HCM max_request_headers_kb and
	// common_http_protocol_options.max_headers_count); 0 leaves the field
	// out, which means Envoy's default (60 KiB, 100 headers).
	MaxRequestHeadersKB, MaxHeadersCount uint32
	// ProxyDown, when set, reports whether the sidecar with xDS node ID id
	// has lost its stream to the control plane. The endpoints it
	// registered (model.Endpoint.Proxy) are then sent with health_status
	// UNHEALTHY, which takes them out of load balancing until the sidecar
	// is back or its WorkloadEntry is removed.
	ProxyDown func(id string) bool
	// DownEpoch, when set with ProxyDown, changes whenever ProxyDown's
	// answers may have: a Translator then regenerates the assignments of
	// the services whose sidecars' health changed, although the snapshot
	// is the same. Without it a Translator's ProxyDown answers are taken
	// to be fixed.
	DownEpoch func() uint64
}

// Resources is everything one proxy should have, keyed by resource name.
type Resources struct {
	Listeners map[string]*listener.Listener
	Routes    map[string]*route.RouteConfiguration
	Clusters  map[string]*cluster.Cluster
	Endpoints map[string]*endpoint.ClusterLoadAssignment

	// Revision is the model revision the resources were generated from
	// (the store revision an apply reports), so the ADS server can tell
	// which revision each proxy has taken.
	Revision int64

	// problems are inputs Generate could not translate (e.g. a malformed
	// node address). Generate has no error result, so they surface from
	// Validate, which the ADS server calls before sending anything.
	problems []string
}

func newResources() *Resources {
	return &Resources{
		Listeners: map[string]*listener.Listener{},
		Routes:    map[string]*route.RouteConfiguration{},
		Clusters:  map[string]*cluster.Cluster{},
		Endpoints: map[string]*endpoint.ClusterLoadAssignment{},
	}
}

func (r *Resources) problem(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// ByType returns the resources of one type URL sorted by name, or nil for
// an unknown type.
func (r *Resources) ByType(typeURL string) []proto.Message {
	var out []proto.Message
	switch typeURL {
	case ClusterType:
		for _, n := range sortedKeys(r.Clusters) {
			out = append(out, r.Clusters[n])
		}
	case EndpointType:
		for _, n := range sortedKeys(r.Endpoints) {
			out = append(out, r.Endpoints[n])
		}
	case ListenerType:
		for _, n := range sortedKeys(r.Listeners) {
			out = append(out, r.Listeners[n])
		}
	case RouteType:
		for _, n := range sortedKeys(r.Routes) {
			out = append(out, r.Routes[n])
		}
	}
	return out
}

// Generate builds the resources for proxy p from snapshot s with default
// Options. Problems it cannot express in Envoy terms are reported by Validate.
func Generate(s *model.Snapshot, p *node.Meta) *Resources { return GenerateWith(s, p, Options{}) }

// GenerateWith is Generate with explicit options: the resources one
// Translator generates for one proxy, as messages keyed by name. A
// control plane serving many proxies keeps a Translator instead.
func GenerateWith(s *model.Snapshot, p *node.Meta, o Options) *Resources {
	return NewTranslator(o).Generate(s, p, nil).Resources()
}

// generator carries the inputs of one generation: a bundle (shared is
// set) or one proxy's own part.
type generator struct {
	s    *model.Snapshot
	p    *node.Meta
	r    *Resources
	opts Options

	// shared: generating a bundle, whose p is a stand-in with the
	// namespace and flavor only.
	shared bool
	// scope is what the proxies see (model.Scope: exportTo, Sidecar).
	scope *model.Scope
	// items caches clusters and routes across snapshots; made holds the
	// encoded resource of each message, resErrs their own problems.
	items   *itemCache
	made    map[proto.Message]*madeResource
	resErrs []error
	// checked maps the first route of each cached virtual host's routes
	// to its item, whose routes were checked when made.
	checked map[*route.Route]*routesItem
	// clusterItems are the outbound clusters generated, in order.
	clusterItems []*clusterItem

	// sec holds the proxy's security filters, built on first use: every
	// server-side listener of the proxy carries the same ones.
	sec *securityFilters

	// peerTLS caches, per endpoint and workload port, whether auto mTLS
	// reaches the endpoint over TLS.
	peerTLS map[endpointPort]bool

	// wport caches inboundPort once known: virtualInbound and every RBAC
	// filter ask for it.
	wport *uint32

	// sans caches clusterIdentities per host and subset name: every port
	// of a service has a cluster per subset, all with the same servers.
	sans map[hostSubset][]string

	// istioMD caches endpointMetadata per endpoint, which every cluster of
	// the endpoint's service carries alike.
	istioMD map[*model.Endpoint]*structpb.Struct

	// hashes holds, per cluster whose merged traffic policy hashes
	// consistently, the hash_policy every route to it must carry: Envoy
	// computes the hash on the route, the cluster only consumes it.
	hashes map[string]*route.RouteAction_HashPolicy
}

// ClusterName returns Istio's outbound cluster name for host, port and
// (possibly empty) subset.
func ClusterName(port uint32, subset, host string) string {
	return fmt.Sprintf("outbound|%d|%s|%s", port, subset, host)
}

// InboundClusterName returns the name of a sidecar's local-app cluster.
func InboundClusterName(port uint32) string { return fmt.Sprintf("inbound|%d||", port) }

// GatewayListenerName returns the listener name for Gateway port p.
func GatewayListenerName(p uint32) string { return fmt.Sprintf("0.0.0.0_%d", p) }

// GatewayRouteName returns the RDS name for Gateway port p.
func GatewayRouteName(p uint32) string { return fmt.Sprintf("http.%d", p) }

// socketAddress parses host:port into an Envoy address.
func socketAddress(hostport string) (*core.Address, uint32, error) {
	host, ps, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, 0, fmt.Errorf("address %q: %w", hostport, err)
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return nil, 0, fmt.Errorf("address %q: bad port: %w", hostport, err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Protocol: core.SocketAddress_TCP, Address: host,
		PortSpecifier: &core.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}, uint32(port), nil
}

func adsSource() *core.ConfigSource {
	return &core.ConfigSource{
		ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
		ResourceApiVersion:    core.ApiVersion_V3,
	}
}

// httpListener builds a listener with a single HTTP connection manager
// whose filters are security (possibly none) then the traffic filters.
func httpListener(name, statPrefix string, addr *core.Address, dir core.TrafficDirection, m *hcm.HttpConnectionManager, security []*hcm.HttpFilter) *listener.Listener {
	return singleFilterListener(name, addr, dir, hcmFilterName, mustAny(httpManager(statPrefix, m, security)))
}

// httpManager completes m with the contract's settings and filter chain.
func httpManager(statPrefix string, m *hcm.HttpConnectionManager, security []*hcm.HttpFilter) *hcm.HttpConnectionManager {
	m.StatPrefix = statPrefix
	m.CodecType = hcm.HttpConnectionManager_AUTO
	m.HttpFilters = append(append([]*hcm.HttpFilter(nil), security...), httpFilters()...)
	return m
}

// httpFilters is the contract's traffic filter chain. Fault and CORS come
// before the router and are empty here: each route carries its own
// settings in typed_per_filter_config, so a route without them is untouched.
func httpFilters() []*hcm.HttpFilter {
	return []*hcm.HttpFilter{
		httpFilter(faultFilterName, mustAny(&faultv3.HTTPFault{})),
		httpFilter(corsFilterName, mustAny(&corsv3.Cors{})),
		httpFilter(routerFilterName, mustAny(&routerv3.Router{})),
	}
}

func httpFilter(name string, cfg *anypb.Any) *hcm.HttpFilter {
	return &hcm.HttpFilter{Name: name, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: cfg}}
}

func networkFilter(name string, cfg *anypb.Any) *listener.Filter {
	return &listener.Filter{Name: name, ConfigType: &listener.Filter_TypedConfig{TypedConfig: cfg}}
}

// singleFilterListener builds a listener whose one filter chain holds one
// network filter.
func singleFilterListener(name string, addr *core.Address, dir core.TrafficDirection, filterName string, cfg *anypb.Any) *listener.Listener {
	return &listener.Listener{
		Name:             name,
		Address:          addr,
		TrafficDirection: dir,
		FilterChains: []*listener.FilterChain{{
			Filters: []*listener.Filter{{Name: filterName, ConfigType: &listener.Filter_TypedConfig{TypedConfig: cfg}}},
		}},
	}
}

// mustAny wraps a message the translator built from fixed parts. Marshal
// only fails for unregistered types or invalid UTF-8, neither of which such
// messages can hold; anything carrying user strings goes through
// generator.toAny instead.
func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(fmt.Sprintf("marshal %T: %v", m, err))
	}
	return a
}

// toAny wraps m, recording a problem (and returning nil) if it cannot be
// marshalled, e.g. because a user-supplied string is not valid UTF-8.
func (g *generator) toAny(what string, m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		g.r.problem("node %s: %s: %v", g.p.ID(), what, err)
		return nil
	}
	return a
}

func rdsManager(routeName string) *hcm.HttpConnectionManager {
	return &hcm.HttpConnectionManager{RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{
		ConfigSource: adsSource(), RouteConfigName: routeName,
	}}}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// isWildcard reports whether host is a wildcard pattern ("*", "*.x").
func isWildcard(host string) bool { return strings.HasPrefix(host, "*") }
