package config

import (
	"fmt"
	"net/netip"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// This file validates the kinds besides VirtualService.

// knownProtocols are the port protocols Istio recognizes (compared upper case).
var knownProtocols = map[string]bool{
	"HTTP": true, "HTTPS": true, "HTTP2": true, "GRPC": true, "GRPC-WEB": true, "HTTP_PROXY": true,
	"TCP": true, "TLS": true, "UDP": true, "MONGO": true, "REDIS": true, "MYSQL": true,
}

func (v *validator) protocol(p path, proto string, required bool) {
	switch {
	case proto == "" && required:
		v.errorf(p, "required, e.g. HTTP")
	case proto != "" && !knownProtocols[strings.ToUpper(proto)]:
		v.errorf(p, "unknown protocol %q; use HTTP, HTTPS, HTTP2, GRPC, TCP, TLS, MONGO, REDIS, MYSQL or UDP", proto)
	}
}

func (v *validator) destinationRule(dr *networking.DestinationRule) {
	spec := path("spec")
	if dr.GetHost() == "" {
		v.errorf(spec.field("host"), "required")
	} else {
		v.host(spec.field("host"), dr.GetHost())
	}
	v.exportTo(spec.field("exportTo"), dr.GetExportTo())
	v.trafficPolicy(spec.field("trafficPolicy"), dr.GetTrafficPolicy())
	first := map[string]int{}
	for i, ss := range dr.GetSubsets() {
		sp := spec.field("subsets").index(i)
		switch name := ss.GetName(); {
		case name == "":
			v.errorf(sp.field("name"), "required")
		case !isDNS1123Label(name):
			v.errorf(sp.field("name"), "invalid subset name %q: use lower-case letters, digits and '-', at most 63 characters", name)
		default:
			if j, dup := first[name]; dup {
				v.errorf(sp.field("name"), "duplicate subset name %q (also subsets[%d])", name, j)
			} else {
				first[name] = i
			}
		}
		v.trafficPolicy(sp.field("trafficPolicy"), ss.GetTrafficPolicy())
	}
}

func (v *validator) trafficPolicy(p path, tp *networking.TrafficPolicy) {
	if tp == nil {
		return
	}
	v.loadBalancer(p.field("loadBalancer"), tp.GetLoadBalancer())
	v.connectionPool(p.field("connectionPool"), tp.GetConnectionPool())
	v.outlierDetection(p.field("outlierDetection"), tp.GetOutlierDetection())
	ports := map[uint32]int{}
	for i, pl := range tp.GetPortLevelSettings() {
		pp := p.field("portLevelSettings").index(i)
		if pl.GetPort() == nil {
			v.errorf(pp.field("port"), "required")
		} else {
			n := pl.GetPort().GetNumber()
			v.port(pp.field("port").field("number"), n)
			if j, dup := ports[n]; dup {
				v.errorf(pp.field("port").field("number"), "port %d already has settings (portLevelSettings[%d])", n, j)
			} else {
				ports[n] = i
			}
		}
		v.loadBalancer(pp.field("loadBalancer"), pl.GetLoadBalancer())
		v.connectionPool(pp.field("connectionPool"), pl.GetConnectionPool())
		v.outlierDetection(pp.field("outlierDetection"), pl.GetOutlierDetection())
	}
}

func (v *validator) loadBalancer(p path, lb *networking.LoadBalancerSettings) {
	if lb == nil {
		return
	}
	if ch := lb.GetConsistentHash(); ch != nil {
		cp := p.field("consistentHash")
		// Envoy's own ceiling for a ring (ring_hash_lb_config.minimum_ring_size).
		const maxRing = 8 * 1024 * 1024
		if n := ch.GetRingHash().GetMinimumRingSize(); n > maxRing {
			v.errorf(cp.field("ringHash").field("minimumRingSize"), "must be at most %d, got %d", maxRing, n)
		}
		if n := ch.GetMinimumRingSize(); n > maxRing { //nolint:staticcheck // legacy field, still accepted
			v.errorf(cp.field("minimumRingSize"), "must be at most %d, got %d", maxRing, n)
		}
		switch key := ch.GetHashKey().(type) {
		case nil:
			v.errorf(cp, "exactly one hash key is required: httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName")
		case *networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName:
			if key.HttpHeaderName == "" {
				v.errorf(cp.field("httpHeaderName"), "must not be empty")
			}
		case *networking.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName:
			if key.HttpQueryParameterName == "" {
				v.errorf(cp.field("httpQueryParameterName"), "must not be empty")
			}
		case *networking.LoadBalancerSettings_ConsistentHashLB_HttpCookie:
			if key.HttpCookie.GetName() == "" {
				v.errorf(cp.field("httpCookie").field("name"), "required")
			}
			// A zero TTL asks for a session cookie, so only validity is checked.
			if ttl := key.HttpCookie.GetTtl(); ttl != nil {
				if err := ttl.CheckValid(); err != nil {
					v.errorf(cp.field("httpCookie").field("ttl"), "invalid duration: %v", err)
				}
			}
		}
	}
	v.duration(p.field("warmupDurationSecs"), lb.GetWarmupDurationSecs())
	if w := lb.GetWarmup(); w != nil {
		v.duration(p.field("warmup").field("duration"), w.GetDuration())
		if mp := w.GetMinimumPercent(); mp != nil {
			v.percent(p.field("warmup").field("minimumPercent"), mp.GetValue())
		}
	}
}

func (v *validator) connectionPool(p path, cp *networking.ConnectionPoolSettings) {
	if cp == nil {
		return
	}
	if t := cp.GetTcp(); t != nil {
		tp := p.field("tcp")
		v.nonNegative(tp.field("maxConnections"), t.GetMaxConnections())
		v.duration(tp.field("connectTimeout"), t.GetConnectTimeout())
		v.duration(tp.field("maxConnectionDuration"), t.GetMaxConnectionDuration())
		v.duration(tp.field("idleTimeout"), t.GetIdleTimeout())
		if ka := t.GetTcpKeepalive(); ka != nil {
			v.duration(tp.field("tcpKeepalive").field("time"), ka.GetTime())
			v.duration(tp.field("tcpKeepalive").field("interval"), ka.GetInterval())
		}
	}
	if h := cp.GetHttp(); h != nil {
		hp := p.field("http")
		v.nonNegative(hp.field("http1MaxPendingRequests"), h.GetHttp1MaxPendingRequests())
		v.nonNegative(hp.field("http2MaxRequests"), h.GetHttp2MaxRequests())
		v.nonNegative(hp.field("maxRequestsPerConnection"), h.GetMaxRequestsPerConnection())
		v.nonNegative(hp.field("maxRetries"), h.GetMaxRetries())
		v.nonNegative(hp.field("maxConcurrentStreams"), h.GetMaxConcurrentStreams())
		v.duration(hp.field("idleTimeout"), h.GetIdleTimeout())
	}
}

func (v *validator) outlierDetection(p path, od *networking.OutlierDetection) {
	if od == nil {
		return
	}
	v.nonNegative(p.field("consecutiveErrors"), od.GetConsecutiveErrors())
	if x := od.GetMaxEjectionPercent(); x < 0 || x > 100 {
		v.errorf(p.field("maxEjectionPercent"), "must be between 0 and 100, got %d", x)
	}
	if x := od.GetMinHealthPercent(); x < 0 || x > 100 {
		v.errorf(p.field("minHealthPercent"), "must be between 0 and 100, got %d", x)
	}
	v.duration(p.field("interval"), od.GetInterval())
	v.duration(p.field("baseEjectionTime"), od.GetBaseEjectionTime())
}

func (v *validator) nonNegative(p path, n int32) {
	if n < 0 {
		v.errorf(p, "must not be negative, got %d", n)
	}
}

func (v *validator) gateway(gw *networking.Gateway) {
	spec := path("spec")
	if len(gw.GetServers()) == 0 {
		v.errorf(spec.field("servers"), "at least one server is required")
	}
	for i, s := range gw.GetServers() {
		sp := spec.field("servers").index(i)
		proto := ""
		if s.GetPort() == nil {
			v.errorf(sp.field("port"), "required")
		} else {
			proto = strings.ToUpper(s.GetPort().GetProtocol())
			v.port(sp.field("port").field("number"), s.GetPort().GetNumber())
			v.protocol(sp.field("port").field("protocol"), s.GetPort().GetProtocol(), true)
			v.optionalPort(sp.field("port").field("targetPort"), s.GetPort().GetTargetPort())
		}
		if len(s.GetHosts()) == 0 {
			v.errorf(sp.field("hosts"), "at least one host is required")
		}
		for j, h := range s.GetHosts() {
			if msg := checkGatewayHost(h); msg != "" {
				v.errorf(sp.field("hosts").index(j), "%s", msg)
			}
		}
		if (proto == "HTTPS" || proto == "TLS") && s.GetTls() == nil {
			v.errorf(sp.field("tls"), "required for protocol %s", proto)
		}
	}
}

// checkGatewayHost accepts a Gateway server host: HOST, or NS/HOST where NS
// is a namespace, "*" (any), "." (the Gateway's own) or "~" (none).
func checkGatewayHost(h string) string {
	ns, host, qualified := strings.Cut(h, "/")
	if !qualified {
		return checkHost(h)
	}
	if ns != "*" && ns != "." && ns != "~" && !isDNS1123Label(ns) {
		return fmt.Sprintf("invalid namespace %q in host %q: use NAMESPACE/HOST, */HOST or ./HOST", ns, h)
	}
	return checkHost(host)
}

func (v *validator) serviceEntry(se *networking.ServiceEntry) {
	spec := path("spec")
	if len(se.GetHosts()) == 0 {
		v.errorf(spec.field("hosts"), "at least one host is required")
	}
	for i, h := range se.GetHosts() {
		if h == "*" {
			v.errorf(spec.field("hosts").index(i), "host * is not allowed; use a name or a wildcard such as *.example.com")
			continue
		}
		v.host(spec.field("hosts").index(i), h)
	}
	v.exportTo(spec.field("exportTo"), se.GetExportTo())
	for i, a := range se.GetAddresses() {
		if _, err := netip.ParsePrefix(a); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(a); err != nil {
			v.errorf(spec.field("addresses").index(i), "invalid address %q: use an IP address or CIDR block", a)
		}
	}
	names, numbers := map[string]int{}, map[uint32]int{}
	for i, port := range se.GetPorts() {
		pp := spec.field("ports").index(i)
		v.port(pp.field("number"), port.GetNumber())
		v.protocol(pp.field("protocol"), port.GetProtocol(), false)
		v.optionalPort(pp.field("targetPort"), port.GetTargetPort())
		if j, dup := numbers[port.GetNumber()]; dup {
			v.errorf(pp.field("number"), "duplicate port number %d (also ports[%d])", port.GetNumber(), j)
		} else {
			numbers[port.GetNumber()] = i
		}
		if name := port.GetName(); name != "" {
			if j, dup := names[name]; dup {
				v.errorf(pp.field("name"), "duplicate port name %q (also ports[%d])", name, j)
			} else {
				names[name] = i
			}
		}
	}
	if se.GetWorkloadSelector() != nil && len(se.GetEndpoints()) > 0 {
		v.errorf(spec.field("workloadSelector"), "cannot be set together with endpoints")
	}
	static := se.GetResolution() == networking.ServiceEntry_STATIC
	for i, ep := range se.GetEndpoints() {
		p := spec.field("endpoints").index(i)
		v.workloadEntry(p, ep, names)
		if addr := ep.GetAddress(); static && addr != "" && !strings.HasPrefix(addr, "unix://") {
			if _, err := netip.ParseAddr(addr); err != nil {
				v.errorf(p.field("address"), "resolution STATIC needs an IP address, got %q", addr)
			}
		}
	}
}

// workloadEntry checks a WorkloadEntry spec, or one endpoint of a
// ServiceEntry at p. servicePorts, when not nil, are the ServiceEntry's port
// names, which the endpoint's ports must refer to.
func (v *validator) workloadEntry(p path, we *networking.WorkloadEntry, servicePorts map[string]int) {
	switch addr := we.GetAddress(); {
	case addr == "" && we.GetNetwork() == "":
		v.errorf(p.field("address"), "required (unless network is set)")
	case addr == "", strings.HasPrefix(addr, "unix://"):
	default:
		if _, err := netip.ParseAddr(addr); err != nil && checkHost(addr) != "" || strings.Contains(addr, "*") {
			v.errorf(p.field("address"), "invalid address %q: use an IP address, a DNS name or unix:///path", addr)
		}
	}
	for _, name := range sortedKeys(we.GetPorts()) {
		pp := p.field("ports").key(name)
		v.port(pp, we.GetPorts()[name])
		if servicePorts != nil {
			if _, ok := servicePorts[name]; !ok {
				v.errorf(pp, "port name %q is not one of the ServiceEntry's ports", name)
			}
		}
	}
}
