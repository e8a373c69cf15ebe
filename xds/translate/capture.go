package translate

import (
	"fmt"
	"net/netip"
	"strconv"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	originaldst "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/xds/node"
)

// Names of a captured sidecar's resources, as Istio names them.
const (
	// PassthroughCluster connects an outbound connection (or request) no
	// service claims to its original destination (outboundTrafficPolicy
	// ALLOW_ANY).
	PassthroughCluster = "PassthroughCluster"
	// InboundPassthroughCluster connects an inbound connection to a port
	// no service of the pod names to the app, at its original destination.
	InboundPassthroughCluster = "InboundPassthroughClusterIpv4"
	// BlackHoleCluster has no endpoints: what reaches it is closed.
	BlackHoleCluster = "BlackHoleCluster"
	// AllowAnyVirtualHost is the last virtual host of a captured sidecar's
	// per-port route configuration, to PassthroughCluster.
	AllowAnyVirtualHost = "allow_any"
	// BlockAllVirtualHost is the last virtual host of an outbound route
	// table under outboundTrafficPolicy REGISTRY_ONLY: 502 for every host
	// the proxy's scope does not know.
	BlockAllVirtualHost = "block_all"
	// OriginalDstFilter is the listener filter virtualInbound restores
	// each connection's original destination with.
	OriginalDstFilter = "envoy.filters.listener.original_dst"
	// InboundPassthroughSource is where a captured sidecar connects to
	// its own app from: the capture rules never redirect it.
	InboundPassthroughSource = "127.0.0.6"
)

// A captured sidecar (see docs/ARCHITECTURE.md, "The captured sidecar")
// gets virtualOutbound on the outbound capture port, handing each
// connection to the listener of its original destination (an HTTP
// listener per service port, a TCP listener per service address and
// port) and passing the rest through, or refusing it under
// outboundTrafficPolicy REGISTRY_ONLY; and virtualInbound on the inbound
// capture port, with filter chains per port the pod serves. The outbound
// side is shared by the pods of a scope (capturedShared), the inbound
// side is each pod's own (capturedOwn).

// capturedClusters emits the clusters every captured sidecar has besides
// its services': passthrough (outbound and inbound) and the black hole.
func (g *generator) capturedClusters() {
	g.r.Clusters[PassthroughCluster] = originalDstCluster(PassthroughCluster, "")
	g.r.Clusters[InboundPassthroughCluster] = originalDstCluster(InboundPassthroughCluster, InboundPassthroughSource)
	g.r.Clusters[BlackHoleCluster] = &cluster.Cluster{
		Name:                 BlackHoleCluster,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(ConnectTimeout),
		LoadAssignment:       &endpoint.ClusterLoadAssignment{ClusterName: BlackHoleCluster},
	}
}

// capturedShared emits the outbound listeners and route tables.
func (g *generator) capturedShared() {
	catchall := PassthroughCluster
	if g.scope.RegistryOnly() {
		catchall = BlackHoleCluster
	}
	g.r.Listeners[OutboundListener] = &listener.Listener{
		Name:             OutboundListener,
		Address:          anyAddress(node.OutboundCapturePort),
		TrafficDirection: core.TrafficDirection_OUTBOUND,
		UseOriginalDst:   wrapperspb.Bool(true),
		FilterChains: []*listener.FilterChain{
			// A connection made to the capture port itself was not
			// redirected: passing it through would send it back here.
			blackholeChain(OutboundListener, node.OutboundCapturePort),
			{Name: OutboundListener + "-catchall-tcp", Filters: []*listener.Filter{tcpProxyTo(catchall)}},
		},
	}
	g.capturedOutbound()
}

// capturedOwn emits the inbound side of one pod.
func (g *generator) capturedOwn() {
	if _, err := netip.ParseAddr(g.p.IP); err != nil {
		g.r.problem("node %s: a captured sidecar needs its pod's IP address in its node ID, got %q", g.p.ID(), g.p.IP)
		return
	}
	g.capturedInbound()
}

