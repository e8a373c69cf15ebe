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
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
)

// localSidecar emits a `weft run` sidecar's own resources: the outbound
// listener at its OUTBOUND_ADDRESS (the app's HTTP_PROXY) using the
// shared route table "outbound" and, when it fronts a local app, the
// inbound listener and its static cluster.
func (g *generator) localSidecar() {
	if g.p.Outbound != "" {
		addr, _, err := socketAddress(g.p.Outbound)
		if err != nil {
			g.r.problem("node %s: %s: %v", g.p.ID(), "OUTBOUND_ADDRESS", err)
		} else {
			g.r.Listeners[OutboundListener] = httpListener(OutboundListener, "outbound", addr, core.TrafficDirection_OUTBOUND, rdsManager(OutboundRoute), nil)
		}
	}
	if g.p.Inbound != "" && g.p.App != "" {
		g.inbound()
	}
}

// services returns the services the proxies being generated for see.
func (g *generator) services() []*model.Service { return g.s.VisibleServices(g.scope) }

// virtualServiceFor picks the mesh VirtualService for host as the scope's
// proxies see it (exportTo, Sidecar egress); nil for none.
func (g *generator) virtualServiceFor(host string) *config.Object {
	return g.s.ScopedVirtualService(g.scope, host)
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
	rc := &route.RouteConfiguration{Name: OutboundRoute}
	var cands []domainCandidate
	for _, svc := range g.services() {
		vs := g.virtualServiceFor(svc.Hostname)
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
	g.outsideScope(rc)
	return rc
}

// serviceVirtualHost is the virtual host of svc's HTTP port: the routes of
// its mesh VirtualService vs for that port, or the default route to the
// service's cluster. Domains are the caller's. The routes are shared
// across scopes and snapshots while what they are made of is unchanged
// (routesKey); they must not be modified.
func (g *generator) serviceVirtualHost(vs *config.Object, svc *model.Service, port *model.Port) *route.VirtualHost {
	vh := &route.VirtualHost{Name: fmt.Sprintf("%s:%d", svc.Hostname, port.Number)}
	build := func() []*route.Route {
		var rs []*route.Route
		if vs != nil {
			rs = g.vsRoutes(vs, routeScope{port: port.Number, listenPort: port.Number})
		} else {
			rs = []*route.Route{g.defaultOutboundRoute(ClusterName(port.Number, "", svc.Hostname))}
		}
		if g.p.GRPC() {
			rs = grpcRoutes(rs)
		}
		return rs
	}
	if g.items == nil {
		vh.Routes = build()
		return vh
	}
	e := g.s.Epochs()
	key := routesKey{flavor: flavorOf(g.p), vs: vs, host: svc.Hostname, port: port.Number, hosts: e.Hosts}
	if g.s.HashesConsistently() {
		key.hashNS, key.rules = g.p.Namespace, e.Rules
	}
	v, ok := g.items.get(key)
	if !ok {
		before := len(g.r.problems)
		it := &routesItem{routes: build()}
		it.problems = append([]string(nil), g.r.problems[before:]...)
		g.r.problems = g.r.problems[:before]
		for i, r := range it.routes {
			for _, err := range messageErrors("route", r.GetName(), r) {
				it.errs = append(it.errs, fmt.Errorf("virtual host %q: routes[%d]: %w", vh.Name, i, err))
			}
		}
		v = g.items.put(key, it)
	}
	it := v.(*routesItem)
	vh.Routes = it.routes
	g.r.problems = append(g.r.problems, it.problems...)
	if len(it.routes) > 0 {
		if g.checked == nil {
			g.checked = map[*route.Route]*routesItem{}
		}
		g.checked[it.routes[0]] = it
	}
	return vh
}

// routeTableKey identifies a shared route table by how it is made: its
// name and, per virtual host, its name, domains and routes (those of a
// routesItem by identity, others by encoding). Scopes whose tables come
// out the same (most namespaces, when short names do not clash across
// them) share one encoded table.
type routeTableKey struct{ recipe string }

// sharedRouteTable returns the encoded, checked resource of a shared route
// table, made once for every table made the same way.
func (g *generator) sharedRouteTable(name string, rc *route.RouteConfiguration) *madeResource {
	var b strings.Builder
	b.WriteString(name)
	for _, vh := range rc.GetVirtualHosts() {
		b.WriteByte(0)
		b.WriteString(vh.GetName())
		for _, d := range vh.GetDomains() {
			b.WriteByte(1)
			b.WriteString(d)
		}
		b.WriteByte(2)
		if rs := vh.GetRoutes(); len(rs) > 0 && g.checked[rs[0]] != nil {
			fmt.Fprintf(&b, "%p/%d", rs[0], len(rs))
			continue
		}
		enc, err := proto.MarshalOptions{Deterministic: true}.Marshal(&route.VirtualHost{Routes: vh.GetRoutes()})
		if err != nil {
			return encodeResource(name, rc, g.sharedRouteTableErrors(rc))
		}
		b.Write(enc)
	}
	key := routeTableKey{b.String()}
	if v, ok := g.items.get(key); ok {
		return v.(*madeResource)
	}
	m := encodeResource(name, rc, g.sharedRouteTableErrors(rc))
	m.res = m.res.Compact()
	// The key names routes by address: the entry keeps the routes alive,
	// so no other routes can take those addresses while it exists.
	for _, vh := range rc.GetVirtualHosts() {
		m.keep = append(m.keep, vh.GetRoutes())
	}
	return g.items.put(key, m).(*madeResource)
}

// sharedRouteTableErrors checks a shared route table whose virtual hosts'
// routes come from routesItems, which were checked when made: what is
// left to check is the table itself and its virtual hosts' own fields.
func (g *generator) sharedRouteTableErrors(rc *route.RouteConfiguration) []error {
	shell := &route.RouteConfiguration{Name: rc.GetName()}
	var errs []error
	for _, vh := range rc.GetVirtualHosts() {
		sv := &route.VirtualHost{Name: vh.GetName(), Domains: vh.GetDomains(), Routes: vh.GetRoutes()}
		if len(vh.GetRoutes()) > 0 {
			if it := g.checked[vh.GetRoutes()[0]]; it != nil {
				sv.Routes = nil
				for _, err := range it.errs {
					errs = append(errs, fmt.Errorf("route configuration %q: %w", rc.GetName(), err))
				}
			}
		}
		shell.VirtualHosts = append(shell.VirtualHosts, sv)
	}
	errs = append(errs, messageErrors("route configuration", rc.GetName(), shell)...)
	return append(errs, validateRouteTable(rc)...)
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
