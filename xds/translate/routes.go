package translate

import (
	"sort"
	"strings"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
)

// routeScope says where a VirtualService's routes are being placed.
type routeScope struct {
	port    uint32 // the virtual host's service port (sidecar) or listener port (gateway)
	gateway bool
}

// vsRoutes translates the http section of a VirtualService for one scope.
// Only match, route and timeout are translated; other HTTPRoute fields are
// ignored, and a route with no destinations (redirect, direct response...)
// is dropped since weft has no action to give it.
func (g *generator) vsRoutes(o *config.Object, sc routeScope) []*route.Route {
	vs := o.Spec.(*networking.VirtualService)
	var out []*route.Route
	for _, hr := range vs.GetHttp() {
		action := g.routeAction(o.Meta.Namespace, hr, sc)
		if action == nil {
			continue
		}
		var matches []*route.RouteMatch
		if len(hr.GetMatch()) == 0 {
			matches = append(matches, routeMatch(nil))
		}
		for _, m := range hr.GetMatch() {
			if m.GetPort() != 0 && m.GetPort() != sc.port {
				continue
			}
			matches = append(matches, routeMatch(m))
		}
		// Each match becomes its own Envoy route with the same action: Envoy
		// ANDs conditions inside one RouteMatch, Istio ORs match entries.
		for i, rm := range matches {
			a := action
			if i > 0 {
				a = proto.Clone(action).(*route.RouteAction)
			}
			out = append(out, &route.Route{Name: hr.GetName(), Match: rm, Action: &route.Route_Route{Route: a}})
		}
	}
	return out
}

// routeAction builds the destination part of an HTTPRoute, or nil if it has
// no destinations.
func (g *generator) routeAction(ns string, hr *networking.HTTPRoute, sc routeScope) *route.RouteAction {
	type weighted struct {
		name   string
		weight uint32
	}
	dests := hr.GetRoute()
	var list []weighted
	for _, d := range dests {
		// Istio drops zero-weight destinations when there is more than one.
		if len(dests) > 1 && d.GetWeight() <= 0 {
			continue
		}
		list = append(list, weighted{g.destinationCluster(ns, d.GetDestination(), sc), uint32(max(d.GetWeight(), 0))})
	}
	if len(list) == 0 && len(dests) > 0 {
		// All weights zero: config validation should have refused it; split
		// evenly rather than emit a weighted_clusters Envoy would reject.
		for _, d := range dests {
			list = append(list, weighted{g.destinationCluster(ns, d.GetDestination(), sc), 1})
		}
	}
	if len(list) == 0 {
		return nil
	}
	timeout := durationpb.New(0) // Istio disables Envoy's 15s default unless a timeout is set
	if t := hr.GetTimeout(); t != nil {
		timeout = durationpb.New(t.AsDuration())
	}
	a := &route.RouteAction{Timeout: timeout}
	if len(list) == 1 {
		a.ClusterSpecifier = &route.RouteAction_Cluster{Cluster: list[0].name}
		return a
	}
	wc := &route.WeightedCluster{}
	for _, w := range list {
		wc.Clusters = append(wc.Clusters, &route.WeightedCluster_ClusterWeight{Name: w.name, Weight: wrapperspb.UInt32(w.weight)})
	}
	a.ClusterSpecifier = &route.RouteAction_WeightedClusters{WeightedClusters: wc}
	return a
}

// destinationCluster names the cluster for a route destination. Without an
// explicit port it takes the service's only port, else (sidecar) the virtual
// host's port or (gateway, where the listener port says nothing about the
// backend) the service's first port.
func (g *generator) destinationCluster(ns string, d *networking.Destination, sc routeScope) string {
	host := g.s.ResolveHost(ns, d.GetHost())
	port := d.GetPort().GetNumber()
	if port == 0 {
		svc := g.s.Service(host)
		switch {
		case svc != nil && len(svc.Ports) == 1:
			port = svc.Ports[0].Number
		case sc.gateway && svc != nil && len(svc.Ports) > 0:
			port = svc.Ports[0].Number
		default:
			port = sc.port
		}
	}
	return ClusterName(port, d.GetSubset(), host)
}

// routeMatch translates one HTTPMatchRequest; nil matches everything.
func routeMatch(m *networking.HTTPMatchRequest) *route.RouteMatch {
	rm := &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}}
	if m == nil {
		return rm
	}
	switch u := m.GetUri().GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		rm.PathSpecifier = &route.RouteMatch_Path{Path: u.Exact}
	case *networking.StringMatch_Prefix:
		rm.PathSpecifier = &route.RouteMatch_Prefix{Prefix: u.Prefix}
	case *networking.StringMatch_Regex:
		rm.PathSpecifier = &route.RouteMatch_SafeRegex{SafeRegex: regex(u.Regex)}
	}
	if m.GetIgnoreUriCase() {
		rm.CaseSensitive = wrapperspb.Bool(false)
	}
	for name, sm := range m.GetHeaders() {
		rm.Headers = append(rm.Headers, headerMatcher(name, sm, false))
	}
	for name, sm := range m.GetWithoutHeaders() {
		rm.Headers = append(rm.Headers, headerMatcher(name, sm, true))
	}
	if m.GetMethod() != nil {
		rm.Headers = append(rm.Headers, headerMatcher(":method", m.GetMethod(), false))
	}
	if m.GetAuthority() != nil {
		rm.Headers = append(rm.Headers, headerMatcher(":authority", m.GetAuthority(), false))
	}
	sort.SliceStable(rm.Headers, func(i, j int) bool {
		a, b := rm.Headers[i], rm.Headers[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return !a.InvertMatch && b.InvertMatch
	})
	for name, sm := range m.GetQueryParams() {
		qm := &route.QueryParameterMatcher{Name: name}
		if s := stringMatcher(sm); s != nil {
			qm.QueryParameterMatchSpecifier = &route.QueryParameterMatcher_StringMatch{StringMatch: s}
		} else {
			qm.QueryParameterMatchSpecifier = &route.QueryParameterMatcher_PresentMatch{PresentMatch: true}
		}
		rm.QueryParameters = append(rm.QueryParameters, qm)
	}
	sort.Slice(rm.QueryParameters, func(i, j int) bool { return rm.QueryParameters[i].Name < rm.QueryParameters[j].Name })
	return rm
}

// headerMatcher matches one header; an empty StringMatch means "present".
func headerMatcher(name string, sm *networking.StringMatch, invert bool) *route.HeaderMatcher {
	hm := &route.HeaderMatcher{Name: strings.ToLower(name), InvertMatch: invert}
	if s := stringMatcher(sm); s != nil {
		hm.HeaderMatchSpecifier = &route.HeaderMatcher_StringMatch{StringMatch: s}
	} else {
		hm.HeaderMatchSpecifier = &route.HeaderMatcher_PresentMatch{PresentMatch: true}
	}
	return hm
}

func stringMatcher(sm *networking.StringMatch) *matcher.StringMatcher {
	switch v := sm.GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: v.Exact}}
	case *networking.StringMatch_Prefix:
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: v.Prefix}}
	case *networking.StringMatch_Regex:
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: regex(v.Regex)}}
	}
	return nil
}

func regex(re string) *matcher.RegexMatcher {
	return &matcher.RegexMatcher{
		//nolint:staticcheck // the contract spells out google_re2 {} for Envoy versions that still require it
		EngineType: &matcher.RegexMatcher_GoogleRe2{GoogleRe2: &matcher.RegexMatcher_GoogleRE2{}},
		Regex:      re,
	}
}