// capturedOutbound emits, for every HTTP service port P, listener
// 0.0.0.0_P (bound to no socket) with RDS route configuration "P", and for
// every other service port, listener ADDRESS_P per service address with a
// tcp_proxy to the service (or where its VirtualService's tcp routes say).
func (g *generator) capturedOutbound() {
	type vhostFor struct {
		svc  *model.Service
		port *model.Port
	}
	httpPorts := map[uint32][]vhostFor{}
	for _, svc := range g.services() {
		for _, port := range svc.Ports {
			if reservedPort(port.Number) {
				continue // its listener would take a capture listener's address
			}
			if port.IsHTTP() {
				httpPorts[port.Number] = append(httpPorts[port.Number], vhostFor{svc, port})
				continue
			}
			for _, a := range svc.Addresses {
				if ip, err := netip.ParseAddr(a); err == nil {
					g.outboundTCPListener(svc, port, ip)
				}
			}
		}
	}
	for _, p := range sortedPorts(httpPorts) {
		name := strconv.FormatUint(uint64(p), 10)
		rc := &route.RouteConfiguration{Name: name}
		var cands []domainCandidate
		for _, h := range httpPorts[p] {
			vh := g.serviceVirtualHost(g.virtualServiceFor(h.svc.Hostname), h.svc, h.port)
			for _, c := range sidecarDomains(h.svc, p, g.p.Namespace) {
				c.vhost = len(rc.VirtualHosts)
				cands = append(cands, c)
			}
			for _, a := range h.svc.Addresses {
				if _, err := netip.ParseAddr(a); err == nil {
					cands = append(cands,
						domainCandidate{domain: a, vhost: len(rc.VirtualHosts)},
						domainCandidate{domain: fmt.Sprintf("%s:%d", a, p), vhost: len(rc.VirtualHosts)})
				}
			}
			rc.VirtualHosts = append(rc.VirtualHosts, vh)
		}
		assignDomains(rc.VirtualHosts, cands)
		g.outsideScope(rc)
		g.r.Routes[name] = rc
		lname := GatewayListenerName(p)
		l := httpListener(lname, "outbound_"+lname, anyAddress(p), core.TrafficDirection_OUTBOUND, rdsManager(name), nil)
		l.BindToPort = wrapperspb.Bool(false)
		g.r.Listeners[lname] = l
	}
}

// outboundTCPListener emits ADDRESS_PORT for a TCP port of svc at one of
// its addresses: a tcp_proxy to the first tcp route of the service's mesh
// VirtualService that matches the port, else to the service's cluster.
func (g *generator) outboundTCPListener(svc *model.Service, port *model.Port, ip netip.Addr) {
	targets := []target{{name: ClusterName(port.Number, "", svc.Hostname), weight: 1}}
	stat := targets[0].name
	if vs := g.virtualServiceFor(svc.Hostname); vs != nil {
		for _, tr := range vs.Spec.(*networking.VirtualService).GetTcp() {
			if !meshTCPRouteMatches(tr, port.Number) {
				continue
			}
			if t := g.tcpTargets(vs.Meta.Namespace, tr.GetRoute(), routeScope{port: port.Number, listenPort: port.Number}); len(t) > 0 {
				targets, stat = t, t[0].name
				if len(t) > 1 {
					stat = vs.Meta.Name + "." + vs.Meta.Namespace
				}
			}
			break
		}
	}
	name := fmt.Sprintf("%s_%d", ip, port.Number)
	cfg := g.toAny(fmt.Sprintf("listener %s: tcp_proxy", name), tcpProxy(stat, targets))
	if cfg == nil {
		return
	}
	l := singleFilterListener(name, socketAddr(ip.String(), port.Number), core.TrafficDirection_OUTBOUND, tcpProxyFilterName, cfg)
	l.BindToPort = wrapperspb.Bool(false)
	g.r.Listeners[name] = l
}

// meshTCPRouteMatches reports whether a VirtualService tcp route applies to
// a sidecar's connections to port: no match entries match everything;
// otherwise an entry must agree on the port (or name none) and name no
// gateway but "mesh".
func meshTCPRouteMatches(tr *networking.TCPRoute, port uint32) bool {
	if len(tr.GetMatch()) == 0 {
		return true
	}
	for _, m := range tr.GetMatch() {
		if m.GetPort() != 0 && m.GetPort() != port {
			continue
		}
		if len(m.GetGateways()) == 0 || contains(m.GetGateways(), "mesh") {
			return true
		}
	}
	return false
}

