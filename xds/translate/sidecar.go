package translate

import (
	"fmt"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
)

// sidecar emits the outbound listener and route table and, when the node
// fronts a local app, the inbound listener and its static cluster. A
// sidecar whose traffic is captured gets capturedSidecar's instead.
func (g *generator) sidecar() {
	if g.p.Captured() {
		g.capturedSidecar()
		return
	}
	if g.p.Outbound != "" {
		addr, _, err := socketAddress(g.p.Outbound)
		if err != nil {
			g.r.problem("node %s: %s: %v", g.p.ID(), "OUTBOUND_ADDRESS", err)
		} else {
			g.r.Listeners[OutboundListener] = httpListener(OutboundListener, "outbound", addr, core.TrafficDirection_OUTBOUND, rdsManager(OutboundRoute), nil)
			g.r.Routes[OutboundRoute] = g.outboundRoutes()
		}
	}
	if g.p.Inbound != "" && g.p.App != "" {
		g.inbound()
	}
}

// meshVS is a VirtualService bound to the mesh, with its hosts resolved.
type meshVS struct {
	obj   *config.Object
	hosts []string
}

func (g *generator) meshVirtualServices() []meshVS {
	var out []meshVS
	for _, o := range g.s.Objects(config.KindVirtualService) {
		vs := o.Spec.(*networking.VirtualService)
		if !boundToMesh(vs) {
			continue
		}
		m := meshVS{obj: o}
		for _, h := range vs.GetHosts() {
			m.hosts = append(m.hosts, g.s.ResolveHost(o.Meta.Namespace, h))
		}
		out = append(out, m)
	}
	return out
}

func boundToMesh(vs *networking.VirtualService) bool {
	if len(vs.GetGateways()) == 0 {
		return true
	}
	for _, gw := range vs.GetGateways() {
		if gw == "mesh" {
			return true
		}
	}
	return false
}

// virtualServiceFor picks the mesh VirtualService for host: one naming the
// host exactly wins over a wildcard, as in Istio; ties go to the first by
// namespace/name.
func virtualServiceFor(vss []meshVS, host string) *config.Object {
	var wildcard *config.Object
	for _, v := range vss {
		for _, h := range v.hosts {
			if h == host {
				return v.obj
			}
			if wildcard == nil && model.HostMatches(h, host) {
				wildcard = v.obj
			}
		}
	}
	return wildcard
}

// outboundRoutes builds RouteConfiguration "outbound": one virtual host per
// HTTP service port.
//
// Outbound TCP (VirtualService tcp routes seen from a sidecar) is not
// translated: in local mode the app reaches the mesh only through its
// HTTP_PROXY, the one virtualOutbound listener, so there is no per-port
// outbound listener a tcp_proxy could sit on. TCP services are reached
// through a Gateway's TCP server instead.
func (g *generator) outboundRoutes() *route.RouteConfiguration {
	vss := g.meshVirtualServices()
	rc := &route.RouteConfiguration{Name: OutboundRoute}
	var cands []domainCandidate
	for _, svc := range g.s.Services() {
		vs := virtualServiceFor(vss, svc.Hostname)
		for _, port := range svc.Ports {
			if !port.IsHTTP() {
				continue
			}
			vh := g.serviceVirtualHost(vs, svc, port)
			for _, c := range sidecarDomains(svc, port.Number, g.p.Namespace) {
				c.vhost = len(rc.VirtualHosts)
				cands = append(cands, c)
			}
			rc.VirtualHosts = append(rc.VirtualHosts, vh)
		}
	}
	assignDomains(rc.VirtualHosts, cands)
	return rc
}

// serviceVirtualHost is the virtual host of svc's HTTP port: the routes of
// its mesh VirtualService vs for that port, or the default route to the
// service's cluster. Domains are the caller's.
func (g *generator) serviceVirtualHost(vs *config.Object, svc *model.Service, port *model.Port) *route.VirtualHost {
	vh := &route.VirtualHost{Name: fmt.Sprintf("%s:%d", svc.Hostname, port.Number)}
	if vs != nil {
		vh.Routes = g.vsRoutes(vs, routeScope{port: port.Number, listenPort: port.Number})
	} else {
		vh.Routes = []*route.Route{g.defaultOutboundRoute(ClusterName(port.Number, "", svc.Hostname))}
	}
	return vh
}

// domainCandidate is a domain a virtual host would like; lower rank wins
// when two virtual hosts want the same one.
type domainCandidate struct {
	domain string
	rank   int
	vhost  int
}

