package translate

import (
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// securityFilters are the filters that enforce the security policies
// selecting one proxy, for each kind of server-side listener it has.
type securityFilters struct {
	// http goes before the traffic filters of every server-side HCM, in
	// the contract's order: jwt_authn, rbac LOG, DENY, ALLOW, local_ratelimit.
	http []*hcm.HttpFilter
	// network goes before tcp_proxy: rbac DENY, ALLOW.
	network []*listener.Filter
	// routeLimits maps an HTTP route name to its local_ratelimit config.
	routeLimits map[string]*anypb.Any
}

// tcp returns a fresh copy of the network filters, so callers may append.
func (s *securityFilters) tcp() []*listener.Filter {
	out := make([]*listener.Filter, 0, len(s.network)+1)
	for _, f := range s.network {
		out = append(out, proto.Clone(f).(*listener.Filter))
	}
	return out
}

// security builds (once per Generate) the filters for the policies that
// select this proxy by its namespace and labels: sidecars and gateways
// alike, since a gateway is selected as the workload it is. Policies act
// on the server side only, so outbound listeners never carry them.
func (g *generator) security() *securityFilters {
	if g.sec != nil {
		return g.sec
	}
	ns, labels := g.p.Namespace, g.p.Labels
	sec := &securityFilters{}
	if f := g.jwtFilter(g.s.RequestAuthentications(ns, labels)); f != nil {
		sec.http = append(sec.http, f)
	}
	pols := g.s.AuthorizationPolicies(ns, labels)
	sec.http = append(sec.http, g.httpRBACFilters(pols)...)
	sec.network = g.networkRBACFilters(pols)
	var limit *hcm.HttpFilter
	limit, sec.routeLimits = g.rateLimitFilter(g.s.RateLimits(ns, labels))
	if limit != nil {
		sec.http = append(sec.http, limit)
	}
	g.sec = sec
	return sec
}
