package translate

import (
	"fmt"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
)

// tcpProxy builds a tcp_proxy to one cluster or, for several targets, a
// weighted split between them.
func tcpProxy(statPrefix string, targets []target) *tcpv3.TcpProxy {
	out := &tcpv3.TcpProxy{StatPrefix: statPrefix}
	if len(targets) == 1 {
		out.ClusterSpecifier = &tcpv3.TcpProxy_Cluster{Cluster: targets[0].name}
		return out
	}
	wc := &tcpv3.TcpProxy_WeightedCluster{}
	for _, t := range targets {
		wc.Clusters = append(wc.Clusters, &tcpv3.TcpProxy_WeightedCluster_ClusterWeight{Name: t.name, Weight: t.weight})
	}
	out.ClusterSpecifier = &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: wc}
	return out
}

// tcpTargets resolves a tcp route's destinations with the same weight
// rules as HTTP: zero weights are dropped when there are several, and an
// all-zero list is split evenly.
func (g *generator) tcpTargets(ns string, dests []*networking.RouteDestination, sc routeScope) []target {
	var list []target
	for _, d := range dests {
		if len(dests) > 1 && d.GetWeight() <= 0 {
			continue
		}
		list = append(list, target{name: g.destinationCluster(ns, d.GetDestination(), sc), weight: uint32(max(d.GetWeight(), 1))})
	}
	if len(list) == 0 {
		for _, d := range dests {
			list = append(list, target{name: g.destinationCluster(ns, d.GetDestination(), sc), weight: 1})
		}
	}
	return list
}

// gatewayTCP emits a tcp_proxy listener 0.0.0.0_PORT for a Gateway port
// whose servers are TCP. The first VirtualService (by namespace/name)
// bound to one of those servers, with a host the server accepts and a tcp
// route matching the port, decides where connections go; with none, no
// listener is emitted, since a listener that can only drop connections
// would hide the misconfiguration behind accepted-then-closed sockets.
func (g *generator) gatewayTCP(port uint32, servers []gwServer) {
	vsObj, tr := g.gatewayTCPRoute(port, servers)
	if tr == nil {
		return
	}
	addr, listenPort, err := socketAddress(g.p.GatewayListenAddress(port))
	if err != nil {
		g.r.problem("node %s: gateway port %d: %v", g.p.ID(), port, err)
		return
	}
	targets := g.tcpTargets(vsObj.Meta.Namespace, tr.GetRoute(), routeScope{port: port, listenPort: listenPort, gateway: true})
	if len(targets) == 0 {
		return
	}
	// Istio's stat prefixes: the cluster for one destination, the
	// VirtualService for a split.
	stat := targets[0].name
	if len(targets) > 1 {
		stat = vsObj.Meta.Name + "." + vsObj.Meta.Namespace
	}
	name := GatewayListenerName(port)
	cfg := g.toAny(fmt.Sprintf("listener %s: tcp_proxy", name), tcpProxy(stat, targets))
	if cfg == nil {
		return
	}
	l := singleFilterListener(name, addr, core.TrafficDirection_OUTBOUND, tcpProxyFilterName, cfg)
	fc := l.GetFilterChains()[0]
	fc.Filters = append(g.security().tcp(), fc.Filters...)
	g.r.Listeners[name] = l
}

// gatewayTCPRoute finds the tcp route serving a Gateway TCP port.
func (g *generator) gatewayTCPRoute(port uint32, servers []gwServer) (*config.Object, *networking.TCPRoute) {
	for _, o := range g.s.Objects(config.KindVirtualService) {
		vs := o.Spec.(*networking.VirtualService)
		if len(vs.GetTcp()) == 0 {
			continue
		}
		refs := gatewayRefs(o.Meta.Namespace, vs)
		var bound []string
		for _, srv := range servers {
			ref := srv.gw.Meta.Namespace + "/" + srv.gw.Meta.Name
			if contains(refs, ref) && g.serverAccepts(srv, o, vs) {
				bound = append(bound, ref)
			}
		}
		if len(bound) == 0 {
			continue
		}
		for _, tr := range vs.GetTcp() {
			if tcpRouteMatches(o.Meta.Namespace, tr, port, bound) {
				return o, tr
			}
		}
	}
	return nil, nil
}

// serverAccepts reports whether one of the server's hosts admits one of
// the VirtualService's hosts (a "*" server admits all).
func (g *generator) serverAccepts(srv gwServer, o *config.Object, vs *networking.VirtualService) bool {
	for _, sh := range srv.hosts {
		if sh.ns != "*" && sh.ns != o.Meta.Namespace {
			continue
		}
		for _, h := range vs.GetHosts() {
			if _, ok := intersectHosts(sh.host, g.s.ResolveHost(o.Meta.Namespace, h)); ok {
				return true
			}
		}
	}
	return false
}

// tcpRouteMatches reports whether a tcp route applies to port on one of
// the gateways in bound: no match entries match everything; otherwise one
// entry must agree on the port (or name none) and, if it names gateways,
// name one of bound. sourceLabels and destinationSubnets cannot be known
// at a gateway and are ignored.
func tcpRouteMatches(ns string, tr *networking.TCPRoute, port uint32, bound []string) bool {
	if len(tr.GetMatch()) == 0 {
		return true
	}
	for _, m := range tr.GetMatch() {
		if m.GetPort() != 0 && m.GetPort() != port {
			continue
		}
		if len(m.GetGateways()) == 0 {
			return true
		}
		for _, gw := range m.GetGateways() {
			ref := gw
			if !strings.Contains(gw, "/") {
				ref = ns + "/" + gw
			}
			if contains(bound, ref) {
				return true
			}
		}
	}
	return false
}