// capturedInbound emits virtualInbound on the inbound capture port: for
// every port the pod serves (the workload ports of the services whose
// endpoints include its IP, active or not: a pod that is not ready yet or
// is terminating serves its ports all the same) filter chains matching
// that destination port,
// with the mTLS chains of the effective PeerAuthentication for the port
// and the inbound filters to cluster inbound|PORT|| (the pod IP and port,
// reached from InboundPassthroughSource); for any other port, chains under
// the workload-wide mode passing connections through to their original
// destination; and a black hole for the capture port itself.
func (g *generator) capturedInbound() {
	ports := map[uint32]bool{} // workload port -> HTTP
	for _, svc := range g.s.ServicesAt(g.p.IP) {
		for _, port := range svc.Ports {
			for _, eps := range [2][]*model.Endpoint{svc.Endpoints, svc.Inactive} {
				for _, e := range eps {
					if e.Address != g.p.IP {
						continue
					}
					wp := e.PortFor(port)
					if _, seen := ports[wp]; !seen && wp != 0 && !reservedPort(wp) {
						ports[wp] = port.IsHTTP()
					}
				}
			}
		}
	}
	l := &listener.Listener{
		Name:             InboundListener,
		Address:          anyAddress(node.InboundCapturePort),
		TrafficDirection: core.TrafficDirection_INBOUND,
		ListenerFilters: []*listener.ListenerFilter{{
			Name:       OriginalDstFilter,
			ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: mustAny(&originaldst.OriginalDst{})},
		}},
		FilterChains: []*listener.FilterChain{blackholeChain(InboundListener, node.InboundCapturePort)},
	}
	inspect := false
	for _, p := range sortedPorts(ports) {
		name := InboundClusterName(p)
		c := staticCluster(name, socketAddr(g.p.IP, p))
		c.UpstreamBindConfig = inboundBind()
		g.r.Clusters[name] = c
		chains, tls := mtlsChains(g.s.InboundMTLS(g.p.Namespace, g.p.Labels, p), g.inboundFilters(p, !ports[p]), p, fmt.Sprintf("-%d", p))
		l.FilterChains = append(l.FilterChains, chains...)
		inspect = inspect || tls
	}
	pass := append(g.security().tcp(), tcpProxyTo(InboundPassthroughCluster))
	chains, tls := mtlsChains(g.s.InboundMTLS(g.p.Namespace, g.p.Labels, 0), pass, 0, "-passthrough")
	l.FilterChains = append(l.FilterChains, chains...)
	if inspect || tls {
		l.ListenerFilters = append(l.ListenerFilters, tlsInspector())
	}
	g.r.Listeners[InboundListener] = l
}

// outsideScope ends an outbound route table with the virtual host for
// every other host, as outboundTrafficPolicy says: ALLOW_ANY passes a
// captured request through to its original destination (allow_any);
// REGISTRY_ONLY answers 502 (Istio's block_all). A `weft run` sidecar has
// no original destination to pass through to, so under ALLOW_ANY an
// unknown host finds no virtual host (404, NR) as before.
func (g *generator) outsideScope(rc *route.RouteConfiguration) {
	switch {
	case g.scope != nil && g.scope.RegistryOnly():
		rc.VirtualHosts = append(rc.VirtualHosts, &route.VirtualHost{
			Name: BlockAllVirtualHost, Domains: []string{"*"},
			Routes: []*route.Route{{
				Name:   BlockAllVirtualHost,
				Match:  &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
				Action: &route.Route_DirectResponse{DirectResponse: &route.DirectResponseAction{Status: 502}},
			}},
		})
	case g.p.Captured():
		rc.VirtualHosts = append(rc.VirtualHosts, &route.VirtualHost{
			Name: AllowAnyVirtualHost, Domains: []string{"*"},
			Routes: []*route.Route{defaultRoute(PassthroughCluster)},
		})
	}
}

// reservedPort reports whether p is a capture port, whose address the
// capture listeners hold.
func reservedPort(p uint32) bool {
	return p == node.OutboundCapturePort || p == node.InboundCapturePort
}

// blackholeChain closes connections whose destination is port itself.
func blackholeChain(listenerName string, port uint32) *listener.FilterChain {
	return &listener.FilterChain{
		Name:             listenerName + "-blackhole",
		FilterChainMatch: &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(port)},
		Filters:          []*listener.Filter{tcpProxyTo(BlackHoleCluster)},
	}
}

func tcpProxyTo(clusterName string) *listener.Filter {
	return networkFilter(tcpProxyFilterName, mustAny(tcpProxy(clusterName, []target{{name: clusterName, weight: 1}})))
}

// originalDstCluster connects to each connection's original destination,
// from source when set.
func originalDstCluster(name, source string) *cluster.Cluster {
	c := &cluster.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST},
		ConnectTimeout:       durationpb.New(ConnectTimeout),
		LbPolicy:             cluster.Cluster_CLUSTER_PROVIDED,
		CircuitBreakers:      defaultCircuitBreakers(),
	}
	if source != "" {
		c.UpstreamBindConfig = inboundBind()
	}
	return c
}

func inboundBind() *core.BindConfig {
	return &core.BindConfig{SourceAddress: &core.SocketAddress{
		Protocol: core.SocketAddress_TCP, Address: InboundPassthroughSource,
		PortSpecifier: &core.SocketAddress_PortValue{PortValue: 0},
	}}
}

func anyAddress(port uint32) *core.Address { return socketAddr("0.0.0.0", port) }

func socketAddr(host string, port uint32) *core.Address {
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Protocol: core.SocketAddress_TCP, Address: host,
		PortSpecifier: &core.SocketAddress_PortValue{PortValue: port},
	}}}
}
