package translate

import (
	"fmt"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
)

// gwServer is one HTTP or TCP server of a Gateway selected by this node.
type gwServer struct {
	gw    *config.Object
	hosts []serverHost
}

// serverHost is a Gateway server host split into its namespace filter
// ("*" for any) and the host pattern.
type serverHost struct {
	ns   string
	host string
}

// gateway emits, per HTTP port of the selected Gateways' servers, a
// listener 0.0.0.0_PORT and route table http.PORT, and per TCP port a
// tcp_proxy listener 0.0.0.0_PORT.
func (g *generator) gateway() {
	byPort := map[uint32][]gwServer{}
	tcpByPort := map[uint32][]gwServer{}
	for _, o := range g.s.Objects(config.KindGateway) {
		gw := o.Spec.(*networking.Gateway)
		if !model.LabelsMatch(g.p.Labels, gw.GetSelector()) {
			continue
		}
		for _, srv := range gw.GetServers() {
			dst := byPort
			switch {
			case httpProtocol(srv.GetPort().GetProtocol()):
			case strings.EqualFold(srv.GetPort().GetProtocol(), "TCP"):
				dst = tcpByPort
			default:
				continue // TLS and HTTPS servers need features the weft proxy does not implement
			}
			s := gwServer{gw: o}
			for _, h := range srv.GetHosts() {
				s.hosts = append(s.hosts, splitServerHost(o.Meta.Namespace, h))
			}
			dst[srv.GetPort().GetNumber()] = append(dst[srv.GetPort().GetNumber()], s)
		}
	}
	for _, port := range sortedPorts(byPort) {
		listen := g.p.GatewayListenAddress(port)
		addr, listenPort, err := socketAddress(listen)
		if err != nil {
			g.r.problem("node %s: gateway port %d: %v", g.p.ID(), port, err)
			continue
		}
		name := GatewayListenerName(port)
		g.r.Listeners[name] = httpListener(name, fmt.Sprintf("outbound_0.0.0.0_%d", port), addr, core.TrafficDirection_OUTBOUND, rdsManager(GatewayRouteName(port)), g.security().http)
		rc := g.gatewayRoutes(port, listenPort, byPort[port])
		g.applyRouteLimits(rc)
		g.r.Routes[GatewayRouteName(port)] = rc
	}
	for _, port := range sortedPorts(tcpByPort) {
		if _, http := byPort[port]; http {
			continue // one listener per port: a port with HTTP servers stays HTTP
		}
		g.gatewayTCP(port, tcpByPort[port])
	}
}

func httpProtocol(p string) bool {
	switch strings.ToUpper(p) {
	case "HTTP", "HTTP2", "GRPC", "":
		return true
	}
	return false
}

// splitServerHost parses "ns/host", "./host" (the Gateway's namespace) and
// plain "host" (any namespace).
func splitServerHost(gwNS, h string) serverHost {
	ns, host, ok := strings.Cut(h, "/")
	if !ok {
		return serverHost{ns: "*", host: h}
	}
	if ns == "." {
		ns = gwNS
	}
	return serverHost{ns: ns, host: host}
}

// gatewayRefs returns the Gateways a VirtualService binds to, as ns/name.
func gatewayRefs(vsNS string, vs *networking.VirtualService) []string {
	var out []string
	for _, gw := range vs.GetGateways() {
		switch {
		case gw == "mesh":
			continue
		case strings.Contains(gw, "/"):
			out = append(out, gw)
		case strings.Contains(gw, "."):
			// Legacy NAME.NAMESPACE[.svc.cluster.local] form.
			parts := strings.SplitN(gw, ".", 3)
			out = append(out, parts[1]+"/"+parts[0])
		default:
			out = append(out, vsNS+"/"+gw)
		}
	}
	return out
}

// intersectHosts returns the more specific of a server host and a
// VirtualService host when one covers the other, as Istio does: a VS for
// "bookinfo.example.com" on a "*" server serves only bookinfo.example.com.
func intersectHosts(server, vs string) (string, bool) {
	switch {
	case server == vs:
		return vs, true
	case model.HostMatches(server, vs):
		return vs, true
	case model.HostMatches(vs, server):
		return server, true
	}
	return "", false
}

// gatewayRoutes builds http.PORT: one virtual host per host the bound
// VirtualServices and the servers agree on. Requests for anything else
// find no virtual host, and the proxy answers 404.
func (g *generator) gatewayRoutes(port, listenPort uint32, servers []gwServer) *route.RouteConfiguration {
	type vhostAcc struct {
		vss  []*config.Object
		seen map[*config.Object]bool
	}
	acc := map[string]*vhostAcc{}
	for _, o := range g.s.Objects(config.KindVirtualService) {
		vs := o.Spec.(*networking.VirtualService)
		refs := gatewayRefs(o.Meta.Namespace, vs)
		for _, srv := range servers {
			if !contains(refs, srv.gw.Meta.Namespace+"/"+srv.gw.Meta.Name) {
				continue
			}
			for _, sh := range srv.hosts {
				if sh.ns != "*" && sh.ns != o.Meta.Namespace {
					continue
				}
				for _, h := range vs.GetHosts() {
					key, ok := intersectHosts(sh.host, g.s.ResolveHost(o.Meta.Namespace, h))
					if !ok {
						continue
					}
					a := acc[key]
					if a == nil {
						a = &vhostAcc{seen: map[*config.Object]bool{}}
						acc[key] = a
					}
					if !a.seen[o] {
						a.seen[o] = true
						a.vss = append(a.vss, o)
					}
				}
			}
		}
	}
	rc := &route.RouteConfiguration{Name: GatewayRouteName(port)}
	for _, host := range sortedKeys(acc) {
		vh := &route.VirtualHost{Name: fmt.Sprintf("%s:%d", host, port), Domains: gatewayDomains(host, port, listenPort)}
		for _, o := range acc[host].vss {
			vh.Routes = append(vh.Routes, g.vsRoutes(o, routeScope{port: port, listenPort: listenPort, gateway: true})...)
		}
		rc.VirtualHosts = append(rc.VirtualHosts, vh)
	}
	return rc
}

// gatewayDomains lists host, host:PORT and, when the gateway listens on a
// different local port (80 served on 8080), host:LISTENPORT, so a Host
// header carrying either port still matches.
func gatewayDomains(host string, port, listenPort uint32) []string {
	if host == "*" {
		return []string{"*"}
	}
	d := []string{host, fmt.Sprintf("%s:%d", host, port)}
	if listenPort != port && listenPort != 0 {
		d = append(d, fmt.Sprintf("%s:%d", host, listenPort))
	}
	return d
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