// sidecarDomains lists the names a caller may use for svc:port. Envoy
// rejects a route table where two virtual hosts share a domain, so each
// form carries a rank: the FQDN beats NAME.NS forms, which beat the bare
// NAME, which belongs to the service in the proxy's own namespace first.
func sidecarDomains(svc *model.Service, port uint32, proxyNS string) []domainCandidate {
	type form struct {
		name string
		rank int
	}
	forms := []form{{svc.Hostname, 0}}
	if rest, ok := strings.CutSuffix(svc.Hostname, "."+model.DomainSuffix); ok {
		if name, ns, ok := strings.Cut(rest, "."); ok && !strings.Contains(ns, ".") {
			bare := 3
			if ns == proxyNS {
				bare = 2
			}
			forms = append(forms, form{name + "." + ns + ".svc", 1}, form{name + "." + ns, 1}, form{name, bare})
		}
	}
	var out []domainCandidate
	for _, f := range forms {
		out = append(out, domainCandidate{domain: fmt.Sprintf("%s:%d", f.name, port), rank: f.rank})
		if port == 80 {
			out = append(out, domainCandidate{domain: f.name, rank: f.rank})
		}
	}
	return out
}

// assignDomains gives each domain to the best-ranked virtual host that
// wants it (earliest on ties), preserving each host's own order.
func assignDomains(vhosts []*route.VirtualHost, cands []domainCandidate) {
	owner := map[string]domainCandidate{}
	for _, c := range cands {
		if cur, ok := owner[c.domain]; !ok || c.rank < cur.rank {
			owner[c.domain] = c
		}
	}
	added := map[string]bool{}
	for _, c := range cands {
		if o := owner[c.domain]; o.vhost == c.vhost && o.rank == c.rank && !added[c.domain] {
			vhosts[c.vhost].Domains = append(vhosts[c.vhost].Domains, c.domain)
			added[c.domain] = true
		}
	}
}

// inbound emits virtualInbound, which hands every request (or, for a
// workload run with INBOUND_PROTOCOL TCP, every connection) to the local
// app through the STATIC cluster inbound|PORT||. Its filter chains follow
// the workload's PeerAuthentication; its filters enforce the policies
// selecting the workload.
func (g *generator) inbound() {
	laddr, _, err := socketAddress(g.p.Inbound)
	if err != nil {
		g.r.problem("node %s: INBOUND_ADDRESS: %v", g.p.ID(), err)
		return
	}
	app, port, err := socketAddress(g.p.App)
	if err != nil {
		g.r.problem("node %s: APP_ADDRESS: %v", g.p.ID(), err)
		return
	}
	name := InboundClusterName(port)
	g.r.Clusters[name] = staticCluster(name, app)
	g.r.Listeners[InboundListener] = g.inboundListener(laddr, g.inboundFilters(port, strings.EqualFold(g.p.InboundProtocol, "TCP")))
}

// inboundFilters are the network filters that hand a connection to the
// local app's port through cluster inbound|PORT||: the security filters,
// then a tcp_proxy (tcp) or an HCM whose inline route config sends every
// request there.
func (g *generator) inboundFilters(port uint32, tcp bool) []*listener.Filter {
	name := InboundClusterName(port)
	sec := g.security()
	if tcp {
		return append(sec.tcp(), networkFilter(tcpProxyFilterName, mustAny(tcpProxy(name, []target{{name: name, weight: 1}}))))
	}
	rc := &route.RouteConfiguration{
		Name: name,
		VirtualHosts: []*route.VirtualHost{{
			Name:    fmt.Sprintf("inbound|http|%d", port),
			Domains: []string{"*"},
			Routes:  []*route.Route{defaultRoute(name)},
		}},
	}
	g.applyRouteLimits(rc)
	m := &hcm.HttpConnectionManager{RouteSpecifier: &hcm.HttpConnectionManager_RouteConfig{RouteConfig: rc}}
	return []*listener.Filter{networkFilter(hcmFilterName, mustAny(httpManager("inbound", m, sec.http)))}
}

// staticCluster is a cluster of the one address app.
func staticCluster(name string, app *core.Address) *cluster.Cluster {
	return &cluster.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(ConnectTimeout),
		LbPolicy:             cluster.Cluster_ROUND_ROBIN,
		CircuitBreakers:      defaultCircuitBreakers(),
		LoadAssignment: &endpoint.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpoint.LocalityLbEndpoints{{
				Locality:            &core.Locality{},
				LoadBalancingWeight: wrapperspb.UInt32(1),
				LbEndpoints: []*endpoint.LbEndpoint{{
					HostIdentifier:      &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{Address: app}},
					LoadBalancingWeight: wrapperspb.UInt32(1),
				}},
			}},
		},
	}
}
