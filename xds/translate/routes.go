package translate

import (
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
)

// routeScope says where a VirtualService's routes are being placed.
type routeScope struct {
	port       uint32 // the virtual host's service port (sidecar) or Gateway server port (gateway)
	listenPort uint32 // the port requests actually arrive on (a gateway's port 80 may listen on 8080)
	gateway    bool
}

// vsRoutes translates the http section of a VirtualService for one scope.
// A route with destinations, a redirect or a direct response is kept; a
// delegate (or a redirect Envoy cannot express) is dropped.
func (g *generator) vsRoutes(o *config.Object, sc routeScope) []*route.Route {
	vs := o.Spec.(*networking.VirtualService)
	var out []*route.Route
	for _, hr := range vs.GetHttp() {
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
		if len(matches) == 0 {
			continue
		}
		base := g.httpRoute(o.Meta.Namespace, hr, sc)
		if base == nil {
			continue
		}
		// Each match becomes its own Envoy route with the same action: Envoy
		// ANDs conditions inside one RouteMatch, Istio ORs match entries.
		for i, rm := range matches {
			r := base
			if i > 0 {
				r = proto.Clone(base).(*route.Route)
			}
			r.Match = rm
			out = append(out, r)
		}
	}
	return out
}

// httpRoute builds everything of an Envoy route but its match, or nil if
// the HTTPRoute has nothing Envoy could do with a request.
func (g *generator) httpRoute(ns string, hr *networking.HTTPRoute, sc routeScope) *route.Route {
	r := &route.Route{Name: hr.GetName()}
	ops := headerOperations(hr.GetHeaders())
	ops.addToRoute(r)
	switch {
	case hr.GetRedirect() != nil:
		rd := redirectAction(hr.GetRedirect(), sc.listenPort)
		if rd == nil {
			return nil
		}
		r.Action = &route.Route_Redirect{Redirect: rd}
	case hr.GetDirectResponse() != nil:
		r.Action = &route.Route_DirectResponse{DirectResponse: directResponse(hr.GetDirectResponse())}
	default:
		a := g.routeAction(ns, hr, sc, r, ops.authority)
		if a == nil {
			return nil
		}
		r.Action = &route.Route_Route{Route: a}
	}
	g.perFilterConfig(r, hr)
	return r
}

// perFilterConfig attaches the route's fault and CORS settings for the
// HCM's fault and cors filters. Like Istio, they apply whatever the
// route's action: a fault can precede a redirect, CORS a direct response.
func (g *generator) perFilterConfig(r *route.Route, hr *networking.HTTPRoute) {
	set := func(filter string, cfg proto.Message) {
		a := g.toAny("route "+r.GetName()+": "+filter, cfg)
		if a == nil {
			return
		}
		if r.TypedPerFilterConfig == nil {
			r.TypedPerFilterConfig = map[string]*anypb.Any{}
		}
		r.TypedPerFilterConfig[filter] = a
	}
	if f := faultConfig(hr.GetFault()); f != nil {
		set(faultFilterName, f)
	}
	if c := corsPolicy(hr.GetCorsPolicy()); c != nil {
		set(corsFilterName, c)
	}
}

// target is one destination of a route action.
type target struct {
	name    string
	weight  uint32
	headers *networking.Headers
}

// routeAction builds the forwarding part of an HTTPRoute, or nil if it has
// no destinations. Per-destination headers of a single destination land on
// r after the route's own, so the destination's wins a conflict.
func (g *generator) routeAction(ns string, hr *networking.HTTPRoute, sc routeScope, r *route.Route, authority string) *route.RouteAction {
	dests := hr.GetRoute()
	var list []target
	for _, d := range dests {
		// Istio drops zero-weight destinations when there is more than one.
		if len(dests) > 1 && d.GetWeight() <= 0 {
			continue
		}
		list = append(list, target{g.destinationCluster(ns, d.GetDestination(), sc), uint32(max(d.GetWeight(), 0)), d.GetHeaders()})
	}
	if len(list) == 0 && len(dests) > 0 {
		// All weights zero: config validation should have refused it; split
		// evenly rather than emit a weighted_clusters Envoy would reject.
		for _, d := range dests {
			list = append(list, target{g.destinationCluster(ns, d.GetDestination(), sc), 1, d.GetHeaders()})
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
		dops := headerOperations(list[0].headers)
		dops.addToRoute(r)
		if authority == "" {
			authority = dops.authority
		}
	} else {
		wc := &route.WeightedCluster{}
		for _, t := range list {
			cw := &route.WeightedCluster_ClusterWeight{Name: t.name, Weight: wrapperspb.UInt32(t.weight)}
			headerOperations(t.headers).addToClusterWeight(cw)
			wc.Clusters = append(wc.Clusters, cw)
		}
		a.ClusterSpecifier = &route.RouteAction_WeightedClusters{WeightedClusters: wc}
	}
	applyRewrite(a, hr.GetRewrite(), authority)
	a.HashPolicy = g.hashPolicies(list)
	a.RetryPolicy = retryPolicy(hr.GetRetries(), len(a.HashPolicy) > 0)
	a.RequestMirrorPolicies = g.mirrorPolicies(ns, hr, sc)
	return a
}

// hashPolicies collects the hash policies of every target cluster that
// hashes consistently. Envoy computes one hash per request from the
// route's policies, so a weighted route must carry the policy as soon as
// any of its clusters needs it; identical policies are listed once.
func (g *generator) hashPolicies(list []target) []*route.RouteAction_HashPolicy {
	var out []*route.RouteAction_HashPolicy
	for _, t := range list {
		hp := g.hashes[t.name]
		if hp == nil {
			continue
		}
		dup := false
		for _, have := range out {
			dup = dup || proto.Equal(have, hp)
		}
		if !dup {
			out = append(out, proto.Clone(hp).(*route.RouteAction_HashPolicy))
		}
	}
	return out
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

// defaultOutboundRoute is the route of a service no VirtualService covers.
// Istio gives it the default retry policy and, when the service's
// DestinationRule hashes consistently, the hash policy.
func (g *generator) defaultOutboundRoute(clusterName string) *route.Route {
	r := defaultRoute(clusterName)
	a := r.GetRoute()
	a.HashPolicy = g.hashPolicies([]target{{name: clusterName}})
	a.RetryPolicy = retryPolicy(nil, len(a.HashPolicy) > 0)
	return r
}

func defaultRoute(clusterName string) *route.Route {
	return &route.Route{
		Name:  "default",
		Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
		Action: &route.Route_Route{Route: &route.RouteAction{
			ClusterSpecifier: &route.RouteAction_Cluster{Cluster: clusterName},
			Timeout:          durationpb.New(0),
		}},
	}
}
